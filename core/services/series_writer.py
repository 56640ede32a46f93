"""The event-write worker for series: applies queued ``SeriesWriteCommand``s to the organizer's calendar.

Same queue (``event-writes``), same rules as ``core/services/event_writer.py`` for one
session: at-least-once delivery, so every step is idempotent and recorded before the next;
a stale or superseded command (``Series.command_is_current``) changes nothing; throttling
and outages with a retry hint re-queue the command without spending an attempt; a
permanent refusal marks the series ``failed`` (``series.failed``) and alerts the owner; the
last attempt and the poison queue do the same.

**create**: calendar (Teams allowed?) -> on a retry, the master looked up by its
``transactionId`` (= the series id) -> the free/busy re-check of every occurrence before
the first write (``onConflict``: ``fail`` ends the series ``failed`` with ``slot_taken``,
``skipClashing`` adds the clashing ones to the skipped) -> ONE ``POST /events`` with the
recurrence, the Teams link and the room (``transactionId`` again: Graph answers a repeated
create with the event it made) -> the master's id recorded (ETag) -> the occurrences to
skip cancelled in Outlook -> ``/instances`` read back into occurrence rows
(``SeriesSync.fold``) -> ``booked``. A crash anywhere repeats only what is not recorded.
The re-check runs once (``slot_checked``): on a retry after the write, the series' own
occurrences would look like clashes.

**reschedule**: the whole master (no occurrence has started: one PATCH with the new rule
and times; Exchange moves every occurrence and drops the exceptions), or a split (a running
series: the master ends after the last occurrence that started, ``end_series``, and a new
master continues with the new rule, ``transactionId`` ``<seriesId>.<n>``); then the rows are
folded with the new instances, the k-th remaining row standing for the k-th new occurrence.

**cancel**: every master cancelled (``POST .../cancel``: attendees get Outlook's
cancellation), or, from a date on, each master ending the day before
(``end_series``, which never extends a series) and any exception moved past that date
cancelled too ("end_series + cancel the rest"); the rows from that date on are cancelled.
A cancel that overtook the create finds the master by ``transactionId`` and cancels it; a
create that finishes after a cancel was recorded cancels its own orphan master.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from typing import Any, Final

from core.domain.calendar import EventMetadata, GraphIdentity, NewEvent
from core.domain.commands import AlertKind, SeriesWriteCommand
from core.domain.errors import (
    AuthorizationError,
    ConcurrencyConflict,
    DependencyError,
    GraphAuthError,
    GraphConflict,
    GraphError,
    ItemNotFound,
    Throttled,
    TransientGraphError,
    UnsealFailed,
)
from core.domain.recurrence import RecurrenceRangeType, at_wall_time, on_day
from core.domain.series import (
    NOTE_SKIPPED,
    OnConflict,
    Segment,
    Series,
    SeriesOp,
    SeriesStatus,
    master_transaction_id,
    occurrence_session_id,
)
from core.domain.sessions import ChangeSource, Session, SessionStatus
from core.names import Queues
from core.ports import CalendarGateway, Clock, CommandQueue, Sealer, TableStore
from core.services.alerts import OwnerAlerts
from core.services.event_writer import (
    DEFAULT_SUBJECT,
    MAX_ATTEMPTS,
    MAX_DEFER_SECONDS,
    MAX_DEFERRALS,
    MAX_SAVE_RETRIES,
    REASON_ATTEMPTS,
    REASON_DISABLED,
    REASON_POISON,
    WriteOutcome,
    choose_provider,
    sealing_context,
)
from core.services.identity import GraphIdentities
from core.services.series import clashing_parties, read_busy, series_parties
from core.services.series_sync import INSTANCE_MARGIN, SeriesSync
from core.services.slot_guard import SLOT_TAKEN
from core.services.stores.codec import Versioned
from core.services.stores.connections import ConnectionRepository
from core.services.stores.integrations import IntegrationRepository
from core.services.stores.series import SeriesRepository
from core.services.stores.sessions import SessionRepository

log = logging.getLogger(__name__)
LOOKUP_MARGIN: Final = timedelta(days=1)


class _Stale(Exception):
    """Internal: the series changed under us and the command no longer applies."""


class SeriesWriter:
    """Applies ``SeriesWriteCommand``s (see the module docstring)."""

    def __init__(
        self,
        gateway: CalendarGateway,
        tables: TableStore,
        queues: CommandQueue,
        clock: Clock,
        sealer: Sealer,
        *,
        alerts: OwnerAlerts | None = None,
        subject_template: str = DEFAULT_SUBJECT,
        on_first_booking: Callable[[str, str], object] | None = None,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.gateway = gateway
        self.tables = tables
        self.queues = queues
        self.clock = clock
        self.sealer = sealer
        self.series = SeriesRepository(tables)
        self.sessions = SessionRepository(tables)
        self.integrations = IntegrationRepository(tables)
        self.identities = GraphIdentities(self.integrations, ConnectionRepository(tables))
        self.sync = SeriesSync(tables, gateway, clock, self.identities)
        self.alerts = alerts or OwnerAlerts(tables, queues, clock)
        self.subject_template = subject_template
        self.on_first_booking = on_first_booking
        self.max_attempts = max_attempts

    # --- entry points -----------------------------------------------------------------------------

    def handle(self, message: Mapping[str, Any], *, dequeue_count: int = 1) -> WriteOutcome:
        """Apply one delivery of a series command (raises only to ask the host for a retry)."""
        cmd = SeriesWriteCommand.from_message(message)
        last_attempt = dequeue_count >= self.max_attempts
        try:
            return self._handle(cmd, dequeue_count, last_attempt)
        except _Stale:
            return WriteOutcome.STALE
        except (Throttled, TransientGraphError) as exc:
            deferrable = isinstance(exc, Throttled) or exc.retry_after is not None
            if deferrable and cmd.deferrals < MAX_DEFERRALS:
                backoff = float(min(2 ** cmd.deferrals, 60)) if isinstance(exc, TransientGraphError) else 1.0
                delay = min(max(float(exc.retry_after or 1.0), backoff, 1.0), MAX_DEFER_SECONDS)
                self.queues.send(Queues.EVENT_WRITES, replace(cmd, deferrals=cmd.deferrals + 1).to_message(),
                                 delay_seconds=delay)
                log.info("series write %s deferred %.0fs (%s)", cmd.op.value, delay, exc.code,
                         extra={"tenant": cmd.tenant_id})
                return WriteOutcome.DEFERRED
            self._fail_after_retries(cmd, last_attempt)
            raise
        except (GraphAuthError, GraphConflict):
            self._fail_after_retries(cmd, last_attempt)
            raise
        except (GraphError, AuthorizationError) as exc:
            log.warning("series write %s failed permanently (%s)", cmd.op.value, exc.code,
                        extra={"tenant": cmd.tenant_id})
            self._fail(cmd, f"Outlook refused the change: {exc.message}", alert=AlertKind.SESSION_FAILED)
            return WriteOutcome.FAILED
        except Exception:
            self._fail_after_retries(cmd, last_attempt)
            raise

    def handle_poison(self, message: Mapping[str, Any]) -> None:
        """A command that exhausted its attempts: the series ends failed and the owner is told."""
        cmd = SeriesWriteCommand.from_message(message)
        log.error("series write %s ended in the poison queue", cmd.op.value, extra={"tenant": cmd.tenant_id})
        self._fail(cmd, REASON_POISON, alert=None)
        self.alerts.notify(cmd.tenant_id, AlertKind.POISON_MESSAGE,
                           detail=f"A series change ({cmd.op.value}) could not be written to Outlook "
                                  f"after several attempts (series {cmd.series_id}).")

    def _handle(self, cmd: SeriesWriteCommand, dequeue_count: int, last_attempt: bool) -> WriteOutcome:
        found = self.series.get(cmd.tenant_id, cmd.series_id)
        if found is None or not found.value.command_is_current(cmd.version, cmd.op):
            return WriteOutcome.STALE
        integration = self.integrations.get(cmd.tenant_id)
        if integration is None or not integration.value.active:
            self._fail(cmd, REASON_DISABLED, alert=None)
            return WriteOutcome.FAILED
        who = self.identities.for_user(cmd.tenant_id, found.value.organizer_id, integration=integration.value)
        retry = dequeue_count > 1 or cmd.deferrals > 0
        if cmd.op is SeriesOp.CREATE:
            return self._create(who, cmd, found, retry=retry, last_attempt=last_attempt)
        if cmd.op is SeriesOp.RESCHEDULE:
            return self._reschedule(who, cmd, found, retry=retry, last_attempt=last_attempt)
        return self._cancel(who, cmd, found, last_attempt=last_attempt)

    # --- create -----------------------------------------------------------------------------------

    def _create(self, who: GraphIdentity, cmd: SeriesWriteCommand, read: Versioned[Series], *, retry: bool,
                last_attempt: bool) -> WriteOutcome:
        s = read.value
        provider = self._provider(who, s)
        segment = s.segments[0]
        master: EventMetadata | None = None
        if segment.master_event_id is None and retry:
            master = self._find_master(who, s, 0)
        if segment.master_event_id is None and master is None and not s.slot_checked \
                and s.on_conflict is not OnConflict.BOOK_ANYWAY:
            checked = self._recheck(who, cmd, read)
            if isinstance(checked, WriteOutcome):
                return checked
            read = checked
            s = read.value
        if segment.master_event_id is None:
            if master is None:
                subject = self._texts(cmd, last_attempt).get("subject") or self.subject_template
                created = self.gateway.create_event(who, s.organizer_address, self._new_event(s, segment, 0, subject,
                                                                                              provider))
                master = EventMetadata(created.event_id, created.start, created.end, ical_uid=created.ical_uid,
                                       join_url=created.join_url)
            recorded = self._record_master(who, cmd, read, index=0, master=master, provider=provider)
            if recorded is None:
                return WriteOutcome.MERGED
            read = recorded
        self._materialize(who, read, 0, rows=self.sync.rows_of(read.value, 0), in_scope=lambda _r: True,
                          reset=False, skip=True)
        outcome = self._save_current(cmd, read, lambda cur, now: cur.mark_booked(now))
        if outcome is WriteOutcome.APPLIED:
            log.info("series booked", extra={"tenant": s.tenant_id, "event": "series_booked"})
            self._first_booking(s)
        return outcome

    def _provider(self, who: GraphIdentity, s: Series) -> str | None:
        if not s.online_meeting:
            return None
        info = self.gateway.get_calendar(who, s.organizer_address)
        return choose_provider(info.allowed_online_meeting_providers)

    @staticmethod
    def _new_event(s: Series, segment: Segment, index: int, subject: str, provider: str | None) -> NewEvent:
        return NewEvent(
            subject=subject,
            start=segment.start,
            end=segment.end,
            attendees=tuple(a.address for a in s.attendees),
            time_zone=segment.time_zone,
            room=s.room.address if s.room else None,
            online_meeting_provider=provider,
            transaction_id=master_transaction_id(s.series_id, index),
            recurrence=segment.recurrence,
        )

    def _find_master(self, who: GraphIdentity, s: Series, index: int) -> EventMetadata | None:
        """The master an earlier attempt may have made, by its transactionId around its first occurrence.

        calendarView lists occurrences, not masters; an occurrence found names its master
        (``seriesMasterId``), which is read for its ids and Teams link.
        """
        segment = s.segments[index]
        found = self.gateway.find_event_by_transaction_id(
            who, s.organizer_address, master_transaction_id(s.series_id, index),
            segment.start - LOOKUP_MARGIN, segment.end + LOOKUP_MARGIN)
        if found is None:
            return None
        log.info("series write: found the master of an earlier attempt", extra={"tenant": s.tenant_id})
        if found.series_master_id and found.series_master_id != found.event_id:
            try:
                return self.gateway.get_event(who, s.organizer_address, found.series_master_id)
            except ItemNotFound:
                return None
        return found

    def _recheck(self, who: GraphIdentity, cmd: SeriesWriteCommand,
                 read: Versioned[Series]) -> Versioned[Series] | WriteOutcome:
        """Free/busy of every occurrence before the first write (module docstring); records the result."""
        s = read.value
        parties = series_parties(s)
        occurrences = [o for o in s.segments[0].occurrences() if o.original_start not in set(s.skipped)]
        try:
            busy, _, _ = read_busy(self.gateway, who, s.organizer_address, [p.address for p in parties],
                                   occurrences, time_zone=s.time_zone)
        except (Throttled, TransientGraphError):
            raise
        except GraphError as exc:
            log.info("series write: slot re-check not possible (%s); writing", exc.code, extra={"tenant": s.tenant_id})
            busy = {}
        clashing = [o.original_start for o in occurrences if clashing_parties(parties, busy, o.start, o.end)]
        if clashing and (s.on_conflict is OnConflict.FAIL or len(clashing) >= len(occurrences)):
            log.info("series write: occurrences taken", extra={"tenant": s.tenant_id, "event": "slot_taken"})
            self._fail(cmd, SLOT_TAKEN, alert=None)
            return WriteOutcome.SLOT_TAKEN
        skipped = tuple(sorted(set(s.skipped) | set(clashing)))
        return self._save_progress(cmd, read, lambda cur: replace(cur, slot_checked=True, skipped=skipped))

    def _record_master(self, who: GraphIdentity, cmd: SeriesWriteCommand, read: Versioned[Series], *, index: int,
                       master: EventMetadata, provider: str | None) -> Versioned[Series] | None:
        """Record the master's ids on segment ``index``; None when the series moved on meanwhile (the id is
        merged into the newer state, or the orphan master of a cancelled series is cancelled)."""
        current = read
        for _ in range(MAX_SAVE_RETRIES):
            s = current.value
            if index >= len(s.segments):
                return None
            segment = replace(s.segments[index], master_event_id=master.event_id,
                              ical_uid=s.segments[index].ical_uid or master.ical_uid)
            updated = replace(s.with_segment(index, segment), join_url=s.join_url or master.join_url,
                              online_provider=s.online_provider or (provider if master.join_url else None))
            if not s.command_is_current(cmd.version, cmd.op):
                if s.status is SeriesStatus.CANCELLED and s.pending_op is None:
                    log.info("series write: cancelled meanwhile; cancelling the orphan master",
                             extra={"tenant": s.tenant_id})
                    self._cancel_in_outlook(who, s.organizer_address, master.event_id, None)
                    return None
                if s.segments[index].master_event_id is None:
                    try:
                        self.series.save(updated, current.etag)
                    except ConcurrencyConflict:
                        current = self.series.require(cmd.tenant_id, cmd.series_id)
                        continue
                return None
            try:
                return self.series.save(updated, current.etag)
            except ConcurrencyConflict:
                current = self.series.require(cmd.tenant_id, cmd.series_id)
        raise ConcurrencyConflict("The series kept changing while its master was recorded.")

    def _materialize(self, who: GraphIdentity, read: Versioned[Series], index: int, *,
                     rows: list[Versioned[Session]], in_scope: Callable[[Session], bool], reset: bool,
                     skip: bool = False, duration: timedelta | None = None) -> None:
        """Read the segment's instances back into rows; with ``skip``, cancel the skipped occurrences first."""
        s = read.value
        segment = s.segments[index]
        assert segment.master_event_id is not None
        instances = list(self.gateway.list_instances(who, s.organizer_address, segment.master_event_id,
                                                     segment.start - INSTANCE_MARGIN,
                                                     segment.last_end() + INSTANCE_MARGIN))
        skipped = set(s.skipped) if skip else set()
        kept = []
        for instance in instances:
            if (instance.original_start or instance.start) in skipped:
                self._cancel_in_outlook(who, s.organizer_address, instance.event_id, None)
            else:
                kept.append(instance)
        self.sync.fold(s, rows, kept, in_scope=in_scope, source=ChangeSource.PLATFORM, reset=reset,
                       duration=duration or segment.duration)
        if skipped:
            self._skipped_rows(s, segment)

    def _skipped_rows(self, s: Series, segment: Segment) -> None:
        """Rows for the occurrences booked as cancelled (``skipClashing``), so the series shows them."""
        now = self.clock.now()
        have = {r.value.original_start for r in self.sessions.occurrences(s.tenant_id, s.series_id)}
        for o in segment.occurrences():
            if o.original_start not in s.skipped or o.original_start in have:
                continue
            row = Session(
                tenant_id=s.tenant_id, session_id=occurrence_session_id(s.series_id, o.original_start),
                organizer_id=s.organizer_id, organizer_address=s.organizer_address, attendees=s.attendees,
                start=o.start, end=o.end, time_zone=s.time_zone, status=SessionStatus.CANCELLED, pending_op=None,
                room=s.room, online_meeting=s.online_meeting, pairing_id=s.pairing_id, series_id=s.series_id,
                original_start=o.original_start, series_note=NOTE_SKIPPED, created_at=now, updated_at=now,
            )
            try:
                self.sessions.add(row)
            except Exception as exc:  # written by an earlier attempt: fine
                log.info("series write: skipped occurrence row exists (%s)", type(exc).__name__,
                         extra={"tenant": s.tenant_id})

    # --- reschedule -------------------------------------------------------------------------------

    def _reschedule(self, who: GraphIdentity, cmd: SeriesWriteCommand, read: Versioned[Series], *, retry: bool,
                    last_attempt: bool) -> WriteOutcome:
        s = read.value
        target = s.requested
        if target is None:
            return self._save_current(cmd, read, lambda cur, now: cur.mark_booked(now))
        if s.split_from is None:
            index = len(s.segments) - 1
            current = s.segments[index]
            assert current.master_event_id is not None
            rows = self.sync.rows_of(s, index)
            if not current.same_rule(target):
                meta = self.gateway.update_series(who, s.organizer_address, current.master_event_id,
                                                  recurrence=target.recurrence, start=target.start, end=target.end,
                                                  time_zone=target.time_zone)
                changed = replace(target, master_event_id=current.master_event_id, ical_uid=current.ical_uid)
                read = self._save_progress(cmd, read, lambda cur: replace(
                    cur.with_segment(index, changed), change_key=meta.change_key,
                    last_modified=meta.last_modified or cur.last_modified))
            self._materialize(who, read, index, rows=rows, in_scope=lambda _r: True, reset=True,
                              duration=current.duration)
            return self._save_current(cmd, read, lambda cur, now: cur.mark_booked(now))
        return self._split(who, cmd, read, target, retry=retry, last_attempt=last_attempt)

    def _split(self, who: GraphIdentity, cmd: SeriesWriteCommand, read: Versioned[Series], target: Segment, *,
               retry: bool, last_attempt: bool) -> WriteOutcome:
        s = read.value
        split_from = s.split_from
        assert split_from is not None
        appended = len(s.segments) >= 2 and s.segments[-1].same_rule(target) and s.segments[-1].start >= split_from
        if not appended:
            old_index = len(s.segments) - 1
            old = s.segments[old_index]
            assert old.master_event_id is not None
            kept = [o for o in old.occurrences() if o.original_start < split_from]
            last_date = on_day(kept[-1].original_start, old.time_zone)
            meta = self.gateway.end_series(who, s.organizer_address, old.master_event_id, last_date)
            ended = replace(old, recurrence=meta.recurrence or _ended(old, last_date))
            read = self._save_progress(cmd, read, lambda cur: cur.with_segment(old_index, ended)
                                       .with_segment(old_index + 1, target))
            self._cancel_moved_past(who, read.value, old_index, split_from, old.last_end())
        s = read.value
        index = len(s.segments) - 1
        duration = s.segments[index - 1].duration
        if s.segments[index].master_event_id is None:
            master = self._find_master(who, s, index) if retry else None
            if master is None:
                subject = self._texts(cmd, last_attempt).get("subject") or self.subject_template
                created = self.gateway.create_event(who, s.organizer_address,
                                                    self._new_event(s, s.segments[index], index, subject,
                                                                    self._provider(who, s)))
                master = EventMetadata(created.event_id, created.start, created.end, ical_uid=created.ical_uid,
                                       join_url=created.join_url)
            recorded = self._record_master(who, cmd, read, index=index, master=master, provider=None)
            if recorded is None:
                return WriteOutcome.MERGED
            read = recorded
        rows = [r for r in self.sessions.occurrences(s.tenant_id, s.series_id)
                if (r.value.original_start or r.value.start) >= split_from]
        self._materialize(who, read, index, rows=rows, in_scope=lambda _r: True, reset=True, duration=duration)
        return self._save_current(cmd, read, lambda cur, now: cur.mark_booked(now))

    def _cancel_moved_past(self, who: GraphIdentity, s: Series, index: int, cut: datetime, until: datetime) -> None:
        """Exceptions of an ended master moved past its new end (Exchange keeps them): cancel them too.
        ``until`` is where the master ended before (the window must end after it starts: Graph refuses
        an empty one)."""
        segment = s.segments[index]
        if segment.master_event_id is None:
            return
        try:
            for instance in list(self.gateway.list_instances(who, s.organizer_address, segment.master_event_id,
                                                             cut, max(until, cut) + INSTANCE_MARGIN)):
                if instance.start >= cut:
                    self._cancel_in_outlook(who, s.organizer_address, instance.event_id, None)
        except ItemNotFound:
            return

    # --- cancel -----------------------------------------------------------------------------------

    def _cancel(self, who: GraphIdentity, cmd: SeriesWriteCommand, read: Versioned[Series], *,
                last_attempt: bool) -> WriteOutcome:
        s = read.value
        from_date = s.cancel_from
        comment = self._texts(cmd, last_attempt).get("comment")
        for index in reversed(range(len(s.segments))):
            segment = s.segments[index]
            master_id = segment.master_event_id
            if master_id is None:
                found = self._find_master(who, s, index)  # a create may have reached Graph unrecorded
                if found is None:
                    continue
                master_id = found.event_id
            if from_date is None or from_date <= segment.recurrence.range.start_date:
                self._cancel_in_outlook(who, s.organizer_address, master_id, comment)
                continue
            try:
                meta = self.gateway.end_series(who, s.organizer_address, master_id, from_date - timedelta(days=1))
            except ItemNotFound:
                continue
            ended = replace(segment, master_event_id=master_id,
                            recurrence=meta.recurrence or _ended(segment, from_date - timedelta(days=1)))
            read = self._save_progress(cmd, read, _with_segment(index, ended))
            self._cancel_moved_past(who, read.value, index, at_wall_time(from_date, time(0), segment.time_zone),
                                    segment.last_end())
        now = self.clock.now()
        s = read.value
        for row in self.sessions.occurrences(s.tenant_id, s.series_id):
            r = row.value
            if r.status is SessionStatus.CANCELLED and r.pending_op is None:
                continue
            if from_date is not None and max(on_day(r.start, s.time_zone),
                                             on_day(r.original_start or r.start, s.time_zone)) < from_date:
                continue
            self._save_row(row, lambda cur: cur.mark_cancelled(now))
        if from_date is None or s.cancel_all:
            return self._save_current(cmd, read, lambda cur, t: cur.mark_cancelled(t))
        return self._save_current(cmd, read, lambda cur, t: cur.mark_booked(t))

    def _cancel_in_outlook(self, who: GraphIdentity, organizer: str, event_id: str, comment: str | None) -> None:
        try:
            self.gateway.cancel_event(who, organizer, event_id, comment)
        except ItemNotFound:
            log.info("series write cancel: already gone", extra={"tenant": who.tenant_id})

    # --- saving and failing -----------------------------------------------------------------------

    def _save_row(self, row: Versioned[Session], change: Callable[[Session], Session]) -> None:
        current: Versioned[Session] | None = row
        for _ in range(MAX_SAVE_RETRIES):
            if current is None:
                return
            try:
                self.sessions.save(change(current.value), current.etag, previous=current.value)
                return
            except ConcurrencyConflict:
                current = self.sessions.get(row.value.tenant_id, row.value.session_id)
        raise ConcurrencyConflict("An occurrence kept changing while the series was cancelled.")

    def _save_progress(self, cmd: SeriesWriteCommand, read: Versioned[Series],
                       change: Callable[[Series], Series]) -> Versioned[Series]:
        """Record a step while the command is current (``_Stale`` once it is not)."""
        current = read
        for _ in range(MAX_SAVE_RETRIES):
            if not current.value.command_is_current(cmd.version, cmd.op):
                raise _Stale()
            try:
                return self.series.save(change(current.value), current.etag)
            except ConcurrencyConflict:
                current = self.series.require(cmd.tenant_id, cmd.series_id)
        raise ConcurrencyConflict("The series kept changing while it was saved.")

    def _save_current(self, cmd: SeriesWriteCommand, read: Versioned[Series],
                      change: Callable[[Series, datetime], Series]) -> WriteOutcome:
        try:
            self._save_progress(cmd, read, lambda cur: change(cur, self.clock.now()))
        except _Stale:
            return WriteOutcome.MERGED
        return WriteOutcome.APPLIED

    def _fail(self, cmd: SeriesWriteCommand, reason: str, *, alert: AlertKind | None) -> None:
        for _ in range(MAX_SAVE_RETRIES):
            found = self.series.get(cmd.tenant_id, cmd.series_id)
            if found is None or not found.value.command_is_current(cmd.version, cmd.op):
                return
            try:
                self.series.save(found.value.mark_failed(reason, self.clock.now()), found.etag)
            except ConcurrencyConflict:
                continue
            log.warning("series failed", extra={"tenant": cmd.tenant_id, "event": "series_failed"})
            if alert is not None:
                self.alerts.notify(cmd.tenant_id, alert,
                                   detail=f"A series ({cmd.op.value}) could not be written to Outlook: {reason}")
            return

    def _fail_after_retries(self, cmd: SeriesWriteCommand, last_attempt: bool) -> None:
        if not last_attempt:
            return
        try:
            self._fail(cmd, REASON_ATTEMPTS, alert=AlertKind.SESSION_FAILED)
        except DependencyError:
            log.warning("series write: storage unavailable while marking failed; the poison handler will",
                        extra={"tenant": cmd.tenant_id})

    def _texts(self, cmd: SeriesWriteCommand, last_attempt: bool) -> dict[str, str]:
        if not cmd.sealed:
            return {}
        try:
            opened = json.loads(self.sealer.unseal(cmd.sealed, sealing_context(cmd.tenant_id, cmd.series_id)))
        except (UnsealFailed, ValueError):
            log.warning("series write: sealed text could not be opened; using the template",
                        extra={"tenant": cmd.tenant_id})
            return {}
        except DependencyError:
            if not last_attempt:
                raise
            return {}
        if not isinstance(opened, dict):
            return {}
        return {k: v for k, v in opened.items() if isinstance(k, str) and isinstance(v, str)}

    def _first_booking(self, s: Series) -> None:
        if self.on_first_booking is None:
            return
        try:
            self.on_first_booking(s.tenant_id, s.organizer_id)
        except Exception as exc:  # a subscription problem must not undo a booking
            log.warning("first-booking hook failed (%s)", type(exc).__name__, extra={"tenant": s.tenant_id})


def _with_segment(index: int, segment: Segment) -> Callable[[Series], Series]:
    return lambda cur: cur.with_segment(index, segment)


def _ended(segment: Segment, last_date: date) -> Any:
    """The segment's rule ending on ``last_date`` (when Graph's answer did not carry the rule)."""
    rule = segment.recurrence
    return replace(rule, range=replace(rule.range, type=RecurrenceRangeType.END_DATE, end_date=last_date,
                                       number_of_occurrences=None))
