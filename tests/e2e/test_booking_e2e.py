"""Booking on the whole local stack: HTTP -> Azurite queue -> event-write worker -> real Graph gateway -> simulator.

"Done when": a free slot booked through POST /api/sessions ends as exactly one event in the
organizer's calendar, partner invited, Teams join URL, the room when asked; reschedule and
cancel from the API reach the calendar; under 30% throttling and 5% failures 50 bookings all
end booked with no duplicate event.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from core.bootstrap import get_container
from core.names import Tables
from core.ports import Entity
from local.simulator import seed
from tests.e2e.conftest import Stack
from tests.log_guard import sentinel

TENANT = seed.CONTOSO
SUBJECT = sentinel("Confidential subject: booking e2e")
ROOM = "room-severn@contoso.test"
FAULT_PAIRS = [("alice", "bob"), ("carol", "grace"), ("dave", "heidi"), ("erin", "ivan"), ("frank", "judy")]


def upn(name: str) -> str:
    return f"{name}@{seed.CONTOSO_DOMAIN}"


def ensure_contoso(stack: Stack) -> None:
    """Contoso consented at the simulator and onboarded (its integration record kept as is if another test made one)."""
    stack.control("POST", "/_sandbox/consent", {"tenant": TENANT, "grant": True, "granted": True})
    tables = get_container().tables
    found = tables.get(Tables.INTEGRATIONS, TENANT, "integration")
    if found is None or found.data.get("status") not in ("connected", "degraded", "testing") or not found.data.get(
        "enabled", True
    ) or found.data.get("method", "domainWide") != "domainWide":
        tables.upsert(Tables.INTEGRATIONS, Entity(TENANT, "integration", {
            "vendor": "outlook365", "method": "domainWide", "ownerEmail": "owner@contoso.test",
            "enabled": True, "status": "connected", "pairingPolicy": "registered",
        }))
        tables.upsert(Tables.INTEGRATIONS, Entity("~tenants", TENANT, {}))
    get_container().tenant_gate.forget(TENANT)


def pair(stack: Stack, mentor: str, mentee: str) -> str:
    """PUT a pairing through the API as the tenant admin; returns its id."""
    pairing_id = "e2e-" + uuid.uuid4().hex[:12]
    admin = stack.token(seed.CONTOSO_ADMIN, roles=["Integration.Admin"])
    r = stack.call("PUT", f"/pairings/{pairing_id}", admin, {"mentor": upn(mentor), "mentee": upn(mentee),
                                                             "active": True})
    assert r.status_code == 200, r.text
    return pairing_id


def book(stack: Stack, token: str, pairing_id: str, start: datetime, minutes: int = 30, **extra: Any) -> str:
    end = start + timedelta(minutes=minutes)
    body = {"pairingId": pairing_id, "start": start.isoformat(), "end": end.isoformat(),
            "timeZone": "Europe/London", "subject": SUBJECT, **extra}
    for _ in range(20):
        r = stack.call("POST", "/sessions", token, body)
        if r.status_code != 429:
            break
        time.sleep(float(r.headers.get("Retry-After", "1")))
    assert r.status_code == 202, r.text
    assert r.headers["Location"] == f"/api/sessions/{r.json()['id']}"
    return str(r.json()["id"])


def session(stack: Stack, token: str, sid: str) -> dict[str, Any]:
    r = stack.call("GET", f"/sessions/{sid}", token)
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def wait_status(stack: Stack, token: str, sid: str, status: str, timeout: float = 60) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        doc = session(stack, token, sid)
        return doc if doc["status"] == status and "pendingChange" not in doc else None

    found: dict[str, Any] = stack.wait_for(check, timeout=timeout)
    return found


def events_of(stack: Stack, user: str, tx: str | None = None) -> list[dict[str, Any]]:
    """The organizer's calendar now (simulator control API), optionally only the event with transactionId ``tx``."""
    frm = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    to = (datetime.now(UTC) + timedelta(days=120)).isoformat()
    path = f"/_sandbox/users/{upn(user)}/events"
    events: list[dict[str, Any]] = stack.control("GET", path, **{"from": frm, "to": to})
    return [e for e in events if tx is None or e.get("transactionId") == tx]


def free_slot(stack: Stack, token: str, pairing_id: str, day_offset: int, *, not_before: datetime | None = None,
              minutes: int = 30) -> datetime:
    """A slot both members are free in, from the availability route (or a quiet early-morning fallback)."""
    today = date.today()
    day = datetime(today.year, today.month, today.day, tzinfo=UTC) + timedelta(days=day_offset)
    if not_before is not None:
        day = max(day, not_before)
    r = stack.call("POST", "/availability", token, {
        "pairingId": pairing_id, "start": day.isoformat(), "end": (day + timedelta(days=3)).isoformat(),
        "durationMinutes": minutes, "timeZone": "UTC",
    })
    if r.status_code == 200 and r.json().get("slots"):
        return datetime.fromisoformat(r.json()["slots"][0]["start"].replace("Z", "+00:00"))
    return day + timedelta(hours=2)


@pytest.fixture(scope="module")
def contoso(stack: Stack) -> Iterator[Stack]:
    ensure_contoso(stack)
    stack.control("POST", "/_sandbox/faults", {})
    yield stack
    stack.control("POST", "/_sandbox/faults", {})


def test_booking_a_free_slot_makes_one_event_with_partner_room_and_teams_link(contoso: Stack) -> None:
    """One event in Alice's calendar: transactionId = session id, Bob required, the room as resource, a Teams link."""
    stack = contoso
    pairing_id = pair(stack, "alice", "bob")
    alice = stack.token(upn("alice"))
    start = free_slot(stack, alice, pairing_id, day_offset=9)
    sid = book(stack, alice, pairing_id, start, room=ROOM)
    doc = wait_status(stack, alice, sid, "booked")
    [event] = events_of(stack, "alice", sid)
    people = {(a["emailAddress"]["address"].lower(), a["type"]) for a in event["attendees"]}
    assert (upn("bob"), "required") in people and (ROOM, "resource") in people
    assert event["isOnlineMeeting"] and event["onlineMeeting"]["joinUrl"] == doc["joinUrl"]
    assert doc["room"]["email"].lower() == ROOM and doc["attendees"][0]["response"] in ("none", "notResponded")
    bob_view = session(stack, stack.token(upn("bob")), sid)
    assert bob_view["id"] == sid and bob_view["status"] == "booked"


def test_calendar_without_online_meetings_is_booked_without_a_link(contoso: Stack) -> None:
    """Xavier's calendar allows no online-meeting provider: booked, no join URL, and the session says so."""
    stack = contoso
    pairing_id = pair(stack, "xavier", "zoe")
    token = stack.token(upn("xavier"))
    sid = book(stack, token, pairing_id, free_slot(stack, token, pairing_id, day_offset=12))
    doc = wait_status(stack, token, sid, "booked")
    assert "joinUrl" not in doc and doc["onlineMeetingUnavailable"] is True
    assert len(events_of(stack, "xavier", sid)) == 1


def test_reschedule_and_cancel_from_the_api_reach_the_calendar(contoso: Stack) -> None:
    """PATCH moves the Outlook event; DELETE cancels it, and Bob's copy is marked cancelled."""
    stack = contoso
    pairing_id = pair(stack, "alice", "bob")
    alice = stack.token(upn("alice"))
    start = free_slot(stack, alice, pairing_id, day_offset=16)
    sid = book(stack, alice, pairing_id, start)
    wait_status(stack, alice, sid, "booked")
    # A move the slot re-check accepts: a time both are free (their own sessions included).
    moved = free_slot(stack, alice, pairing_id, day_offset=16, not_before=start + timedelta(hours=1), minutes=45)
    r = stack.call("PATCH", f"/sessions/{sid}", alice, {"start": moved.isoformat(),
                                                         "end": (moved + timedelta(minutes=45)).isoformat(),
                                                         "timeZone": "UTC"})
    assert r.status_code == 202, r.text
    doc = wait_status(stack, alice, sid, "booked")
    assert doc["start"] == moved.strftime("%Y-%m-%dT%H:%M:%SZ")
    [event] = events_of(stack, "alice", sid)
    assert event["start"]["dateTime"].startswith(moved.strftime("%Y-%m-%dT%H:%M:%S"))
    assert stack.call("DELETE", f"/sessions/{sid}", alice, {"comment": "Sorry, I cannot make it"}).status_code == 202
    wait_status(stack, alice, sid, "cancelled")
    assert [e for e in events_of(stack, "alice", sid) if not e["isCancelled"]] == []


def test_fifty_bookings_under_throttling_and_failures_all_book_without_duplicates(contoso: Stack) -> None:
    """30% throttling and 5% failures at Graph: every one of 50 bookings ends booked, one event each."""
    stack = contoso
    pairs = [(m, pair(stack, m, p)) for m, p in FAULT_PAIRS]
    tokens = {m: stack.token(upn(m)) for m, _ in pairs}
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=30)
    stack.control("POST", "/_sandbox/faults", {"throttleRate": 0.3, "failRate": 0.05, "retryAfterSeconds": 1})
    try:
        jobs = [(m, pid, base + timedelta(days=i // 5, hours=i % 5)) for i in range(10) for m, pid in pairs]
        # Fixed times, not searched ones: some fall on the partners' seeded meetings, so the slot
        # re-check is waived here (this test is about throttling and duplicates; slot_taken has its own).
        with ThreadPoolExecutor(max_workers=5) as pool:
            sids = list(pool.map(lambda j: (j[0], book(stack, tokens[j[0]], j[1], j[2], allowConflicts=True)), jobs))
        assert len(sids) == 50
        for organizer, sid in sids:
            wait_status(stack, tokens[organizer], sid, "booked", timeout=240)
    finally:
        stack.control("POST", "/_sandbox/faults", {})
    counts: Counter[str] = Counter()
    for organizer, _ in pairs:
        counts.update(e["transactionId"] for e in events_of(stack, organizer) if e.get("transactionId"))
    duplicates = sum(counts[sid] - 1 for _, sid in sids if counts[sid] > 1)
    assert all(counts[sid] >= 1 for _, sid in sids)
    assert duplicates == 0
