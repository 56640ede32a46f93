"""Offered hours on the whole local stack: HTTP through the host, Azurite, the real Graph gateway, the simulator.

Alice (mentor, Pacific) and Carol (mentee, Pacific) share working hours. Alice offers one
window a week; Carol's availability query then sees nothing else of Alice's free time, a
booking outside the window is refused, one inside it books, and a cap of one session a
day withdraws the rest of that day. The seeded calendars are random per day, so the test
first finds a stretch where both are free and builds Alice's window around it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from core.bootstrap import get_container
from core.names import Tables
from local.simulator import seed
from tests.e2e.conftest import Stack
from tests.e2e.test_booking_e2e import ensure_contoso, pair, upn, wait_status
from tests.e2e.test_metadata_only import ALLOWED
from tests.support.receiver import Receiver

PACIFIC = ZoneInfo("America/Los_Angeles")
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
RULES = "/me/availability-rules"


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


Span = tuple[datetime, datetime]


def _slots(stack: Stack, token: str, pairing_id: str, start: datetime, end: datetime) -> list[Span]:
    r = stack.call("POST", "/availability", token, {
        "pairingId": pairing_id, "start": start.isoformat(), "end": end.isoformat(), "durationMinutes": 30,
        "stepMinutes": 15, "timeZone": "America/Los_Angeles"})
    assert r.status_code == 200, r.text
    assert set(r.json()) <= {"timeZone", "slots", "participants"}, "no reason or rule may reach the partner"
    assert all(p["status"] == "ok" and "message" not in p for p in r.json()["participants"])
    return [(_at(s["start"]), _at(s["end"])) for s in r.json()["slots"]]


def _book(stack: Stack, token: str, pairing_id: str, start: datetime) -> Any:
    return stack.call("POST", "/sessions", token, {
        "pairingId": pairing_id, "start": start.isoformat(), "end": (start + timedelta(minutes=30)).isoformat(),
        "timeZone": "America/Los_Angeles"})


@pytest.fixture
def contoso(stack: Stack) -> Iterator[Stack]:
    ensure_contoso(stack)
    stack.control("POST", "/_sandbox/faults", {})
    yield stack
    stack.call("DELETE", RULES, stack.token(upn("alice")))  # other tests see Alice without rules


def test_offered_hours_hide_free_time_refuse_bookings_outside_them_and_cap_a_day(contoso: Stack) -> None:
    """Carol sees only Alice's offered window, cannot book outside it, books inside it, and Alice's cap then
    empties that day (availability and booking agree)."""
    stack = contoso
    receiver = Receiver().start()
    admin = stack.token(seed.CONTOSO_ADMIN, roles=["Integration.Admin"])
    endpoint = stack.call("POST", "/webhooks/endpoints", admin, {"url": receiver.url,
                                                                  "events": ["availability_rules.changed"]})
    assert endpoint.status_code == 201, endpoint.text
    pairing_id = pair(stack, "alice", "carol")
    alice, carol = stack.token(upn("alice")), stack.token(upn("carol"))
    today = datetime.now(PACIFIC).date()
    week_start = datetime(today.year, today.month, today.day, tzinfo=PACIFIC) + timedelta(days=22)
    week_end = week_start + timedelta(days=7)
    baseline = _slots(stack, carol, pairing_id, week_start, week_end)

    # A free stretch of 2 hours for both (slot starts every 15 minutes over it), and a free time on another day.
    starts = {s for s, _ in baseline}
    anchor = next((s for s, _ in baseline if all(s + timedelta(minutes=15 * k) in starts for k in range(7))), None)
    assert anchor is not None, "the seeded week has no 2-hour stretch both are free in"
    local = anchor.astimezone(PACIFIC)
    elsewhere = next((s for s, _ in baseline if s.astimezone(PACIFIC).date() != local.date()), None)
    assert elsewhere is not None, "the seeded week has free time on only one day"
    window_end = local + timedelta(hours=2)
    rules = {"timeZone": "America/Los_Angeles", "weekly": [
        {"day": DAYS[local.weekday()], "start": local.strftime("%H:%M"), "end": window_end.strftime("%H:%M")}]}

    put = stack.call("PUT", RULES, alice, rules, headers={"If-None-Match": "*"})
    assert put.status_code == 200, put.text

    # 1. Carol's query shows only the offered window (all of it still free), nothing else of Alice's free time.
    offered = _slots(stack, carol, pairing_id, week_start, week_end)
    assert offered and len(offered) < len(baseline)
    assert all(anchor <= s and e <= anchor + timedelta(hours=2) for s, e in offered), offered
    assert [s for s, _ in offered] == [anchor + timedelta(minutes=15 * k) for k in range(7)]

    # 2. Booking outside the offered hours is refused at once; inside them it books.
    refused = _book(stack, carol, pairing_id, elsewhere)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "outside_offered_hours", refused.text
    assert "details" not in refused.json()["error"]
    accepted = _book(stack, carol, pairing_id, anchor)
    assert accepted.status_code == 202, accepted.text
    sid = accepted.json()["id"]
    wait_status(stack, carol, sid, "booked")
    left = _slots(stack, carol, pairing_id, week_start, week_end)
    assert left and all(s >= anchor + timedelta(minutes=30) for s, _ in left)

    # 3. A cap of one session a day: the rest of that day disappears, and booking it is refused too.
    capped = stack.call("PUT", RULES, alice, {**rules, "maxPerDay": 1}, headers={"If-Match": put.headers["ETag"]})
    assert capped.status_code == 200, capped.text
    assert _slots(stack, carol, pairing_id, week_start, week_end) == []
    second = _book(stack, carol, pairing_id, anchor + timedelta(hours=1))
    assert second.status_code == 422 and second.json()["error"]["code"] == "outside_offered_hours"

    # The stored row is metadata only (the same allow-list as the end-of-run audit).
    row = get_container().tables.get(Tables.AVAILABILITY_RULES, seed.CONTOSO, f"u~{seed.ALICE_ID}")
    assert row is not None and set(row.data) <= ALLOWED[Tables.AVAILABILITY_RULES], row
    assert row.data["updatedBy"] == seed.ALICE_ID

    # 4. Changing the rules never touched the booked session; Alice (the rule owner) may still book herself.
    assert stack.call("GET", f"/sessions/{sid}", carol).json()["status"] == "booked"
    stale = stack.call("PUT", RULES, alice, rules, headers={"If-Match": put.headers["ETag"]})
    assert stale.status_code == 412
    own = _book(stack, alice, pairing_id, elsewhere)
    assert own.status_code == 202, own.text
    for session_id in (sid, own.json()["id"]):
        assert stack.call("DELETE", f"/sessions/{session_id}", alice if session_id != sid else carol).status_code == 202
    assert datetime.now(UTC) < week_start  # the whole scenario is in the future: notice never interfered

    # 5. The product heard of both rule changes (signed, in order), and of nothing in them.
    def alices() -> list[Any] | None:
        got = [receiver.verify(endpoint.json()["secret"], r) for r in receiver.delivered()]
        mine = [p for p in got if p["data"].get("userId") == seed.ALICE_ID]
        return mine if len(mine) >= 2 else None

    changes = stack.wait_for(alices, timeout=30)
    assert [(p["type"], p["data"]["change"], p["data"]["changedBy"]) for p in changes[:2]] == [
        ("availability_rules.changed", "updated", seed.ALICE_ID)] * 2
    assert changes[0]["data"]["updatedAt"] < changes[1]["data"]["updatedAt"]
    assert not [r for r in receiver.delivered() if b"America/Los_Angeles" in r.body or b"weekly" in r.body]
    assert stack.call("DELETE", f"/webhooks/endpoints/{endpoint.json()['id']}", admin).status_code == 204
    receiver.stop()
