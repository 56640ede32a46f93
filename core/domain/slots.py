"""The slot engine: free meeting times shared by several people.

Inputs are each participant's busy intervals and working hours (in their own zone) as
getSchedule reports them; the output is every slot of the requested length, in the
requested IANA zone, that nobody is busy for. Decisions, so callers can rely on them:

* **Blocking statuses.** busy, oof and unknown block (unknown: we cannot prove the
  person is free); tentative blocks unless ``tentative_blocks`` is False; free and
  workingElsewhere never block.
* **Buffers** keep ``buffer_before`` minutes free before a slot and ``buffer_after``
  after it, measured against busy time only (not against working hours or the window).
* **Grid.** Slot starts are aligned to the step on the wall clock of the *output* zone,
  counted from local midnight each day: with a 15-minute step slots start at 9:00,
  9:15 ... even on daylight-saving days and in zones such as Asia/Kathmandu (+05:45).
  On a fall-back day both passes through the repeated hour are on the grid.
* **Length** is real elapsed time: a 60-minute slot across a spring-forward change
  spans two wall-clock hours.
* **Working hours** are wall-clock times in each participant's own zone, evaluated per
  local date there; a slot must lie fully inside every participant's working time.
  Hours whose end is not after their start run past midnight. A non-existent wall
  time (a DST gap) is read as PEP 495 ``fold=0`` does (shifted forward by the gap); a
  repeated one as its first occurrence. A participant without working hours is *not*
  constrained by them (Graph omits them for rooms and for mailboxes that never set any).
* **Notice.** With ``now`` given, slots start no earlier than ``now + min_notice``;
  without it there is no notice rule (the domain never reads the clock itself).
* **Offered hours** (``Participant.offered``, core/domain/offered_hours.py): a
  participant with offered intervals is only available inside them (an empty list:
  never); ``None`` means no such rule. A participant's own buffers widen only their own
  busy items, on top of the request's (the larger of the two applies).

Internally every instant is an integer of UTC epoch seconds (busy starts rounded down,
ends up, so rounding can only block more), which keeps the sweep cheap: one sort of
all busy items, one merge, one pass per participant's working time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from core.domain.calendar import BusyInterval, FreeBusyStatus, WorkingHours
from core.domain.errors import UnknownTimeZone, ValidationFailed
from core.domain.timezones import is_valid_iana, resolve_zone

__all__ = [
    "Interval",
    "Participant",
    "Slot",
    "SlotRequest",
    "blocks",
    "find_slots",
    "merge_busy",
    "merge_intervals",
    "offset_segments",
]

_DAY = 86_400
_ALWAYS_BLOCKING = (FreeBusyStatus.BUSY, FreeBusyStatus.OOF, FreeBusyStatus.UNKNOWN)
# How often the output zone's offset is sampled to find its transitions in the window.
_OFFSET_PROBE_SECONDS = 12 * 3600  # no zone changes offset twice within 12 hours

# (start, end) in UTC epoch seconds; the engine's working representation.
_Span = tuple[int, int]
# (from, to, UTC offset seconds): a stretch in which the output zone's offset is constant.
_Segment = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class SlotRequest:
    """What to search: the window, the slot shape and the rules that constrain it.

    ``window_start``/``window_end`` and ``now`` must be timezone-aware; slots lie fully
    inside the window. ``time_zone`` is the IANA zone slots are returned and aligned in.
    """

    window_start: datetime
    window_end: datetime
    duration_minutes: int
    time_zone: str = "UTC"
    step_minutes: int = 15
    buffer_before_minutes: int = 0
    buffer_after_minutes: int = 0
    min_notice_minutes: int = 0
    now: datetime | None = None
    working_hours_only: bool = True
    tentative_blocks: bool = True

    def __post_init__(self) -> None:
        problems: dict[str, str] = {}
        for name in ("window_start", "window_end", "now"):
            value = getattr(self, name)
            if value is not None and value.utcoffset() is None:
                problems[name] = "must include a time zone offset"
        if not problems and self.window_end.timestamp() <= self.window_start.timestamp():
            problems["window_end"] = "must be after window_start"
        if self.duration_minutes <= 0:
            problems["duration_minutes"] = "must be positive"
        if self.step_minutes <= 0:
            problems["step_minutes"] = "must be positive"
        for name in ("buffer_before_minutes", "buffer_after_minutes", "min_notice_minutes"):
            if getattr(self, name) < 0:
                problems[name] = "must not be negative"
        if problems:
            raise ValidationFailed("The availability request is not valid.", details=problems)
        if not is_valid_iana(self.time_zone):
            raise UnknownTimeZone(self.time_zone)


@dataclass(frozen=True, slots=True)
class Participant:
    """One person (or room) whose calendar constrains the slots.

    ``id`` is the caller's handle for the participant (an address); it is only carried
    along. ``working_hours`` None means "no working-hours constraint". ``offered`` None
    means "no offered-hours rule"; otherwise the participant is available only inside
    those intervals. ``buffer_*_minutes`` widen this participant's busy items only.
    """

    id: str
    busy: Sequence[BusyInterval] = field(default_factory=tuple)
    working_hours: WorkingHours | None = None
    offered: Sequence[Interval] | None = None
    buffer_before_minutes: int = 0
    buffer_after_minutes: int = 0


@dataclass(frozen=True, slots=True)
class Slot:
    """A free time, aware in the request's zone.

    Compare or subtract slots through ``.timestamp()`` or UTC: Python compares two
    datetimes of the same zone by wall clock, ignoring the fold of a repeated hour.
    """

    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Interval:
    """A half-open stretch of time [start, end) with aware datetimes."""

    start: datetime
    end: datetime


def blocks(status: FreeBusyStatus, *, tentative_blocks: bool = True) -> bool:
    """Whether a busy item with this status makes its owner unavailable."""
    if status is FreeBusyStatus.TENTATIVE:
        return tentative_blocks
    return status in _ALWAYS_BLOCKING


def merge_intervals(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, non-overlapping union of ``intervals``; touching intervals are joined.

    Instants are compared as UTC timestamps: Python compares two datetimes of one zone
    by wall clock, which would confuse the two passes through a repeated hour.
    """
    keyed = sorted(
        ((item.start.timestamp(), item.end.timestamp(), item) for item in intervals),
        key=lambda entry: (entry[0], entry[1]),
    )
    merged: list[Interval] = []
    last_end = 0.0
    for start, end, item in keyed:
        if merged and start <= last_end:
            if end > last_end:
                merged[-1] = Interval(merged[-1].start, item.end)
                last_end = end
        else:
            merged.append(item)
            last_end = end
    return merged


def merge_busy(busy: Iterable[BusyInterval], *, tentative_blocks: bool = True) -> list[Interval]:
    """The merged blocking time of one or more calendars (statuses as in :func:`blocks`)."""
    return merge_intervals(
        Interval(item.start, item.end)
        for item in busy
        if item.end >= item.start and blocks(item.status, tentative_blocks=tentative_blocks)
    )


def find_slots(request: SlotRequest, participants: Sequence[Participant]) -> list[Slot]:
    """Every step-aligned slot in the window that all participants can attend, in order.

    Raises :class:`UnknownTimeZone` when a participant's working-hours zone cannot be
    resolved (only when ``working_hours_only`` is set).
    """
    duration = request.duration_minutes * 60
    earliest = _ceil_seconds(request.window_start)
    if request.now is not None:
        earliest = max(earliest, _ceil_seconds(request.now) + request.min_notice_minutes * 60)
    latest = _floor_seconds(request.window_end)
    if latest - earliest < duration:
        return []

    available: list[_Span] = [(earliest, latest)]
    if request.working_hours_only:
        for participant in participants:
            if participant.working_hours is not None:
                hours = _working_spans(participant.working_hours, earliest, latest)
                available = _intersect(available, hours)
                if not available:
                    return []
    for participant in participants:
        if participant.offered is not None:
            offered = merge_spans(
                (_ceil_seconds(item.start), _floor_seconds(item.end)) for item in participant.offered
            )
            available = _intersect(available, offered)
            if not available:
                return []

    blocked = _blocked_spans(request, participants, earliest, latest)
    free = _subtract(available, blocked, duration)
    if not free:
        return []

    zone = ZoneInfo(request.time_zone)
    segments = offset_segments(zone, earliest, latest)
    starts = _aligned_starts(free, duration, request.step_minutes * 60, segments)
    fromtimestamp = datetime.fromtimestamp
    # Ends usually coincide with later starts (duration a multiple of the step): reuse them.
    local = {start: fromtimestamp(start, zone) for start in starts}
    return [
        Slot(local[start], local.get(start + duration) or fromtimestamp(start + duration, zone)) for start in starts
    ]


def _floor_seconds(moment: datetime) -> int:
    return math.floor(moment.timestamp())


def _ceil_seconds(moment: datetime) -> int:
    return math.ceil(moment.timestamp())


def _blocked_spans(
    request: SlotRequest, participants: Sequence[Participant], earliest: int, latest: int
) -> list[_Span]:
    """All participants' blocking items, widened by the buffers, sorted and merged."""
    # A tuple: membership tests by identity first, cheaper than hashing an enum member.
    blocking = _ALWAYS_BLOCKING + ((FreeBusyStatus.TENTATIVE,) if request.tentative_blocks else ())
    floor, ceil = math.floor, math.ceil
    spans: list[_Span] = []
    for participant in participants:
        before = max(request.buffer_before_minutes, participant.buffer_before_minutes) * 60
        after = max(request.buffer_after_minutes, participant.buffer_after_minutes) * 60
        # A slot [s, s+d) conflicts with [bs, be) when s < be + before and s + d > bs - after.
        spans += [
            (floor(item.start.timestamp()) - after, ceil(item.end.timestamp()) + before)
            for item in participant.busy
            if item.status in blocking
        ]
    spans.sort()
    merged: list[_Span] = []
    current_start = current_end = 0
    started = False
    for start, end in spans:
        if end < start or end < earliest or start > latest:
            continue  # a reversed (malformed) item, or one wholly outside the search
        if not started:
            current_start, current_end, started = start, end, True
        elif start <= current_end:
            current_end = max(current_end, end)
        else:
            merged.append((current_start, current_end))
            current_start, current_end = start, end
    if started:
        merged.append((current_start, current_end))
    return merged


def _working_spans(hours: WorkingHours, earliest: int, latest: int) -> list[_Span]:
    """One participant's working time over [earliest, latest], from their local dates."""
    zone = resolve_zone(hours.time_zone)
    iso_days = {day.iso for day in hours.days}
    if not iso_days:
        return []
    first = datetime.fromtimestamp(earliest, zone).date() - timedelta(days=1)
    last = datetime.fromtimestamp(latest, zone).date()
    overnight = hours.end <= hours.start
    spans: list[_Span] = []
    day = first
    while day <= last:
        if day.isoweekday() in iso_days:
            start = _wall_seconds(day, hours, zone, end=False)
            end_day = day + timedelta(days=1) if overnight else day
            end = _wall_seconds(end_day, hours, zone, end=True)
            if end > earliest and start < latest and end > start:
                if spans and start <= spans[-1][1]:
                    spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
                else:
                    spans.append((start, end))
        day += timedelta(days=1)
    return spans


def _wall_seconds(day: date, hours: WorkingHours, zone: tzinfo, *, end: bool) -> int:
    moment = datetime.combine(day, hours.end if end else hours.start, tzinfo=zone)
    return _floor_seconds(moment) if end else _ceil_seconds(moment)


def _intersect(first: list[_Span], second: list[_Span]) -> list[_Span]:
    """Intersection of two sorted, disjoint span lists (two-pointer sweep)."""
    result: list[_Span] = []
    i = j = 0
    while i < len(first) and j < len(second):
        start = max(first[i][0], second[j][0])
        end = min(first[i][1], second[j][1])
        if start < end:
            result.append((start, end))
        if first[i][1] < second[j][1]:
            i += 1
        else:
            j += 1
    return result


def _subtract(available: list[_Span], blocked: list[_Span], duration: int) -> list[_Span]:
    """``available`` minus ``blocked`` (both sorted), keeping only gaps a slot fits in."""
    free: list[_Span] = []
    j = 0
    count = len(blocked)
    for start, end in available:
        cursor = start
        while j < count and blocked[j][1] <= cursor:
            j += 1
        k = j
        while k < count and blocked[k][0] < end:
            block_start, block_end = blocked[k]
            if block_start - cursor >= duration:
                free.append((cursor, block_start))
            cursor = max(cursor, block_end)
            k += 1
        if end - cursor >= duration:
            free.append((cursor, end))
    return free


def merge_spans(spans: Iterable[_Span]) -> list[_Span]:
    """Sorted union of spans (touching ones joined); empty or reversed spans dropped."""
    merged: list[_Span] = []
    for start, end in sorted(spans):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def offset_segments(zone: tzinfo, earliest: int, latest: int) -> list[_Segment]:
    """Stretches ``(from, to, offset seconds)`` of constant UTC offset of ``zone`` covering
    [earliest, latest] (UTC epoch seconds; the last one ends at ``latest + 1``).

    The offset is probed every few hours and each change is pinned to the second by
    bisection, so the grid can then be computed with integer arithmetic.
    """

    def offset_at(moment: int) -> int:
        value = datetime.fromtimestamp(moment, zone).utcoffset()
        return int(value.total_seconds()) if value is not None else 0

    segments: list[_Segment] = []
    segment_start = earliest
    current = offset_at(earliest)
    probe = earliest
    while probe < latest:
        following = min(probe + _OFFSET_PROBE_SECONDS, latest)
        if offset_at(following) == current:
            probe = following
            continue
        low, high = probe, following  # offset(low) == current != offset(high)
        while high - low > 1:
            middle = (low + high) // 2
            if offset_at(middle) == current:
                low = middle
            else:
                high = middle
        segments.append((segment_start, high, current))
        segment_start, current, probe = high, offset_at(high), high
    segments.append((segment_start, latest + 1, current))
    return segments


def _aligned_starts(free: list[_Span], duration: int, step: int, segments: list[_Segment]) -> list[int]:
    """Slot starts on the output zone's wall-clock step grid inside the free spans."""
    divides_day = _DAY % step == 0
    starts: list[int] = []
    extend = starts.extend
    s = 0
    for free_start, free_end in free:
        last_start = free_end - duration
        while s < len(segments) and segments[s][1] <= free_start:
            s += 1
        t = s
        while t < len(segments) and segments[t][0] <= last_start:
            segment_start, segment_end, offset = segments[t]
            low = max(free_start, segment_start) + offset  # local wall-clock seconds
            high = min(last_start, segment_end - 1) + offset
            if low <= high:
                if divides_day:
                    first = -(-low // step) * step
                    extend(range(first - offset, high - offset + 1, step))
                else:
                    extend(_per_day_grid(low, high, step, offset))
            t += 1
    return starts


def _per_day_grid(low: int, high: int, step: int, offset: int) -> list[int]:
    """Grid restarting at each local midnight, for steps that do not divide a day."""
    result: list[int] = []
    day_start = (low // _DAY) * _DAY
    while day_start <= high:
        first = max(low, day_start)
        aligned = day_start + -(-(first - day_start) // step) * step
        stop = min(high, day_start + _DAY - 1)
        result.extend(range(aligned - offset, stop - offset + 1, step))
        day_start += _DAY
    return result
