"""NCRONTAB and TimeSpan timer schedules, as Azure Functions reads them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from local.ncrontab import CronSchedule, IntervalSchedule, ScheduleError, parse

T0 = datetime(2025, 3, 14, 10, 20, 30, tzinfo=UTC)  # a Friday


def at(*fields: int) -> datetime:
    """A UTC datetime from (year, month, day[, hour, minute, second])."""
    year, month, day, hour, minute, second = (*fields, 0, 0, 0)[:6]
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("*/1 * * * * *", T0, at(2025, 3, 14, 10, 20, 31)),
        ("0 */5 * * * *", T0, at(2025, 3, 14, 10, 25, 0)),
        ("0 0 3 * * *", T0, at(2025, 3, 15, 3, 0, 0)),
        ("0 30 9 * * MON-FRI", T0, at(2025, 3, 17, 9, 30, 0)),
        ("0 0 12 1 JAN *", T0, at(2026, 1, 1, 12, 0, 0)),
        ("0 15 */2 * * *", T0, at(2025, 3, 14, 12, 15, 0)),
        ("10,40 * * * * *", T0, at(2025, 3, 14, 10, 20, 40)),
        ("5-10/5 * * * * *", T0, at(2025, 3, 14, 10, 21, 5)),
        ("0 0 0 29 2 *", T0, at(2028, 2, 29, 0, 0, 0)),
        ("0 0 0 * * 0", T0, at(2025, 3, 16, 0, 0, 0)),
        ("30/15 * * * * *", T0, at(2025, 3, 14, 10, 20, 45)),
        ("0 0 0 31 * *", at(2025, 4, 1), at(2025, 5, 31)),
    ],
)
def test_next_occurrence(expression: str, after: datetime, expected: datetime) -> None:
    """The next occurrence is the first matching second strictly after the given time."""
    assert parse(expression).next_after(after) == expected


def test_day_of_month_and_day_of_week_must_both_match() -> None:
    """Like NCrontab (not Vixie cron), a restricted day and weekday are ANDed: Friday the 13th."""
    schedule = parse("0 0 0 13 * FRI")
    assert schedule.next_after(T0) == at(2025, 6, 13)


def test_names_are_case_insensitive() -> None:
    """Month and weekday names work in any case."""
    assert parse("0 0 0 * dec sun").next_after(T0) == at(2025, 12, 7)


def test_an_exact_occurrence_is_not_returned_again() -> None:
    """Asking from an occurrence gives the following one, never the same instant."""
    schedule = parse("0 0 * * * *")
    first = schedule.next_after(T0)
    assert schedule.next_after(first) == first + timedelta(hours=1)


def test_timespan_schedule_fires_every_interval() -> None:
    """A TimeSpan schedule ``hh:mm:ss`` fires one interval after the previous occurrence."""
    schedule = parse("00:05:00")
    assert isinstance(schedule, IntervalSchedule)
    assert schedule.next_after(T0) == T0 + timedelta(minutes=5)
    assert parse("1.00:00:00").next_after(T0) == T0 + timedelta(days=1)


def test_non_utc_input_is_converted_to_utc() -> None:
    """Schedules are UTC: an aware time in another zone is converted first."""
    from zoneinfo import ZoneInfo

    local = datetime(2025, 3, 14, 2, 0, 0, tzinfo=ZoneInfo("America/Los_Angeles"))  # 09:00 UTC
    assert parse("0 0 10 * * *").next_after(local) == at(2025, 3, 14, 10, 0, 0)


def test_naive_datetimes_are_refused() -> None:
    """A naive datetime is ambiguous, so it is refused rather than guessed."""
    with pytest.raises(ValueError, match="timezone-aware"):
        parse("* * * * * *").next_after(datetime(2025, 1, 1))


@pytest.mark.parametrize(
    ("expression", "complaint"),
    [
        ("0 */5 * * *", "six NCRONTAB fields"),
        ("60 * * * * *", "second 60 is outside 0-59"),
        ("* * 24 * * *", "hour 24"),
        ("* * * 0 * *", "day 0"),
        ("* * * * 13 *", "month 13"),
        ("* * * * * 7", "day-of-week 7"),
        ("*/0 * * * * *", "positive number"),
        ("10-5 * * * * *", "runs backwards"),
        ("* * * * FOO *", "'FOO' is not a valid month"),
        ("1,,2 * * * * *", "empty list item"),
        ("00:00:00", "longer than zero"),
        ("0 0 0 30 2 *", "no occurrence"),
    ],
)
def test_invalid_schedules_say_what_is_wrong(expression: str, complaint: str) -> None:
    """Bad expressions raise ScheduleError naming the problem (impossible dates included)."""
    with pytest.raises(ScheduleError, match=complaint):
        parse(expression).next_after(T0)


_SMALL = st.sampled_from(["*", "*/2", "*/7", "0", "5-20", "5-40/5", "1,2,3,30", "59"])


@settings(max_examples=60, deadline=None)
@given(
    seconds=_SMALL,
    minutes=_SMALL,
    start=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1), timezones=st.just(UTC)),
)
def test_next_occurrence_is_the_first_match_by_brute_force(seconds: str, minutes: str, start: datetime) -> None:
    """Stepping second by second finds the same first occurrence (within two hours) as next_after."""
    schedule = parse(f"{seconds} {minutes} * * * *")
    assert isinstance(schedule, CronSchedule)
    found = schedule.next_after(start)
    probe = start.replace(microsecond=0) + timedelta(seconds=1)
    while not schedule.matches(probe):
        probe += timedelta(seconds=1)
        assert probe - start < timedelta(hours=2)
    assert found == probe
