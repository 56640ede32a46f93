"""The availability, rooms and my-calendar routes through the function app, on the fake Graph gateway."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from core.domain.calendar import GraphIdentity, NewEvent, TimeZoneSpec, Weekday, WorkingHours
from core.domain.sessions import Session
from core.names import Tables
from core.ports import Entity
from core.services.stores.pairings import Pairing, PairingRepository
from core.services.stores.sessions import SessionRepository
from tests import log_guard
from tests.functions.conftest import TENANT_A, TENANT_B, USER_A, USER_A2, USER_B, Env, TokenFactory, bearer
from tests.support.fake_graph import ON_PREMISES, FakeCalendarGateway, FakeTokenProvider

MENTOR = "mentor@a.example"
MENTEE = "mentee@a.example"
MONDAY = datetime(2025, 3, 3, tzinfo=UTC)  # the env clock reads Monday 09:00 UTC
SUBJECT = "Confidential subject: quarterly review"
MON_FRI = frozenset({Weekday.MONDAY, Weekday.TUESDAY, Weekday.WEDNESDAY, Weekday.THURSDAY, Weekday.FRIDAY})


def _hours(zone: str) -> WorkingHours:
    return WorkingHours(days=MON_FRI, start=time(9), end=time(17), time_zone=TimeZoneSpec(name=zone))


@pytest.fixture
def graph(env: Env) -> FakeCalendarGateway:
    """Tenant A: USER_A (mentor, London) paired with USER_A2 (mentee, Paris) as p-1."""
    fake = FakeCalendarGateway(tokens=FakeTokenProvider([TENANT_A, TENANT_B]), clock=env.container.clock)
    fake.add_user(TENANT_A, MENTOR, user_id=USER_A, time_zone="GMT Standard Time",
                  working_hours=_hours("GMT Standard Time"))
    fake.add_user(TENANT_A, MENTEE, user_id=USER_A2, time_zone="Romance Standard Time",
                  working_hours=_hours("Romance Standard Time"))
    env.container.graph = fake
    PairingRepository(env.tables).save(Pairing(TENANT_A, "p-1", USER_A, MENTOR, USER_A2, MENTEE))
    return fake


def _same_tenant_policy(env: Env) -> None:
    env.tables.upsert(Tables.INTEGRATIONS,
                      Entity(TENANT_A, "integration", {"status": "connected", "pairingPolicy": "sameTenant"}))


def _body(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "pairingId": "p-1",
        "start": "2025-03-03T00:00:00Z",
        "end": "2025-03-04T00:00:00Z",
        "durationMinutes": 60,
        "timeZone": "Europe/Paris",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def test_pair_availability_returns_utc_slots_and_the_requested_zone(
    env: Env, mint: TokenFactory, graph: FakeCalendarGateway
) -> None:
    """POST /api/availability answers {timeZone, slots} with UTC 'Z' times, from one Graph call."""
    graph.add_busy(TENANT_A, MENTEE, MONDAY + timedelta(hours=10), MONDAY + timedelta(hours=11))
    r = env.client.post("/api/availability", headers=bearer(mint()), json=_body())
    assert r.status == 200, r.text
    doc = r.json()
    assert doc["timeZone"] == "Europe/Paris"
    # London 9-17 (UTC) and Paris 9-17 (UTC+1) overlap 09:00-16:00 UTC; busy 10-11; now is 09:00.
    assert [(s["start"], s["end"]) for s in doc["slots"]][:2] == [
        ("2025-03-03T09:00:00Z", "2025-03-03T10:00:00Z"), ("2025-03-03T11:00:00Z", "2025-03-03T12:00:00Z"),
    ]
    assert [p["status"] for p in doc["participants"]] == ["ok", "ok"]
    assert graph.call_count() == 1


def test_a_pairing_of_someone_else_is_404(env: Env, mint: TokenFactory, graph: FakeCalendarGateway) -> None:
    """A caller outside the pairing (or in another tenant) gets 404 pairing_not_found."""
    for token in (mint(oid="a0000000-0000-4000-8000-0000000000ff"), mint(tid=TENANT_B, oid=USER_B)):
        r = env.client.post("/api/availability", headers=bearer(token), json=_body())
        assert r.status == 404 and r.json()["error"]["code"] == "pairing_not_found"
    assert graph.call_count() == 0


def test_participants_need_the_same_tenant_policy(env: Env, mint: TokenFactory, graph: FakeCalendarGateway) -> None:
    """Under the default "registered" policy a participant list is 403; under "sameTenant" it works."""
    body = _body(pairingId=None, participants=[MENTEE])
    r = env.client.post("/api/availability", headers=bearer(mint()), json=body)
    assert r.status == 403 and r.json()["error"]["code"] == "participants_not_allowed"
    _same_tenant_policy(env)
    r = env.client.post("/api/availability", headers=bearer(mint()), json=body)
    assert r.status == 200 and r.json()["slots"]


def test_an_unreachable_participant_is_422_with_each_participants_reason(
    env: Env, mint: TokenFactory, graph: FakeCalendarGateway
) -> None:
    """An on-premises mailbox makes the answer 422 participant_unreachable, naming who and why."""
    _same_tenant_policy(env)
    graph.add_user(TENANT_A, "onprem@a.example", kind=ON_PREMISES)
    r = env.client.post("/api/availability", headers=bearer(mint()),
                        json=_body(pairingId=None, participants=["onprem@a.example", MENTEE]))
    assert r.status == 422
    error = r.json()["error"]
    assert error["code"] == "participant_unreachable"
    assert [(p["user"], p["status"]) for p in error["details"]["participants"]] == [
        (USER_A, "ok"), ("onprem@a.example", "mailbox_on_premises_or_unlicensed"), (MENTEE, "ok"),
    ]


def test_graph_throttling_is_503_with_retry_after(env: Env, mint: TokenFactory, graph: FakeCalendarGateway) -> None:
    """Graph throttling past the retry budget becomes 503 graph_throttled with Retry-After."""
    graph.throttle(retry_after=12)
    r = env.client.post("/api/availability", headers=bearer(mint()), json=_body())
    assert r.status == 503 and r.header("Retry-After") == "12"
    assert r.json()["error"]["code"] == "graph_throttled"


def test_rooms_are_listed_with_the_contract_fields(env: Env, mint: TokenFactory, graph: FakeCalendarGateway) -> None:
    """GET /api/rooms gives {email, displayName, capacity, building, floor}; ?roomList= filters."""
    graph.add_room_list(TENANT_A, "hq@a.example", "HQ")
    graph.add_room(TENANT_A, "board@a.example", "Board Room", capacity=12, building="HQ", floor_label="3",
                   room_list="hq@a.example")
    graph.add_room(TENANT_A, "pod@a.example", "Pod", capacity=2)
    r = env.client.get("/api/rooms", headers=bearer(mint()), query={"roomList": "hq@a.example"})
    assert r.status == 200, r.text
    assert r.json() == [{"email": "board@a.example", "displayName": "Board Room", "capacity": 12, "building": "HQ",
                         "floor": "3"}]
    everything = env.client.get("/api/rooms", headers=bearer(mint())).json()
    assert [room["email"] for room in everything] == ["board@a.example", "pod@a.example"]
    missing = env.client.get("/api/rooms", headers=bearer(mint()), query={"roomList": "nope@a.example"})
    assert missing.status == 404 and missing.json()["error"]["code"] == "room_list_not_found"


def test_room_availability_gives_slots_per_room(env: Env, mint: TokenFactory, graph: FakeCalendarGateway) -> None:
    """POST /api/rooms/availability answers {rooms: [{email, slots, status}]} for the tenant's rooms only; any
    other address is 422 room_not_found."""
    graph.add_room(TENANT_A, "board@a.example", "Board Room")
    graph.add_busy(TENANT_A, "board@a.example", MONDAY + timedelta(hours=10), MONDAY + timedelta(hours=12))
    body = {"rooms": ["board@a.example", "ghost@a.example"], "start": "2025-03-03T09:00:00Z",
            "end": "2025-03-03T13:00:00Z", "durationMinutes": 60, "timeZone": "UTC"}
    r = env.client.post("/api/rooms/availability", headers=bearer(mint()), json=body)
    assert r.status == 422, r.text
    assert r.json()["error"]["code"] == "room_not_found"
    assert r.json()["error"]["details"]["fields"][0]["loc"] == ["body", "rooms", 1]
    r = env.client.post("/api/rooms/availability", headers=bearer(mint()), json={**body, "rooms": ["board@a.example"]})
    assert r.status == 200, r.text
    [board] = r.json()["rooms"]
    assert [s["start"] for s in board["slots"]] == ["2025-03-03T09:00:00Z", "2025-03-03T12:00:00Z"]
    assert board["status"] == "ok"


def test_calendar_settings_show_the_callers_zone_and_hours(
    env: Env, mint: TokenFactory, graph: FakeCalendarGateway
) -> None:
    """GET /api/me/calendar-settings gives the IANA zone and camelCase working hours."""
    r = env.client.get("/api/me/calendar-settings", headers=bearer(mint(oid=USER_A2)))
    assert r.status == 200, r.text
    assert r.json() == {
        "timeZone": "Europe/Paris",
        "workingHours": {"daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                         "startTime": "09:00:00", "endTime": "17:00:00", "timeZone": "Europe/Paris"},
    }


def test_my_events_show_only_the_callers_own_calendar(env: Env, mint: TokenFactory, graph: FakeCalendarGateway) -> None:
    """GET /api/me/events lists the caller's own events with subjects and isSession; never someone else's."""
    log_guard.sentinel(SUBJECT)
    start = MONDAY + timedelta(hours=13)
    SessionRepository(env.tables).add(Session(
        tenant_id=TENANT_A, session_id="s-9", organizer_id=USER_A, organizer_address=MENTOR, attendees=(),
        start=start, end=start + timedelta(hours=1), time_zone="UTC",
    ))
    graph.create_event(GraphIdentity(TENANT_A), MENTOR,
                       NewEvent(subject="Mentoring", start=start, end=start + timedelta(hours=1), transaction_id="s-9"))
    graph.add_busy(TENANT_A, MENTEE, start, start + timedelta(hours=1), subject=SUBJECT)
    query = {"from": "2025-03-03T00:00:00Z", "to": "2025-03-04T00:00:00Z"}

    mine = env.client.get("/api/me/events", headers=bearer(mint()), query=query)

    assert mine.status == 200, mine.text
    assert mine.json() == [{"start": "2025-03-03T13:00:00Z", "end": "2025-03-03T14:00:00Z", "showAs": "busy",
                            "subject": "Mentoring", "isSession": True}]
    assert SUBJECT not in mine.text
    theirs = env.client.get("/api/me/events", headers=bearer(mint(oid=USER_A2)), query=query)
    assert [e["subject"] for e in theirs.json()] == [SUBJECT]


def test_the_openapi_document_describes_participant_problems(env: Env) -> None:
    """The published contract names the per-participant status model of availability."""
    doc = env.client.get("/api/openapi.json").json()
    schemas = doc["components"]["schemas"]
    assert "ParticipantStatus" in schemas
    assert "participant_unreachable" in schemas["Availability"]["description"]
