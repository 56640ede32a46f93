"""Occurrence rows follow what Outlook lists for a series master (``/instances``): after the worker
writes a master, and whenever Outlook tells us a series changed.

``fold`` is the one place occurrence rows are created and kept in step. It pairs the rows with
the instances (``core.domain.series.match_instances``: by original start, then in order) and
saves only what changed:

* an instance no row stands for -> a new row (``<seriesId>-<original start>``: the same id
  whoever writes it first, so a retried or concurrent read-back never duplicates a row);
* the same occurrence -> ``Session.apply_observed`` (moved, declined, accepted...), saved only
  when something the API shows changed (times, status, responses);
* a row paired with another instance (the master got a new rule or new times) -> that
  instance's id, original start and times; a row that was an exception (moved, cancelled,
  declined) carries ``seriesNote: exceptions_reset_by_pattern_change``, because Exchange drops
  every exception when a pattern changes ([MS-OXOCAL] 3.1.4.7.3.5) and the calendar is the
  truth; a cancelled row brought back by that is booked again;
* a row whose occurrence Outlook no longer lists -> cancelled.

``SeriesSync.refresh`` is the sync back from Outlook for one series: Graph names the series
master in change notifications for any occurrence change (a decline, a move, a deleted
occurrence, a new pattern: local/simulator/series.py cites the reports), so the master is read
(one ``get_event``: its rule and times) and its instances from an hour ago to the series' end
(one ``list_instances``, paged), and the rows are folded with source ``outlook``. A master
that is gone or cancelled cancels its rows that have not started, and the series. Occurrences
already over are history and are not touched. A series with a change of ours pending is
left to the worker, which reads the instances back itself when it is done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Final

from core.domain.calendar import EventMetadata, GraphIdentity
from core.domain.errors import ConcurrencyConflict, Conflict, ItemNotFound, ValidationFailed
from core.domain.recurrence import MAX_SERIES_SPAN, Occurrence, crosses_boundary
from core.domain.series import (
    NOTE_EXCEPTIONS_RESET,
    Segment,
    Series,
    SeriesStatus,
    is_exception,
    match_instances,
    occurrence_row,
    occurrence_session_id,
)
from core.domain.sessions import AttendeeState, ChangeSource, Session, SessionStatus
from core.ports import CalendarGateway, Clock, TableStore
from core.services.identity import GraphIdentities
from core.services.stores.codec import Versioned
from core.services.stores.connections import ConnectionRepository
from core.services.stores.integrations import IntegrationRepository
from core.services.stores.series import SeriesRepository
from core.services.stores.sessions import SessionRepository

log = logging.getLogger(__name__)

RECENT_PAST: Final = timedelta(hours=1)  # occurrences that just started still get their last changes
INSTANCE_MARGIN: Final = timedelta(days=1)
MAX_RACE_RETRIES: Final = 6


@dataclass
class FoldReport:
    """What one fold changed (counts of rows)."""

    created: int = 0
    changed: int = 0
    cancelled: int = 0
    reset: int = 0  # rows whose exception Exchange dropped
    unchanged: int = 0


@dataclass
class SeriesSyncReport:
    """What one refresh did; ``calls`` counts Graph requests (pages of instances included)."""

    series: int = 0
    folded: FoldReport = field(default_factory=FoldReport)
    calls: int = 0


def _visible(s: Session) -> tuple[object, ...]:
    """What the API and the product events show of an occurrence (change keys alone are not a change)."""
    return (s.status, s.start, s.end, s.attendees, s.room, s.event_id, s.original_start, s.series_note, s.pending_op)


def _answers(row: Session | Series, meta: EventMetadata) -> tuple[tuple[AttendeeState, ...], AttendeeState | None]:
    """The attendees' and the room's answers as ``meta`` (an occurrence, or the master for the whole series)
    records them; people Outlook does not list keep theirs."""
    by_address = {a.address.lower(): a.response for a in meta.attendees}
    attendees = tuple(AttendeeState(a.address, by_address.get(a.address.lower(), a.response), a.user_id)
                      for a in row.attendees)
    room = row.room
    if room is not None:
        room = AttendeeState(room.address, by_address.get(room.address.lower(), room.response), room.user_id)
    return attendees, room


class SeriesSync:
    """Folds instances into occurrence rows and refreshes series from Outlook (module docstring)."""

    def __init__(self, tables: TableStore, gateway: CalendarGateway, clock: Clock,
                 identities: GraphIdentities | None = None) -> None:
        self.tables = tables
        self.gateway = gateway
        self.clock = clock
        self.series = SeriesRepository(tables)
        self.sessions = SessionRepository(tables)
        self.identities = identities or GraphIdentities(IntegrationRepository(tables), ConnectionRepository(tables))

    # --- rows ----------------------------------------------------------------------------------

    def rows_of(self, series: Series, index: int) -> list[Versioned[Session]]:
        """The occurrence rows of one segment (by original start between its start and the next one's)."""
        lower = series.segments[index].start if index > 0 else None
        upper = series.segments[index + 1].start if index + 1 < len(series.segments) else None
        out = []
        for row in self.sessions.occurrences(series.tenant_id, series.series_id):
            original = row.value.original_start or row.value.start
            if (lower is None or original >= lower) and (upper is None or original < upper):
                out.append(row)
        return out

    def fold(self, series: Series, rows: Sequence[Versioned[Session]], instances: Sequence[EventMetadata], *,
             in_scope: Callable[[Session], bool], source: ChangeSource, reset: bool,
             duration: timedelta) -> FoldReport:
        """Bring ``rows`` in step with ``instances`` (module docstring). ``reset``: the master's rule or times
        changed, so every exception was dropped; ``duration`` is the pattern's occurrence length (to tell a
        row moved on its own from one the pattern placed)."""
        report = FoldReport()
        now = self.clock.now()
        current = {r.value.session_id: r for r in rows}
        matched = match_instances([r.value for r in rows], instances, in_scope)
        for row, meta in matched.same:
            self._same(current[row.session_id], meta, source=source, reset=reset, duration=duration, report=report)
        for row, meta in matched.remapped:
            note = NOTE_EXCEPTIONS_RESET if (reset and is_exception(row, duration)) else row.series_note
            if reset and is_exception(row, duration):
                report.reset += 1
            self._save(current[row.session_id], _remapper(meta, note, source, now), report)
        for row in matched.gone:
            if row.status is SessionStatus.CANCELLED and row.pending_op is None:
                report.unchanged += 1
                continue
            self._save(current[row.session_id], lambda r: _cancelled(r, source, now), report, cancelled=True)
        for meta in matched.new:
            self._create(series, meta, source=source, now=now, report=report)
        return report

    def _same(self, row: Versioned[Session], meta: EventMetadata, *, source: ChangeSource, reset: bool,
              duration: timedelta, report: FoldReport) -> None:
        s, now = row.value, self.clock.now()
        if s.status is SessionStatus.CANCELLED and s.pending_op is None:
            if reset:  # a cancelled occurrence brought back by a new pattern (Exchange drops cancellations)
                report.reset += 1
                self._save(row, lambda r: self._remap(r, meta, NOTE_EXCEPTIONS_RESET, source, now), report)
            else:
                report.unchanged += 1
            return
        note = s.series_note
        if reset and is_exception(s, duration):
            note = NOTE_EXCEPTIONS_RESET
            report.reset += 1

        def change(r: Session) -> Session | None:
            observed = r.apply_observed(meta, now) or r
            if source is ChangeSource.PLATFORM and observed.source is not r.source:
                observed = replace(observed, source=ChangeSource.PLATFORM)
            if observed.event_id != meta.event_id:
                observed = replace(observed, event_id=meta.event_id)
            return replace(observed, series_note=note) if note != observed.series_note else observed

        self._save(row, change, report)

    @staticmethod
    def _remap(r: Session, meta: EventMetadata, note: str | None, source: ChangeSource, now: datetime) -> Session:
        attendees, room = _answers(r, meta)
        revived = r.status is SessionStatus.CANCELLED and r.pending_op is None
        return replace(
            r,
            event_id=meta.event_id,
            original_start=meta.original_start or meta.start,
            start=meta.start if r.pending_op is None or revived else r.start,
            end=meta.end if r.pending_op is None or revived else r.end,
            attendees=attendees,
            room=room,
            status=SessionStatus.BOOKED if revived or r.status is SessionStatus.FAILED else r.status,
            pending_op=None if revived else r.pending_op,
            change_key=meta.change_key,
            last_modified=meta.last_modified or r.last_modified,
            ical_uid=r.ical_uid or meta.ical_uid,
            source=source,
            failure_reason=None,
            series_note=note,
            updated_at=now,
        )

    def _save(self, row: Versioned[Session], change: Callable[[Session], Session | None], report: FoldReport,
              *, cancelled: bool = False) -> None:
        """Apply ``change`` and save with the row's ETag when something visible changed (re-read on a race)."""
        found: Versioned[Session] | None = row
        for _ in range(MAX_RACE_RETRIES):
            if found is None:
                return
            updated = change(found.value)
            if updated is None or _visible(updated) == _visible(found.value):
                report.unchanged += 1
                return
            try:
                self.sessions.save(updated, found.etag, previous=found.value)
            except ConcurrencyConflict:
                found = self.sessions.get(found.value.tenant_id, found.value.session_id)
                continue
            if cancelled:
                report.cancelled += 1
            else:
                report.changed += 1
            return
        raise ConcurrencyConflict("An occurrence kept changing while the series was read back.")

    def _create(self, series: Series, meta: EventMetadata, *, source: ChangeSource, now: datetime,
                report: FoldReport) -> None:
        original = meta.original_start or meta.start
        for attempt in range(1, 10):
            session_id = occurrence_session_id(series.series_id, original, attempt)
            existing = self.sessions.get(series.tenant_id, session_id)
            if existing is not None:
                if (existing.value.original_start or existing.value.start) == original:
                    report.unchanged += 1  # someone else wrote it meanwhile
                    return
                continue  # the id belongs to a row that was remapped to another occurrence
            row = occurrence_row(series, meta, session_id, now=now, source=source)
            try:
                self.sessions.add(row)
            except (Conflict, ConcurrencyConflict):
                continue  # written concurrently: look again
            report.created += 1
            return
        log.error("series: no free id for an occurrence row", extra={"tenant": series.tenant_id})

    # --- from Outlook ----------------------------------------------------------------------------

    def refresh(self, tenant_id: str, series_id: str, *, who: GraphIdentity | None = None) -> SeriesSyncReport:
        """Re-read one series' master(s) and instances and fold them in (source ``outlook``)."""
        report = SeriesSyncReport()
        found = self.series.get(tenant_id, series_id)
        if found is None or found.value.pending_op is not None or found.value.status is not SeriesStatus.BOOKED:
            return report
        series = found.value
        who = who or self.identities.for_user(tenant_id, series.organizer_id)
        now = self.clock.now()
        window_start = now - RECENT_PAST
        report.series = 1
        updated = series
        for index, segment in enumerate(series.segments):
            if segment.master_event_id is None or segment.last_end() < window_start:
                continue
            try:
                master: EventMetadata | None = self.gateway.get_event(who, series.organizer_address,
                                                                      segment.master_event_id)
            except ItemNotFound:
                master = None
            report.calls += 1
            rows = self.rows_of(series, index)
            if master is None or master.is_cancelled:
                self._gone(rows, window_start, report)
                if index == len(series.segments) - 1:
                    updated = updated.mark_cancelled(now, ChangeSource.OUTLOOK)
                continue
            new_segment = _observed_segment(segment, master)
            reset = not new_segment.same_pattern(segment)  # a new range alone keeps the exceptions
            ruled = not new_segment.same_rule(segment)
            until = min(max(new_segment.last_end(), segment.last_end()), new_segment.start + MAX_SERIES_SPAN)
            instances = list(self.gateway.list_instances(who, series.organizer_address, segment.master_event_id,
                                                         window_start, until + INSTANCE_MARGIN))
            report.calls += 1

            def in_scope(r: Session) -> bool:
                return max(r.start, r.original_start or r.start) >= window_start

            folded = self.fold(updated, rows, instances, in_scope=in_scope, source=ChangeSource.OUTLOOK,
                               reset=reset, duration=segment.duration)
            _merge(report.folded, folded)
            if ruled:
                updated = updated.with_segment(index, new_segment)
                updated = replace(updated, source=ChangeSource.OUTLOOK, updated_at=now,
                                  note=NOTE_EXCEPTIONS_RESET if folded.reset else updated.note)
            if index == len(series.segments) - 1:
                attendees, room = _answers(updated, master)
                if (attendees, room) != (updated.attendees, updated.room):
                    updated = replace(updated, attendees=attendees, room=room, updated_at=now)
        if updated != series:
            try:
                self.series.save(updated, found.etag)
            except ConcurrencyConflict:
                log.info("series changed while it was refreshed; the next notification or cycle catches up",
                         extra={"tenant": tenant_id})
        log.info("series refreshed from Outlook: %d created, %d changed, %d cancelled, %d reset, %d call(s)",
                 report.folded.created, report.folded.changed, report.folded.cancelled, report.folded.reset,
                 report.calls, extra={"tenant": tenant_id})
        return report

    def _gone(self, rows: Sequence[Versioned[Session]], window_start: datetime, report: SeriesSyncReport) -> None:
        now = self.clock.now()
        for row in rows:
            s = row.value
            if s.end <= window_start or (s.status is SessionStatus.CANCELLED and s.pending_op is None):
                continue
            self._save(row, lambda r: r.mark_deleted_in_outlook(now), report.folded, cancelled=True)


def check_occurrence_change(tables: TableStore, occurrence: Session, new_start: datetime | None) -> None:
    """Guard of ``PATCH``/``DELETE /api/sessions/{occurrenceId}``: 409 ``series_change_pending`` while the
    series is being changed, 422 ``occurrence_crossing_boundary`` for a move onto or past a neighbour's day."""
    assert occurrence.series_id is not None
    found = SeriesRepository(tables).get(occurrence.tenant_id, occurrence.series_id)
    if found is None:
        return
    series = found.value
    if series.pending_op is not None:
        raise Conflict("The series is being changed; change this occurrence once that is done.",
                       code="series_change_pending")
    if new_start is None or occurrence.original_start is None:
        return
    rows = [r.value for r in SessionRepository(tables).occurrences(occurrence.tenant_id, occurrence.series_id)]
    live = [r for r in rows if r.status is not SessionStatus.CANCELLED or r.session_id == occurrence.session_id]
    current = sorted((Occurrence(r.original_start or r.start, r.start, r.end) for r in live),
                     key=lambda o: o.original_start)
    if crosses_boundary(current, occurrence.original_start, new_start, series.time_zone):
        raise ValidationFailed(
            "An occurrence can only move within the days between its neighbours (Outlook refuses to move it "
            "onto or past the day of the previous or next occurrence).",
            code="occurrence_crossing_boundary",
            details={"fields": [{"loc": ["body", "start"], "msg": "crosses a neighbouring occurrence's day"}]},
        )


def _remapper(meta: EventMetadata, note: str | None, source: ChangeSource,
              now: datetime) -> Callable[[Session], Session | None]:
    return lambda r: SeriesSync._remap(r, meta, note, source, now)


def _cancelled(r: Session, source: ChangeSource, now: datetime) -> Session:
    return r.mark_cancelled(now, source) if r.pending_op is None or source is ChangeSource.PLATFORM else \
        (r.mark_deleted_in_outlook(now) or r)


def _observed_segment(segment: Segment, master: EventMetadata) -> Segment:
    """The segment as the master says it is now (its rule and first occurrence's times)."""
    if master.recurrence is None:
        return segment
    return replace(segment, recurrence=master.recurrence, start=master.start, end=master.end)


def _merge(into: FoldReport, other: FoldReport) -> None:
    into.created += other.created
    into.changed += other.changed
    into.cancelled += other.cancelled
    into.reset += other.reset
    into.unchanged += other.unchanged
