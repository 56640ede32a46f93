"""The slot engine's rules, case by case (core/domain/slots.py)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.domain.calendar import BusyInterval, FreeBusyStatus, TimeZoneSpec, Weekday, WorkingHours
from core.domain.errors import UnknownTimeZone, ValidationFailed
from core.domain.slots import (
    Interval,
    Participant,
    Slot,
    SlotRequest,
    blocks,
    find_slots,
    merge_busy,
    merge_intervals,
)

BERLIN = ZoneInfo("Europe/Berlin")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
WEEKDAYS = frozenset({Weekday.MONDAY, Weekday.TUESDAY, Weekday.WEDNESDAY, Weekday.THURSDAY, Weekday.FRIDAY})
ALL_DAYS = frozenset(Weekday)


def hours(start: int, end: int, zone: str, days: frozenset[Weekday] = WEEKDAYS) -> WorkingHours:
    return WorkingHours(days, time(start), time(end), TimeZoneSpec(zone))


def berlin(day: int, hour: int, minute: int = 0, month: int = 1, fold: int = 0) -> datetime:
    return datetime(2025, month, day, hour, minute, tzinfo=BERLIN, fold=fold)


def request(start: datetime, end: datetime, duration: int = 60, **options: object) -> SlotRequest:
    options.setdefault("time_zone", "Europe/Berlin")
    return SlotRequest(window_start=start, window_end=end, duration_minutes=duration, **options)  # type: ignore[arg-type]


def starts(slots: list[Slot]) -> list[str]:
    return [slot.start.strftime("%H:%M") for slot in slots]


def busy(start: datetime, end: datetime, status: FreeBusyStatus = FreeBusyStatus.BUSY) -> BusyInterval:
    return BusyInterval(start, end, status)


# Wednesday 2025-01-15 in Berlin: a plain winter working day.
DAY_START, DAY_END = berlin(15, 0), berlin(16, 0)


def test_free_working_day_offers_every_quarter_hour_that_fits() -> None:
    """With no busy time, 60-minute slots start every 15 minutes from 9:00 to 16:00."""
    person = Participant("a@example.com", (), hours(9, 17, "W. Europe Standard Time"))
    slots = find_slots(request(DAY_START, DAY_END), [person])
    assert starts(slots)[0] == "09:00"
    assert starts(slots)[-1] == "16:00"
    assert len(slots) == 29
    assert all(slot.end - slot.start == timedelta(hours=1) for slot in slots)
    assert all(slot.start.tzinfo == BERLIN for slot in slots)


def test_busy_time_removes_overlapping_slots_only() -> None:
    """A 10:00-11:00 meeting removes slots that overlap it; touching slots stay."""
    person = Participant("a@example.com", (busy(berlin(15, 10), berlin(15, 11)),), hours(9, 13, "Europe/Berlin"))
    assert starts(find_slots(request(DAY_START, DAY_END), [person])) == [
        "09:00",
        "11:00",
        "11:15",
        "11:30",
        "11:45",
        "12:00",
    ]


@pytest.mark.parametrize(
    ("status", "tentative_blocks", "blocked"),
    [
        (FreeBusyStatus.BUSY, True, True),
        (FreeBusyStatus.OOF, True, True),
        (FreeBusyStatus.UNKNOWN, True, True),
        (FreeBusyStatus.TENTATIVE, True, True),
        (FreeBusyStatus.TENTATIVE, False, False),
        (FreeBusyStatus.FREE, True, False),
        (FreeBusyStatus.WORKING_ELSEWHERE, True, False),
    ],
)
def test_statuses_block_as_documented(status: FreeBusyStatus, tentative_blocks: bool, blocked: bool) -> None:
    """busy/oof/unknown block, tentative blocks unless switched off, free and workingElsewhere never."""
    person = Participant("a@example.com", (busy(berlin(15, 9), berlin(15, 10), status),), hours(9, 10, "Europe/Berlin"))
    slots = find_slots(request(DAY_START, DAY_END, tentative_blocks=tentative_blocks), [person])
    assert (slots == []) is blocked
    assert blocks(status, tentative_blocks=tentative_blocks) is blocked


def test_buffers_keep_time_free_around_each_slot() -> None:
    """Buffers before/after a slot keep busy time at that distance from the slot."""
    person = Participant("a@example.com", (busy(berlin(15, 10), berlin(15, 11)),), hours(8, 13, "Europe/Berlin"))
    slots = find_slots(request(DAY_START, DAY_END, buffer_before_minutes=15, buffer_after_minutes=30), [person])
    # Before the meeting: the slot must end 30 min before 10:00; after: start 15 min after 11:00.
    assert starts(slots) == ["08:00", "08:15", "08:30", "11:15", "11:30", "11:45", "12:00"]


def test_min_notice_skips_slots_too_soon_after_now() -> None:
    """With now 9:10 and two hours' notice the first slot is 11:15, the next grid point."""
    person = Participant("a@example.com", (), hours(9, 17, "Europe/Berlin"))
    slots = find_slots(request(DAY_START, DAY_END, now=berlin(15, 9, 10), min_notice_minutes=120), [person])
    assert starts(slots)[0] == "11:15"


def test_without_working_hours_a_participant_is_unconstrained() -> None:
    """A participant (e.g. a room) without working hours does not narrow the slots."""
    person = Participant("a@example.com", (), hours(9, 17, "Europe/Berlin"))
    room = Participant("room@example.com", (), None)
    assert find_slots(request(DAY_START, DAY_END), [person, room]) == find_slots(request(DAY_START, DAY_END), [person])


def test_working_hours_only_false_offers_the_whole_window() -> None:
    """With working_hours_only off, slots cover the night too."""
    person = Participant("a@example.com", (), hours(9, 17, "Europe/Berlin"))
    slots = find_slots(request(DAY_START, DAY_END, working_hours_only=False), [person])
    assert starts(slots)[0] == "00:00"
    assert starts(slots)[-1] == "23:00"


def test_working_hours_intersect_across_time_zones_per_local_date() -> None:
    """Berlin 8-18 and Los Angeles 8-17 overlap one hour in January, two in mid-March (US DST first)."""
    people = [
        Participant("berlin@example.com", (), hours(8, 18, "W. Europe Standard Time")),
        Participant("la@example.com", (), hours(8, 17, "Pacific Standard Time")),
    ]
    january = find_slots(request(DAY_START, DAY_END, time_zone="America/New_York"), people)
    assert [(s.start.strftime("%H:%M"), s.end.strftime("%H:%M")) for s in january] == [("11:00", "12:00")]
    march = find_slots(
        request(berlin(12, 0, month=3), berlin(13, 0, month=3), duration=120, time_zone="Europe/Berlin"), people
    )
    assert [(s.start.strftime("%H:%M"), s.end.strftime("%H:%M")) for s in march] == [("16:00", "18:00")]


def test_weekend_days_outside_working_days_have_no_slots() -> None:
    """Saturday is not a working day, so a weekend window is empty."""
    person = Participant("a@example.com", (), hours(9, 17, "Europe/Berlin"))
    assert find_slots(request(berlin(18, 0), berlin(20, 0)), [person]) == []


def test_overnight_working_hours_run_past_midnight() -> None:
    """Working hours 22:00-06:00 give slots that cross midnight."""
    person = Participant("a@example.com", (), WorkingHours(ALL_DAYS, time(22), time(6), TimeZoneSpec("UTC")))
    slots = find_slots(
        request(datetime(2025, 1, 15, 20, tzinfo=UTC), datetime(2025, 1, 16, 8, tzinfo=UTC), time_zone="UTC"),
        [person],
    )
    assert starts(slots)[0] == "22:00"
    assert starts(slots)[-1] == "05:00"
    assert any(slot.start.day != slot.end.day for slot in slots)


def test_slots_are_aligned_on_the_output_zones_wall_clock() -> None:
    """In Asia/Kathmandu (+05:45) slots start on local quarter hours, not UTC ones."""
    slots = find_slots(
        SlotRequest(
            window_start=datetime(2025, 1, 15, 0, 5, tzinfo=UTC),
            window_end=datetime(2025, 1, 15, 3, tzinfo=UTC),
            duration_minutes=30,
            time_zone="Asia/Kathmandu",
            working_hours_only=False,
        ),
        [],
    )
    assert starts(slots)[:2] == ["06:00", "06:15"]
    assert all(slot.start.minute % 15 == 0 for slot in slots)


def test_step_that_does_not_divide_a_day_restarts_at_local_midnight() -> None:
    """A 50-minute step runs 0:00, 0:50, ... 23:20 and starts again at 0:00 the next day."""
    slots = find_slots(
        request(berlin(15, 0), berlin(17, 0), duration=10, step_minutes=50, working_hours_only=False), []
    )
    day_one = [slot for slot in slots if slot.start.day == 15]
    assert starts(day_one)[-1] == "23:20"
    assert len(day_one) == 29
    assert starts([slot for slot in slots if slot.start.day == 16])[0] == "00:00"


def test_spring_forward_day_skips_the_missing_hour_and_keeps_real_length() -> None:
    """On Berlin's spring-forward day there are no 2:xx starts and a 1:30 slot ends at 3:30."""
    slots = find_slots(request(berlin(30, 0, month=3), berlin(31, 0, month=3), working_hours_only=False), [])
    assert "02:00" not in starts(slots)
    assert starts(slots)[4:8] == ["01:00", "01:15", "01:30", "01:45"]
    assert starts(slots)[8] == "03:00"
    half_past_one = slots[6]
    assert half_past_one.end.strftime("%H:%M") == "03:30"
    assert half_past_one.end.timestamp() - half_past_one.start.timestamp() == 3600
    assert len(slots) == 22 * 4 + 1  # a 23-hour day


def test_fall_back_day_offers_both_passes_through_the_repeated_hour() -> None:
    """On Berlin's fall-back day 2:00 appears twice (fold 0 and 1), as distinct instants."""
    slots = find_slots(request(berlin(26, 0, month=10), berlin(27, 0, month=10), working_hours_only=False), [])
    two_oclock = [slot for slot in slots if slot.start.strftime("%H:%M") == "02:00"]
    assert [slot.start.fold for slot in two_oclock] == [0, 1]
    assert two_oclock[1].start.timestamp() - two_oclock[0].start.timestamp() == 3600
    assert len(slots) == 24 * 4 + 1  # a 25-hour day


def test_working_hours_on_a_dst_day_use_the_real_instants() -> None:
    """9-17 in Los Angeles on its spring-forward day maps to 16:00-00:00 UTC (PDT)."""
    person = Participant("la@example.com", (), hours(9, 17, "America/Los_Angeles", ALL_DAYS))
    slots = find_slots(
        SlotRequest(
            window_start=datetime(2025, 3, 9, tzinfo=UTC),
            window_end=datetime(2025, 3, 11, tzinfo=UTC),
            duration_minutes=60,
            time_zone="UTC",
        ),
        [person],
    )
    first_day = [slot for slot in slots if slot.start.astimezone(LOS_ANGELES).day == 9]
    assert first_day[0].start == datetime(2025, 3, 9, 16, tzinfo=UTC)
    assert first_day[-1].end == datetime(2025, 3, 10, 0, tzinfo=UTC)


def test_custom_time_zone_working_hours_are_honoured() -> None:
    """Working hours in a Graph custom zone (UTC+3, no DST) are read in that zone."""
    custom = TimeZoneSpec("Customized Time Zone", bias_minutes=-180)
    person = Participant("a@example.com", (), WorkingHours(WEEKDAYS, time(9), time(10), custom))
    slots = find_slots(
        SlotRequest(
            window_start=datetime(2025, 1, 15, tzinfo=UTC),
            window_end=datetime(2025, 1, 16, tzinfo=UTC),
            duration_minutes=60,
            time_zone="UTC",
        ),
        [person],
    )
    assert [slot.start for slot in slots] == [datetime(2025, 1, 15, 6, tzinfo=UTC)]


def test_unknown_working_hours_zone_is_reported() -> None:
    """A participant whose working-hours zone cannot be mapped makes the search fail clearly."""
    person = Participant("a@example.com", (), hours(9, 17, "Atlantis Standard Time"))
    with pytest.raises(UnknownTimeZone):
        find_slots(request(DAY_START, DAY_END), [person])


def test_window_shorter_than_the_duration_has_no_slots() -> None:
    """A 30-minute window cannot hold a 60-minute slot."""
    assert find_slots(request(berlin(15, 9), berlin(15, 9, 30), working_hours_only=False), []) == []


def test_busy_items_in_other_zones_are_compared_as_instants() -> None:
    """A busy item expressed in Los Angeles time blocks the same instant in Berlin."""
    meeting = busy(datetime(2025, 1, 15, 1, tzinfo=LOS_ANGELES), datetime(2025, 1, 15, 2, tzinfo=LOS_ANGELES))
    person = Participant("a@example.com", (meeting,), hours(9, 12, "Europe/Berlin"))
    assert starts(find_slots(request(DAY_START, DAY_END), [person])) == ["09:00", "11:00"]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"duration_minutes": 0}, "duration_minutes"),
        ({"step_minutes": -5}, "step_minutes"),
        ({"buffer_before_minutes": -1}, "buffer_before_minutes"),
        ({"min_notice_minutes": -1}, "min_notice_minutes"),
        ({"window_end": datetime(2025, 1, 14, tzinfo=UTC)}, "window_end"),
        ({"window_start": datetime(2025, 1, 15)}, "window_start"),
        ({"now": datetime(2025, 1, 15)}, "now"),
    ],
)
def test_invalid_requests_name_the_offending_field(options: dict[str, object], field: str) -> None:
    """Invalid values raise ValidationFailed whose details name the field."""
    values: dict[str, object] = {
        "window_start": datetime(2025, 1, 15, tzinfo=UTC),
        "window_end": datetime(2025, 1, 16, tzinfo=UTC),
        "duration_minutes": 30,
    }
    values.update(options)
    with pytest.raises(ValidationFailed) as caught:
        SlotRequest(**values)  # type: ignore[arg-type]
    assert field in caught.value.details


def test_output_zone_must_be_iana() -> None:
    """A Windows name as the output zone is refused with UnknownTimeZone."""
    with pytest.raises(UnknownTimeZone):
        request(DAY_START, DAY_END, time_zone="Pacific Standard Time")


def test_merge_intervals_joins_overlapping_and_touching_intervals() -> None:
    """Overlapping and touching intervals merge; separate ones stay apart, in order."""
    merged = merge_intervals(
        [
            Interval(berlin(15, 13), berlin(15, 14)),
            Interval(berlin(15, 9), berlin(15, 10)),
            Interval(berlin(15, 10), berlin(15, 11)),
            Interval(berlin(15, 9, 30), berlin(15, 9, 45)),
        ]
    )
    assert merged == [Interval(berlin(15, 9), berlin(15, 11)), Interval(berlin(15, 13), berlin(15, 14))]


def test_merge_busy_keeps_only_blocking_time() -> None:
    """merge_busy drops free/workingElsewhere and, when asked, tentative items."""
    items = [
        busy(berlin(15, 9), berlin(15, 10), FreeBusyStatus.TENTATIVE),
        busy(berlin(15, 10), berlin(15, 11), FreeBusyStatus.WORKING_ELSEWHERE),
        busy(berlin(15, 12), berlin(15, 13), FreeBusyStatus.OOF),
    ]
    assert merge_busy(items) == [Interval(berlin(15, 9), berlin(15, 10)), Interval(berlin(15, 12), berlin(15, 13))]
    assert merge_busy(items, tentative_blocks=False) == [Interval(berlin(15, 12), berlin(15, 13))]


def test_merge_intervals_tells_the_two_passes_of_a_repeated_hour_apart() -> None:
    """On fall-back day 02:10-02:20 (first pass) and 02:15-02:30 (second pass) are an hour apart, not overlapping."""
    first_pass = Interval(berlin(26, 2, 10, month=10), berlin(26, 2, 20, month=10))
    second_pass = Interval(berlin(26, 2, 15, month=10, fold=1), berlin(26, 2, 30, month=10, fold=1))
    assert merge_intervals([second_pass, first_pass]) == [first_pass, second_pass]
