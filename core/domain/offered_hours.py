"""Offered hours: the part of their free time a person lets others book (pure rules, no I/O).

A person (or, for everyone without their own, the tenant's admin) states in one IANA
time zone:

* **weekly windows**: on a weekday, from a wall-clock start to a wall-clock end, several
  per day allowed. A window that **crosses midnight** belongs to the day it *starts*
  on and says so with ``ends_next_day`` (in the API ``{"day": "friday", "start":
  "22:00", "end": "02:00", "endsNextDay": true}``); internally it is ``Window(start,
  end)`` in minutes after that day's local midnight, with ``end`` above 1440 when it
  runs into the next day. An end of ``24:00`` (1440) is the midnight ending the day. A
  window lasts 5 minutes to 24 hours;
* **date overrides**, one per local date: ``off`` (nothing on that date), ``replace``
  (these windows instead of the weekly ones) or ``add`` (these windows as well). An
  override **owns its whole date**: an ``off`` or ``replace`` date also cuts off the
  after-midnight tail of the previous day's overnight window;
* **minimum notice**: nothing that starts sooner than this many minutes from now;
* **buffers** before and after sessions, kept free of the person's busy time (every
  busy item of their calendar, not only sessions this service booked);
* **caps**: at most N sessions per local day and/or per week, counting the person's
  sessions this service booked (pending or booked), by their start in the rules' zone.
  Weeks start on **Monday** 00:00 local (ISO 8601). A day or week at its cap offers
  nothing more;
* ``within_working_hours``: whether offered time is also limited to the mailbox's
  working hours (the default), or stands on its own (evening or weekend volunteers).

**Time, exactly.** Offered time is the set of real instants whose *local wall-clock
time* lies inside a window of the date that governs it. So a 14:00-17:00
Europe/Berlin window is 14:00-17:00 local before and after a DST change (13:00Z in
winter, 12:00Z in summer); wall times skipped by a spring-forward change offer nothing
(a 02:00-03:00 window on that night is empty, 01:30-02:30 lasts 30 minutes); wall times
repeated by a fall-back change are offered on both passes (02:00-03:00 lasts two real
hours). No instant is ever offered whose local time is outside the person's windows.

Validation (:func:`validate`) raises :class:`OfferedHoursInvalid` (422) whose code is
the first problem's and whose ``details.fields`` lists every problem with its own
code: ``inverted_window``, ``window_too_short``, ``window_too_long``,
``overlapping_windows``, ``too_many_windows``, ``duplicate_override_date``,
``too_many_overrides``, ``invalid_override``, ``notice_out_of_range``,
``buffer_out_of_range``, ``invalid_cap``; a zone that does not exist raises
:class:`UnknownTimeZone` (``unknown_time_zone``) first.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any, Final
from zoneinfo import ZoneInfo

from core.domain.calendar import Weekday
from core.domain.errors import OfferedHoursInvalid, UnknownTimeZone
from core.domain.slots import Interval, merge_spans, offset_segments
from core.domain.timezones import is_valid_iana

__all__ = [
    "MAX_BUFFER_MINUTES",
    "MAX_NOTICE_MINUTES",
    "MAX_OVERRIDES",
    "MAX_OVERRIDE_WINDOWS",
    "MAX_PER_DAY",
    "MAX_PER_WEEK",
    "MAX_WINDOWS_PER_DAY",
    "MIN_WINDOW_MINUTES",
    "DateOverride",
    "OfferedHours",
    "OverrideMode",
    "WeeklyWindow",
    "Window",
    "clear_of_buffers",
    "clock_minutes",
    "covers",
    "offered_intervals",
    "offered_spans",
    "validate",
]

MINUTES_PER_DAY: Final = 1440
MIN_WINDOW_MINUTES: Final = 5
MAX_WINDOWS_PER_DAY: Final = 12
MAX_OVERRIDES: Final = 100
MAX_OVERRIDE_WINDOWS: Final = 12
MAX_NOTICE_MINUTES: Final = 30 * MINUTES_PER_DAY  # 30 days
MAX_BUFFER_MINUTES: Final = 240
MAX_PER_DAY: Final = 24
MAX_PER_WEEK: Final = 100

_DAY: Final = 86_400
_WEEK: Final = 7 * _DAY
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
# The instants Python's dates can hold with a day to spare for any zone offset: outside
# them nothing is offered (rather than failing on year 1 or 9999).
_FIRST_INSTANT: Final = (date(1, 1, 3).toordinal() - _EPOCH_ORDINAL) * _DAY
_LAST_INSTANT: Final = (date(9999, 12, 29).toordinal() - _EPOCH_ORDINAL) * _DAY

# (start, end) in seconds: UTC epoch seconds, or "wall seconds" (a local wall-clock time
# read as if it were UTC), depending on the function.
Span = tuple[int, int]


class OverrideMode(StrEnum):
    """What a date override does to that local date."""

    OFF = "off"
    REPLACE = "replace"
    ADD = "add"


@dataclass(frozen=True, slots=True, order=True)
class Window:
    """Minutes after the local midnight of the day the window starts: ``start`` < ``end`` <= ``start`` + 1440."""

    start: int
    end: int

    @property
    def ends_next_day(self) -> bool:
        return self.end > MINUTES_PER_DAY

    @property
    def minutes(self) -> int:
        return self.end - self.start

    @classmethod
    def of(cls, start: str, end: str, *, ends_next_day: bool = False) -> Window:
        """From ``"HH:MM"`` texts (``"24:00"`` allowed as an end); no range check (see :func:`validate`)."""
        return cls(clock_minutes(start), clock_minutes(end) + (MINUTES_PER_DAY if ends_next_day else 0))

    def start_text(self) -> str:
        return _hhmm(self.start)

    def end_text(self) -> str:
        """The end as the API shows it: wall-clock ``HH:MM`` (``24:00`` for the midnight ending the day)."""
        return _hhmm(self.end - MINUTES_PER_DAY if self.ends_next_day else self.end)


@dataclass(frozen=True, slots=True)
class WeeklyWindow:
    """A window offered every week on ``day``."""

    day: Weekday
    window: Window


@dataclass(frozen=True, slots=True)
class DateOverride:
    """What one local date offers instead of (``off``, ``replace``) or besides (``add``) its weekly windows."""

    day: date
    mode: OverrideMode
    windows: tuple[Window, ...] = ()


@dataclass(frozen=True, slots=True)
class OfferedHours:
    """One person's (or the tenant default's) rules; see the module docstring for every field."""

    time_zone: str
    weekly: tuple[WeeklyWindow, ...] = ()
    overrides: tuple[DateOverride, ...] = ()
    min_notice_minutes: int = 0
    buffer_before_minutes: int = 0
    buffer_after_minutes: int = 0
    max_per_day: int | None = None
    max_per_week: int | None = None
    within_working_hours: bool = True
    _weekly_by_iso: dict[int, tuple[Window, ...]] = field(default_factory=dict, init=False, repr=False,
                                                           compare=False, hash=False)
    _override_by_day: dict[date, DateOverride] = field(default_factory=dict, init=False, repr=False,
                                                        compare=False, hash=False)

    def __post_init__(self) -> None:
        by_iso: dict[int, list[Window]] = {}
        for item in self.weekly:
            by_iso.setdefault(item.day.iso, []).append(item.window)
        self._weekly_by_iso.update({iso: tuple(sorted(ws)) for iso, ws in by_iso.items()})
        self._override_by_day.update({o.day: o for o in self.overrides})

    @property
    def has_caps(self) -> bool:
        return self.max_per_day is not None or self.max_per_week is not None

    @property
    def zone(self) -> tzinfo:
        return ZoneInfo(self.time_zone)

    def windows_on(self, day: date) -> tuple[Window, ...]:
        """The windows that start on local date ``day`` (override applied)."""
        override = self._override_by_day.get(day)
        weekly = self._weekly_by_iso.get(day.isoweekday(), ())
        if override is None:
            return weekly
        if override.mode is OverrideMode.OFF:
            return ()
        if override.mode is OverrideMode.REPLACE:
            return override.windows
        return weekly + override.windows

    def owns_whole_day(self, day: date) -> bool:
        """An ``off`` or ``replace`` override: nothing from the day before reaches into this date."""
        override = self._override_by_day.get(day)
        return override is not None and override.mode is not OverrideMode.ADD


# --- validation ---------------------------------------------------------------------------


def clock_minutes(text: str) -> int:
    """``"HH:MM"`` (00:00-24:00) as minutes after midnight; ``ValueError`` for anything else."""
    if len(text) != 5 or text[2] != ":" or not (text[:2].isdigit() and text[3:].isdigit()):
        raise ValueError("must be a time like 09:30")
    hours, minutes = int(text[:2]), int(text[3:])
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        raise ValueError("must be a time from 00:00 to 24:00")
    return hours * 60 + minutes


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass
class _Problems:
    items: list[dict[str, Any]] = field(default_factory=list)

    def add(self, code: str, loc: Sequence[str | int], msg: str) -> None:
        self.items.append({"loc": ["body", *loc], "msg": msg, "type": code})


def _check_window(window: Window, loc: Sequence[str | int], problems: _Problems) -> bool:
    if not 0 <= window.start < MINUTES_PER_DAY or window.end > 2 * MINUTES_PER_DAY:
        problems.add("inverted_window", loc, "a window starts from 00:00 to 23:59")
        return False
    if window.end <= window.start:
        problems.add("inverted_window", loc,
                     "the window ends before it starts; set endsNextDay for a window that crosses midnight")
        return False
    if window.minutes > MINUTES_PER_DAY:
        problems.add("window_too_long", loc, "a window lasts at most 24 hours")
        return False
    if window.minutes < MIN_WINDOW_MINUTES:
        problems.add("window_too_short", loc, f"a window lasts at least {MIN_WINDOW_MINUTES} minutes")
        return False
    return True


def validate(rules: OfferedHours) -> OfferedHours:
    """``rules`` when they are usable; else :class:`UnknownTimeZone` or :class:`OfferedHoursInvalid` (422)."""
    if not is_valid_iana(rules.time_zone):
        raise UnknownTimeZone(rules.time_zone)
    problems = _Problems()
    _validate_weekly(rules.weekly, problems)
    _validate_overrides(rules.overrides, problems)
    if not 0 <= rules.min_notice_minutes <= MAX_NOTICE_MINUTES:
        problems.add("notice_out_of_range", ["minNoticeMinutes"], f"from 0 to {MAX_NOTICE_MINUTES} minutes (30 days)")
    for name, value in (("bufferBeforeMinutes", rules.buffer_before_minutes),
                        ("bufferAfterMinutes", rules.buffer_after_minutes)):
        if not 0 <= value <= MAX_BUFFER_MINUTES:
            problems.add("buffer_out_of_range", [name], f"from 0 to {MAX_BUFFER_MINUTES} minutes")
    for name, cap, highest in (("maxPerDay", rules.max_per_day, MAX_PER_DAY),
                               ("maxPerWeek", rules.max_per_week, MAX_PER_WEEK)):
        if cap is not None and not 1 <= cap <= highest:
            problems.add("invalid_cap", [name],
                         f"from 1 to {highest}, or null for no cap (to offer nothing, remove the windows)")
    if problems.items:
        raise OfferedHoursInvalid(problems.items)
    return rules


def _validate_weekly(weekly: Sequence[WeeklyWindow], problems: _Problems) -> None:
    per_day = Counter(item.day for item in weekly)
    for day, count in per_day.items():
        if count > MAX_WINDOWS_PER_DAY:
            problems.add("too_many_windows", ["weekly"], f"at most {MAX_WINDOWS_PER_DAY} windows on a {day}")
    # Minute-of-week spans; Sunday's overnight windows wrap to Monday morning.
    spans: list[tuple[int, int, int]] = []
    for index, item in enumerate(weekly):
        if not _check_window(item.window, ["weekly", index], problems):
            continue
        start = (item.day.iso - 1) * MINUTES_PER_DAY + item.window.start
        end = start + item.window.minutes
        week = 7 * MINUTES_PER_DAY
        if end > week:
            spans += [(start, week, index), (0, end - week, index)]
        else:
            spans.append((start, end, index))
    _report_overlaps(spans, "weekly", problems)


def _report_overlaps(spans: list[tuple[int, int, int]], where: str | tuple[str, int, str],
                     problems: _Problems) -> None:
    """One problem per window that overlaps an earlier-starting one (sweep keeping the furthest end)."""
    spans.sort()
    reach: tuple[int, int, int] | None = None
    reported: set[tuple[int, int]] = set()
    for current in spans:
        if reach is not None and current[0] < reach[1] and reach[2] != current[2]:
            pair = (min(reach[2], current[2]), max(reach[2], current[2]))
            if pair not in reported:
                reported.add(pair)
                loc: list[str | int] = [where, pair[1]] if isinstance(where, str) else [*where, pair[1]]
                problems.add("overlapping_windows", loc, f"overlaps window {pair[0]}; join them into one window")
        if reach is None or current[1] > reach[1]:
            reach = current


def _validate_overrides(overrides: Sequence[DateOverride], problems: _Problems) -> None:
    if len(overrides) > MAX_OVERRIDES:
        problems.add("too_many_overrides", ["overrides"], f"at most {MAX_OVERRIDES} date overrides")
    seen: set[date] = set()
    for index, override in enumerate(overrides):
        if override.day in seen:
            problems.add("duplicate_override_date", ["overrides", index, "date"], "one override per date")
        seen.add(override.day)
        if override.mode is OverrideMode.OFF and override.windows:
            problems.add("invalid_override", ["overrides", index, "windows"], "a day off has no windows")
        if override.mode is not OverrideMode.OFF and not override.windows:
            problems.add("invalid_override", ["overrides", index, "windows"],
                         f"{override.mode.value} needs at least one window (use off for a day off)")
        if len(override.windows) > MAX_OVERRIDE_WINDOWS:
            problems.add("too_many_windows", ["overrides", index, "windows"],
                         f"at most {MAX_OVERRIDE_WINDOWS} windows on a date")
        spans = [
            (w.start, w.end, n)
            for n, w in enumerate(override.windows)
            if _check_window(w, ["overrides", index, "windows", n], problems)
        ]
        _report_overlaps(spans, ("overrides", index, "windows"), problems)


# --- expansion ---------------------------------------------------------------------------


def _wall_base(day: date) -> int:
    """Wall seconds of local midnight starting ``day``."""
    return (day.toordinal() - _EPOCH_ORDINAL) * _DAY


def _day_of_wall(wall: int) -> date:
    return date.fromordinal(wall // _DAY + _EPOCH_ORDINAL)



def _subtract(spans: list[Span], holes: list[Span]) -> list[Span]:
    """Sorted disjoint ``spans`` minus sorted disjoint ``holes``."""
    out: list[Span] = []
    j = 0
    for start, end in spans:
        cursor = start
        while j < len(holes) and holes[j][1] <= cursor:
            j += 1
        k = j
        while k < len(holes) and holes[k][0] < end:
            if holes[k][0] > cursor:
                out.append((cursor, holes[k][0]))
            cursor = max(cursor, holes[k][1])
            k += 1
        if cursor < end:
            out.append((cursor, end))
    return out


def _wall_spans(rules: OfferedHours, first: date, last: date) -> list[Span]:
    """The offered wall-clock spans of windows starting on ``first``..``last``, overrides applied, merged."""
    spans: list[Span] = []
    day = first
    one = timedelta(days=1)
    while day <= last:
        base = _wall_base(day)
        windows = rules.windows_on(day)
        if windows:
            clip_at = base + _DAY if rules.owns_whole_day(day + one) else None
            for window in windows:
                end = base + window.end * 60
                if clip_at is not None and end > clip_at:
                    end = clip_at  # the next date has its own override: it owns its whole date
                spans.append((base + window.start * 60, end))
        day += one
    return merge_spans(spans)


def _capped_wall_spans(rules: OfferedHours, zone: tzinfo, booked_starts: Iterable[int]) -> list[Span]:
    """Whole local days (and Monday-started weeks) that already hold their cap of sessions."""
    per_day: Counter[date] = Counter()
    for start in booked_starts:
        per_day[datetime.fromtimestamp(start, zone).date()] += 1
    holes: list[Span] = []
    if rules.max_per_day is not None:
        holes += [(_wall_base(d), _wall_base(d) + _DAY) for d, n in per_day.items() if n >= rules.max_per_day]
    if rules.max_per_week is not None:
        per_week: Counter[date] = Counter()
        for d, n in per_day.items():
            per_week[d - timedelta(days=d.weekday())] += n
        holes += [(_wall_base(w), _wall_base(w) + _WEEK) for w, n in per_week.items() if n >= rules.max_per_week]
    return merge_spans(holes)


def offered_spans(
    rules: OfferedHours,
    earliest: int,
    latest: int,
    *,
    now: int | None = None,
    booked_starts: Iterable[int] = (),
    zone: tzinfo | None = None,
) -> list[Span]:
    """Offered time inside [earliest, latest] as sorted, disjoint UTC epoch-second spans.

    ``booked_starts`` are the UTC starts of the owner's sessions that count towards the
    caps (the caller filters them: pending or booked, not the session being moved).
    ``zone`` may be given to reuse a resolved zone; by default the rules' own.
    """
    if now is not None:
        earliest = max(earliest, now + rules.min_notice_minutes * 60)
    earliest, latest = max(earliest, _FIRST_INSTANT), min(latest, _LAST_INSTANT)
    if latest <= earliest:
        return []
    zone = zone or rules.zone
    segments = offset_segments(zone, earliest, latest)
    offsets = [offset for _, _, offset in segments]
    first = _day_of_wall(earliest + min(offsets)) - timedelta(days=1)  # yesterday's overnight windows
    last = _day_of_wall(latest + max(offsets))
    walls = _wall_spans(rules, first, last)
    if rules.has_caps:
        holes = _capped_wall_spans(rules, zone, booked_starts)
        if holes:
            walls = _subtract(walls, holes)
    if not walls:
        return []
    wall_starts = [start for start, _ in walls]
    out: list[Span] = []
    for seg_start, seg_end, offset in segments:
        # The instants of this segment whose wall-clock time is offered: map walls back by the offset.
        low, high = max(seg_start, earliest), min(seg_end, latest)
        if low >= high:
            continue
        i = max(0, bisect.bisect_right(wall_starts, low + offset) - 1)
        while i < len(walls) and walls[i][0] < high + offset:
            start = max(walls[i][0] - offset, low)
            end = min(walls[i][1] - offset, high)
            if start < end:
                if out and start <= out[-1][1]:
                    out[-1] = (out[-1][0], max(out[-1][1], end))
                else:
                    out.append((start, end))
            i += 1
    return out


def offered_intervals(
    rules: OfferedHours,
    start: datetime,
    end: datetime,
    *,
    now: datetime | None = None,
    booked_starts: Iterable[datetime] = (),
) -> list[Interval]:
    """:func:`offered_spans` for aware datetimes: offered time inside [start, end] as UTC intervals."""
    spans = offered_spans(
        rules,
        math.ceil(start.timestamp()),
        math.floor(end.timestamp()),
        now=None if now is None else math.ceil(now.timestamp()),
        booked_starts=[math.floor(b.timestamp()) for b in booked_starts],
    )
    return [Interval(datetime.fromtimestamp(s, UTC), datetime.fromtimestamp(e, UTC)) for s, e in spans]


def covers(
    rules: OfferedHours,
    start: datetime,
    end: datetime,
    *,
    now: datetime | None = None,
    booked_starts: Iterable[datetime] = (),
) -> bool:
    """Whether all of [start, end) is offered (notice and caps included)."""
    s, e = math.floor(start.timestamp()), math.ceil(end.timestamp())
    spans = offered_spans(
        rules, s, e,
        now=None if now is None else math.ceil(now.timestamp()),
        booked_starts=[math.floor(b.timestamp()) for b in booked_starts],
    )
    return len(spans) == 1 and spans[0] == (s, e)


def clear_of_buffers(
    rules: OfferedHours, start: datetime, end: datetime, others: Iterable[tuple[datetime, datetime]]
) -> bool:
    """Whether [start, end) keeps the rules' buffers (and does not overlap) around each of ``others``.

    Same reading as the slot engine: ``buffer_before`` minutes free before the session,
    ``buffer_after`` after it.
    """
    before = timedelta(minutes=rules.buffer_before_minutes)
    after = timedelta(minutes=rules.buffer_after_minutes)
    return all(not (other_end > start - before and other_start < end + after) for other_start, other_end in others)
