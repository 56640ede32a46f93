"""Groups, guests and any-of through HTTP: POST /api/sessions and POST /api/availability, 422 codes, the
booking answer's ``assigned``, GET showing every attendee, and the rate limit a large group spends."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.names import Tables
from core.ports import Entity
from tests.functions.conftest import TENANT_A, USER_A, USER_A2, Env, TokenFactory, bearer, reset_rate_limits
from tests.functions.test_sessions_routes import _run_worker
from tests.log_guard import sentinel
from tests.support.fake_graph import FakeCalendarGateway, FakeTokenProvider

ROLE = ["Sessions.ReadWrite.All"]
GUEST = "jordan@example.org"
GUEST_NAME = sentinel("Jordan Candidate (guest name)")
CAROL_ID = "a0000000-0000-4000-8000-0000000000c3"
ROOMS = ["room.one@contoso.example", "room.two@contoso.example"]
WHEN = {"start": "2025-03-04T10:00:00+01:00", "end": "2025-03-04T11:00:00+01:00", "timeZone": "Europe/Paris"}


def _setup(env: Env, *, policy: str = "registered") -> FakeCalendarGateway:
    graph = FakeCalendarGateway(tokens=FakeTokenProvider([TENANT_A]), clock=env.container.clock)
    graph.add_user(TENANT_A, "ann@contoso.example", user_id=USER_A)
    graph.add_user(TENANT_A, "ben@contoso.example", user_id=USER_A2)
    graph.add_user(TENANT_A, "carol@contoso.example", user_id=CAROL_ID)
    graph.add_room(TENANT_A, ROOMS[0], "One", capacity=10)
    graph.add_room(TENANT_A, ROOMS[1], "Two", capacity=4)
    env.container.graph = graph
    env.tables.upsert(Tables.INTEGRATIONS, Entity(TENANT_A, "integration", {"status": "connected",
                                                                          "pairingPolicy": policy}))
    return graph


def _app(mint: TokenFactory) -> dict[str, str]:
    return {**bearer(mint(app=True, roles=ROLE)), "X-On-Behalf-Of": USER_A}


PANEL = {**WHEN, "subject": "Panel", "attendees": [
    {"user": USER_A2}, {"user": "carol@contoso.example", "type": "optional"},
    {"email": GUEST, "name": GUEST_NAME}], "rooms": ROOMS, "roomChoice": "bestFit"}


def test_the_product_server_books_a_panel_with_a_guest_and_any_of_rooms(env: Env, mint: TokenFactory) -> None:
    """202 with assigned {room, reason}; GET lists every attendee with type, guest flag and response."""
    graph = _setup(env)
    r = env.client.post("/api/sessions", headers=_app(mint), json=PANEL)
    assert r.status == 202, r.text
    assigned = r.json()["assigned"]
    assert assigned["room"] == ROOMS[1] and "smallest free room that seats 4" in assigned["reason"]
    sid = r.json()["id"]
    assert _run_worker(env) == 1
    doc = env.client.get(f"/api/sessions/{sid}", headers=bearer(mint(oid=USER_A2))).json()
    assert doc["status"] == "booked" and doc["room"]["email"] == ROOMS[1] and doc["assigned"]["room"] == ROOMS[1]
    assert [(a["user"], a["email"], a["type"], a.get("guest"), a["response"]) for a in doc["attendees"]] == [
        (USER_A2, "ben@contoso.example", "required", None, "notResponded"),
        (CAROL_ID, "carol@contoso.example", "optional", None, "notResponded"),
        (GUEST, GUEST, "required", True, "notResponded")]
    [event] = graph.events_of(TENANT_A, "ann@contoso.example")
    assert (GUEST, "required", GUEST_NAME) in graph.attendees_of(TENANT_A, "ann@contoso.example", event.event_id)
    for table in env.tables._tables:
        assert GUEST_NAME not in repr(env.tables.all(table))


@pytest.mark.parametrize(("attendees", "code"), [
    ([{"email": f"g{n}@example.org"} for n in range(51)], "too_many_attendees"),
    ([{"email": "no-at-sign"}], "invalid_attendee_email"),
    ([{"user": USER_A2}, {"email": "BEN@contoso.example"}], "duplicate_attendee"),
    ([{"user": USER_A}], "organizer_as_attendee"),
    ([{"user": "nobody@contoso.example"}], "user_not_found"),
])
def test_bad_groups_are_422_with_clear_codes(env: Env, mint: TokenFactory, attendees: list[Any], code: str) -> None:
    """Each group problem has its own code in the error envelope."""
    _setup(env)
    r = env.client.post("/api/sessions", headers=_app(mint), json={**WHEN, "attendees": attendees})
    assert r.status == 422 and r.json()["error"]["code"] == code, r.text


@pytest.mark.parametrize("body", [
    {"attendees": [{"user": USER_A2, "email": GUEST}]},
    {"attendees": [{"email": GUEST, "name": "line\nbreak"}]},
    {"attendees": [{"user": USER_A2}], "room": ROOMS[0], "rooms": ROOMS},
    {"attendees": [{"user": USER_A2}], "roomChoice": "first"},
    {"attendees": [{"user": USER_A2}], "pairingId": "p-1"},
    {"attendees": []},
    {"attendees": [{"user": USER_A2, "type": "resource"}]},
])
def test_malformed_groups_are_422_validation_failed(env: Env, mint: TokenFactory, body: dict[str, Any]) -> None:
    """Shapes the schema refuses: user and email both, control characters in a name, room and rooms, roomChoice
    without rooms, a pairing and a group, an empty group, a type other than required or optional."""
    _setup(env)
    r = env.client.post("/api/sessions", headers=_app(mint), json={**WHEN, **body})
    assert r.status == 422 and r.json()["error"]["code"] == "validation_failed", r.text


def test_a_user_under_the_registered_policy_may_not_invite_guests(env: Env, mint: TokenFactory) -> None:
    """403 guests_not_allowed for a user; the same body from the product server is accepted."""
    _setup(env)
    body = {**WHEN, "attendees": [{"email": GUEST}]}
    r = env.client.post("/api/sessions", headers=bearer(mint()), json=body)
    assert r.status == 403 and r.json()["error"]["code"] == "guests_not_allowed"
    assert env.client.post("/api/sessions", headers=_app(mint), json=body).status == 202


def test_group_availability_lists_optional_people_rooms_and_the_choice_per_slot(env: Env, mint: TokenFactory) -> None:
    """POST /api/availability with a group: per slot the free optional people, rooms and assigned; guests unknown."""
    _setup(env, policy="sameTenant")
    body = {"start": "2025-03-04T16:00:00Z", "end": "2025-03-04T20:00:00Z", "durationMinutes": 60,
            "timeZone": "UTC", "stepMinutes": 60, "workingHoursOnly": False,
            "attendees": [{"user": USER_A2}, {"user": CAROL_ID, "type": "optional"}, {"email": GUEST}],
            "rooms": ROOMS, "roomChoice": "first"}
    r = env.client.post("/api/availability", headers=bearer(mint()), json=body)
    assert r.status == 200, r.text
    slots = r.json()["slots"]
    assert slots and all(s["optional"] == ["carol@contoso.example"] and s["rooms"] == ROOMS for s in slots)
    assert slots[0]["assigned"]["room"] == ROOMS[0] and "first free room" in slots[0]["assigned"]["reason"]
    guest = next(p for p in r.json()["participants"] if p.get("role") == "guest")
    assert guest["status"] == "unknown" and guest["address"] == GUEST
    pair = env.client.post("/api/availability", headers=bearer(mint()), json={
        **{k: v for k, v in body.items() if k not in ("attendees", "rooms", "roomChoice")},
        "participants": [USER_A2]})
    assert pair.status == 200 and set(pair.json()["slots"][0]) == {"start", "end"}  # pairs look as before


def test_a_group_spends_one_graph_reads_token_per_getschedule_call(env: Env, mint: TokenFactory) -> None:
    """A question costing four getSchedule calls runs out of the caller's 60-token burst after at most 15 requests
    (a pair gets 60); leased tokens an instance leaves unused for 5 s lapse, so a slow run may get fewer."""
    graph = _setup(env, policy="sameTenant")
    people = []
    for n in range(20):
        graph.add_user(TENANT_A, f"p{n}@contoso.example")
        people.append({"user": f"p{n}@contoso.example"})
    body = {"start": "2025-03-04T00:00:00Z", "end": "2025-05-05T00:00:00Z", "durationMinutes": 60,
            "timeZone": "UTC", "attendees": people}
    reset_rate_limits(env)
    statuses = []
    for _ in range(16):
        r = env.client.post("/api/availability", headers=bearer(mint()), json=body)
        statuses.append(r.status)
        if r.status == 429:
            break
    successes = statuses.count(200)
    assert statuses[-1] == 429 and statuses[:-1] == [200] * successes and 10 <= successes <= 15, statuses
    assert graph.call_count("get_schedule") == successes * 4
    reset_rate_limits(env)


def test_the_webhook_payload_schema_describes_group_events(env: Env, mint: TokenFactory) -> None:
    """The OpenAPI webhooks name the attendee type, guest and host flags, assigned and changes."""
    doc = env.client.get("/api/openapi.json").json()
    text = json.dumps(doc)
    for name in ("ResponseChange", "Assigned", "GroupSlot", "AttendeeIn"):
        assert name in text
