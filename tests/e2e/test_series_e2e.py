"""A mentoring cadence on the whole local stack: HTTP -> Azurite -> the series worker -> the real Graph gateway ->
the simulator, and back through its change notifications.

"Done when": a weekly series for 12 weeks with a Teams link and a room is ONE series master in the organizer's
calendar with 12 tracked occurrences; the attendee declining one occurrence and the organizer moving another
in (simulated) Outlook reach exactly those occurrences; cancelling from week 8 through the API leaves exactly
7 occurrences in Outlook and the expected statuses, times, responses and sources in the API.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from local.simulator import seed
from tests.e2e.conftest import Stack
from tests.e2e.test_booking_e2e import ensure_contoso, pair, upn
from tests.log_guard import sentinel

TENANT = seed.CONTOSO
SUBJECT = sentinel("Confidential subject: series e2e")
ORGANIZER, PARTNER = "aaron", "beth"
ROOM = "room-thames@contoso.test"
ZONE = "Europe/London"
WEEKS = 12


def _body(pairing_id: str, start: datetime, *, weeks: int = WEEKS, **extra: Any) -> dict[str, Any]:
    local = start.astimezone(__import__("zoneinfo").ZoneInfo(ZONE))
    return {
        "pairingId": pairing_id, "start": start.isoformat(), "end": (start + timedelta(minutes=45)).isoformat(),
        "timeZone": ZONE, "room": ROOM,
        "recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": [local.strftime("%A").lower()]},
                       "range": {"type": "numbered", "startDate": local.date().isoformat(),
                                 "numberOfOccurrences": weeks}},
        **extra,
    }


def _call(stack: Stack, method: str, path: str, token: str, body: Any = None, **kw: Any) -> Any:
    for _ in range(20):
        r = stack.call(method, path, token, body, **kw)
        if r.status_code != 429:
            return r
        time.sleep(float(r.headers.get("Retry-After", "1")))
    return r


def _free_start(stack: Stack, token: str, pairing_id: str) -> datetime:
    """A weekly time free for 12 weeks for both people and the room, found with /availability/series."""
    today = date.today()
    base = datetime(today.year, today.month, today.day, 7, 0, tzinfo=UTC) + timedelta(days=35)
    for day in range(10):
        start = base + timedelta(days=day)
        if start.weekday() >= 5:
            continue
        body = {k: v for k, v in _body(pairing_id, start).items()}
        r = _call(stack, "POST", "/availability/series", token, body)
        assert r.status_code == 200, r.text
        doc = r.json()
        assert len(doc["occurrences"]) == WEEKS and doc["scheduleCalls"] == 2
        if doc["clashing"] == 0:
            return start
        free = [s for s in doc["suggestions"] if s["clashing"] == 0]
        if free:
            return datetime.fromisoformat(free[0]["start"].replace("Z", "+00:00"))
    raise AssertionError("no free weekly time in two weeks of candidates")


def _series(stack: Stack, token: str, series_id: str) -> dict[str, Any]:
    r = _call(stack, "GET", f"/series/{series_id}", token)
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def _wait_series(stack: Stack, token: str, series_id: str, check: Any, timeout: float = 90) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        doc = _series(stack, token, series_id)
        return doc if "pendingChange" not in doc and check(doc) else None

    found: dict[str, Any] = stack.wait_for(ready, timeout=timeout, interval=0.5)
    return found


def _wait_watched(stack: Stack, user: str) -> None:
    """Until the organizer's mailbox has a subscription (made right after their first booking)."""
    tenant = next(t for t in stack.control("GET", "/_sandbox/tenants") if t["id"] == TENANT)
    oid = next(u["id"] for u in tenant["users"] if u["userPrincipalName"].lower() == user.lower())
    stack.wait_for(lambda: any(oid.lower() in sub["resource"].lower()
                               for sub in stack.control("GET", "/_sandbox/subscriptions")), timeout=60)


def _masters(stack: Stack, user: str, tx: str) -> list[dict[str, Any]]:
    events = stack.control("GET", f"/_sandbox/users/{upn(user)}/events")
    return [e for e in events if e.get("transactionId") == tx and e.get("type") == "seriesMaster"]


def _instances(stack: Stack, user: str, event_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = stack.control("GET", f"/_sandbox/users/{upn(user)}/events/{event_id}/instances")
    return sorted(found, key=lambda e: e["originalStart"])


@pytest.fixture(scope="module")
def contoso(stack: Stack) -> Iterator[Stack]:
    ensure_contoso(stack)
    stack.control("POST", "/_sandbox/faults", {})
    yield stack
    stack.control("POST", "/_sandbox/faults", {})


def test_a_twelve_week_cadence_is_one_series_kept_in_sync_occurrence_by_occurrence(contoso: Stack) -> None:
    """Book 12 weeks (Teams, room) -> decline week 3 and move week 5 in Outlook -> cancel from week 8 in the API:
    exactly the expected occurrences, statuses, times, responses and sources, and one master in Outlook."""
    stack = contoso
    pairing_id = pair(stack, ORGANIZER, PARTNER)
    organizer = stack.token(upn(ORGANIZER))
    start = _free_start(stack, organizer, pairing_id)
    r = _call(stack, "POST", "/sessions", organizer, _body(pairing_id, start, subject=SUBJECT),
              headers={"Idempotency-Key": f"series-e2e-{start.isoformat()}"})
    assert r.status_code == 202, r.text
    series_id = r.json()["seriesId"]
    assert r.headers["Location"] == f"/api/series/{series_id}"
    booked = _wait_series(stack, organizer, series_id, lambda d: d["status"] == "booked")
    occurrences = booked["occurrences"]
    assert len(occurrences) == WEEKS and all(o["status"] == "booked" for o in occurrences)
    assert booked["joinUrl"] and booked["room"]["email"].lower() == ROOM

    [master] = _masters(stack, ORGANIZER, series_id)
    people = {(a["emailAddress"]["address"].lower(), a["type"]) for a in master["attendees"]}
    assert (upn(PARTNER), "required") in people and (ROOM, "resource") in people
    assert master["isOnlineMeeting"] and master["onlineMeeting"]["joinUrl"] == booked["joinUrl"]
    assert master["recurrence"]["range"]["numberOfOccurrences"] == WEEKS
    partner = stack.token(upn(PARTNER))
    listed = _call(stack, "GET", "/sessions", partner, **{"params": {
        "from": (start - timedelta(days=1)).isoformat(), "to": (start + timedelta(days=60)).isoformat()}})
    assert listed.status_code == 200, listed.text
    mine = [s for s in listed.json() if s.get("seriesId") == series_id]
    assert [s["id"] for s in mine] == [o["id"] for o in occurrences[:len(mine)]] and len(mine) >= 8

    _wait_watched(stack, upn(ORGANIZER))
    copy = next(e for e in stack.control("GET", f"/_sandbox/users/{upn(PARTNER)}/events")
                if e.get("iCalUId") == master["iCalUId"])
    third = _instances(stack, PARTNER, copy["id"])[2]
    stack.control("POST", f"/_sandbox/users/{upn(PARTNER)}/events/{third['id']}/respond", {"response": "declined"})
    fifth = _instances(stack, ORGANIZER, master["id"])[4]
    fifth_start = datetime.fromisoformat(occurrences[4]["start"].replace("Z", "+00:00"))
    moved_start = fifth_start + timedelta(hours=1)
    stack.control("POST", f"/_sandbox/users/{upn(ORGANIZER)}/events/{fifth['id']}/move",
                  {"start": moved_start.isoformat(), "end": (moved_start + timedelta(minutes=45)).isoformat()})

    def synced(doc: dict[str, Any]) -> bool:
        o = doc["occurrences"]
        return o[2]["attendees"][0]["response"] == "declined" and o[4]["source"] == "outlook"

    after_outlook = _wait_series(stack, organizer, series_id, synced)
    assert after_outlook["occurrences"][4]["start"] == moved_start.strftime("%Y-%m-%dT%H:%M:%SZ")

    week8 = datetime.fromisoformat(occurrences[7]["start"].replace("Z", "+00:00")).astimezone(
        __import__("zoneinfo").ZoneInfo(ZONE)).date()
    cut = _call(stack, "DELETE", f"/series/{series_id}", organizer, {"comment": "Term ends early"},
                params={"from": week8.isoformat()})
    assert cut.status_code == 202, cut.text
    final = _wait_series(stack, organizer, series_id, lambda d: d.get("cancelledFrom") == week8.isoformat())

    got = [(o["status"], o["source"], o["attendees"][0]["response"]) for o in final["occurrences"]]
    expected = ([("booked", "platform", "none")] * 2 + [("booked", "platform", "declined")]
                + [("booked", "platform", "none")] + [("booked", "outlook", "none")]
                + [("booked", "platform", "none")] * 2 + [("cancelled", "platform", "none")] * 5)
    assert [(s, src) for s, src, _ in got] == [(s, src) for s, src, _ in expected]
    assert got[2][2] == "declined" and [r for _, _, r in got].count("declined") == 1
    assert [o["start"] for o in final["occurrences"]] == [
        o["start"] if i != 4 else moved_start.strftime("%Y-%m-%dT%H:%M:%SZ") for i, o in enumerate(occurrences)]
    assert [o["id"] for o in final["occurrences"]] == [o["id"] for o in occurrences]
    assert final["status"] == "booked"
    assert len(_masters(stack, ORGANIZER, series_id)) == 1
    assert len(_instances(stack, ORGANIZER, master["id"])) == 7
