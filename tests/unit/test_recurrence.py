"""Recurring series rules: Graph JSON, validation codes, expansion as Exchange does it, windows, clashes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.domain.calendar import BusyInterval, FreeBusyStatus, Weekday
from core.domain.errors import InvalidRecurrence, UnknownTimeZone, ValidationFailed
from core.domain.recurrence import (
    MAX_OCCURRENCES,
    PROBLEMS,
    SCHEDULE_WINDOW,
    Occurrence,
    PatternedRecurrence,
    RecurrencePattern,
    RecurrencePatternType,
    RecurrenceRange,
    RecurrenceRangeType,
    WeekIndex,
    at_wall_time,
    check,
    clashes,
    crosses_boundary,
    expand,
    from_graph,
    occurrence_windows,
    schedule_calls,
    schedule_windows,
    to_graph,
    validate_series,
)

P = RecurrencePatternType
R = RecurrenceRangeType
BERLIN, NEW_YORK, SYDNEY = "Europe/Berlin", "America/New_York", "Australia/Sydney"


def rule(
    kind: P = P.WEEKLY,
    *,
    interval: int = 1,
    days: tuple[Weekday, ...] = (Weekday.MONDAY,),
    day_of_month: int | None = None,
    month: int | None = None,
    index: WeekIndex = WeekIndex.FIRST,
    start: date = date(2025, 3, 3),
    end: date | None = None,
    count: int | None = 10,
    zone: str | None = None,
) -> PatternedRecurrence:
    range_type = R.NUMBERED if count is not None else R.END_DATE
    return PatternedRecurrence(
        RecurrencePattern(kind, interval, days, day_of_month, month, index),
        RecurrenceRange(range_type, start, end, count, zone),
    )


def local(day: date, hour: int, zone: str, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(zone))


def dates(occurrences: list[Occurrence], zone: str = "UTC") -> list[date]:
    tz = UTC if zone == "UTC" else ZoneInfo(zone)
    return [o.start.astimezone(tz).date() for o in occurrences]


# --- Graph JSON ------------------------------------------------------------------------------


def test_to_graph_sends_only_the_properties_the_pattern_type_uses() -> None:
    """A weekly rule carries days and first day of week; a monthly one its day; numbered ranges their count."""
    weekly = to_graph(rule(days=(Weekday.MONDAY, Weekday.THURSDAY), count=8))
    assert weekly == {
        "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday", "thursday"], "firstDayOfWeek": "sunday"},
        "range": {"type": "numbered", "startDate": "2025-03-03", "numberOfOccurrences": 8},
    }
    monthly = to_graph(rule(P.ABSOLUTE_MONTHLY, days=(), day_of_month=15, count=None, end=date(2025, 12, 31),
                            zone="Europe/Berlin"))
    assert monthly == {
        "pattern": {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 15},
        "range": {"type": "endDate", "startDate": "2025-03-03", "endDate": "2025-12-31",
                  "recurrenceTimeZone": "Europe/Berlin"},
    }
    yearly = to_graph(rule(P.RELATIVE_YEARLY, days=(Weekday.WEDNESDAY,), month=11, index=WeekIndex.LAST))
    assert yearly["pattern"] == {"type": "relativeYearly", "interval": 1, "daysOfWeek": ["wednesday"],
                                 "index": "last", "month": 11}


def test_from_graph_reads_what_graph_answers_including_its_zero_fillers() -> None:
    """Graph's answer (capitalised days, month 0, endDate 0001-01-01, count 0) reads back to the same rule."""
    answer = {
        "pattern": {"type": "weekly", "interval": 2, "month": 0, "dayOfMonth": 0, "daysOfWeek": ["Monday", "Tuesday"],
                    "firstDayOfWeek": "Sunday", "index": "first"},
        "range": {"type": "numbered", "startDate": "2025-03-03", "endDate": "0001-01-01",
                  "recurrenceTimeZone": "W. Europe Standard Time", "numberOfOccurrences": 10},
    }
    parsed = from_graph(answer)
    assert parsed == rule(interval=2, days=(Weekday.MONDAY, Weekday.TUESDAY), zone="W. Europe Standard Time")
    assert from_graph(to_graph(parsed)) == parsed


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (None, "malformed_recurrence"),
        ({"pattern": {}}, "malformed_recurrence"),
        ({"pattern": {"type": "hourly"}, "range": {"type": "numbered", "startDate": "2025-01-01"}},
         "unknown_pattern_type"),
        ({"pattern": {"type": "daily"}, "range": {"type": "forever", "startDate": "2025-01-01"}},
         "unknown_range_type"),
        ({"pattern": {"type": "daily", "interval": "2"}, "range": {"type": "noEnd", "startDate": "2025-01-01"}},
         "malformed_recurrence"),
        ({"pattern": {"type": "weekly", "daysOfWeek": ["funday"]},
          "range": {"type": "noEnd", "startDate": "2025-01-01"}}, "malformed_recurrence"),
        ({"pattern": {"type": "daily"}, "range": {"type": "noEnd", "startDate": "2025-13-01"}},
         "malformed_recurrence"),
        ({"pattern": {"type": "daily"}, "range": {"type": "noEnd"}}, "malformed_recurrence"),
    ],
)
def test_from_graph_refuses_unreadable_shapes_with_a_code(value: object, code: str) -> None:
    """Shapes that are not a patternedRecurrence are InvalidRecurrence (a 422), never a crash."""
    with pytest.raises(InvalidRecurrence) as caught:
        from_graph(value)
    assert caught.value.code == code
    assert isinstance(caught.value, ValidationFailed) and caught.value.http_status == 422


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recurrence", "code", "field"),
    [
        (rule(interval=0), "interval_not_positive", "pattern.interval"),
        (rule(interval=-1), "interval_not_positive", "pattern.interval"),
        (rule(interval=100), "interval_too_large", "pattern.interval"),
        (rule(days=()), "days_of_week_required", "pattern.daysOfWeek"),
        (rule(P.RELATIVE_MONTHLY, days=()), "days_of_week_required", "pattern.daysOfWeek"),
        (rule(P.DAILY), "days_of_week_not_allowed", "pattern.daysOfWeek"),
        (rule(P.ABSOLUTE_MONTHLY, day_of_month=3), "days_of_week_not_allowed", "pattern.daysOfWeek"),
        (rule(days=(Weekday.MONDAY, Weekday.MONDAY)), "days_of_week_repeated", "pattern.daysOfWeek"),
        (rule(P.ABSOLUTE_MONTHLY, days=()), "day_of_month_required", "pattern.dayOfMonth"),
        (rule(P.ABSOLUTE_MONTHLY, days=(), day_of_month=32), "day_of_month_out_of_range", "pattern.dayOfMonth"),
        (rule(P.ABSOLUTE_MONTHLY, days=(), day_of_month=-1), "day_of_month_out_of_range", "pattern.dayOfMonth"),
        (rule(P.ABSOLUTE_YEARLY, days=(), day_of_month=30, month=2), "day_of_month_out_of_range",
         "pattern.dayOfMonth"),
        (rule(day_of_month=3), "day_of_month_not_allowed", "pattern.dayOfMonth"),
        (rule(P.ABSOLUTE_YEARLY, days=(), day_of_month=3), "month_required", "pattern.month"),
        (rule(P.ABSOLUTE_YEARLY, days=(), day_of_month=3, month=13), "month_out_of_range", "pattern.month"),
        (rule(month=3), "month_not_allowed", "pattern.month"),
        (rule(index=WeekIndex.LAST), "index_not_allowed", "pattern.index"),
        (rule(count=None), "end_date_required", "range.endDate"),
        (rule(count=None, end=date(2025, 3, 2)), "end_before_start", "range.endDate"),
        (rule(count=0), "occurrences_not_positive", "range.numberOfOccurrences"),
    ],
)
def test_check_names_each_problem_with_its_own_code_and_field(
    recurrence: PatternedRecurrence, code: str, field: str
) -> None:
    """Every rule problem is InvalidRecurrence with a stable code, the documented message and the field."""
    with pytest.raises(InvalidRecurrence) as caught:
        check(recurrence)
    assert (caught.value.code, caught.value.details["field"]) == (code, field)
    assert caught.value.message == PROBLEMS[code]


def test_no_end_is_refused_for_sessions_but_readable_from_outlook() -> None:
    """A series without end is refused for a session, and still accepted when reading what Outlook made."""
    endless = PatternedRecurrence(
        RecurrencePattern(P.DAILY), RecurrenceRange(R.NO_END, date(2025, 1, 1))
    )
    with pytest.raises(InvalidRecurrence) as caught:
        check(endless)
    assert caught.value.code == "no_end_not_allowed"
    check(endless, allow_no_end=True)
    start = datetime(2025, 1, 1, 9, tzinfo=UTC)
    assert len(expand(endless, start, start + timedelta(hours=1), "UTC", limit=5)) == 5
    with pytest.raises(ValueError, match="window end or a limit"):
        expand(endless, start, start + timedelta(hours=1), "UTC")


def test_validate_series_enforces_the_documented_limits() -> None:
    """More than 104 occurrences or a span over two years is refused, with the limit in the details."""
    start = local(date(2025, 1, 6), 9, BERLIN)
    end = start + timedelta(hours=1)
    week = rule(start=date(2025, 1, 6), count=MAX_OCCURRENCES)
    assert len(validate_series(week, start, end, BERLIN)) == MAX_OCCURRENCES
    with pytest.raises(InvalidRecurrence) as caught:
        validate_series(rule(start=date(2025, 1, 6), count=MAX_OCCURRENCES + 1), start, end, BERLIN)
    assert (caught.value.code, caught.value.details["limit"]) == ("too_many_occurrences", MAX_OCCURRENCES)
    daily_long = rule(P.DAILY, days=(), start=date(2025, 1, 6), count=None, end=date(2026, 1, 6))
    with pytest.raises(InvalidRecurrence) as caught:
        validate_series(daily_long, start, end, BERLIN)
    assert caught.value.code == "too_many_occurrences"
    monthly = rule(P.ABSOLUTE_MONTHLY, days=(), day_of_month=6, start=date(2025, 1, 6), count=30)
    with pytest.raises(InvalidRecurrence) as caught:
        validate_series(monthly, start, end, BERLIN)
    assert caught.value.code == "series_too_long"
    far = rule(start=date(2025, 1, 6), count=None, end=date(2028, 1, 6))
    with pytest.raises(InvalidRecurrence) as caught:
        validate_series(far, start, end, BERLIN)
    assert (caught.value.code, caught.value.details["limitDays"]) == ("series_too_long", 731)


def test_validate_series_requires_the_start_date_and_first_occurrence_to_match_the_start() -> None:
    """startDate must be the start's local date, and the start must itself be an occurrence."""
    start = local(date(2025, 3, 3), 0, SYDNEY, 30)  # Monday 00:30 in Sydney is Sunday in UTC
    assert validate_series(rule(), start, start + timedelta(hours=1), SYDNEY)[0].start == start.astimezone(UTC)
    with pytest.raises(InvalidRecurrence) as caught:
        validate_series(rule(start=date(2025, 3, 2)), start, start + timedelta(hours=1), SYDNEY)
    assert caught.value.code == "start_date_mismatch"
    tuesday = local(date(2025, 3, 4), 9, BERLIN)
    with pytest.raises(InvalidRecurrence) as caught:
        validate_series(rule(start=date(2025, 3, 4)), tuesday, tuesday + timedelta(hours=1), BERLIN)
    assert caught.value.code == "start_not_in_pattern"


def test_validate_series_with_no_occurrence_in_range_is_refused() -> None:
    """An end date before the first matching day leaves nothing to book."""
    tuesday = local(date(2025, 3, 4), 9, BERLIN)
    recurrence = rule(start=date(2025, 3, 4), count=None, end=date(2025, 3, 9))
    with pytest.raises(InvalidRecurrence) as caught:
        validate_series(recurrence, tuesday, tuesday + timedelta(hours=1), BERLIN)
    assert caught.value.code == "no_occurrences"


def test_unknown_zone_is_the_time_zone_error() -> None:
    """A zone name nobody knows is UnknownTimeZone (422), not a silent UTC."""
    start = datetime(2025, 3, 3, 9, tzinfo=UTC)
    with pytest.raises(UnknownTimeZone):
        expand(rule(), start, start + timedelta(hours=1), "Mars/Olympus_Mons")


# --- expansion: DST, month ends, last Friday, leap years, count vs end date --------------


@pytest.mark.parametrize(
    ("zone", "first", "utc_hours"),
    [
        # Berlin: CET (UTC+1) until 30 March 2025, then CEST (UTC+2).
        (BERLIN, date(2025, 3, 17), [8, 8, 7, 7]),
        # New York: EST (UTC-5) until 9 March 2025, then EDT (UTC-4).
        (NEW_YORK, date(2025, 2, 24), [14, 14, 13, 13]),
        # Sydney: AEDT (UTC+11) until 6 April 2025, then AEST (UTC+10); 09:00 local is the previous UTC day.
        (SYDNEY, date(2025, 3, 24), [22, 22, 23, 23]),
    ],
)
def test_weekly_series_keeps_its_local_time_across_dst(zone: str, first: date, utc_hours: list[int]) -> None:
    """09:00 local every Monday stays 09:00 local while the UTC hour moves with daylight saving."""
    start = local(first, 9, zone)
    occurrences = validate_series(rule(start=first, count=4), start, start + timedelta(minutes=45), zone)
    tz = ZoneInfo(zone)
    assert [o.start.astimezone(tz).time() for o in occurrences] == [time(9)] * 4
    assert [o.start.hour for o in occurrences] == utc_hours
    assert all(o.end - o.start == timedelta(minutes=45) for o in occurrences)
    assert dates(occurrences, zone) == [first + timedelta(weeks=i) for i in range(4)]


def test_windows_zone_names_expand_like_their_iana_zone() -> None:
    """A Windows zone name (as Outlook sends) gives the same occurrences as its IANA zone."""
    start = local(date(2025, 3, 17), 9, BERLIN)
    by_windows = expand(rule(start=date(2025, 3, 17), count=4), start, start + timedelta(hours=1),
                        "W. Europe Standard Time")
    by_iana = expand(rule(start=date(2025, 3, 17), count=4), start, start + timedelta(hours=1), BERLIN)
    assert by_windows == by_iana


def test_a_missing_wall_time_moves_forward_by_the_gap() -> None:
    """02:30 on Berlin's spring-forward Sunday does not exist: that occurrence is at 03:30 CEST."""
    start = local(date(2025, 3, 23), 2, BERLIN, 30)
    weekly_sunday = rule(days=(Weekday.SUNDAY,), start=date(2025, 3, 23), count=3)
    occurrences = expand(weekly_sunday, start, start + timedelta(minutes=30), BERLIN)
    tz = ZoneInfo(BERLIN)
    assert [o.start.astimezone(tz).strftime("%m-%d %H:%M") for o in occurrences] == [
        "03-23 02:30", "03-30 03:30", "04-06 02:30"
    ]


def test_absolute_monthly_on_the_31st_falls_on_each_months_last_day() -> None:
    """Exchange assumes the month's last day when it is shorter: 31, 29 (leap), 31, 30, 31, 30."""
    start = datetime(2024, 1, 31, 15, tzinfo=UTC)
    recurrence = rule(P.ABSOLUTE_MONTHLY, days=(), day_of_month=31, start=date(2024, 1, 31), count=6)
    assert dates(expand(recurrence, start, start + timedelta(hours=1), "UTC")) == [
        date(2024, 1, 31), date(2024, 2, 29), date(2024, 3, 31), date(2024, 4, 30), date(2024, 5, 31),
        date(2024, 6, 30),
    ]


def test_absolute_monthly_on_the_30th_in_a_common_february_is_the_28th() -> None:
    """Day 30 in February 2025 (28 days) is 28 February; the 30th returns in March."""
    start = datetime(2025, 1, 30, 15, tzinfo=UTC)
    recurrence = rule(P.ABSOLUTE_MONTHLY, days=(), day_of_month=30, start=date(2025, 1, 30), count=3)
    assert dates(expand(recurrence, start, start + timedelta(hours=1), "UTC")) == [
        date(2025, 1, 30), date(2025, 2, 28), date(2025, 3, 30)
    ]


def test_relative_monthly_last_friday() -> None:
    """The last Friday of each month, including a five-Friday month (May 2025)."""
    start = datetime(2025, 1, 31, 10, tzinfo=UTC)
    recurrence = rule(P.RELATIVE_MONTHLY, days=(Weekday.FRIDAY,), index=WeekIndex.LAST, start=date(2025, 1, 31),
                      count=None, end=date(2025, 6, 30))
    assert dates(expand(recurrence, start, start + timedelta(hours=1), "UTC")) == [
        date(2025, 1, 31), date(2025, 2, 28), date(2025, 3, 28), date(2025, 4, 25), date(2025, 5, 30),
        date(2025, 6, 27),
    ]


def test_relative_monthly_with_two_days_takes_the_first_matching_day() -> None:
    """"First Thursday or Friday" is whichever of the two comes first in each month."""
    start = datetime(2025, 5, 1, 10, tzinfo=UTC)  # Thursday 1 May
    recurrence = rule(P.RELATIVE_MONTHLY, days=(Weekday.THURSDAY, Weekday.FRIDAY), start=date(2025, 5, 1), count=3)
    assert dates(expand(recurrence, start, start + timedelta(hours=1), "UTC")) == [
        date(2025, 5, 1), date(2025, 6, 5), date(2025, 7, 3)
    ]


def test_second_wednesday_every_other_month_skips_a_start_date_that_does_not_fit() -> None:
    """A range starting after that month's second Wednesday begins in the next matching month."""
    start = datetime(2025, 1, 20, 10, tzinfo=UTC)
    recurrence = rule(P.RELATIVE_MONTHLY, interval=2, days=(Weekday.WEDNESDAY,), index=WeekIndex.SECOND,
                      start=date(2025, 1, 20), count=3)
    assert dates(expand(recurrence, start, start + timedelta(hours=1), "UTC")) == [
        date(2025, 3, 12), date(2025, 5, 14), date(2025, 7, 9)
    ]


def test_yearly_on_29_february_falls_on_the_28th_in_common_years() -> None:
    """A leap-day anniversary falls on 28 February in common years and on the 29th in leap years."""
    start = datetime(2024, 2, 29, 12, tzinfo=UTC)
    recurrence = rule(P.ABSOLUTE_YEARLY, days=(), day_of_month=29, month=2, start=date(2024, 2, 29), count=5)
    assert dates(expand(recurrence, start, start + timedelta(hours=1), "UTC")) == [
        date(2024, 2, 29), date(2025, 2, 28), date(2026, 2, 28), date(2027, 2, 28), date(2028, 2, 29)
    ]


def test_daily_series_across_a_leap_day_counts_it() -> None:
    """Every day from 27 February 2024 for 4 occurrences includes the 29th."""
    start = datetime(2024, 2, 27, 8, tzinfo=UTC)
    recurrence = rule(P.DAILY, days=(), start=date(2024, 2, 27), count=4)
    assert dates(expand(recurrence, start, start + timedelta(hours=1), "UTC")) == [
        date(2024, 2, 27), date(2024, 2, 28), date(2024, 2, 29), date(2024, 3, 1)
    ]


def test_fortnightly_weeks_start_on_first_day_of_week() -> None:
    """Every other week on Monday and Sunday: the week boundary decides which Sunday belongs to which week."""
    start = datetime(2025, 3, 3, 9, tzinfo=UTC)  # Monday
    days = (Weekday.MONDAY, Weekday.SUNDAY)
    sunday_weeks = PatternedRecurrence(
        RecurrencePattern(P.WEEKLY, 2, days, first_day_of_week=Weekday.SUNDAY),
        RecurrenceRange(R.NUMBERED, date(2025, 3, 3), number_of_occurrences=4),
    )
    monday_weeks = PatternedRecurrence(
        RecurrencePattern(P.WEEKLY, 2, days, first_day_of_week=Weekday.MONDAY),
        RecurrenceRange(R.NUMBERED, date(2025, 3, 3), number_of_occurrences=4),
    )
    one_hour = start + timedelta(hours=1)
    assert dates(expand(sunday_weeks, start, one_hour, "UTC")) == [
        date(2025, 3, 3), date(2025, 3, 16), date(2025, 3, 17), date(2025, 3, 30)
    ]
    assert dates(expand(monday_weeks, start, one_hour, "UTC")) == [
        date(2025, 3, 3), date(2025, 3, 9), date(2025, 3, 17), date(2025, 3, 23)
    ]


def test_end_date_is_inclusive_and_read_in_the_range_zone() -> None:
    """An end date on a matching day keeps that day's occurrence; the last one is the range end's."""
    start = local(date(2025, 9, 1), 21, NEW_YORK)
    recurrence = rule(start=date(2025, 9, 1), count=None, end=date(2025, 9, 29))
    occurrences = expand(recurrence, start, start + timedelta(hours=1), NEW_YORK)
    assert dates(occurrences, NEW_YORK) == [date(2025, 9, d) for d in (1, 8, 15, 22, 29)]
    # 21:00 in New York is already the next day in UTC: the end date is still read in New York.
    assert occurrences[-1].start.date() == date(2025, 9, 29) + timedelta(days=1)


def test_count_and_end_date_give_the_same_series_when_they_agree() -> None:
    """Ten Mondays by count equal the Mondays up to the tenth's date."""
    start = local(date(2025, 3, 3), 9, BERLIN)
    by_count = expand(rule(count=10), start, start + timedelta(hours=1), BERLIN)
    by_date = expand(rule(count=None, end=date(2025, 5, 5)), start, start + timedelta(hours=1), BERLIN)
    assert by_count == by_date and len(by_count) == 10


def test_expand_window_keeps_only_overlapping_occurrences() -> None:
    """A window keeps occurrences that overlap it, including one that started before it."""
    start = datetime(2025, 3, 3, 9, tzinfo=UTC)
    occurrences = expand(rule(count=5), start, start + timedelta(hours=2),  "UTC",
                         window_start=datetime(2025, 3, 10, 10, tzinfo=UTC),
                         window_end=datetime(2025, 3, 24, 9, tzinfo=UTC))
    assert dates(occurrences) == [date(2025, 3, 10), date(2025, 3, 17)]


# --- Exchange's move rule --------------------------------------------------------------------


def test_an_occurrence_cannot_move_onto_a_neighbours_day() -> None:
    """Moving within its own gap is fine; onto the previous or next occurrence's day is refused."""
    start = local(date(2025, 3, 3), 9, BERLIN)
    occurrences = expand(rule(count=3), start, start + timedelta(hours=1), BERLIN)
    middle = occurrences[1].original_start
    assert not crosses_boundary(occurrences, middle, local(date(2025, 3, 12), 9, BERLIN), BERLIN)
    assert crosses_boundary(occurrences, middle, local(date(2025, 3, 3), 18, BERLIN), BERLIN)
    assert crosses_boundary(occurrences, middle, local(date(2025, 3, 17), 7, BERLIN), BERLIN)
    assert not crosses_boundary(occurrences, occurrences[0].original_start, local(date(2025, 2, 1), 9, BERLIN),
                                BERLIN)
    with pytest.raises(ValueError, match="not an occurrence"):
        crosses_boundary(occurrences, middle + timedelta(minutes=1), middle, BERLIN)


# --- getSchedule windows, clashes -------------------------------------------------------------


def test_schedule_windows_split_a_year_into_the_floor_number_of_windows() -> None:
    """365 days need ceil(365 / 61.99) = 6 contiguous windows, each under Graph's 62 days."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    windows = schedule_windows(start, start + timedelta(days=365))
    assert len(windows) == 6
    assert windows[0][0] == start and windows[-1][1] == start + timedelta(days=365)
    assert all(b - a < timedelta(days=62) for a, b in windows)
    assert all(windows[i][1] == windows[i + 1][0] for i in range(5))
    assert schedule_windows(start, start) == []
    assert len(schedule_windows(start, start + SCHEDULE_WINDOW)) == 1


def test_occurrence_windows_skip_the_gaps_between_occurrences() -> None:
    """Two bursts of weekly meetings half a year apart need two windows, not the span's four."""
    first = datetime(2025, 1, 6, 9, tzinfo=UTC)
    burst = [Occurrence(first + timedelta(weeks=i), first + timedelta(weeks=i),
                        first + timedelta(weeks=i, hours=1)) for i in range(4)]
    later = [Occurrence(o.start + timedelta(days=200), o.start + timedelta(days=200), o.end + timedelta(days=200))
             for o in burst]
    windows = occurrence_windows(burst + later)
    assert windows == [(burst[0].start, burst[-1].end), (later[0].start, later[-1].end)]
    assert len(schedule_windows(burst[0].start, later[-1].end)) == 4
    assert occurrence_windows([]) == []


def test_schedule_calls_multiply_address_groups_by_windows() -> None:
    """3 addresses over 6 windows are 6 calls; 21 addresses need two groups each window."""
    assert schedule_calls(3, 6) == 6
    assert schedule_calls(21, 6) == 12
    assert schedule_calls(0, 6) == 0


def test_clashes_name_who_is_busy_for_each_clashing_occurrence() -> None:
    """Busy and tentative time clash, free time and touching intervals do not; tentative can be allowed."""
    start = datetime(2025, 3, 3, 9, tzinfo=UTC)
    occurrences = expand(rule(count=3), start, start + timedelta(hours=1), "UTC")
    busy = {
        "mentor@x.test": [BusyInterval(start + timedelta(minutes=30), start + timedelta(hours=2))],
        "mentee@x.test": [
            BusyInterval(start + timedelta(weeks=1, hours=1), start + timedelta(weeks=1, hours=2)),  # touches
            BusyInterval(start + timedelta(weeks=2), start + timedelta(weeks=2, hours=1), FreeBusyStatus.TENTATIVE),
            BusyInterval(start, start + timedelta(hours=1), FreeBusyStatus.FREE),
        ],
        "room@x.test": [],
    }
    found = clashes(occurrences, busy)
    assert [(c.occurrence.start, c.addresses) for c in found] == [
        (occurrences[0].start, ("mentor@x.test",)),
        (occurrences[2].start, ("mentee@x.test",)),
    ]
    relaxed = clashes(occurrences, busy, tentative_blocks=False)
    assert [c.occurrence for c in relaxed] == [occurrences[0]]


def test_at_wall_time_reads_a_local_time_in_a_zone() -> None:
    """09:00 on a summer day in Berlin is 07:00 UTC."""
    assert at_wall_time(date(2025, 7, 1), time(9), BERLIN) == datetime(2025, 7, 1, 7, tzinfo=UTC)
