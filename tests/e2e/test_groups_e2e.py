"""Groups, guests and any-of on the whole local stack (HTTP -> queue -> worker -> real Graph gateway -> simulator).

A recruiting product's server books a panel for a recruiter: two interviewers, an optional
observer, an outside candidate (a guest, with a display name) and any of five rooms, at a
slot group availability offered; the event in Outlook carries every attendee with their type
and the guest's name, the session shows each answer, and an interviewer declining in Outlook
reaches the session and the product (session.response_changed naming them). Round robin
spreads 30 bookings over three interviewers within one of each other, and group availability
for 3 required + 2 optional people + 5 candidate rooms costs exactly one getSchedule when warm.

Times are 9-10 weeks ahead, past the simulator's seeded calendars (8 weeks), so only this
test's own bookings make anyone busy.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import pytest

from local.simulator import seed
from tests.e2e.conftest import Stack
from tests.e2e.test_booking_e2e import ensure_contoso, events_of, upn, wait_status
from tests.e2e.test_product_events_e2e import _events_for, _wait_watched
from tests.log_guard import sentinel
from tests.support.receiver import Receiver

TENANT = seed.CONTOSO
SUBJECT = sentinel("Confidential subject: panel interview e2e")
GUEST = "jordan.candidate@example.org"
GUEST_NAME = sentinel("Jordan Candidate, outside applicant")
ROOMS = ["room-orca@contoso.test", "room-puffin@contoso.test", "room-salmon@contoso.test",
         "room-thames@contoso.test", "room-severn@contoso.test"]
ROLES = ["Sessions.ReadWrite.All"]


@pytest.fixture(scope="module")
def contoso(stack: Stack) -> Iterator[Stack]:
    ensure_contoso(stack)
    stack.control("POST", "/_sandbox/faults", {})
    yield stack


def monday_in(weeks: int) -> datetime:
    today = date.today()
    monday = today + timedelta(days=7 * weeks - today.weekday())
    return datetime(monday.year, monday.month, monday.day, tzinfo=UTC)


def as_app(stack: Stack, user: str) -> tuple[str, dict[str, str]]:
    """An app-only token of the product's server and the header that makes it act for ``user``."""
    return stack.app_token(TENANT, ROLES), {"X-On-Behalf-Of": upn(user)}


def call(stack: Stack, user: str, method: str, path: str, body: Any = None) -> Any:
    """The product's server acting for ``user``; a 429 (session_writes: 20, then one per 3 s) is waited out."""
    token, headers = as_app(stack, user)
    for _ in range(30):
        r = stack.call(method, path, token, body, headers=headers)
        if r.status_code != 429:
            return r
        time.sleep(float(r.headers.get("Retry-After", "1")))
    return r


def test_a_panel_with_an_outside_candidate_and_any_of_rooms_is_booked_and_a_decline_comes_back(
        contoso: Stack) -> None:
    """Availability offers a slot with a free room; the booking writes one event with every attendee typed,
    the guest's name and the chosen room; an interviewer's decline reaches the session and the product."""
    stack = contoso
    receiver = Receiver().start()
    admin = stack.token(seed.CONTOSO_ADMIN, roles=["Integration.Admin"])
    endpoint = stack.call("POST", "/webhooks/endpoints", admin, {"url": receiver.url,
                                                                  "events": ["session.response_changed"]})
    assert endpoint.status_code == 201, endpoint.text
    secret = endpoint.json()["secret"]
    try:
        monday = monday_in(9)
        attendees = [{"user": upn("frank")}, {"user": upn("chris")}, {"user": upn("grace"), "type": "optional"},
                     {"email": GUEST, "name": GUEST_NAME}]
        r = call(stack, "laura", "POST", "/availability", {
            "start": monday.isoformat(), "end": (monday + timedelta(days=5)).isoformat(), "durationMinutes": 60,
            "timeZone": "Europe/London", "attendees": [{k: v for k, v in a.items() if k != "name"}
                                                       for a in attendees],
            "rooms": ROOMS, "roomChoice": "bestFit"})
        assert r.status_code == 200, r.text
        slot = r.json()["slots"][0]
        assert slot["rooms"] and slot["assigned"]["room"] in ROOMS
        guest = next(p for p in r.json()["participants"] if p.get("role") == "guest")
        assert guest["status"] == "unknown"

        booked = call(stack, "laura", "POST", "/sessions", {
            "start": slot["start"], "end": slot["end"], "timeZone": "Europe/London", "subject": SUBJECT,
            "attendees": attendees, "rooms": ROOMS, "roomChoice": "bestFit"})
        assert booked.status_code == 202, booked.text
        sid = booked.json()["id"]
        assert booked.json()["assigned"]["room"] == slot["assigned"]["room"]
        laura = stack.token(upn("laura"))
        doc = wait_status(stack, laura, sid, "booked")
        assert doc["joinUrl"] and doc["room"]["email"] == slot["assigned"]["room"]
        assert [(a["email"], a["type"], a.get("guest")) for a in doc["attendees"]] == [
            (upn("frank"), "required", None), (upn("chris"), "required", None), (upn("grace"), "optional", None),
            (GUEST, "required", True)]

        [event] = events_of(stack, "laura", sid)
        people = {a["emailAddress"]["address"].lower(): (a["type"], a["emailAddress"].get("name"))
                  for a in event["attendees"]}
        assert people[upn("grace")][0] == "optional" and people[upn("frank")][0] == "required"
        assert people[GUEST] == ("required", GUEST_NAME)
        assert people[slot["assigned"]["room"]][0] == "resource"

        _wait_watched(stack, upn("laura"))
        copy = next(e for e in stack.control("GET", f"/_sandbox/users/{upn('chris')}/events")
                    if e.get("iCalUId") == event["iCalUId"])
        stack.control("POST", f"/_sandbox/users/{upn('chris')}/events/{copy['id']}/respond",
                      {"response": "declined"})

        def declined() -> dict[str, Any] | None:
            found = stack.call("GET", f"/sessions/{sid}", laura).json()
            chris = next(a for a in found["attendees"] if a["email"] == upn("chris"))
            return found if chris["response"] == "declined" else None

        after = stack.wait_for(declined, timeout=60)
        assert next(a for a in after["attendees"] if a["email"] == upn("frank"))["response"] != "declined"

        def announced() -> dict[str, Any] | None:
            return next((e for e in _events_for(receiver, secret, sid)
                         if any(c.get("email") == upn("chris") and c["response"] == "declined"
                                for c in e["data"].get("changes", []))), None)

        event_doc = stack.wait_for(announced, timeout=60)
        assert event_doc["type"] == "session.response_changed" and event_doc["data"]["source"] == "outlook"
        assert "subject" not in event_doc["data"] and GUEST_NAME not in str(event_doc)
    finally:
        stack.call("DELETE", f"/webhooks/endpoints/{endpoint.json()['id']}", admin)
        receiver.stop()


def test_round_robin_spreads_thirty_bookings_over_three_hosts(contoso: Stack) -> None:
    """30 bookings by three recruiters with any of the same three interviewers (all free): 10 each, within one of
    each other, the first three bookings going to three different interviewers."""
    stack = contoso
    monday = monday_in(10)
    hosts = [upn("victor"), upn("quentin"), upn("beth")]
    organizers = ("zoe", "laura", "ken")  # three recruiters share the pool (and each stays inside session_writes)
    sids = []
    for n in range(30):
        start = monday + timedelta(days=n // 6, hours=6 + n % 6)
        r = call(stack, organizers[n % 3], "POST", "/sessions", {
            "start": start.isoformat(), "end": (start + timedelta(minutes=30)).isoformat(), "timeZone": "UTC",
            "subject": SUBJECT, "attendees": [{"email": f"candidate{n}@example.org"}], "hosts": hosts})
        assert r.status_code == 202, r.text
        assert r.json()["assigned"]["host"]
        sids.append((organizers[n % 3], r.json()["id"]))
    tokens = {name: stack.token(upn(name)) for name in organizers}
    chosen = []
    for organizer, sid in sids:
        doc = wait_status(stack, tokens[organizer], sid, "booked", timeout=90)
        [host] = [a["email"] for a in doc["attendees"] if a.get("host")]
        chosen.append(host)
    counts = Counter(chosen)
    assert set(counts) == set(hosts) and max(counts.values()) - min(counts.values()) <= 1, counts
    assert len(set(chosen[:3])) == 3  # the first round visits each interviewer once


def test_group_availability_costs_one_getschedule_for_eleven_schedules(contoso: Stack) -> None:
    """3 required + 2 optional people + 5 candidate rooms + the caller = 11 schedules: one getSchedule per
    window, and nothing else once the directory and the rooms are cached (the second question)."""
    stack = contoso
    monday = monday_in(9)
    body = {"durationMinutes": 30, "timeZone": "UTC",
            "attendees": [{"user": upn("heidi")}, {"user": upn("judy")}, {"user": upn("ivan")},
                          {"user": upn("ken"), "type": "optional"}, {"user": upn("oscar"), "type": "optional"}],
            "rooms": ROOMS}
    first = call(stack, "rupert", "POST", "/availability",
                 {**body, "start": monday.isoformat(), "end": (monday + timedelta(days=14)).isoformat()})
    assert first.status_code == 200, first.text
    tenant = next(t for t in stack.control("GET", "/_sandbox/tenants") if t["id"] == TENANT)
    ids = {u["userPrincipalName"].lower(): u["id"].lower() for u in tenant["users"]}
    rupert = ids[upn("rupert")]
    since = stack.last_seq()
    later = monday + timedelta(days=14)
    second = call(stack, "rupert", "POST", "/availability",
                  {**body, "start": later.isoformat(), "end": (later + timedelta(days=14)).isoformat()})
    assert second.status_code == 200, second.text
    # Only what this question can cost is counted: free/busy reads, directory look-ups (GET /users/{ref}, also
    # inside a $batch) and room lists. Event reads and writes of earlier tests' sessions (notifications and
    # reconciliation still running in the background) are not the question's.
    log = [e for e in stack.graph_requests(since) if e.get("tenant") == TENANT]
    schedules = [e for e in log if e["path"].lower().split("?")[0].endswith("/calendar/getschedule")]
    assert len([e for e in schedules if e["path"].lower().split("/")[3] == rupert]) == 1, schedules
    named = {upn(n) for n in ("heidi", "judy", "ivan", "ken", "oscar")} | {ids[upn(n)] for n in
                                                                            ("heidi", "judy", "ivan", "ken", "oscar")}
    directory = [e for e in log if e["method"] == "GET"
                 and e["path"].lower().split("?")[0].rstrip("/").split("/")[-2:-1] == ["users"]]
    assert not [e for e in directory if unquote(e["path"].lower().split("?")[0].rstrip("/").rsplit("/", 1)[-1])
                in named]
    assert not [e for e in log if "/places" in e["path"].lower() or "roomlists" in e["path"].lower()]
