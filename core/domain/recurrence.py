"""Recurring series: Graph's ``patternedRecurrence``, its rules, and what a series expands to.

The values (``PatternedRecurrence``, ``RecurrencePattern``, ``RecurrenceRange`` and their
enums) live in ``core.domain.calendar`` so ``EventMetadata`` and ``NewEvent`` can carry
them; they are re-exported here. This module holds the rules:

- **Graph JSON** both ways (:func:`to_graph`, :func:`from_graph`): requests carry only the
  properties the pattern type uses; answers are read leniently (Graph fills unused
  properties with zeros, ``"0001-01-01"`` and lower-case day names).
- **Validation** (:func:`check`, :func:`validate_series`) raising :class:`InvalidRecurrence`
  with one ``code`` per problem (:data:`PROBLEMS`).
- **Expansion** (:func:`expand`) with python-dateutil's ``rrule``, in the organizer's zone:
  occurrences keep their wall-clock time across daylight-saving changes (09:00 Berlin is
  08:00 UTC in winter and 07:00 UTC in summer), as Exchange expands a series in its start
  time zone. Month ends follow Exchange: an ``absoluteMonthly`` (or ``absoluteYearly``)
  day beyond the month's length falls on the month's last day ("If for a particular
  month this value is larger than the number of days in the month, the last day of the
  month is assumed", Exchange Web Services reference, ``AbsoluteMonthlyRecurrence`` /
  ``DayOfMonth``), so "the 31st" is 30 April and 28 or 29 February. Relative patterns
  take the Nth of the *set* of allowed days in the month ("if more than one value is
  specified, the event falls on the first day that satisfies the pattern",
  concepts/outlook-schedule-recurring-events.md); ``last`` is the last such day. The
  range's start date need not fit the pattern: the first occurrence is then the first
  date that does (same page). A wall-clock time that does not exist on a spring-forward
  day (02:30 in Berlin on the last Sunday of March) is read with the offset before the
  change, i.e. it moves forward by the gap, as Windows does.
- **getSchedule windows** (:func:`schedule_windows`, :func:`occurrence_windows`): Graph
  refuses a getSchedule window of 62 days or more, so a long series needs several calls;
  these split a span or a set of occurrences into the fewest windows that fit.
- **Clashes** (:func:`clashes`): which occurrences collide with whose busy time.
- **Exchange's move rule** (:func:`crosses_boundary`): an occurrence cannot be moved to or
  before the day of the previous occurrence, nor to or after the day of the next one
  (``ErrorOccurrenceCrossingBoundary``, api-reference/v1.0/api/event-update.md).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Final, Literal

from dateutil import rrule

from core.domain.calendar import (
    GET_SCHEDULE_MAX_WINDOW,
    BusyInterval,
    EventType,
    PatternedRecurrence,
    RecurrencePattern,
    RecurrencePatternType,
    RecurrenceRange,
    RecurrenceRangeType,
    TimeZoneSpec,
    Weekday,
    WeekIndex,
    require_aware,
)
from core.domain.errors import InvalidRecurrence
from core.domain.slots import blocks
from core.domain.timezones import resolve_zone

__all__ = [
    "MAX_INTERVAL",
    "MAX_OCCURRENCES",
    "MAX_SERIES_SPAN",
    "PROBLEMS",
    "SCHEDULE_WINDOW",
    "Clash",
    "EventType",
    "InvalidRecurrence",
    "Occurrence",
    "PatternedRecurrence",
    "RecurrencePattern",
    "RecurrencePatternType",
    "RecurrenceRange",
    "RecurrenceRangeType",
    "WeekIndex",
    "check",
    "clashes",
    "crosses_boundary",
    "expand",
    "from_graph",
    "occurrence_windows",
    "schedule_calls",
    "schedule_windows",
    "to_graph",
    "validate_series",
]

# --- limits --------------------------------------------------------------------------------

MAX_OCCURRENCES: Final = 104
"""At most 104 occurrences in a session series: two years of weekly meetings.

Why: a mentoring cadence runs for a term or an academic year (weekly for a year is 52,
fortnightly 26, monthly 12), so 104 leaves room without inviting "forever" series. Every
occurrence is a row the service keeps in step with Outlook and a line in reconciliation,
and Outlook itself warns that series with many exceptions become hard to manage; a series
that needs more can be renewed for the next term.
"""

MAX_SERIES_SPAN: Final = timedelta(days=731)
"""A session series may last at most two years (731 days from the first start to the last end).

Why: availability for a series is read with getSchedule, whose window must stay under 62
days, so the number of calls grows with the span (two years: 12 windows per group of 20
addresses); two years also bounds daily or monthly series that the count alone would not
(104 monthly occurrences would be almost nine years).
"""

MAX_INTERVAL: Final = 99
"""Exchange's own bound: "The range of valid values is from 1 to 99" (EWS ``Interval``)."""

SCHEDULE_WINDOW: Final = GET_SCHEDULE_MAX_WINDOW - timedelta(minutes=1)
"""The longest getSchedule window we send: Graph requires it to be under 62 days."""

PROBLEMS: Final[Mapping[str, str]] = {
    "malformed_recurrence": "The recurrence is not an object of the documented shape.",
    "unknown_pattern_type": "pattern.type must be daily, weekly, absoluteMonthly, relativeMonthly, "
    "absoluteYearly or relativeYearly.",
    "unknown_range_type": "range.type must be endDate, numbered or noEnd.",
    "interval_not_positive": "pattern.interval must be 1 or more.",
    "interval_too_large": f"pattern.interval must be at most {MAX_INTERVAL}.",
    "days_of_week_required": "Weekly and relative patterns need pattern.daysOfWeek.",
    "days_of_week_not_allowed": "Daily and absolute patterns take no pattern.daysOfWeek.",
    "days_of_week_repeated": "pattern.daysOfWeek names a day twice.",
    "day_of_month_required": "Absolute patterns need pattern.dayOfMonth.",
    "day_of_month_not_allowed": "Only absolute patterns take pattern.dayOfMonth.",
    "day_of_month_out_of_range": "pattern.dayOfMonth must be a day that month can have (1-31).",
    "month_required": "Yearly patterns need pattern.month.",
    "month_not_allowed": "Only yearly patterns take pattern.month.",
    "month_out_of_range": "pattern.month must be 1 to 12.",
    "index_not_allowed": "Only relative patterns take pattern.index.",
    "no_end_not_allowed": "A session series must end: use an endDate or numbered range.",
    "end_date_required": "An endDate range needs range.endDate.",
    "end_before_start": "range.endDate is before range.startDate.",
    "occurrences_not_positive": "A numbered range needs range.numberOfOccurrences of 1 or more.",
    "too_many_occurrences": f"A session series has at most {MAX_OCCURRENCES} occurrences.",
    "series_too_long": f"A session series lasts at most {MAX_SERIES_SPAN.days} days.",
    "start_date_mismatch": "range.startDate must be the date of the first start in the series' time zone.",
    "start_not_in_pattern": "The first start must be an occurrence of the pattern.",
    "no_occurrences": "The pattern gives no occurrence inside the range.",
}

_INDEX_POS: Final = {
    WeekIndex.FIRST: 1,
    WeekIndex.SECOND: 2,
    WeekIndex.THIRD: 3,
    WeekIndex.FOURTH: 4,
    WeekIndex.LAST: -1,
}
_RRULE_DAY: Final = {
    Weekday.MONDAY: rrule.MO,
    Weekday.TUESDAY: rrule.TU,
    Weekday.WEDNESDAY: rrule.WE,
    Weekday.THURSDAY: rrule.TH,
    Weekday.FRIDAY: rrule.FR,
    Weekday.SATURDAY: rrule.SA,
    Weekday.SUNDAY: rrule.SU,
}
_WEEKLY_OR_RELATIVE: Final = frozenset(
    {
        RecurrencePatternType.WEEKLY,
        RecurrencePatternType.RELATIVE_MONTHLY,
        RecurrencePatternType.RELATIVE_YEARLY,
    }
)
_ABSOLUTE: Final = frozenset({RecurrencePatternType.ABSOLUTE_MONTHLY, RecurrencePatternType.ABSOLUTE_YEARLY})
_YEARLY: Final = frozenset({RecurrencePatternType.ABSOLUTE_YEARLY, RecurrencePatternType.RELATIVE_YEARLY})
_RELATIVE: Final = frozenset({RecurrencePatternType.RELATIVE_MONTHLY, RecurrencePatternType.RELATIVE_YEARLY})
# Days each month can have (February: 29, leap years included).
_MONTH_DAYS: Final = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_NO_DATE: Final = "0001-01-01"


def _problem(code: str, field: str, **details: Any) -> InvalidRecurrence:
    return InvalidRecurrence(code, PROBLEMS[code], field=field, **details)


# --- Graph JSON ------------------------------------------------------------------------------


def to_graph(recurrence: PatternedRecurrence) -> dict[str, Any]:
    """The ``patternedRecurrence`` JSON Graph takes: only the properties the types use."""
    pattern, rng = recurrence.pattern, recurrence.range
    out_pattern: dict[str, Any] = {"type": pattern.type.value, "interval": pattern.interval}
    if pattern.type in _WEEKLY_OR_RELATIVE:
        out_pattern["daysOfWeek"] = [d.value for d in pattern.days_of_week]
    if pattern.type == RecurrencePatternType.WEEKLY:
        out_pattern["firstDayOfWeek"] = pattern.first_day_of_week.value
    if pattern.type in _RELATIVE:
        out_pattern["index"] = pattern.index.value
    if pattern.type in _ABSOLUTE:
        out_pattern["dayOfMonth"] = pattern.day_of_month
    if pattern.type in _YEARLY:
        out_pattern["month"] = pattern.month
    out_range: dict[str, Any] = {"type": rng.type.value, "startDate": rng.start_date.isoformat()}
    if rng.type == RecurrenceRangeType.END_DATE and rng.end_date is not None:
        out_range["endDate"] = rng.end_date.isoformat()
    if rng.type == RecurrenceRangeType.NUMBERED:
        out_range["numberOfOccurrences"] = rng.number_of_occurrences
    if rng.recurrence_time_zone:
        out_range["recurrenceTimeZone"] = rng.recurrence_time_zone
    return {"pattern": out_pattern, "range": out_range}


def from_graph(value: Any) -> PatternedRecurrence:
    """A ``patternedRecurrence`` from Graph JSON (or an API body using Graph's names).

    Lenient about what Graph fills in (zeros, ``0001-01-01``, any case of enum values);
    anything else that cannot be read is :class:`InvalidRecurrence` ``malformed_recurrence``
    or ``unknown_*_type``. The rules are checked separately (:func:`check`).
    """
    if not isinstance(value, Mapping):
        raise _problem("malformed_recurrence", "recurrence")
    pattern, rng = value.get("pattern"), value.get("range")
    if not isinstance(pattern, Mapping) or not isinstance(rng, Mapping):
        raise _problem("malformed_recurrence", "recurrence")
    return PatternedRecurrence(pattern=_pattern_from_graph(pattern), range=_range_from_graph(rng))


def _enum_value(enum: Any, raw: Any, code: str, field: str) -> Any:
    if isinstance(raw, str):
        for member in enum:
            if member.value.lower() == raw.strip().lower():
                return member
    raise _problem(code, field)


def _int_or_none(raw: Any, field: str) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise _problem("malformed_recurrence", field)
    return raw if raw != 0 else None


def _pattern_from_graph(raw: Mapping[str, Any]) -> RecurrencePattern:
    kind = _enum_value(RecurrencePatternType, raw.get("type"), "unknown_pattern_type", "pattern.type")
    interval = raw.get("interval", 1)
    if isinstance(interval, bool) or not isinstance(interval, int):
        raise _problem("malformed_recurrence", "pattern.interval")
    days_raw = raw.get("daysOfWeek") or []
    if not isinstance(days_raw, list):
        raise _problem("malformed_recurrence", "pattern.daysOfWeek")
    days = tuple(_enum_value(Weekday, d, "malformed_recurrence", "pattern.daysOfWeek") for d in days_raw)
    index = raw.get("index")
    first_day = raw.get("firstDayOfWeek")
    return RecurrencePattern(
        type=kind,
        interval=interval,
        days_of_week=days,
        day_of_month=_int_or_none(raw.get("dayOfMonth"), "pattern.dayOfMonth"),
        month=_int_or_none(raw.get("month"), "pattern.month"),
        index=(
            WeekIndex.FIRST if index is None else _enum_value(WeekIndex, index, "malformed_recurrence", "pattern.index")
        ),
        first_day_of_week=(
            Weekday.SUNDAY
            if first_day is None
            else _enum_value(Weekday, first_day, "malformed_recurrence", "pattern.firstDayOfWeek")
        ),
    )


def _date(raw: Any, field: str) -> date | None:
    if raw is None or raw in ("", _NO_DATE):
        return None
    if not isinstance(raw, str):
        raise _problem("malformed_recurrence", field)
    try:
        return date.fromisoformat(raw[:10])
    except ValueError as exc:
        raise _problem("malformed_recurrence", field) from exc


def _range_from_graph(raw: Mapping[str, Any]) -> RecurrenceRange:
    kind = _enum_value(RecurrenceRangeType, raw.get("type"), "unknown_range_type", "range.type")
    start = _date(raw.get("startDate"), "range.startDate")
    if start is None:
        raise _problem("malformed_recurrence", "range.startDate")
    zone = raw.get("recurrenceTimeZone")
    if zone is not None and not isinstance(zone, str):
        raise _problem("malformed_recurrence", "range.recurrenceTimeZone")
    return RecurrenceRange(
        type=kind,
        start_date=start,
        end_date=_date(raw.get("endDate"), "range.endDate"),
        number_of_occurrences=_int_or_none(raw.get("numberOfOccurrences"), "range.numberOfOccurrences"),
        recurrence_time_zone=zone or None,
    )


# --- validation -----------------------------------------------------------------------------


def check(recurrence: PatternedRecurrence, *, allow_no_end: bool = False) -> None:
    """The rule alone is sound (no dates of a first event needed); :class:`InvalidRecurrence` if not.

    ``allow_no_end`` is for reading what Outlook made (a series without end); the service
    never creates one.
    """
    _check_pattern(recurrence.pattern)
    rng = recurrence.range
    if rng.type == RecurrenceRangeType.NO_END and not allow_no_end:
        raise _problem("no_end_not_allowed", "range.type")
    if rng.type == RecurrenceRangeType.END_DATE:
        if rng.end_date is None:
            raise _problem("end_date_required", "range.endDate")
        if rng.end_date < rng.start_date:
            raise _problem("end_before_start", "range.endDate")
    if rng.type == RecurrenceRangeType.NUMBERED and (
        rng.number_of_occurrences is None or rng.number_of_occurrences < 1
    ):
        raise _problem("occurrences_not_positive", "range.numberOfOccurrences")


def _check_pattern(pattern: RecurrencePattern) -> None:
    kind = pattern.type
    if pattern.interval < 1:
        raise _problem("interval_not_positive", "pattern.interval")
    if pattern.interval > MAX_INTERVAL:
        raise _problem("interval_too_large", "pattern.interval")
    if kind in _WEEKLY_OR_RELATIVE and not pattern.days_of_week:
        raise _problem("days_of_week_required", "pattern.daysOfWeek")
    if kind not in _WEEKLY_OR_RELATIVE and pattern.days_of_week:
        raise _problem("days_of_week_not_allowed", "pattern.daysOfWeek")
    if len(set(pattern.days_of_week)) != len(pattern.days_of_week):
        raise _problem("days_of_week_repeated", "pattern.daysOfWeek")
    if kind in _YEARLY:
        if pattern.month is None:
            raise _problem("month_required", "pattern.month")
        if not 1 <= pattern.month <= 12:
            raise _problem("month_out_of_range", "pattern.month")
    elif pattern.month is not None:
        raise _problem("month_not_allowed", "pattern.month")
    if kind in _ABSOLUTE:
        if pattern.day_of_month is None:
            raise _problem("day_of_month_required", "pattern.dayOfMonth")
        longest = _MONTH_DAYS[pattern.month - 1] if kind in _YEARLY and pattern.month else 31
        if not 1 <= pattern.day_of_month <= longest:
            raise _problem("day_of_month_out_of_range", "pattern.dayOfMonth")
    elif pattern.day_of_month is not None:
        raise _problem("day_of_month_not_allowed", "pattern.dayOfMonth")
    if kind not in _RELATIVE and pattern.index != WeekIndex.FIRST:
        raise _problem("index_not_allowed", "pattern.index")


def validate_series(
    recurrence: PatternedRecurrence, start: datetime, end: datetime, time_zone: str
) -> list[Occurrence]:
    """Everything a session series must satisfy; returns its occurrences.

    The rule is sound and ends (:func:`check`); ``range.startDate`` is ``start``'s date in
    the series' zone and ``start`` is itself the first occurrence (so what the organizer
    sees first is what was asked for); at most :data:`MAX_OCCURRENCES` occurrences over at
    most :data:`MAX_SERIES_SPAN`. Checked before expanding, so a "daily for a century"
    rule costs nothing.
    """
    require_aware(start, end)
    if end <= start:
        raise ValueError("end must be after start")
    check(recurrence)
    rng = recurrence.range
    range_zone = _zone(rng.recurrence_time_zone or time_zone)
    if start.astimezone(range_zone).date() != rng.start_date:
        raise _problem("start_date_mismatch", "range.startDate")
    if rng.type == RecurrenceRangeType.NUMBERED and (rng.number_of_occurrences or 0) > MAX_OCCURRENCES:
        raise _problem("too_many_occurrences", "range.numberOfOccurrences", limit=MAX_OCCURRENCES)
    if (
        rng.end_date is not None
        and rng.type == RecurrenceRangeType.END_DATE
        and rng.end_date - rng.start_date > MAX_SERIES_SPAN
    ):
        raise _problem("series_too_long", "range.endDate", limitDays=MAX_SERIES_SPAN.days)
    occurrences = expand(recurrence, start, end, time_zone, limit=MAX_OCCURRENCES + 1)
    if not occurrences:
        raise _problem("no_occurrences", "recurrence")
    if len(occurrences) > MAX_OCCURRENCES:
        raise _problem("too_many_occurrences", "range", limit=MAX_OCCURRENCES)
    if occurrences[0].original_start != start.astimezone(UTC).replace(microsecond=0):
        raise _problem("start_not_in_pattern", "start")
    if occurrences[-1].end - occurrences[0].start > MAX_SERIES_SPAN:
        raise _problem("series_too_long", "range", limitDays=MAX_SERIES_SPAN.days)
    return occurrences


# --- expansion ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class Occurrence:
    """One occurrence the pattern gives (UTC, to the second); ``original_start`` identifies it."""

    original_start: datetime
    start: datetime
    end: datetime


def _zone(name: str) -> tzinfo:
    if name.strip().upper() in ("UTC", "ETC/UTC", "Z", "GMT"):
        return UTC
    return resolve_zone(TimeZoneSpec(name=name))


def _clamped_days(day: int) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
    """``bymonthday``/``bysetpos`` for "day N, or the month's last day when it is shorter"."""
    if day <= 28:
        return (day,), None
    return tuple(range(28, day + 1)), (-1,)


def _rule(recurrence: PatternedRecurrence, first: datetime, count: int | None) -> rrule.rrule:
    """The ``rrule`` of the pattern from ``first`` (naive local wall time on the range's start date)."""
    pattern = recurrence.pattern
    days = tuple(_RRULE_DAY[d] for d in pattern.days_of_week) or None
    kind = pattern.type
    args: dict[str, Any] = {"dtstart": first, "interval": pattern.interval, "count": count, "cache": False}
    if kind == RecurrencePatternType.DAILY:
        return rrule.rrule(rrule.DAILY, **args)
    if kind == RecurrencePatternType.WEEKLY:
        return rrule.rrule(rrule.WEEKLY, byweekday=days, wkst=_RRULE_DAY[pattern.first_day_of_week], **args)
    if kind in _ABSOLUTE:
        monthdays, setpos = _clamped_days(pattern.day_of_month or 1)
        freq: Literal[0, 1] = rrule.MONTHLY if kind == RecurrencePatternType.ABSOLUTE_MONTHLY else rrule.YEARLY
        month = pattern.month if kind == RecurrencePatternType.ABSOLUTE_YEARLY else None
        return rrule.rrule(freq, bymonth=month, bymonthday=monthdays, bysetpos=setpos, **args)
    relative_freq: Literal[0, 1] = rrule.MONTHLY if kind == RecurrencePatternType.RELATIVE_MONTHLY else rrule.YEARLY
    month = pattern.month if kind == RecurrencePatternType.RELATIVE_YEARLY else None
    return rrule.rrule(relative_freq, bymonth=month, byweekday=days, bysetpos=(_INDEX_POS[pattern.index],), **args)


def _second(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)


def iter_occurrences(
    recurrence: PatternedRecurrence, start: datetime, end: datetime, time_zone: str
) -> Iterator[Occurrence]:
    """Every occurrence in order (endless for ``noEnd``: stop iterating yourself)."""
    require_aware(start, end)
    duration = _second(end) - _second(start)
    event_zone = _zone(time_zone)
    rng = recurrence.range
    range_zone = _zone(rng.recurrence_time_zone) if rng.recurrence_time_zone else event_zone
    wall = start.astimezone(event_zone).time().replace(microsecond=0, tzinfo=None)
    first = datetime.combine(rng.start_date, wall)
    count = rng.number_of_occurrences if rng.type == RecurrenceRangeType.NUMBERED else None
    last_date = rng.end_date if rng.type == RecurrenceRangeType.END_DATE else None
    for local in _rule(recurrence, first, count):
        # fold=0: an ambiguous time is the first (daylight) one; a missing one moves forward by the gap.
        moment = local.replace(tzinfo=event_zone)
        if last_date is not None and moment.astimezone(range_zone).date() > last_date:
            return
        occurrence_start = _second(moment)
        yield Occurrence(original_start=occurrence_start, start=occurrence_start, end=occurrence_start + duration)


def expand(
    recurrence: PatternedRecurrence,
    start: datetime,
    end: datetime,
    time_zone: str,
    *,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    limit: int | None = None,
) -> list[Occurrence]:
    """The occurrences of a series whose first event runs ``start``-``end`` in ``time_zone``.

    ``time_zone`` (IANA or Windows name) is the zone of the event's start: occurrences keep
    its wall-clock time. With a window, only occurrences overlapping [window_start,
    window_end); ``limit`` stops after that many. A ``noEnd`` series needs ``window_end``
    or ``limit``.
    """
    check(recurrence, allow_no_end=True)
    endless = recurrence.range.type == RecurrenceRangeType.NO_END
    if endless and window_end is None and limit is None:
        raise ValueError("a series without end needs a window end or a limit to expand")
    if window_start is not None or window_end is not None:
        require_aware(*(m for m in (window_start, window_end) if m is not None))
    out: list[Occurrence] = []
    for occurrence in iter_occurrences(recurrence, start, end, time_zone):
        if window_end is not None and occurrence.start >= window_end:
            break
        if window_start is not None and occurrence.end <= window_start:
            continue
        out.append(occurrence)
        if limit is not None and len(out) >= limit:
            break
    return out


def crosses_boundary(
    occurrences: Sequence[Occurrence], original_start: datetime, new_start: datetime, time_zone: str
) -> bool:
    """Whether moving the occurrence ``original_start`` to ``new_start`` breaks Outlook's rule.

    "An occurrence cannot be moved to or before the day of the previous occurrence, and
    cannot be moved to or after the day of the following occurrence" (Graph answers 400
    ``ErrorOccurrenceCrossingBoundary``); days are read in the organizer's zone.
    ``occurrences`` are the series' occurrences in order with their current starts.
    """
    zone = _zone(time_zone)
    starts = [o.original_start for o in occurrences]
    position = bisect.bisect_left(starts, original_start)
    if position >= len(starts) or starts[position] != original_start:
        raise ValueError("original_start is not an occurrence of the series")
    new_day = new_start.astimezone(zone).date()
    if position > 0 and new_day <= occurrences[position - 1].start.astimezone(zone).date():
        return True
    return position + 1 < len(occurrences) and new_day >= occurrences[position + 1].start.astimezone(zone).date()


# --- getSchedule windows and clashes --------------------------------------------------------


def schedule_windows(
    start: datetime, end: datetime, *, max_length: timedelta = SCHEDULE_WINDOW
) -> list[tuple[datetime, datetime]]:
    """[start, end) cut into the fewest equal windows no longer than ``max_length``.

    ``ceil(span / max_length)`` windows is the floor: fewer would leave one longer than
    Graph accepts. Windows are contiguous and cover the span exactly.
    """
    require_aware(start, end)
    if end <= start:
        return []
    if max_length <= timedelta(0):
        raise ValueError("max_length must be positive")
    count = math.ceil((end - start) / max_length)
    step = (end - start) / count
    edges = [start + step * i for i in range(count)] + [end]
    return list(itertools.pairwise(edges))


def occurrence_windows(
    occurrences: Sequence[Occurrence], *, max_length: timedelta = SCHEDULE_WINDOW
) -> list[tuple[datetime, datetime]]:
    """The fewest windows (each at most ``max_length``) that hold every occurrence whole.

    Greedy from the earliest occurrence: open a window at its start and put in it every
    later occurrence that ends within ``max_length``; a window then ends at the last end
    it holds, so gaps between windows are never read. Greedy is optimal here: no set of
    windows can cover the earliest uncovered occurrence and reach further.
    """
    ordered = sorted(occurrences, key=lambda o: (o.start, o.end))
    windows: list[tuple[datetime, datetime]] = []
    index = 0
    while index < len(ordered):
        opened = ordered[index].start
        if ordered[index].end - opened > max_length:
            raise ValueError("an occurrence is longer than a getSchedule window")
        closed = ordered[index].end
        index += 1
        while index < len(ordered) and ordered[index].end - opened <= max_length:
            closed = max(closed, ordered[index].end)
            index += 1
        windows.append((opened, closed))
    return windows


def schedule_calls(addresses: int, windows: int, *, per_call: int = 20) -> int:
    """getSchedule calls for ``addresses`` over ``windows`` windows (20 schedules a call)."""
    if addresses <= 0 or windows <= 0:
        return 0
    return math.ceil(addresses / per_call) * windows


@dataclass(frozen=True, slots=True)
class Clash:
    """An occurrence and the addresses that are busy during it (in the order they were given)."""

    occurrence: Occurrence
    addresses: tuple[str, ...]


def clashes(
    occurrences: Sequence[Occurrence],
    busy: Mapping[str, Sequence[BusyInterval]],
    *,
    tentative_blocks: bool = True,
) -> list[Clash]:
    """The occurrences that collide with someone's blocking time, and with whose.

    ``busy`` maps each address to its intervals (getSchedule's ``scheduleItems``); statuses
    block as in the slot engine (busy, away, unknown; tentative unless ``tentative_blocks``
    is False). Touching intervals do not clash. O((n + m) log m) per address.
    """
    prepared: list[tuple[str, list[datetime], list[datetime]]] = []
    for address, intervals in busy.items():
        kept = sorted(
            (i.start, i.end) for i in intervals if blocks(i.status, tentative_blocks=tentative_blocks)
        )
        merged: list[tuple[datetime, datetime]] = []
        for s, e in kept:
            if merged and s <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], e))
            else:
                merged.append((s, e))
        prepared.append((address, [s for s, _ in merged], [e for _, e in merged]))
    out: list[Clash] = []
    for occurrence in sorted(occurrences):
        hit = []
        for address, starts, ends in prepared:
            # the first merged interval ending after the occurrence starts; it clashes if it starts before it ends
            position = bisect.bisect_right(ends, occurrence.start)
            if position < len(starts) and starts[position] < occurrence.end:
                hit.append(address)
        if hit:
            out.append(Clash(occurrence=occurrence, addresses=tuple(hit)))
    return out


def on_day(moment: datetime, time_zone: str) -> date:
    """The calendar date of ``moment`` in ``time_zone`` (helper for callers that group by day)."""
    return moment.astimezone(_zone(time_zone)).date()


def at_wall_time(day: date, wall: time, time_zone: str) -> datetime:
    """``day`` at ``wall`` o'clock in ``time_zone``, as an aware UTC datetime (missing times move forward)."""
    return datetime.combine(day, wall).replace(tzinfo=_zone(time_zone)).astimezone(UTC)
