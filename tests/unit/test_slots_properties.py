"""Properties of the slot engine over generated calendars, zones and DST days (hypothesis).

Every check works on UTC instants (``timestamp()``), never on wall-clock differences,
so it cannot share the engine's assumptions about time zones. The brute-force oracle
tries every minute of the window one by one.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.domain.calendar import BusyInterval, FreeBusyStatus, TimeZoneSpec, TransitionRule, Weekday, WorkingHours
from core.domain.slots import Participant, Slot, SlotRequest, find_slots
from core.domain.timezones import resolve_zone

PROPERTY_SETTINGS = settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])

OUTPUT_ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/Los_Angeles",
    "Australia/Sydney",
    "Asia/Kathmandu",
    "America/New_York",
]
PACIFIC_CUSTOM = TimeZoneSpec(
    "Customized Time Zone",
    bias_minutes=480,
    standard=TransitionRule(time(2), 1, Weekday.SUNDAY, 11),
    daylight=TransitionRule(time(2), 2, Weekday.SUNDAY, 3, bias_minutes=-60),
)
PARTICIPANT_ZONES = [
    TimeZoneSpec("Pacific Standard Time"),
    TimeZoneSpec("W. Europe Standard Time"),
    TimeZoneSpec("AUS Eastern Standard Time"),
    TimeZoneSpec("Europe/London"),
    TimeZoneSpec("Asia/Kolkata"),
    TimeZoneSpec("tzone://Microsoft/Utc"),
    PACIFIC_CUSTOM,
]
# (zone, day) of daylight-saving changes in 2025: spring forward and fall back in three zones.
DST_DAYS = [
    ("America/Los_Angeles", date(2025, 3, 9)),
    ("America/Los_Angeles", date(2025, 11, 2)),
    ("Europe/Berlin", date(2025, 3, 30)),
    ("Europe/Berlin", date(2025, 10, 26)),
    ("Australia/Sydney", date(2025, 4, 6)),
    ("Australia/Sydney", date(2025, 10, 5)),
]
BLOCKING = {FreeBusyStatus.BUSY, FreeBusyStatus.OOF, FreeBusyStatus.UNKNOWN}


@dataclass(frozen=True)
class Scenario:
    request: SlotRequest
    participants: list[Participant]


def _minute_times() -> st.SearchStrategy[time]:
    return st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))


@st.composite
def working_hours(draw: st.DrawFn, zones: list[TimeZoneSpec]) -> WorkingHours:
    days = draw(st.frozensets(st.sampled_from(list(Weekday)), min_size=1))
    start = draw(_minute_times())
    shape = draw(st.sampled_from(["long day", "office", "anything"]))
    if shape == "long day":
        # Wide hours so that people in distant zones still overlap.
        start = time(draw(st.integers(0, 8)), draw(st.sampled_from([0, 30])))
        end = time(draw(st.integers(16, 23)), draw(st.sampled_from([0, 30, 45])))
    elif shape == "office":
        end_minutes = min(start.hour * 60 + start.minute + draw(st.integers(60, 12 * 60)), 23 * 60 + 45)
        end = time(end_minutes // 60, end_minutes % 60)
    else:
        end = draw(_minute_times())  # including overnight hours and start == end (all day)
    return WorkingHours(days, start, end, draw(st.sampled_from(zones)))


@st.composite
def busy_items(draw: st.DrawFn, window_start: datetime, window_minutes: int) -> tuple[BusyInterval, ...]:
    items = []
    for _ in range(draw(st.integers(0, 20))):
        start = window_start + timedelta(minutes=draw(st.integers(-600, window_minutes + 600)))
        end = start + timedelta(minutes=draw(st.integers(1, 240)))
        zone = draw(st.sampled_from([UTC, ZoneInfo("America/Los_Angeles"), ZoneInfo("Asia/Tokyo")]))
        status = draw(st.sampled_from(list(FreeBusyStatus)))
        items.append(BusyInterval(start.astimezone(zone), end.astimezone(zone), status))
    return tuple(items)


@st.composite
def scenarios(draw: st.DrawFn, *, dst_days: bool = False, working_hours_only: bool | None = None) -> Scenario:
    if dst_days:
        zone_name, day = draw(st.sampled_from(DST_DAYS))
        output_zone = zone_name
        participant_zones = [TimeZoneSpec(zone_name)]
        window_start = datetime.combine(day, time(0), tzinfo=ZoneInfo(zone_name)).astimezone(UTC)
        window_start += timedelta(minutes=draw(st.integers(-180, 180)))
        window_minutes = draw(st.integers(60, 30 * 60))
    else:
        output_zone = draw(st.sampled_from(OUTPUT_ZONES))
        participant_zones = PARTICIPANT_ZONES
        day = draw(st.one_of(st.sampled_from([d for _, d in DST_DAYS]), st.dates(date(2025, 1, 1), date(2026, 12, 31))))
        window_start = datetime.combine(day, time(0), tzinfo=UTC) + timedelta(minutes=draw(st.integers(-720, 720)))
        window_minutes = draw(st.integers(30, 3 * 24 * 60))
    window_end = window_start + timedelta(minutes=window_minutes)
    people = []
    for number in range(draw(st.integers(1, 3))):
        hours = draw(st.one_of(st.none(), working_hours(participant_zones)))
        people.append(Participant(f"p{number}@example.com", draw(busy_items(window_start, window_minutes)), hours))
    now = draw(
        st.one_of(st.none(), st.integers(-600, window_minutes).map(lambda m: window_start + timedelta(minutes=m)))
    )
    request = SlotRequest(
        window_start=window_start,
        window_end=window_end,
        duration_minutes=draw(st.sampled_from([15, 30, 45, 60, 90, 120])),
        time_zone=output_zone,
        step_minutes=draw(st.sampled_from([5, 10, 15, 20, 30, 45, 50, 60])),
        buffer_before_minutes=draw(st.sampled_from([0, 5, 10, 15, 30])),
        buffer_after_minutes=draw(st.sampled_from([0, 5, 10, 15, 30])),
        min_notice_minutes=draw(st.sampled_from([0, 30, 120, 600])),
        now=now,
        working_hours_only=draw(st.booleans()) if working_hours_only is None else working_hours_only,
        tentative_blocks=draw(st.booleans()),
    )
    return Scenario(request, people)


def _instants(slots: list[Slot]) -> list[tuple[float, float]]:
    return [(slot.start.timestamp(), slot.end.timestamp()) for slot in slots]


def _blocking(request: SlotRequest, item: BusyInterval) -> bool:
    return item.status in BLOCKING or (item.status is FreeBusyStatus.TENTATIVE and request.tentative_blocks)


def _working_time(hours: WorkingHours, request: SlotRequest) -> list[tuple[float, float]]:
    """The participant's working periods around the window, merged, as UTC instants."""
    zone = resolve_zone(hours.time_zone)
    periods = []
    first = request.window_start.astimezone(zone).date() - timedelta(days=2)
    for offset in range((request.window_end - request.window_start).days + 5):
        day = first + timedelta(days=offset)
        if day.isoweekday() not in {weekday.iso for weekday in hours.days}:
            continue
        end_day = day + timedelta(days=1) if hours.end <= hours.start else day
        periods.append(
            (
                datetime.combine(day, hours.start, tzinfo=zone).timestamp(),
                datetime.combine(end_day, hours.end, tzinfo=zone).timestamp(),
            )
        )
    merged: list[tuple[float, float]] = []
    for start, end in sorted(periods):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _inside(start: float, end: float, periods: list[tuple[float, float]]) -> bool:
    return any(p_start <= start and end <= p_end for p_start, p_end in periods)


def _overlaps_widened(request: SlotRequest, start: float, end: float, item: BusyInterval) -> bool:
    busy_start = item.start.timestamp() - request.buffer_after_minutes * 60
    busy_end = item.end.timestamp() + request.buffer_before_minutes * 60
    return max(start, busy_start) < min(end, busy_end)


def _on_grid(request: SlotRequest, start: float) -> bool:
    local = datetime.fromtimestamp(start, ZoneInfo(request.time_zone))
    return local.second == 0 and (local.hour * 60 + local.minute) % request.step_minutes == 0


def _oracle(scenario: Scenario) -> list[tuple[float, float]]:
    """Every minute of the window tried one by one against every rule."""
    request = scenario.request
    duration = request.duration_minutes * 60
    earliest = request.window_start.timestamp()
    if request.now is not None:
        earliest = max(earliest, request.now.timestamp() + request.min_notice_minutes * 60)
    first_minute = math.ceil(earliest / 60) * 60
    periods = [
        _working_time(person.working_hours, request)
        for person in scenario.participants
        if person.working_hours is not None and request.working_hours_only
    ]
    blocking = [item for person in scenario.participants for item in person.busy if _blocking(request, item)]
    found = []
    start = first_minute
    while start + duration <= request.window_end.timestamp():
        end = start + duration
        if (
            _on_grid(request, start)
            and all(_inside(start, end, person_periods) for person_periods in periods)
            and not any(_overlaps_widened(request, start, end, item) for item in blocking)
        ):
            found.append((float(start), float(end)))
        start += 60
    return found


@PROPERTY_SETTINGS
@given(scenarios())
def test_no_slot_overlaps_any_busy_interval_widened_by_the_buffers(scenario: Scenario) -> None:
    """No slot overlaps a blocking busy item stretched by buffer_after before and buffer_before after it."""
    request = scenario.request
    slots = find_slots(request, scenario.participants)
    for start, end in _instants(slots):
        for person in scenario.participants:
            for item in person.busy:
                if _blocking(request, item):
                    assert not _overlaps_widened(request, start, end, item)


@PROPERTY_SETTINGS
@given(scenarios(working_hours_only=True))
def test_every_slot_lies_inside_every_participants_working_hours(scenario: Scenario) -> None:
    """When asked to keep to working hours, each slot fits inside each participant's working time."""
    request = scenario.request
    slots = find_slots(request, scenario.participants)
    for person in scenario.participants:
        if person.working_hours is None:
            continue
        periods = _working_time(person.working_hours, request)
        for start, end in _instants(slots):
            assert _inside(start, end, periods)


@PROPERTY_SETTINGS
@given(scenarios())
def test_slots_start_on_the_grid_have_the_requested_length_and_respect_window_and_notice(
    scenario: Scenario,
) -> None:
    """Slots start on the output zone's step grid, last exactly the duration, and sit in the window."""
    request = scenario.request
    slots = find_slots(request, scenario.participants)
    for slot, (start, end) in zip(slots, _instants(slots), strict=True):
        assert isinstance(slot.start.tzinfo, ZoneInfo) and slot.start.tzinfo.key == request.time_zone
        assert end - start == request.duration_minutes * 60
        assert _on_grid(request, start)
        assert request.window_start.timestamp() <= start and end <= request.window_end.timestamp()
        if request.now is not None:
            assert start >= request.now.timestamp() + request.min_notice_minutes * 60
    assert _instants(slots) == sorted(set(_instants(slots)))


@PROPERTY_SETTINGS
@given(scenarios(), st.randoms(use_true_random=False))
def test_result_does_not_depend_on_input_order(scenario: Scenario, rng: random.Random) -> None:
    """Shuffling participants and their busy items gives the same slots."""
    shuffled = []
    for person in scenario.participants:
        items = list(person.busy)
        rng.shuffle(items)
        shuffled.append(Participant(person.id, tuple(items), person.working_hours))
    rng.shuffle(shuffled)
    original = find_slots(scenario.request, scenario.participants)
    assert _instants(find_slots(scenario.request, shuffled)) == _instants(original)


@PROPERTY_SETTINGS
@given(scenarios())
def test_engine_finds_exactly_the_slots_a_minute_by_minute_search_finds(scenario: Scenario) -> None:
    """The engine misses no valid slot and invents none, compared with brute force."""
    assert _instants(find_slots(scenario.request, scenario.participants)) == _oracle(scenario)


@PROPERTY_SETTINGS
@given(scenarios(dst_days=True))
def test_dst_change_days_in_three_zones_match_brute_force(scenario: Scenario) -> None:
    """On spring-forward and fall-back days (Los Angeles, Berlin, Sydney) slots are still exact."""
    slots = find_slots(scenario.request, scenario.participants)
    assert _instants(slots) == _oracle(scenario)
    assert all(end - start == scenario.request.duration_minutes * 60 for start, end in _instants(slots))
