"""Timer schedules as Azure Functions reads them: six-field NCRONTAB or a TimeSpan.

NCRONTAB fields are ``second minute hour day month day-of-week`` (seconds first, UTC
on Flex Consumption). Each field takes ``*``, a value, ``a-b``, ``*/n``, ``a-b/n``,
``a/n`` and comma lists; months and days of week also take three-letter names
(``JAN``, ``MON``). Like NCrontab (the library the Functions host uses), a time
matches only when *both* day-of-month and day-of-week match - unlike Vixie cron,
which ORs them when both are restricted.

A schedule may also be a TimeSpan ``hh:mm:ss`` (or ``d.hh:mm:ss``): the timer then
fires every interval, counted from the previous occurrence.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

_MONTHS = {name.upper(): i for i, name in enumerate(calendar.month_abbr) if name}
_DAYS = {"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}
_TIMESPAN = re.compile(r"^(?:(?P<d>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{1,2}):(?P<s>\d{1,2})(?:\.(?P<f>\d{1,7}))?$")
_SEARCH_YEARS = 5


class ScheduleError(ValueError):
    """The expression is not a valid NCRONTAB or TimeSpan schedule (the message says why)."""


class Schedule(Protocol):
    """Anything that can say when a timer fires next."""

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after ``moment`` (UTC, aware)."""
        ...


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None


_FIELDS = (
    _Field("second", 0, 59),
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day", 1, 31),
    _Field("month", 1, 12, _MONTHS),
    _Field("day-of-week", 0, 6, _DAYS),
)


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A parsed six-field NCRONTAB expression."""

    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday

    def matches(self, moment: datetime) -> bool:
        """Whether ``moment`` (to the second, UTC) is an occurrence."""
        m = _utc(moment)
        return m.second in self.seconds and m.minute in self.minutes and m.hour in self.hours and self._day_matches(m)

    def _day_matches(self, m: datetime) -> bool:
        return m.month in self.months and m.day in self.days and (m.isoweekday() % 7) in self.weekdays

    def next_after(self, moment: datetime) -> datetime:
        """The first matching second strictly after ``moment``."""
        t = _utc(moment).replace(microsecond=0) + timedelta(seconds=1)
        limit = t + timedelta(days=366 * _SEARCH_YEARS)
        while t < limit:
            if t.month not in self.months:
                t = _first_of_next_month(t)
                continue
            if not self._day_matches(t):
                t = (t + timedelta(days=1)).replace(hour=0, minute=0, second=0)
                continue
            if t.hour not in self.hours:
                t = (t + timedelta(hours=1)).replace(minute=0, second=0)
                continue
            if t.minute not in self.minutes:
                t = (t + timedelta(minutes=1)).replace(second=0)
                continue
            if t.second not in self.seconds:
                t = t + timedelta(seconds=1)
                continue
            return t
        raise ScheduleError(f"{self.expression!r} has no occurrence in the next {_SEARCH_YEARS} years")


@dataclass(frozen=True, slots=True)
class IntervalSchedule:
    """A TimeSpan schedule: every ``interval`` from the previous occurrence."""

    expression: str
    interval: timedelta

    def next_after(self, moment: datetime) -> datetime:
        return _utc(moment) + self.interval


def parse(expression: str) -> CronSchedule | IntervalSchedule:
    """Parse an NCRONTAB or TimeSpan schedule; ``ScheduleError`` says what is wrong."""
    text = expression.strip()
    span = _TIMESPAN.match(text)
    if span:
        interval = parse_timespan(text)
        if interval <= timedelta(0):
            raise ScheduleError(f"{expression!r}: a TimeSpan schedule must be longer than zero")
        return IntervalSchedule(text, interval)
    parts = text.split()
    if len(parts) != len(_FIELDS):
        raise ScheduleError(
            f"{expression!r}: expected six NCRONTAB fields (second minute hour day month day-of-week) "
            f"or a TimeSpan hh:mm:ss, got {len(parts)} field(s)"
        )
    sets = [_parse_field(part, spec, expression) for part, spec in zip(parts, _FIELDS, strict=True)]
    return CronSchedule(text, *sets)


def parse_timespan(text: str) -> timedelta:
    """A .NET TimeSpan string ``[d.]hh:mm:ss[.fffffff]`` as a timedelta."""
    match = _TIMESPAN.match(text.strip())
    if not match:
        raise ScheduleError(f"{text!r} is not a TimeSpan like 00:00:10")
    hours, minutes, seconds = int(match["h"]), int(match["m"]), int(match["s"])
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ScheduleError(f"{text!r}: hours must be 0-23 and minutes/seconds 0-59")
    fraction = float("0." + match["f"]) if match["f"] else 0.0
    return timedelta(days=int(match["d"] or 0), hours=hours, minutes=minutes, seconds=seconds + fraction)


def _parse_field(text: str, spec: _Field, expression: str) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise ScheduleError(f"{expression!r}: empty list item in the {spec.name} field")
        values.update(_parse_item(item, spec, expression))
    return frozenset(values)


def _parse_item(item: str, spec: _Field, expression: str) -> range:
    base, _, step_text = item.partition("/")
    step = 1
    if step_text:
        if not step_text.isdigit() or int(step_text) == 0:
            raise ScheduleError(
                f"{expression!r}: step {step_text!r} in the {spec.name} field must be a positive number"
            )
        step = int(step_text)
    if base == "*":
        low, high = spec.low, spec.high
    elif "-" in base:
        first, _, last = base.partition("-")
        low, high = _value(first, spec, expression), _value(last, spec, expression)
        if low > high:
            raise ScheduleError(f"{expression!r}: range {base!r} in the {spec.name} field runs backwards")
    else:
        low = _value(base, spec, expression)
        high = spec.high if step_text else low
    return range(low, high + 1, step)


def _value(text: str, spec: _Field, expression: str) -> int:
    upper = text.upper()
    if spec.names and upper in spec.names:
        return spec.names[upper]
    if not text.isdigit():
        raise ScheduleError(f"{expression!r}: {text!r} is not a valid {spec.name}")
    value = int(text)
    if not spec.low <= value <= spec.high:
        raise ScheduleError(f"{expression!r}: {spec.name} {value} is outside {spec.low}-{spec.high}")
    return value


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("schedules work on timezone-aware datetimes (UTC)")
    return moment.astimezone(UTC)


def _first_of_next_month(t: datetime) -> datetime:
    year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
    return t.replace(year=year, month=month, day=1, hour=0, minute=0, second=0)
