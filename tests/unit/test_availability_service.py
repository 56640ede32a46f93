"""AvailabilityService on the fakes (state and Graph call counts), plus one run through the real
GraphGateway on `responses` so "a pair costs one Graph request" is proven at the HTTP level too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import responses

from core.adapters.graph.client import GraphClient, RetryPolicy
from core.adapters.graph.gateway import GraphGateway
from core.adapters.http import build_session
from core.domain.calendar import FreeBusyStatus, GraphIdentity, NewEvent, TimeZoneSpec, Weekday, WorkingHours
from core.domain.errors import Forbidden, NotFound, ParticipantUnreachable, ValidationFailed
from core.domain.integration import Integration, IntegrationStatus, PairingPolicy
from core.domain.sessions import Session
from core.services.authz import Caller
from core.services.availability import AvailabilityQuery, AvailabilityService, FreeSlots, TimeSlot
from core.services.stores.integrations import IntegrationRepository
from core.services.stores.pairings import Pairing, PairingRepository
from core.services.stores.sessions import SessionRepository
from core.settings import Settings, StorageSettings
from tests import log_guard
from tests.support.fake_graph import ON_PREMISES, OUTSIDE_SCOPE, FakeCalendarGateway, FakeTokenProvider
from tests.support.memory import FixedClock, InMemoryTableStore

TENANT = "aaaaaaaa-0000-4000-8000-00000000000a"
OTHER_TENANT = "bbbbbbbb-0000-4000-8000-00000000000b"
MENTOR_ID = "a0000000-0000-4000-8000-00000000000a"
MENTEE_ID = "a0000000-0000-4000-8000-00000000000b"
CAROL_ID = "a0000000-0000-4000-8000-00000000000c"
MENTOR = "mentor@contoso.example"
MENTEE = "mentee@contoso.example"
CAROL = "carol@contoso.example"
EASTERN = ZoneInfo("America/New_York")
PARIS = ZoneInfo("Europe/Paris")
MON_FRI = frozenset({Weekday.MONDAY, Weekday.TUESDAY, Weekday.WEDNESDAY, Weekday.THURSDAY, Weekday.FRIDAY})
NOW = datetime(2025, 3, 2, 12, 0, tzinfo=UTC)  # a Sunday, before the searched week
MONDAY = datetime(2025, 3, 3, tzinfo=UTC)
SECRET_SUBJECT = "Confidential subject: mentee's appraisal"


def hours(zone: str, start: int = 9, end: int = 17) -> WorkingHours:
    return WorkingHours(days=MON_FRI, start=time(start), end=time(end), time_zone=TimeZoneSpec(name=zone))


@dataclass
class World:
    tables: InMemoryTableStore
    graph: FakeCalendarGateway
    clock: FixedClock
    service: AvailabilityService
    mentor: Caller
    mentee: Caller
    now: list[float]

    def set_policy(self, policy: PairingPolicy, *, enabled: bool = True) -> None:
        repo = IntegrationRepository(self.tables)
        current = repo.get(TENANT)
        assert current is not None
        repo.save(replace(current.value, pairing_policy=policy, enabled=enabled), current.etag)


@pytest.fixture
def world() -> World:
    """Tenant with a mentor in Eastern time and a mentee in Paris, both 9-17 Mon-Fri, paired as p-1."""
    tables = InMemoryTableStore()
    clock = FixedClock(NOW)
    graph = FakeCalendarGateway(tokens=FakeTokenProvider([TENANT, OTHER_TENANT]), clock=clock)
    graph.add_user(TENANT, MENTOR, user_id=MENTOR_ID, time_zone="Eastern Standard Time",
                   working_hours=hours("Eastern Standard Time"))
    graph.add_user(TENANT, MENTEE, user_id=MENTEE_ID, time_zone="Romance Standard Time",
                   working_hours=hours("Romance Standard Time"))
    graph.add_user(TENANT, CAROL, user_id=CAROL_ID, time_zone="Europe/Paris", working_hours=hours("Europe/Paris"))
    IntegrationRepository(tables).save(
        Integration(tenant_id=TENANT, status=IntegrationStatus.CONNECTED, owner_email="o@contoso.example"), None
    )
    PairingRepository(tables).save(Pairing(TENANT, "p-1", MENTOR_ID, MENTOR, MENTEE_ID, MENTEE))
    now = [1000.0]
    service = AvailabilityService(graph, tables, clock, monotonic=lambda: now[0])
    return World(tables, graph, clock, service, Caller(TENANT, MENTOR_ID), Caller(TENANT, MENTEE_ID), now)


def week(**overrides: object) -> AvailabilityQuery:
    base = AvailabilityQuery(
        start=MONDAY, end=MONDAY + timedelta(days=5), duration_minutes=30, time_zone="Europe/Paris",
        pairing_id="p-1",
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def overlaps(slot: TimeSlot, start: datetime, end: datetime) -> bool:
    return slot.start < end and slot.end > start


def inside_working_day(slot: TimeSlot, zone: ZoneInfo, start_hour: int = 9, end_hour: int = 17) -> bool:
    local_start, local_end = slot.start.astimezone(zone), slot.end.astimezone(zone)
    day_start = local_start.replace(hour=start_hour, minute=0)
    day_end = local_start.replace(hour=end_hour, minute=0)
    return local_start.weekday() < 5 and day_start <= local_start and local_end <= day_end


# --- pairs -----------------------------------------------------------------------------------


def test_pair_slots_are_free_for_both_inside_both_working_days_in_one_graph_call(world: World) -> None:
    """A pairing's slots avoid both calendars' busy time and both working days, from a single getSchedule."""
    mentor_busy = (MONDAY + timedelta(hours=14), MONDAY + timedelta(hours=15))  # 09:00-10:00 New York
    mentee_busy = (MONDAY + timedelta(hours=15), MONDAY + timedelta(hours=15, minutes=30))  # 16:00-16:30 Paris
    world.graph.add_busy(TENANT, MENTOR, *mentor_busy)
    world.graph.add_busy(TENANT, MENTEE, *mentee_busy, FreeBusyStatus.TENTATIVE)

    result = world.service.free_slots(world.mentor, week())

    assert result.slots, "the working days overlap 15:00-17:00 Paris on weekdays"
    assert world.graph.call_count() == 1 and world.graph.call_count("get_schedule") == 1
    for slot in result.slots:
        assert not overlaps(slot, *mentor_busy) and not overlaps(slot, *mentee_busy)
        assert inside_working_day(slot, EASTERN) and inside_working_day(slot, PARIS)
        assert slot.start.tzinfo is UTC
    monday_slots = [s for s in result.slots if s.start.date() == MONDAY.date()]
    assert [s.start.astimezone(PARIS).strftime("%H:%M") for s in monday_slots] == ["16:30"]
    assert {p.status for p in result.participants} == {"ok"}


def test_either_member_may_ask_and_gets_the_same_slots(world: World) -> None:
    """Mentor and mentee see the same shared free time."""
    world.graph.add_busy(TENANT, MENTOR, MONDAY + timedelta(hours=16), MONDAY + timedelta(hours=17))
    assert world.service.free_slots(world.mentor, week()).slots == world.service.free_slots(world.mentee, week()).slots


def test_only_slots_leave_the_service_never_event_details(world: World) -> None:
    """Other people's subjects never reach the result (the adapter keeps times and statuses only)."""
    log_guard.sentinel(SECRET_SUBJECT)
    world.graph.add_busy(TENANT, MENTEE, MONDAY + timedelta(hours=15), MONDAY + timedelta(hours=16),
                         subject=SECRET_SUBJECT)
    result = world.service.free_slots(world.mentor, week())
    assert SECRET_SUBJECT not in repr(result)
    assert isinstance(result, FreeSlots)


def test_buffers_keep_time_free_around_busy_items(world: World) -> None:
    """With a 15-minute buffer no slot starts right after, or ends right before, a busy item."""
    busy_start, busy_end = MONDAY + timedelta(hours=15), MONDAY + timedelta(hours=15, minutes=30)
    world.graph.add_busy(TENANT, MENTEE, busy_start, busy_end)
    gap = timedelta(minutes=15)
    plain = world.service.free_slots(world.mentor, week()).slots
    buffered = [s for s in world.service.free_slots(world.mentor, week(buffer_minutes=15)).slots
                if s.start.date() == MONDAY.date()]
    assert any(s.start == busy_end for s in plain) and any(s.end == busy_start for s in plain)
    assert buffered and all(s.end <= busy_start - gap or s.start >= busy_end + gap for s in buffered)


def test_working_hours_only_false_offers_evenings(world: World) -> None:
    """Turning working hours off offers slots outside them (here: every hour of the day)."""
    result = world.service.free_slots(world.mentor, week(working_hours_only=False, end=MONDAY + timedelta(days=1)))
    assert len(result.slots) == 24 * 4 - 1


def test_slots_never_start_in_the_past(world: World) -> None:
    """Slots start no earlier than now."""
    world.clock.set(MONDAY + timedelta(hours=16, minutes=5))
    result = world.service.free_slots(world.mentor, week())
    assert result.slots and all(s.start >= MONDAY + timedelta(hours=16, minutes=5) for s in result.slots)


def test_a_window_of_62_days_is_fetched_in_two_calls_and_merged(world: World) -> None:
    """Graph wants windows under 62 days: longer ones are split, and busy time from both halves counts."""
    late = MONDAY + timedelta(days=59, hours=13)  # Thursday 1 May, 09:00 New York, 15:00 Paris
    world.graph.add_busy(TENANT, MENTOR, late, late + timedelta(hours=1))
    result = world.service.free_slots(world.mentor, week(end=MONDAY + timedelta(days=62)))
    assert world.graph.call_count("get_schedule") == 2
    assert result.slots and not any(overlaps(s, late, late + timedelta(hours=1)) for s in result.slots)


# --- who may ask -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "caller",
    [
        Caller(TENANT, CAROL_ID),  # not a member
        Caller(OTHER_TENANT, MENTOR_ID),  # the same id in another tenant
    ],
)
def test_a_pairing_the_caller_does_not_belong_to_is_not_found(world: World, caller: Caller) -> None:
    """Non-members (and other tenants) get 404 pairing_not_found, and no Graph call is made."""
    IntegrationRepository(world.tables).save(Integration(tenant_id=OTHER_TENANT, status=IntegrationStatus.CONNECTED),
                                             None)
    with pytest.raises(NotFound) as caught:
        world.service.free_slots(caller, week())
    assert caught.value.code == "pairing_not_found"
    assert world.graph.call_count() == 0


def test_an_inactive_pairing_is_not_found(world: World) -> None:
    """A pairing switched off no longer gives availability."""
    PairingRepository(world.tables).save(Pairing(TENANT, "p-1", MENTOR_ID, MENTOR, MENTEE_ID, MENTEE, active=False))
    with pytest.raises(NotFound):
        world.service.free_slots(world.mentor, week())


def test_participants_are_refused_under_the_registered_policy(world: World) -> None:
    """Under "registered" only pairings may be used: a participant list is 403 participants_not_allowed."""
    with pytest.raises(Forbidden) as caught:
        world.service.free_slots(world.mentor, week(pairing_id=None, participants=(CAROL,)))
    assert caught.value.code == "participants_not_allowed"
    assert world.graph.call_count() == 0


def test_a_disabled_integration_stops_availability(world: World) -> None:
    """enabled=false stops all calendar work: 403 integration_disabled."""
    world.set_policy(PairingPolicy.REGISTERED, enabled=False)
    with pytest.raises(Forbidden) as caught:
        world.service.free_slots(world.mentor, week())
    assert caught.value.code == "integration_disabled"


def test_participants_under_same_tenant_include_the_caller_once(world: World) -> None:
    """Under "sameTenant" a list works; the caller is always in it, duplicates by id or address count once."""
    world.set_policy(PairingPolicy.SAME_TENANT)
    world.graph.add_busy(TENANT, MENTOR, MONDAY + timedelta(hours=16), MONDAY + timedelta(hours=16, minutes=30))
    query = week(pairing_id=None, participants=(CAROL, CAROL_ID, MENTOR.upper(), MENTOR_ID))
    result = world.service.free_slots(world.mentor, query)
    assert [p.address for p in result.participants] == [MENTOR, CAROL]
    assert world.graph.call_count("get_schedule") == 1
    assert not any(overlaps(s, MONDAY + timedelta(hours=16), MONDAY + timedelta(hours=16, minutes=30))
                   for s in result.slots)


def test_the_callers_address_is_looked_up_once_per_few_minutes(world: World) -> None:
    """The caller's SMTP address comes from the directory and is cached per process."""
    world.set_policy(PairingPolicy.SAME_TENANT)
    query = week(pairing_id=None, participants=(CAROL,))
    world.service.free_slots(world.mentor, query)
    world.service.free_slots(world.mentor, query)
    assert world.graph.call_count("get_user") == 1
    world.now[0] += 301
    world.service.free_slots(world.mentor, query)
    assert world.graph.call_count("get_user") == 2


# --- unreachable people ----------------------------------------------------------------------


def test_unreachable_participants_give_a_per_participant_error_not_empty_slots(world: World) -> None:
    """On-premises, out-of-scope and unknown mailboxes are each named with their reason (422)."""
    world.set_policy(PairingPolicy.SAME_TENANT)
    world.graph.add_user(TENANT, "onprem@contoso.example", kind=ON_PREMISES)
    world.graph.add_user(TENANT, "scoped@contoso.example", kind=OUTSIDE_SCOPE)
    query = week(pairing_id=None, participants=(
        "onprem@contoso.example", "scoped@contoso.example", "ghost@contoso.example", CAROL,
        "0f0f0f0f-1111-4222-8333-444455556666",
    ))
    with pytest.raises(ParticipantUnreachable) as caught:
        world.service.free_slots(world.mentor, query)
    statuses = {p["user"]: p["status"] for p in caught.value.details["participants"]}
    assert statuses == {
        MENTOR_ID: "ok",
        "onprem@contoso.example": "mailbox_on_premises_or_unlicensed",
        "scoped@contoso.example": "outside_app_scope",
        "ghost@contoso.example": "user_not_found",
        CAROL: "ok",
        "0f0f0f0f-1111-4222-8333-444455556666": "user_not_found",
    }
    assert caught.value.http_status == 422 and caught.value.code == "participant_unreachable"
    assert all(p.get("message") for p in caught.value.details["participants"] if p["status"] != "ok")


def test_an_unreachable_partner_in_a_pairing_is_reported(world: World) -> None:
    """A pairing whose partner moved on-premises is 422 with the partner's reason."""
    world.graph.add_user(TENANT, "gone@contoso.example", kind=ON_PREMISES, user_id=CAROL_ID.replace("c", "d"))
    PairingRepository(world.tables).save(
        Pairing(TENANT, "p-2", MENTOR_ID, MENTOR, CAROL_ID.replace("c", "d"), "gone@contoso.example")
    )
    with pytest.raises(ParticipantUnreachable) as caught:
        world.service.free_slots(world.mentor, week(pairing_id="p-2"))
    assert [p["status"] for p in caught.value.details["participants"]] == ["ok", "mailbox_on_premises_or_unlicensed"]
    assert world.graph.call_count() == 1


def test_an_unreachable_caller_is_named_and_the_others_still_classified(world: World) -> None:
    """When the caller's own mailbox (the call's anchor) fails, the caller is marked and the rest still checked."""
    world.graph.add_user(TENANT, "hybrid@contoso.example", kind=ON_PREMISES, user_id=CAROL_ID.replace("c", "e"))
    PairingRepository(world.tables).save(
        Pairing(TENANT, "p-3", CAROL_ID.replace("c", "e"), "hybrid@contoso.example", MENTEE_ID, MENTEE)
    )
    hybrid = Caller(TENANT, CAROL_ID.replace("c", "e"))
    with pytest.raises(ParticipantUnreachable) as caught:
        world.service.free_slots(hybrid, week(pairing_id="p-3"))
    assert [p["status"] for p in caught.value.details["participants"]] == ["mailbox_on_premises_or_unlicensed", "ok"]


# --- rooms -----------------------------------------------------------------------------------


def test_rooms_are_listed_and_cached_for_a_while(world: World) -> None:
    """Rooms come from Places once per cache period; a room list filter narrows them."""
    world.graph.add_room_list(TENANT, "building1@contoso.example", "Building 1")
    world.graph.add_room(TENANT, "r1@contoso.example", "Room One", capacity=4, building="B1", floor_label="1",
                         room_list="building1@contoso.example")
    world.graph.add_room(TENANT, "r2@contoso.example", "Room Two", capacity=8)
    assert [r.address for r in world.service.rooms(world.mentor)] == ["r1@contoso.example", "r2@contoso.example"]
    assert [r.address for r in world.service.rooms(world.mentee)] == ["r1@contoso.example", "r2@contoso.example"]
    assert world.graph.call_count("list_rooms") == 1
    listed = world.service.rooms(world.mentor, "building1@contoso.example")
    assert [(r.address, r.capacity, r.building, r.floor_label) for r in listed] == [
        ("r1@contoso.example", 4, "B1", "1")
    ]
    world.now[0] += 601
    world.service.rooms(world.mentor)
    assert world.graph.call_count("list_rooms") == 3


def test_an_unknown_room_list_is_not_found(world: World) -> None:
    """?roomList= naming no room list is 404 room_list_not_found."""
    with pytest.raises(NotFound) as caught:
        world.service.rooms(world.mentor, "nowhere@contoso.example")
    assert caught.value.code == "room_list_not_found"


def test_room_availability_groups_addresses_by_twenty(world: World) -> None:
    """25 rooms take two getSchedule calls; a busy room loses that time; addresses come back as the directory
    spells them."""
    for i in range(25):
        world.graph.add_room(TENANT, f"room{i}@contoso.example", f"Room {i}")
    busy = (MONDAY + timedelta(hours=10), MONDAY + timedelta(hours=11))
    world.graph.add_busy(TENANT, "room0@contoso.example", *busy)
    rooms = [f"room{i}@contoso.example" for i in range(24)] + ["ROOM24@contoso.example"]
    result = world.service.room_availability(
        world.mentor, rooms, start=MONDAY + timedelta(hours=9), end=MONDAY + timedelta(hours=12),
        duration_minutes=60, time_zone="UTC",
    )
    assert world.graph.call_count("get_schedule") == 2
    by_room = {r.address: r for r in result}
    assert [s.start.hour for s in by_room["room0@contoso.example"].slots] == [9, 11]
    assert len(by_room["room1@contoso.example"].slots) == 9
    assert "room24@contoso.example" in by_room


def test_room_availability_refuses_addresses_that_are_not_the_tenants_rooms(world: World) -> None:
    """A person's address (bypassing the pairing policy) or an unknown one is 422 room_not_found naming each,
    and no free/busy is read at all."""
    world.graph.add_room(TENANT, "r1@contoso.example", "Room One")
    with pytest.raises(ValidationFailed) as caught:
        world.service.room_availability(
            world.mentor, ["r1@contoso.example", MENTEE, "ghost-room@contoso.example"],
            start=MONDAY + timedelta(hours=9), end=MONDAY + timedelta(hours=12), duration_minutes=60,
            time_zone="UTC",
        )
    assert caught.value.code == "room_not_found"
    assert [f["loc"] for f in caught.value.details["fields"]] == [["body", "rooms", 1], ["body", "rooms", 2]]
    assert world.graph.call_count("get_schedule") == 0


# --- the caller's own calendar ---------------------------------------------------------------


def test_calendar_settings_give_an_iana_zone_and_working_hours(world: World) -> None:
    """Windows zone names from mailboxSettings come back as IANA names."""
    found = world.service.calendar_settings(world.mentee)
    assert found.time_zone == "Europe/Paris"
    assert found.working_hours is not None
    assert found.working_hours.days == ("monday", "tuesday", "wednesday", "thursday", "friday")
    assert (found.working_hours.start, found.working_hours.end) == ("09:00:00", "17:00:00")
    assert found.working_hours.time_zone == "Europe/Paris"


def test_my_events_show_the_owner_their_subjects_and_mark_sessions(world: World) -> None:
    """The caller sees their own events with subjects, sessions marked, cancelled ones left out, nothing stored."""
    log_guard.sentinel(SECRET_SUBJECT)
    who = GraphIdentity(TENANT)
    start = MONDAY + timedelta(hours=17)
    session = Session(
        tenant_id=TENANT, session_id="s-1", organizer_id=MENTOR_ID, organizer_address=MENTOR, attendees=(),
        start=start, end=start + timedelta(minutes=30), time_zone="UTC",
    )
    SessionRepository(world.tables).add(session)
    world.graph.create_event(who, MENTOR, NewEvent(subject="Mentoring", start=start, end=start + timedelta(minutes=30),
                                                  transaction_id="s-1"))
    world.graph.add_busy(TENANT, MENTOR, start + timedelta(hours=2), start + timedelta(hours=3), subject=SECRET_SUBJECT)
    cancelled = world.graph.create_event(who, MENTOR, NewEvent(subject="Old", start=start + timedelta(hours=4),
                                                              end=start + timedelta(hours=5)))
    world.graph.cancel_event_as_organizer(TENANT, MENTOR, cancelled.event_id)
    rows_before = sum(len(world.tables.all(t)) for t in ("sessions", "pairings", "integrations"))

    found = world.service.my_events(world.mentor, MONDAY, MONDAY + timedelta(days=1))

    assert [(e.subject, e.is_session, e.show_as) for e in found] == [
        ("Mentoring", True, "busy"), (SECRET_SUBJECT, False, "busy"),
    ]
    assert sum(len(world.tables.all(t)) for t in ("sessions", "pairings", "integrations")) == rows_before


# --- the pairing store -----------------------------------------------------------------------


def test_pairings_are_listed_for_each_member_and_reindexed_when_members_change(world: World) -> None:
    """list_for_user follows saves and deletes; a replaced member loses the pairing."""
    repo = PairingRepository(world.tables)
    assert [p.pairing_id for p in repo.list_for_user(TENANT, MENTEE_ID.upper())] == ["p-1"]
    repo.save(Pairing(TENANT, "p-1", MENTOR_ID, MENTOR, CAROL_ID, CAROL))
    assert repo.list_for_user(TENANT, MENTEE_ID) == []
    assert [p.pairing_id for p in repo.list_for_user(TENANT, CAROL_ID)] == ["p-1"]
    assert repo.list_for_user(OTHER_TENANT, CAROL_ID) == []
    repo.delete(TENANT, "p-1")
    assert repo.get(TENANT, "p-1") is None and repo.list_for_user(TENANT, MENTOR_ID) == []


# --- the real gateway on `responses` ---------------------------------------------------------

BASE = "https://graph.microsoft.com/v1.0"


class _Tokens:
    def token(self, who: GraphIdentity) -> str:
        return "tok"

    def invalidate(self, tenant_id: str) -> None:
        return None


@pytest.fixture
def graph_http() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def _schedule_info(address: str, zone: str, busy: list[tuple[str, str]]) -> dict[str, object]:
    return {
        "scheduleId": address,
        "availabilityView": "",
        "scheduleItems": [
            {"isPrivate": False, "status": "busy", "subject": SECRET_SUBJECT, "location": "Room 1",
             "start": {"dateTime": s, "timeZone": "UTC"}, "end": {"dateTime": e, "timeZone": "UTC"}}
            for s, e in busy
        ],
        "workingHours": {"daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                         "startTime": "09:00:00.0000000", "endTime": "17:00:00.0000000",
                         "timeZone": {"name": zone}},
    }


def test_a_pair_costs_one_graph_request_through_the_real_gateway(
    world: World, graph_http: responses.RequestsMock
) -> None:
    """Through GraphGateway a pair's availability is exactly one POST getSchedule, anchored on the caller."""
    log_guard.sentinel(SECRET_SUBJECT)
    settings = Settings(
        storage=StorageSettings("UseDevelopmentStorage=true", None, None, None),
        entra_client_id="aaaaaaaa-0000-0000-0000-000000000000", entra_credential="secret",
        api_audience="aaaaaaaa-0000-0000-0000-000000000000", api_scope="access_as_user",
        authority_host="https://login.microsoftonline.com", graph_base_url=BASE,
        public_base_url="https://app.example.com", app_url="https://spa.example.com",
    )
    retry = RetryPolicy(max_attempts=1, base_delay=0, max_delay=0, max_total_wait=0, sleep=lambda _s: None)
    gateway = GraphGateway(GraphClient(BASE, build_session(settings), _Tokens(), retry))
    graph_http.post(
        f"{BASE}/users/{MENTOR_ID}/calendar/getSchedule",
        json={"value": [
            _schedule_info(MENTOR, "Eastern Standard Time", [("2025-03-03T14:00:00", "2025-03-03T15:00:00")]),
            _schedule_info(MENTEE, "Romance Standard Time", [("2025-03-03T15:00:00", "2025-03-03T15:30:00")]),
        ]},
    )
    service = AvailabilityService(gateway, world.tables, world.clock)

    result = service.free_slots(world.mentor, week())

    assert len(graph_http.calls) == 1
    sent = json.loads(graph_http.calls[0].request.body or b"{}")
    assert [s.lower() for s in sent["schedules"]] == [MENTOR, MENTEE]
    assert [s.start.astimezone(PARIS).strftime("%a %H:%M") for s in result.slots][:1] == ["Mon 16:30"]
    assert SECRET_SUBJECT not in repr(result) and "Room 1" not in repr(result)
