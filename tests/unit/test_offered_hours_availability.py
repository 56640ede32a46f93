"""Availability with offered hours: the partner's and the caller's rules, buffers, caps, working hours, no leaks."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import pytest

from core.domain.calendar import TimeZoneSpec, Weekday, WorkingHours
from core.domain.integration import Integration, IntegrationStatus, PairingPolicy
from core.domain.offered_hours import OfferedHours, WeeklyWindow, Window
from core.domain.sessions import AttendeeState, PendingOp, Session, SessionStatus
from core.services.authz import Caller
from core.services.availability import AvailabilityQuery, AvailabilityService, FreeSlots, TimeSlot
from core.services.offered_hours import OfferedHoursService
from core.services.stores.integrations import IntegrationRepository
from core.services.stores.pairings import Pairing, PairingRepository
from core.services.stores.sessions import SessionRepository
from tests.support.fake_graph import FakeCalendarGateway, FakeTokenProvider
from tests.support.memory import FixedClock, InMemoryTableStore

TENANT = "aaaaaaaa-0000-4000-8000-00000000000a"
MENTOR_ID = "a0000000-0000-4000-8000-00000000000a"
MENTEE_ID = "a0000000-0000-4000-8000-00000000000b"
CAROL_ID = "a0000000-0000-4000-8000-00000000000c"
MENTOR, MENTEE, CAROL = "mentor@contoso.example", "mentee@contoso.example", "carol@contoso.example"
MON_FRI = frozenset({Weekday.MONDAY, Weekday.TUESDAY, Weekday.WEDNESDAY, Weekday.THURSDAY, Weekday.FRIDAY})
NOW = datetime(2025, 3, 2, 12, 0, tzinfo=UTC)  # Sunday
MONDAY = datetime(2025, 3, 3, tzinfo=UTC)
TUESDAY = MONDAY + timedelta(days=1)


def hours(zone: str) -> WorkingHours:
    return WorkingHours(days=MON_FRI, start=time(9), end=time(17), time_zone=TimeZoneSpec(name=zone))


class World:
    """Mentor in New York (EST until 9 March), mentee in London, both 09-17; Carol in London; paired as p-1."""

    def __init__(self) -> None:
        self.tables = InMemoryTableStore()
        self.clock = FixedClock(NOW)
        self.graph = FakeCalendarGateway(tokens=FakeTokenProvider([TENANT]), clock=self.clock)
        self.graph.add_user(TENANT, MENTOR, user_id=MENTOR_ID, time_zone="America/New_York",
                            working_hours=hours("America/New_York"))
        self.graph.add_user(TENANT, MENTEE, user_id=MENTEE_ID, time_zone="Europe/London",
                            working_hours=hours("Europe/London"))
        self.graph.add_user(TENANT, CAROL, user_id=CAROL_ID, time_zone="Europe/London",
                            working_hours=hours("Europe/London"))
        IntegrationRepository(self.tables).save(
            Integration(tenant_id=TENANT, status=IntegrationStatus.CONNECTED, owner_email="o@contoso.example",
                        pairing_policy=PairingPolicy.SAME_TENANT), None)
        PairingRepository(self.tables).save(Pairing(TENANT, "p-1", MENTOR_ID, MENTOR, MENTEE_ID, MENTEE))
        self.rules = OfferedHoursService(self.tables, self.clock)
        self.service = AvailabilityService(self.graph, self.tables, self.clock)
        self.mentor, self.mentee = Caller(TENANT, MENTOR_ID), Caller(TENANT, MENTEE_ID)

    def offer(self, user_id: str, *windows: tuple[Weekday, str, str], zone: str = "America/New_York",
              **kw: object) -> None:
        weekly = tuple(WeeklyWindow(day, Window.of(start, end)) for day, start, end in windows)
        self.rules.put_for_user(Caller(TENANT, user_id), user_id, OfferedHours(zone, weekly=weekly, **kw))  # type: ignore[arg-type]

    def week(self, caller: Caller, **kw: object) -> FreeSlots:
        query = AvailabilityQuery(start=MONDAY, end=MONDAY + timedelta(days=5), duration_minutes=30,
                                  time_zone="UTC", pairing_id="p-1")
        return self.service.free_slots(caller, replace(query, **kw))  # type: ignore[arg-type]


def between(slots: tuple[TimeSlot, ...], start: datetime, end: datetime) -> bool:
    return all(start <= s.start and s.end <= end for s in slots)


def test_the_partners_offered_hours_hide_the_rest_of_their_free_time() -> None:
    """Without rules the shared week has slots on every weekday; with the mentor offering Tuesday 10-11 New York
    only 15:00-16:00Z Tuesday is left, and the mentee's answer says nothing else."""
    w = World()
    before = w.week(w.mentee).slots
    assert {s.start.date() for s in before} == {(MONDAY + timedelta(days=n)).date() for n in range(5)}
    w.offer(MENTOR_ID, (Weekday.TUESDAY, "10:00", "11:00"))
    after = w.week(w.mentee)
    assert [s.start for s in after.slots] == [TUESDAY + timedelta(hours=15, minutes=m) for m in (0, 15, 30)]
    assert [p.status for p in after.participants] == ["ok", "ok"]


def test_the_callers_own_rules_apply_to_their_search_too() -> None:
    """The mentee offering only Wednesday sees only Wednesday slots, whatever the mentor offers."""
    w = World()
    w.offer(MENTEE_ID, (Weekday.WEDNESDAY, "09:00", "17:00"), zone="Europe/London")
    slots = w.week(w.mentee).slots
    assert slots and {s.start.date() for s in slots} == {(MONDAY + timedelta(days=2)).date()}


def test_offered_hours_outside_working_hours_count_only_when_they_stand_on_their_own() -> None:
    """Mentor offers 07:00-08:00 New York (before their working day): nothing by default, the hour with the flag off."""
    w = World()
    w.offer(MENTOR_ID, (Weekday.TUESDAY, "07:00", "08:00"))
    assert w.week(w.mentee).slots == ()
    w.offer(MENTOR_ID, (Weekday.TUESDAY, "07:00", "08:00"), within_working_hours=False)
    slots = w.week(w.mentee).slots
    assert [s.start for s in slots] == [TUESDAY + timedelta(hours=12, minutes=m) for m in (0, 15, 30)]


def test_the_rule_owners_buffers_keep_time_free_around_their_busy_items() -> None:
    """A 30-minute buffer each side of the mentor's 15:00-15:30Z meeting leaves only slots ending by 14:30 or
    starting from 16:00, inside their Tuesday 09:00-12:00 New York."""
    w = World()
    w.graph.add_busy(TENANT, MENTOR, TUESDAY + timedelta(hours=15), TUESDAY + timedelta(hours=15, minutes=30))
    w.offer(MENTOR_ID, (Weekday.TUESDAY, "09:00", "12:00"), buffer_before_minutes=30, buffer_after_minutes=30)
    starts = [s.start for s in w.week(w.mentee).slots]
    assert starts == [TUESDAY + timedelta(hours=14)] + [TUESDAY + timedelta(hours=16, minutes=m)
                                                         for m in (0, 15, 30)]


def test_a_busy_item_just_outside_the_window_still_counts_for_the_buffer() -> None:
    """A meeting ending 10 minutes before the query window blocks its first 20 minutes under a 30-minute buffer."""
    w = World()
    start = TUESDAY + timedelta(hours=14)
    w.graph.add_busy(TENANT, MENTOR, start - timedelta(minutes=40), start - timedelta(minutes=10))
    w.offer(MENTOR_ID, (Weekday.TUESDAY, "09:00", "12:00"), buffer_before_minutes=30)
    slots = w.week(w.mentee, start=start, end=start + timedelta(hours=2)).slots
    assert slots[0].start == start + timedelta(minutes=30)


def test_a_day_at_the_rule_owners_cap_offers_no_slots() -> None:
    """The mentor takes one session a day: with one booked on Tuesday, Tuesday has no slots left; Thursday does."""
    w = World()
    w.offer(MENTOR_ID, (Weekday.TUESDAY, "09:00", "12:00"), (Weekday.THURSDAY, "09:00", "12:00"), max_per_day=1)
    assert {s.start.date() for s in w.week(w.mentee).slots} == {TUESDAY.date(), (TUESDAY + timedelta(days=2)).date()}
    SessionRepository(w.tables).add(Session(
        TENANT, "s1", "a0000000-0000-4000-8000-0000000000ff", "x@contoso.example",
        (AttendeeState(MENTOR, user_id=MENTOR_ID),), TUESDAY + timedelta(hours=20), TUESDAY + timedelta(hours=21),
        "UTC", status=SessionStatus.BOOKED, pending_op=PendingOp.CREATE))
    assert {s.start.date() for s in w.week(w.mentee).slots} == {(TUESDAY + timedelta(days=2)).date()}


def test_participants_named_by_email_are_bound_by_their_rules() -> None:
    """Under sameTenant, Carol named by address is looked up once (then cached) and her Thursday-only rules apply."""
    w = World()
    w.offer(CAROL_ID, (Weekday.THURSDAY, "09:00", "12:00"), zone="Europe/London")
    query = {"pairing_id": None, "participants": (CAROL,)}
    slots = w.week(w.mentee, **query).slots
    assert slots and between(slots, TUESDAY + timedelta(days=2, hours=9), TUESDAY + timedelta(days=2, hours=12))
    assert w.graph.call_count("get_user") == 2  # the caller's address, Carol's object id
    w.week(w.mentee, **query)
    assert w.graph.call_count("get_user") == 2  # both cached


def test_a_tenant_without_rules_costs_no_extra_graph_call() -> None:
    """Where nobody has rules a pair still costs exactly one getSchedule and nothing else."""
    w = World()
    w.graph.reset_calls()
    w.week(w.mentee)
    assert w.graph.call_count() == 1 and w.graph.call_count("get_schedule") == 1


def test_own_offered_slots_show_what_a_partner_could_book() -> None:
    """The preview's slots are the caller's offered hours minus their own busy time, in the asked zone."""
    w = World()
    w.offer(MENTOR_ID, (Weekday.TUESDAY, "09:00", "10:00"))
    w.graph.add_busy(TENANT, MENTOR, TUESDAY + timedelta(hours=14), TUESDAY + timedelta(hours=14, minutes=30))
    slots = w.service.offered_slots(w.mentor, start=MONDAY, end=MONDAY + timedelta(days=7), duration_minutes=30,
                                    time_zone="America/New_York")
    assert [s.start for s in slots] == [TUESDAY + timedelta(hours=14, minutes=30)]


@pytest.mark.parametrize("source", ["own", "default"])
def test_what_the_booker_sees_never_explains_a_missing_time(source: str) -> None:
    """With the mentor's own or default rules the answer carries slots and ok statuses only: no rule, reason or cap."""
    w = World()
    if source == "own":
        w.offer(MENTOR_ID, (Weekday.TUESDAY, "10:00", "11:00"), max_per_day=1, min_notice_minutes=60)
    else:
        admin = Caller(TENANT, "a0000000-0000-4000-8000-0000000000ad", roles=frozenset({"Integration.Admin"}))
        w.rules.put_default(admin, OfferedHours("America/New_York", weekly=(
            WeeklyWindow(Weekday.TUESDAY, Window.of("10:00", "11:00")),), max_per_day=1))
    result = w.week(w.mentee)
    assert set(FreeSlots.__dataclass_fields__) == {"time_zone", "slots", "participants"}
    assert result.slots and {p.status for p in result.participants} == {"ok"}
    assert all(p.message is None for p in result.participants)
