"""Properties of series expansion, windows and clashes over generated rules, zones and dates."""

from __future__ import annotations

import calendar
import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from core.domain.calendar import BusyInterval, Weekday
from core.domain.recurrence import (
    SCHEDULE_WINDOW,
    Occurrence,
    PatternedRecurrence,
    RecurrencePattern,
    RecurrencePatternType,
    RecurrenceRange,
    RecurrenceRangeType,
    WeekIndex,
    clashes,
    expand,
    from_graph,
    occurrence_windows,
    schedule_windows,
    to_graph,
)

ZONES = ("Europe/Berlin", "America/New_York", "Australia/Sydney")
WEEKDAYS = list(Weekday)
_ISO_TO_DAY = {d.iso: d for d in Weekday}

zones = st.sampled_from(ZONES)
start_dates = st.dates(min_value=date(2023, 1, 1), max_value=date(2030, 12, 31))
# Whole quarter hours, avoiding 02:00-03:59 so no start falls in a DST gap (tested on its own).
wall_times = st.builds(time, st.sampled_from([0, 1, 7, 8, 9, 12, 17, 20, 23]), st.sampled_from([0, 15, 30, 45]))
durations = st.integers(min_value=15, max_value=240).map(lambda m: timedelta(minutes=m))


def _series(first: date, pattern: RecurrencePattern, count: int) -> PatternedRecurrence:
    return PatternedRecurrence(
        pattern, RecurrenceRange(RecurrenceRangeType.NUMBERED, first, number_of_occurrences=count)
    )


@settings(max_examples=150, deadline=None)
@given(zones, start_dates, wall_times, durations, st.integers(1, 4), st.integers(1, 60))
def test_weekly_occurrences_keep_wall_time_weekday_and_duration(  # noqa: PLR0917
    zone: str, first: date, wall: time, duration: timedelta, interval: int, count: int
) -> None:
    """In any of the three zones, every weekly occurrence is on the same weekday at the same local time, as long."""
    day = _ISO_TO_DAY[first.isoweekday()]
    tz = ZoneInfo(zone)
    start = datetime.combine(first, wall, tzinfo=tz)
    pattern = RecurrencePattern(RecurrencePatternType.WEEKLY, interval, (day,))
    # Real (UTC) duration: an aware datetime plus a timedelta adds wall time, which is not the
    # event's length when the first occurrence spans a DST change.
    end = (start.astimezone(UTC) + duration).astimezone(tz)
    occurrences = expand(_series(first, pattern, count), start, end, zone)
    assert len(occurrences) == count
    for n, occurrence in enumerate(occurrences):
        local = occurrence.start.astimezone(tz)
        assert local.date() == first + timedelta(weeks=interval * n)
        assert local.time() == wall
        assert occurrence.end - occurrence.start == duration
        assert occurrence.original_start == occurrence.start


@settings(max_examples=150, deadline=None)
@given(start_dates, st.integers(1, 31), st.integers(1, 3), st.integers(1, 30))
def test_absolute_monthly_day_is_min_of_day_and_month_length(first: date, day: int, interval: int, count: int) -> None:
    """Each occurrence falls on min(dayOfMonth, days in that month), months apart by the interval."""
    start = datetime.combine(first, time(10), tzinfo=UTC)
    pattern = RecurrencePattern(RecurrencePatternType.ABSOLUTE_MONTHLY, interval, day_of_month=day)
    occurrences = expand(_series(first, pattern, count), start, start + timedelta(hours=1), "UTC")
    assert len(occurrences) == count
    months = [(o.start.year, o.start.month) for o in occurrences]
    for (year, month), occurrence in zip(months, occurrences, strict=True):
        assert occurrence.start.day == min(day, calendar.monthrange(year, month)[1])
        assert occurrence.start.date() >= first
    steps = [(b[0] - a[0]) * 12 + b[1] - a[1] for a, b in itertools.pairwise(months)]
    assert all(step == interval for step in steps)


@settings(max_examples=150, deadline=None)
@given(start_dates, st.sampled_from(WEEKDAYS), st.sampled_from(list(WeekIndex)), st.integers(1, 24))
def test_relative_monthly_picks_the_indexed_weekday_of_each_month(
    first: date, day: Weekday, index: WeekIndex, count: int
) -> None:
    """The Nth (or last) given weekday of consecutive months, never before the range start."""
    start = datetime.combine(first, time(10), tzinfo=UTC)
    pattern = RecurrencePattern(RecurrencePatternType.RELATIVE_MONTHLY, 1, (day,), index=index)
    occurrences = expand(_series(first, pattern, count), start, start + timedelta(hours=1), "UTC")
    assert len(occurrences) == count
    for occurrence in occurrences:
        found = occurrence.start.date()
        assert found >= first and found.isoweekday() == day.iso
        month_days = [
            date(found.year, found.month, d)
            for d in range(1, calendar.monthrange(found.year, found.month)[1] + 1)
            if date(found.year, found.month, d).isoweekday() == day.iso
        ]
        expected = month_days[-1] if index == WeekIndex.LAST else month_days[list(WeekIndex).index(index)]
        assert found == expected


@settings(max_examples=100, deadline=None)
@given(zones, start_dates, wall_times, st.integers(1, 50), st.integers(0, 400))
def test_count_and_end_date_agree(zone: str, first: date, wall: time, count: int, extra_days: int) -> None:
    """A numbered series equals the endDate series ending on its last date, and an end date only truncates."""
    tz = ZoneInfo(zone)
    start = datetime.combine(first, wall, tzinfo=tz)
    pattern = RecurrencePattern(RecurrencePatternType.DAILY, 3)
    numbered = expand(_series(first, pattern, count), start, start + timedelta(hours=1), zone)
    last = numbered[-1].start.astimezone(tz).date()
    by_date = PatternedRecurrence(pattern, RecurrenceRange(RecurrenceRangeType.END_DATE, first, end_date=last))
    assert expand(by_date, start, start + timedelta(hours=1), zone) == numbered
    cut = first + timedelta(days=extra_days)
    truncated = PatternedRecurrence(pattern, RecurrenceRange(RecurrenceRangeType.END_DATE, first, end_date=cut))
    kept = expand(truncated, start, start + timedelta(hours=1), zone, limit=count)
    assert kept == [o for o in numbered if o.start.astimezone(tz).date() <= cut][: len(kept)]


@settings(max_examples=100, deadline=None)
@given(
    st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)),
    st.integers(min_value=1, max_value=3 * 365 * 24 * 60),
)
def test_schedule_windows_cover_the_span_in_the_floor_number_of_legal_windows(start: datetime, minutes: int) -> None:
    """Windows are contiguous, cover the span, are each under 62 days, and there is no smaller count."""
    end = start + timedelta(minutes=minutes)
    windows = schedule_windows(start, end)
    assert windows[0][0] == start and windows[-1][1] == end
    assert all(a < b and b - a <= SCHEDULE_WINDOW for a, b in windows)
    assert all(windows[i][1] == windows[i + 1][0] for i in range(len(windows) - 1))
    assert (len(windows) - 1) * SCHEDULE_WINDOW < end - start


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 800 * 24), st.integers(1, 8)), min_size=1, max_size=60))
def test_occurrence_windows_hold_every_occurrence_and_cannot_be_fewer(spans: list[tuple[int, int]]) -> None:
    """Each occurrence lies whole in a legal window; windows are disjoint and a lower bound confirms the count."""
    base = datetime(2025, 1, 1, tzinfo=UTC)
    occurrences = [
        Occurrence(base + timedelta(hours=h), base + timedelta(hours=h), base + timedelta(hours=h + d))
        for h, d in spans
    ]
    windows = occurrence_windows(occurrences)
    for o in occurrences:
        assert any(a <= o.start and o.end <= b for a, b in windows)
    assert all(b - a <= SCHEDULE_WINDOW for a, b in windows)
    assert all(windows[i][1] <= windows[i + 1][0] for i in range(len(windows) - 1))
    # Starts of consecutive windows are more than a window apart minus the longest occurrence: so no
    # window can reach from one window's first occurrence to the next window's first occurrence.
    firsts = [a for a, _ in windows]
    assert all(b - a > SCHEDULE_WINDOW - timedelta(hours=8) for a, b in itertools.pairwise(firsts))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 200), st.integers(1, 5)), max_size=20),
    st.lists(st.tuples(st.integers(0, 200), st.integers(1, 5)), min_size=1, max_size=20),
)
def test_clashes_agree_with_a_naive_overlap_check(
    busy_spans: list[tuple[int, int]], occ: list[tuple[int, int]]
) -> None:
    """The bisect-based clash finder says exactly what checking every pair of intervals says."""
    base = datetime(2025, 1, 1, tzinfo=UTC)
    busy = [BusyInterval(base + timedelta(hours=s), base + timedelta(hours=s + d)) for s, d in busy_spans]
    occurrences = sorted(
        {
            Occurrence(base + timedelta(hours=s), base + timedelta(hours=s), base + timedelta(hours=s + d))
            for s, d in occ
        }
    )
    found = {c.occurrence for c in clashes(occurrences, {"a@x.test": busy})}
    naive = {o for o in occurrences if any(b.start < o.end and o.start < b.end for b in busy)}
    assert found == naive


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(list(RecurrencePatternType)),
    st.integers(1, 99),
    st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=7, unique=True),
    st.integers(1, 28),
    st.integers(1, 12),
    st.sampled_from(list(WeekIndex)),
    start_dates,
    st.one_of(st.integers(1, 104).map(lambda n: (RecurrenceRangeType.NUMBERED, n)),
              st.integers(0, 700).map(lambda n: (RecurrenceRangeType.END_DATE, n))),
)
def test_graph_json_round_trips(  # noqa: PLR0917
    kind: RecurrencePatternType,
    interval: int,
    days: list[Weekday],
    day_of_month: int,
    month: int,
    index: WeekIndex,
    first: date,
    ending: tuple[RecurrenceRangeType, int],
) -> None:
    """Whatever valid rule we build, Graph JSON reads back to the same value."""
    relative = kind in (RecurrencePatternType.RELATIVE_MONTHLY, RecurrencePatternType.RELATIVE_YEARLY)
    pattern = RecurrencePattern(
        kind,
        interval,
        tuple(days) if kind in (RecurrencePatternType.WEEKLY,) or relative else (),
        day_of_month if "absolute" in kind.value else None,
        month if "Yearly" in kind.value else None,
        index if relative else WeekIndex.FIRST,
    )
    range_type, n = ending
    rng = (
        RecurrenceRange(range_type, first, number_of_occurrences=n)
        if range_type == RecurrenceRangeType.NUMBERED
        else RecurrenceRange(range_type, first, end_date=first + timedelta(days=n))
    )
    recurrence = PatternedRecurrence(pattern, rng)
    assert from_graph(to_graph(recurrence)) == recurrence
