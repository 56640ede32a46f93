"""Availability for groups: required people all free, optional people per slot, guests unknown, any-of hosts
and rooms per slot with the choice a booking would make, and the fewest getSchedule calls."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta

import pytest

from core.adapters.sealer import AesGcmSealer
from core.domain.assignment import RoomChoice
from core.domain.calendar import TimeZoneSpec, Weekday, WorkingHours
from core.domain.errors import Forbidden, ParticipantUnreachable
from core.domain.integration import Integration, IntegrationStatus, PairingPolicy
from core.domain.sessions import AttendeeType
from core.services.authz import Caller
from core.services.availability import AvailabilityQuery, AvailabilityService, Role
from core.services.booking import BookingRequest, BookingService
from core.services.party import AttendeeRequest
from core.services.stores.integrations import IntegrationRepository
from core.services.stores.pairings import Pairing, PairingRepository
from tests.support.fake_graph import ON_PREMISES, FakeCalendarGateway, FakeTokenProvider
from tests.support.memory import FixedClock, InMemoryCommandQueue, InMemorySecretStore, InMemoryTableStore

TENANT = "aaaaaaaa-0000-4000-8000-00000000000a"
ORG_ID = "a0000000-0000-4000-8000-000000000001"
ORG = "org@contoso.test"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # a Sunday
MONDAY = datetime(2026, 3, 2, tzinfo=UTC)
DAYS = frozenset({Weekday.MONDAY, Weekday.TUESDAY, Weekday.WEDNESDAY, Weekday.THURSDAY, Weekday.FRIDAY})
HOURS = WorkingHours(days=DAYS, start=time(9), end=time(17), time_zone=TimeZoneSpec(name="UTC"))
GUEST = "candidate@example.org"


def uid(n: int) -> str:
    return f"b0000000-0000-4000-8000-{n:012d}"


@dataclass
class World:
    tables: InMemoryTableStore
    graph: FakeCalendarGateway
    clock: FixedClock
    service: AvailabilityService
    booking: BookingService
    me: Caller

    def person(self, name: str, n: int, kind: str = "normal") -> str:
        address = f"{name}@contoso.test"
        self.graph.add_user(TENANT, address, user_id=uid(n), time_zone="UTC", working_hours=HOURS, kind=kind)
        return address


@pytest.fixture
def world() -> World:
    """An organizer working 9-17 UTC; people and rooms are added by each test (sameTenant policy)."""
    tables = InMemoryTableStore()
    clock = FixedClock(NOW)
    graph = FakeCalendarGateway(tokens=FakeTokenProvider([TENANT]), clock=clock)
    graph.add_user(TENANT, ORG, user_id=ORG_ID, time_zone="UTC", working_hours=HOURS)
    IntegrationRepository(tables).save(Integration(tenant_id=TENANT, status=IntegrationStatus.CONNECTED,
                                                   owner_email="o@contoso.test",
                                                   pairing_policy=PairingPolicy.SAME_TENANT), None)
    service = AvailabilityService(graph, tables, clock)
    booking = BookingService(graph, tables, InMemoryCommandQueue(now=clock.now), clock,
                             AesGcmSealer(InMemorySecretStore()))
    return World(tables, graph, clock, service, booking, Caller(TENANT, ORG_ID))


def day(**kw: object) -> AvailabilityQuery:
    base = AvailabilityQuery(start=MONDAY, end=MONDAY + timedelta(days=1), duration_minutes=60, time_zone="UTC",
                             step_minutes=60)
    return replace(base, **kw)  # type: ignore[arg-type]


def at(hour: int) -> datetime:
    return MONDAY + timedelta(hours=hour)


def test_slots_need_every_required_person_and_list_the_free_optional_ones(world: World) -> None:
    """Required people bound the slots; each slot names the optional people free then; guests are unknown."""
    a, b = world.person("ann", 1), world.person("ben", 2)
    o1, o2 = world.person("opt1", 3), world.person("opt2", 4)
    world.graph.add_busy(TENANT, b, at(9), at(11))
    world.graph.add_busy(TENANT, o1, at(11), at(12))
    world.graph.add_busy(TENANT, o2, at(9), at(17))
    query = day(attendees=(AttendeeRequest(user=a), AttendeeRequest(user=b),
                           AttendeeRequest(user=o1, type=AttendeeType.OPTIONAL),
                           AttendeeRequest(user=o2, type=AttendeeType.OPTIONAL), AttendeeRequest(email=GUEST)))
    world.graph.reset_calls()
    result = world.service.free_slots(world.me, query)
    assert [s.start.hour for s in result.slots] == [11, 12, 13, 14, 15, 16]
    assert {s.start.hour: s.optional for s in result.slots}[11] == ()
    assert {s.start.hour: s.optional for s in result.slots}[12] == (o1,)
    guest = next(p for p in result.participants if p.role is Role.GUEST)
    assert (guest.address, guest.status) == (GUEST, "unknown")
    [call] = [c for c in world.graph.calls if c.method == "get_schedule"]
    assert call.args.endswith("n=5")  # the organizer and four colleagues; never the guest


def test_an_unreadable_optional_person_is_reported_but_an_unreadable_required_one_fails(world: World) -> None:
    """An optional colleague Graph cannot read never shows as free; a required one is 422 participant_unreachable."""
    a = world.person("ann", 1)
    far = world.person("far", 2, kind=ON_PREMISES)
    result = world.service.free_slots(world.me, day(attendees=(
        AttendeeRequest(user=a), AttendeeRequest(user=far, type=AttendeeType.OPTIONAL))))
    assert result.slots and all(s.optional == () for s in result.slots)
    status = next(p for p in result.participants if p.address == far)
    assert status.role is Role.OPTIONAL and status.status == "mailbox_on_premises_or_unlicensed"
    with pytest.raises(ParticipantUnreachable):
        world.service.free_slots(world.me, day(attendees=(AttendeeRequest(user=a), AttendeeRequest(user=far))))


def test_any_of_hosts_needs_one_free_host_per_slot_and_suggests_the_least_loaded(world: World) -> None:
    """A slot is offered while one candidate host is free; it lists the free ones and the one booking would take."""
    h1, h2 = world.person("host1", 1), world.person("host2", 2)
    world.graph.add_busy(TENANT, h1, at(9), at(12))
    world.graph.add_busy(TENANT, h2, at(9), at(10))
    world.graph.add_busy(TENANT, h2, at(13), at(17))
    result = world.service.free_slots(world.me, day(hosts=(h1, h2)))
    by_hour = {s.start.hour: s for s in result.slots}
    assert sorted(by_hour) == [10, 11, 12, 13, 14, 15, 16]
    assert by_hour[10].hosts == (h2,) and by_hour[12].hosts == (h1, h2)
    assert by_hour[10].host is not None and by_hour[10].host.address == h2
    # h1 gets a session: at 12:00 (both free) the suggestion is now the less loaded h2.
    world.booking.create(world.me, BookingRequest(start=at(14), end=at(15), time_zone="UTC", hosts=(h1,)))
    again = {s.start.hour: s for s in world.service.free_slots(world.me, day(hosts=(h1, h2))).slots}
    suggestion = again[12].host
    assert suggestion is not None and suggestion.address == h2
    assert "(0; the other free candidates 1)" in suggestion.reason


def test_the_suggested_host_is_the_one_booking_chooses(world: World) -> None:
    """Availability and booking apply the same rules: booking the slot takes the suggested host."""
    hosts = tuple(world.person(f"h{n}", n) for n in range(1, 4))
    slot = world.service.free_slots(world.me, day(hosts=hosts)).slots[0]
    booked = world.booking.create(world.me, BookingRequest(start=slot.start, end=slot.end, time_zone="UTC",
                                                           hosts=hosts))
    assert slot.host is not None and booked.host is not None and booked.host.address == slot.host.address


def test_any_of_rooms_lists_the_free_rooms_best_first_and_drops_slots_without_one(world: World) -> None:
    """Rooms too small never appear; bestFit ranks the smallest room that seats the party first."""
    a = world.person("ann", 1)
    big, mid, tiny = "big@contoso.test", "mid@contoso.test", "tiny@contoso.test"
    for address, seats in ((big, 10), (mid, 4), (tiny, 1)):
        world.graph.add_room(TENANT, address, address.split("@")[0], capacity=seats)
    world.graph.add_busy(TENANT, mid, at(9), at(11))
    world.graph.add_busy(TENANT, big, at(10), at(12))
    result = world.service.free_slots(world.me, day(attendees=(AttendeeRequest(user=a),), rooms=(big, mid, tiny),
                                                    room_choice=RoomChoice.BEST_FIT))
    by_hour = {s.start.hour: s for s in result.slots}
    assert 10 not in by_hour  # both rooms that seat two are busy at 10
    assert by_hour[9].rooms == (big,) and by_hour[12].rooms == (mid, big)
    assert by_hour[12].room is not None and by_hour[12].room.address == mid and "(4 seats)" in by_hour[12].room.reason


def test_three_required_two_optional_and_five_rooms_cost_one_getschedule_and_nothing_else_when_warm(
        world: World) -> None:
    """11 schedules fit one getSchedule; a repeated question (directory and rooms cached) makes only that call."""
    people = [world.person(f"p{n}", n) for n in range(1, 6)]
    rooms = [f"room{n}@contoso.test" for n in range(5)]
    for n, address in enumerate(rooms):
        world.graph.add_room(TENANT, address, f"Room {n}", capacity=8)
    query = day(attendees=(*(AttendeeRequest(user=p) for p in people[:3]),
                           *(AttendeeRequest(user=p, type=AttendeeType.OPTIONAL) for p in people[3:])),
                rooms=tuple(rooms))
    assert query.schedule_calls() == 1
    world.service.free_slots(world.me, query)
    world.graph.reset_calls()
    world.service.free_slots(world.me, replace(query, start=MONDAY + timedelta(days=1),
                                               end=MONDAY + timedelta(days=2)))
    assert [c.method for c in world.graph.calls] == ["get_schedule"]


def test_groups_above_twenty_schedules_are_split_at_the_floor(world: World) -> None:
    """26 schedules over a 62-day window (two windows with the buffer margin): ceil(26/20) = 2 calls per window."""
    people = [world.person(f"p{n}", n) for n in range(1, 21)]
    rooms = [f"room{n}@contoso.test" for n in range(5)]
    for n, address in enumerate(rooms):
        world.graph.add_room(TENANT, address, f"Room {n}", capacity=30)
    query = day(end=MONDAY + timedelta(days=62), attendees=tuple(AttendeeRequest(user=p) for p in people),
                rooms=tuple(rooms), step_minutes=60)
    world.graph.reset_calls()
    world.service.free_slots(world.me, query)
    assert world.graph.call_count("get_schedule") == 4 == query.schedule_calls()


def test_registered_policy_applies_to_group_availability(world: World) -> None:
    """A user asking about unpaired colleagues or guests under registered is refused, paired ones are fine."""
    a, b = world.person("ann", 1), world.person("ben", 2)
    repo = IntegrationRepository(world.tables)
    found = repo.get(TENANT)
    assert found is not None
    repo.save(replace(found.value, pairing_policy=PairingPolicy.REGISTERED), found.etag)
    PairingRepository(world.tables).save(Pairing(TENANT, "p1", ORG_ID, ORG, uid(1), a, True, NOW))
    assert world.service.free_slots(world.me, day(attendees=(AttendeeRequest(user=a),))).slots
    with pytest.raises(Forbidden) as err:
        world.service.free_slots(world.me, day(attendees=(AttendeeRequest(user=a), AttendeeRequest(user=b))))
    assert err.value.code == "attendee_not_paired"
    with pytest.raises(Forbidden) as err:
        world.service.free_slots(world.me, day(attendees=(AttendeeRequest(email=GUEST),)))
    assert err.value.code == "guests_not_allowed"
    app = Caller(TENANT, ORG_ID, app_id="product", acting_app="product")
    assert world.service.free_slots(app, day(attendees=(AttendeeRequest(user=b), AttendeeRequest(email=GUEST)))).slots
