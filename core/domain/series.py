"""Session series: a mentoring cadence booked as ONE Outlook series, tracked occurrence by occurrence.

A series is the service's record of one recurring meeting it booked (metadata only, like
a session): organizer, attendees, room, the rule (Graph ``patternedRecurrence``) and the
Outlook series master's id. Each occurrence is an ordinary ``Session`` row carrying
``series_id`` and ``original_start`` (the start the pattern gave it, which identifies it in
Outlook even after a move), so occurrences list, reconcile, sync and emit events like
sessions do.

    status   pending --(master written, occurrences read back)--> booked --(cancelled)--> cancelled
                │                                                    │
                └───────────────(last attempt failed)──> failed <────┘ (a change that could not be written)

**Segments.** A series is one or more *segments*, each one Outlook series master with its
own rule. Booking makes the first. Rescheduling a series none of whose occurrences has
started changes that master (Graph PATCH: Outlook moves every occurrence). Rescheduling
a running series changes only what is still ahead: the current master is ended after the
last occurrence that has started and a new master continues from the requested start,
with the new rule, in the same series (Graph has no "this and following" update). Past
occurrences keep their rows and their history.

**Versioned commands**, as for sessions: every change requested through the API bumps
``version`` and sets ``pending_op``; the worker applies a command only while
``(version, op)`` is current, so redelivered, retried or superseded commands change
nothing.

**Occurrence rows** are created from the master's ``/instances`` after it is written (the
calendar's truth, not our expansion); their ids are ``<seriesId>-<original start, UTC,
yyyymmddThhmm>``, so a retried or concurrent read-back writes the same rows. When the
pattern or the times of a master change, Exchange drops every exception (moved,
cancelled, answered occurrences: [MS-OXOCAL] 3.1.4.7.3.5) and the occurrences get new
original starts: rows are matched to the new instances by original start first, then in
order, so the third occurrence stays the third (``session.rescheduled``, not a cancel and
a new booking); rows that were exceptions carry ``seriesNote:
"exceptions_reset_by_pattern_change"`` and so does the series (``match_instances``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Final

from core.domain.calendar import EventMetadata, PatternedRecurrence
from core.domain.errors import Conflict, Forbidden
from core.domain.recurrence import MAX_OCCURRENCES, Occurrence, expand, on_day, to_graph
from core.domain.sessions import AttendeeState, ChangeSource, Session, SessionStatus


class SeriesStatus(StrEnum):
    PENDING = "pending"
    BOOKED = "booked"
    CANCELLED = "cancelled"
    FAILED = "failed"


class SeriesOp(StrEnum):
    CREATE = "create"
    RESCHEDULE = "reschedule"
    CANCEL = "cancel"  # the whole series, or from ``cancel_from`` on


class OnConflict(StrEnum):
    """What a booking does with occurrences someone is busy in (POST /api/sessions ``onConflict``)."""

    FAIL = "fail"  # refuse the series (409 slot_taken naming the occurrences)
    SKIP = "skipClashing"  # book the rest; the clashing ones become cancelled occurrences of the series
    BOOK_ANYWAY = "bookAnyway"  # book every occurrence, busy or not


NOTE_EXCEPTIONS_RESET: Final = "exceptions_reset_by_pattern_change"
NOTE_SKIPPED: Final = "skipped_clash"
OCCURRENCE_STAMP: Final = "%Y%m%dT%H%M"
_OCCURRENCE_ID = re.compile(r"^([0-9a-f]{32})-(\d{8}T\d{4})(?:-(\d{1,2}))?$")
# An occurrence whose start differs from the pattern's by less than this is where the pattern put it.
_SAME_TIME: Final = timedelta(seconds=1)


def occurrence_session_id(series_id: str, original_start: datetime, attempt: int = 1) -> str:
    """The session id of the occurrence the pattern put at ``original_start`` (``attempt`` > 1: taken)."""
    stamp = original_start.astimezone(UTC).strftime(OCCURRENCE_STAMP)
    return f"{series_id}-{stamp}" if attempt <= 1 else f"{series_id}-{stamp}-{attempt}"


def series_of_session_id(session_id: str) -> str | None:
    """The series id an occurrence's session id names, or None for a lone session's id."""
    found = _OCCURRENCE_ID.match(session_id)
    return found.group(1) if found else None


def master_transaction_id(series_id: str, segment: int) -> str:
    """Graph ``transactionId`` of a segment's master (0-based segment): stable across every retry."""
    return series_id if segment == 0 else f"{series_id}.{segment + 1}"


@dataclass(frozen=True, slots=True)
class Segment:
    """One Outlook series master: its rule, its first occurrence's times, and its ids once written."""

    recurrence: PatternedRecurrence
    start: datetime
    end: datetime
    time_zone: str
    master_event_id: str | None = None
    ical_uid: str | None = None

    def occurrences(self) -> list[Occurrence]:
        """What the rule gives (at most ``MAX_OCCURRENCES`` + 1), before any exception."""
        return expand(self.recurrence, self.start, self.end, self.time_zone, limit=MAX_OCCURRENCES + 1)

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def last_end(self) -> datetime:
        found = self.occurrences()
        return found[-1].end if found else self.end

    def same_rule(self, other: Segment) -> bool:
        """Same pattern, range and times, as Graph means them (defaults and spellings aside)."""
        return self.same_pattern(other) and range_key(self.recurrence) == range_key(other.recurrence)

    def same_pattern(self, other: Segment) -> bool:
        """Same pattern and occurrence times: what Exchange keeps exceptions through (a range change is not)."""
        return (pattern_key(self.recurrence), self.start, self.end) == (
            pattern_key(other.recurrence), other.start, other.end)


def pattern_key(rule: PatternedRecurrence) -> tuple[object, ...]:
    """A pattern as Graph means it: only the properties its type uses (Graph fills the others in)."""
    return tuple(sorted(to_graph(rule)["pattern"].items(), key=lambda kv: kv[0]))


def range_key(rule: PatternedRecurrence) -> tuple[object, ...]:
    """A range as Graph means it (its time zone name aside: Graph answers with its own spelling)."""
    rng = rule.range
    return (rng.type, rng.start_date, rng.end_date if rng.type.value == "endDate" else None,
            rng.number_of_occurrences if rng.type.value == "numbered" else None)


@dataclass(frozen=True, slots=True)
class Series:
    """A booked cadence (module docstring). ``segments`` in time order; the last is the current one."""

    tenant_id: str
    series_id: str
    organizer_id: str
    organizer_address: str
    attendees: tuple[AttendeeState, ...]
    segments: tuple[Segment, ...]
    status: SeriesStatus = SeriesStatus.PENDING
    pending_op: SeriesOp | None = SeriesOp.CREATE
    version: int = 1
    room: AttendeeState | None = None
    online_meeting: bool = True
    online_provider: str | None = None
    join_url: str | None = None
    source: ChangeSource = ChangeSource.PLATFORM
    failure_reason: str | None = None
    pairing_id: str | None = None
    on_conflict: OnConflict = OnConflict.FAIL
    skipped: tuple[datetime, ...] = ()  # original starts booked as cancelled occurrences (skipClashing)
    slot_checked: bool = False  # the worker's free/busy re-check before the first write is done
    requested: Segment | None = None  # a pending reschedule: the rule and times asked for
    split_from: datetime | None = None  # ... from this occurrence on (original start); None: the whole master
    cancel_from: date | None = None  # cancelled from this date on (series zone); pending while op is cancel
    cancel_all: bool = False  # the cancel asked for is "the whole series" (a running one keeps its past)
    note: str | None = None
    change_key: str | None = None
    last_modified: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    # --- questions ---------------------------------------------------------------------

    @property
    def current(self) -> Segment:
        return self.segments[-1]

    @property
    def time_zone(self) -> str:
        return self.current.time_zone

    @property
    def start(self) -> datetime:
        """The first occurrence of the series (of its first segment)."""
        return self.segments[0].start

    @property
    def end(self) -> datetime:
        return self.segments[0].end

    @property
    def master_event_id(self) -> str | None:
        return self.current.master_event_id

    @property
    def is_final(self) -> bool:
        return self.status in (SeriesStatus.CANCELLED, SeriesStatus.FAILED) and self.pending_op is None

    def involves(self, user_id: str) -> bool:
        return user_id == self.organizer_id or any(a.user_id == user_id for a in self.attendees)

    def attendee_ids(self) -> list[str]:
        return [a.user_id for a in self.attendees if a.user_id]

    def command_is_current(self, version: int, op: SeriesOp) -> bool:
        return self.pending_op == op and self.version == version

    def segment_of(self, original_start: datetime) -> int:
        """The index of the segment an occurrence (by original start) belongs to."""
        position = 0
        for i, seg in enumerate(self.segments):
            if original_start >= seg.start:
                position = i
        return position

    # --- requested through the API -----------------------------------------------------

    def require_changeable(self) -> None:
        if self.pending_op is not None:
            raise Conflict("A change of this series is still being written to Outlook; try again shortly.",
                           code="series_change_pending")
        if self.status in (SeriesStatus.CANCELLED, SeriesStatus.FAILED):
            raise Conflict("This series is no longer active.", code="series_not_active")

    def request_reschedule(self, target: Segment, split_from: datetime | None, now: datetime) -> Series:
        self.require_changeable()
        return replace(self, pending_op=SeriesOp.RESCHEDULE, requested=target, split_from=split_from,
                       version=self.version + 1, source=ChangeSource.PLATFORM, failure_reason=None, updated_at=now)

    def request_cancel(self, from_date: date | None, now: datetime, *, whole: bool = False) -> Series:
        """Cancel from ``from_date`` (series zone) on (None: every occurrence); ``whole``: the caller cancels
        the series, which then ends ``cancelled`` even when its started occurrences are kept."""
        if self.status == SeriesStatus.CANCELLED and self.pending_op is None:
            raise Conflict("This series is already cancelled.", code="series_cancelled")
        if self.pending_op is not None and self.pending_op != SeriesOp.CREATE:
            raise Conflict("A change of this series is still being written to Outlook; try again shortly.",
                           code="series_change_pending")
        return replace(self, pending_op=SeriesOp.CANCEL, cancel_from=from_date, cancel_all=whole or from_date is None,
                       version=self.version + 1,
                       source=ChangeSource.PLATFORM, failure_reason=None, updated_at=now)

    # --- applied by the worker ---------------------------------------------------------

    def with_segment(self, index: int, segment: Segment) -> Series:
        segments = list(self.segments)
        if index == len(segments):
            segments.append(segment)
        else:
            segments[index] = segment
        return replace(self, segments=tuple(segments))

    def mark_booked(self, now: datetime) -> Series:
        return replace(self, status=SeriesStatus.BOOKED, pending_op=None, requested=None, split_from=None,
                       failure_reason=None, updated_at=now)

    def mark_cancelled(self, now: datetime, source: ChangeSource = ChangeSource.PLATFORM) -> Series:
        return replace(self, status=SeriesStatus.CANCELLED, pending_op=None, requested=None, split_from=None,
                       source=source, failure_reason=None, updated_at=now)

    def mark_failed(self, reason: str, now: datetime) -> Series:
        return replace(self, status=SeriesStatus.FAILED, pending_op=None, requested=None, split_from=None,
                       failure_reason=reason[:200], updated_at=now)


def require_organizer(series: Series, user_id: str) -> None:
    if user_id != series.organizer_id:
        raise Forbidden("Only the organizer can change this series.", code="not_organizer")


# --- occurrence rows ------------------------------------------------------------------------


def occurrence_row(series: Series, meta: EventMetadata, session_id: str, *, now: datetime,
                   source: ChangeSource, status: SessionStatus = SessionStatus.BOOKED,
                   note: str | None = None) -> Session:
    """A new occurrence row from what ``/instances`` says about it (responses included)."""
    answers = {a.address.lower(): a.response for a in meta.attendees}
    attendees = tuple(AttendeeState(a.address, answers.get(a.address.lower(), a.response), a.user_id)
                      for a in series.attendees)
    room = None
    if series.room is not None:
        room = AttendeeState(series.room.address, answers.get(series.room.address.lower(), series.room.response))
    return Session(
        tenant_id=series.tenant_id,
        session_id=session_id,
        organizer_id=series.organizer_id,
        organizer_address=series.organizer_address,
        attendees=attendees,
        start=meta.start,
        end=meta.end,
        time_zone=series.time_zone,
        status=status,
        pending_op=None,
        version=1,
        room=room,
        online_meeting=series.online_meeting,
        online_provider=series.online_provider,
        join_url=meta.join_url or series.join_url,
        event_id=meta.event_id,
        ical_uid=meta.ical_uid,
        change_key=meta.change_key,
        last_modified=meta.last_modified,
        source=source,
        pairing_id=series.pairing_id,
        allow_conflicts=series.on_conflict is not OnConflict.FAIL,
        series_id=series.series_id,
        original_start=meta.original_start or meta.start,
        series_note=note,
        created_at=now,
        updated_at=now,
    )


def is_exception(row: Session, duration: timedelta) -> bool:
    """Was this occurrence changed on its own (moved, cancelled, declined) rather than left as the pattern made it?"""
    if row.status is SessionStatus.CANCELLED:
        return True
    original = row.original_start or row.start
    if abs(row.start - original) > _SAME_TIME or abs((row.end - row.start) - duration) > _SAME_TIME:
        return True
    return any(a.response.value == "declined" for a in row.attendees)


@dataclass(frozen=True, slots=True)
class Matched:
    """How the rows of a segment meet the instances read back (``match_instances``)."""

    same: list[tuple[Session, EventMetadata]] = field(default_factory=list)  # by original start
    remapped: list[tuple[Session, EventMetadata]] = field(default_factory=list)  # in order, after a new rule
    gone: list[Session] = field(default_factory=list)  # rows whose occurrence no longer exists
    new: list[EventMetadata] = field(default_factory=list)  # instances no row stands for yet


def match_instances(rows: Sequence[Session], instances: Sequence[EventMetadata],
                    in_scope: Callable[[Session], bool]) -> Matched:
    """Pair occurrence rows with the instances Outlook lists now.

    By original start first (an occurrence keeps it through moves and answers). What is left
    in scope is paired in order: after a new rule or new times every original start changes,
    and the k-th remaining row stands for the k-th remaining instance, so the third
    occurrence stays the third. Rows left over are gone (cancelled or cut off); instances
    left over are new occurrences. Rows out of scope (before the window read) are only
    matched exactly, never judged gone.
    """
    by_original = {(i.original_start or i.start): i for i in instances}
    out = Matched()
    used: set[str] = set()
    rest: list[Session] = []
    for row in sorted(rows, key=lambda r: (r.original_start or r.start, r.session_id)):
        found = by_original.get(row.original_start or row.start)
        if found is not None and found.event_id not in used:
            out.same.append((row, found))
            used.add(found.event_id)
        elif in_scope(row):
            rest.append(row)
    left = sorted((i for i in instances if i.event_id not in used), key=lambda i: (i.original_start or i.start))
    for row, instance in zip(rest, left, strict=False):
        out.remapped.append((row, instance))
    out.gone.extend(rest[len(left):])
    out.new.extend(left[len(rest):])
    return out


def cut_date(series: Series, now: datetime) -> date | None:
    """The date (series zone) from which "cancel the whole series" cancels: the day of the first
    occurrence that has not started (None when none has started: everything goes)."""
    started = [o for seg in series.segments for o in seg.occurrences() if o.start <= now]
    if not started:
        return None
    return on_day(max(o.start for o in started), series.time_zone) + timedelta(days=1)
