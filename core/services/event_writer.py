"""The event-write worker: applies queued session changes to the organizer's Outlook calendar.

One command per change requested through the API (``EventWriteCommand`` on queue
``event-writes``): ``create``, ``reschedule`` or ``cancel`` of session version N.
Delivery is at least once, so everything here is idempotent:

* the session is re-read first; a command that is stale (superseded by a newer change)
  or already applied changes nothing (``Session.command_is_current``);
* creates carry ``transactionId`` = session id, so Graph answers a retried create with
  the event it already made; and when an earlier attempt of this command may have
  reached Graph (``dequeue_count > 1``, or a throttled attempt re-queued), the calendar
  is searched for that transaction id before creating. The search is skipped on the
  first attempt on purpose: it costs a calendarView call per booking, and a first
  attempt cannot have created anything;
* results are saved with the ETag the session was read with; when the API changed the
  session meanwhile (a reschedule or cancel raced the create), the event id is merged
  into the newer state and the newer command does the rest. A create whose session was
  cancelled before the event id could be recorded cancels its own orphan event.

Slot re-check: before a create writes a new event (none exists, none was found by its
transaction id), the organizer's, the attendees' and the room's free/busy over the
session's times is read again with one ``getSchedule``
(``core.services.slot_guard.busy_addresses``). Someone busy (and the session's own event,
made meanwhile by a duplicate delivery, not found by its transaction id) means the session ends
``failed`` with ``failureReason`` ``"slot_taken"`` (no event, no owner alert: it is the
user's calendar, not the integration, that said no), unless the session was requested
with ``allowConflicts``. Throttling and outages during the check defer the command like
any other call; a mailbox Graph will not give free/busy for does not block the write.
Optional attendees and guests are never checked. A session booked with any-of hosts or
rooms reads its other candidates in the same calls: when only its chosen host or room
was taken meanwhile, another free candidate is chosen (by the same rules, and claimed),
saved on the session with the reason, and written instead; ``slot_taken`` only when no
candidate is left.

Failures, never silent:

* ``Throttled``, and a ``TransientGraphError`` that carries a retry hint (a Graph or
  Entra ID outage), re-queue the same command after the hint (growing for outages) and
  return normally (no attempt spent), up to ``MAX_DEFERRALS`` times;
* a permanent refusal (mailbox on-premises, outside the app's scope, consent revoked,
  request rejected...) marks the session ``failed`` with a reason the SPA can show and
  alerts the integration owner;
* other errors are raised so the host retries; on the last attempt the session is
  marked failed before raising, and the poison handler (``handle_poison``) covers
  whatever still ends in ``event-writes-poison``.

The subject and cancel comment travel sealed (``core/services/sealing.py``) and are
sent to Outlook only: never stored, never logged.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from core.domain.assignment import HostCandidate
from core.domain.calendar import CreatedEvent, EventMetadata, GraphIdentity, NewEvent, OnlineMeetingProvider
from core.domain.commands import AlertKind, EventWriteCommand
from core.domain.errors import (
    AuthorizationError,
    ConcurrencyConflict,
    DependencyError,
    GraphAuthError,
    GraphConflict,
    GraphError,
    ItemNotFound,
    OutsideAppScope,
    Throttled,
    TransientGraphError,
    UnsealFailed,
)
from core.domain.integration import ConnectionMethod
from core.domain.sessions import ChangeSource, PendingOp, Session, SessionStatus
from core.names import Queues
from core.ports import CalendarGateway, Clock, CommandQueue, Sealer, TableStore
from core.services.alerts import OwnerAlerts
from core.services.any_of import AnyOfChooser
from core.services.identity import GraphIdentities
from core.services.slot_guard import SLOT_TAKEN, free_busy
from core.services.stores.codec import Versioned
from core.services.stores.connections import ConnectionRepository
from core.services.stores.integrations import IntegrationRepository
from core.services.stores.sessions import SessionRepository

log = logging.getLogger(__name__)
DEFAULT_SUBJECT: Final = "Mentoring session"
MAX_ATTEMPTS: Final = 5  # host.json extensions.queues.maxDequeueCount
MAX_DEFERRALS: Final = 20  # throttled re-queues of one command before attempts are spent instead
MAX_DEFER_SECONDS: Final = 900.0
MAX_SAVE_RETRIES: Final = 8
LOOKUP_MARGIN: Final = timedelta(days=1)
# Teams first, then Skype for Business; skypeForConsumer is not a business meeting link.
PROVIDER_PREFERENCE: Final = (OnlineMeetingProvider.TEAMS_FOR_BUSINESS, OnlineMeetingProvider.SKYPE_FOR_BUSINESS)

REASON_ATTEMPTS: Final = "Microsoft 365 did not accept the change after several attempts; please try again."
REASON_POISON: Final = "The session could not be written to Outlook after several attempts."
REASON_DISABLED: Final = "The calendar integration of your organisation is turned off."
SCHEDULER_CALENDAR: Final = "Scheduler"


class WriteOutcome(StrEnum):
    """What one delivery of a command did (for logs and tests)."""

    APPLIED = "applied"
    STALE = "stale"  # superseded or already applied: nothing to do
    MERGED = "merged"  # Outlook changed, but a newer change of the session will finish the job
    DEFERRED = "deferred"  # throttled: re-queued after Retry-After
    FAILED = "failed"  # the session is now failed
    SLOT_TAKEN = "slot_taken"  # the re-check found someone busy: failed with failureReason slot_taken




# --- sealed free text ----------------------------------------------------------------------


def sealing_context(tenant_id: str, session_id: str) -> str:
    """What a sealed text is bound to: it opens only for this tenant's session."""
    return f"event-write:{tenant_id}:{session_id}"


def seal_texts(
    sealer: Sealer, tenant_id: str, session_id: str, *, subject: str | None = None, comment: str | None = None,
    names: Mapping[str, str] | None = None,
) -> str | None:
    """The sealed form of a command's free text (subject, comment, guests' display names by
    address), or None when there is none."""
    texts: dict[str, Any] = {k: v for k, v in (("subject", subject), ("comment", comment)) if v}
    if names:
        texts["names"] = dict(names)
    if not texts:
        return None
    return sealer.seal(json.dumps(texts, ensure_ascii=False), sealing_context(tenant_id, session_id))


def choose_provider(allowed: Sequence[str]) -> str | None:
    """The online-meeting provider to ask for: Teams, else Skype for Business, else none."""
    for provider in PROVIDER_PREFERENCE:
        if provider.value in allowed:
            return provider.value
    return None


def event_mailbox(who: GraphIdentity, session: Session) -> str:
    """The mailbox that holds the session's event: the organizer's, or (Scheduler fallback,
    ``calendar_id`` set) the scheduling mailbox whose token ``who`` is."""
    if session.calendar_id and who.user_id:
        return who.user_id
    return session.organizer_address


def may_fall_back(method: ConnectionMethod, who: GraphIdentity, session: Session) -> bool:
    """A service account writing someone else's calendar: a 403 there means "no delegate right",
    which the Scheduler calendar works around (per-user and app-only 403s are real refusals)."""
    return (
        method is ConnectionMethod.SERVICE_ACCOUNT
        and who.user_id is not None
        and who.user_id != session.organizer_id.lower()
    )


def transaction_id_for(session: Session) -> str:
    """Graph ``transactionId`` of the session's event: stable across every retry of its creation."""
    return session.session_id


def _clash(s: Session, states: Mapping[str, bool | None]) -> bool:
    """Is the organizer, a required colleague (the chosen host included) or the room busy?"""
    return any(states.get(a.lower()) is False for a in s.checked_addresses())


def _again(reason: str) -> str:
    return "Chosen again before the event was written (the first choice was taken meanwhile). " + reason


# --- the worker ----------------------------------------------------------------------------


class _SupersededError(Exception):
    """Internal: the session changed under us and the command no longer applies."""


class EventWriter:
    """Applies ``EventWriteCommand``s (see the module docstring)."""

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
        self.queues = queues
        self.clock = clock
        self.sealer = sealer
        self.tables = tables
        self.sessions = SessionRepository(tables)
        self.integrations = IntegrationRepository(tables)
        self.identities = GraphIdentities(self.integrations, ConnectionRepository(tables))
        self.alerts = alerts or OwnerAlerts(tables, queues, clock)
        self.subject_template = subject_template
        self.on_first_booking = on_first_booking
        self.max_attempts = max_attempts
        self._hooked: set[tuple[str, str]] = set()
        self._calendars: dict[tuple[str, str], str] = {}  # (tenant, scheduling mailbox) -> Scheduler calendar
        self._hook_lock = threading.Lock()
        self.any_of = AnyOfChooser(tables, clock)

    # --- entry points -----------------------------------------------------------------

    def handle(self, message: Mapping[str, Any], *, dequeue_count: int = 1) -> WriteOutcome:
        """Apply one delivery of a command. Raises only to ask the host for a retry
        (``InvalidMessage`` for a message that is not a command: the queue's poison policy)."""
        cmd = EventWriteCommand.from_message(message)
        last_attempt = dequeue_count >= self.max_attempts
        try:
            return self._handle(cmd, dequeue_count, last_attempt)
        except (Throttled, TransientGraphError) as exc:
            # Throttling, and outages Graph or Entra ID signalled with a retry hint, wait on the
            # queue without spending attempts; the delay grows so a long outage is not polled hot.
            deferrable = isinstance(exc, Throttled) or exc.retry_after is not None
            if deferrable and cmd.deferrals < MAX_DEFERRALS:
                backoff = float(min(2 ** cmd.deferrals, 60)) if isinstance(exc, TransientGraphError) else 1.0
                delay = min(max(float(exc.retry_after or 1.0), backoff, 1.0), MAX_DEFER_SECONDS)
                self.queues.send(Queues.EVENT_WRITES, replace(cmd, deferrals=cmd.deferrals + 1).to_message(),
                                 delay_seconds=delay)
                log.info("event write %s deferred %.0fs (%s)", cmd.op.value, delay, exc.code,
                         extra={"tenant": cmd.tenant_id})
                return WriteOutcome.DEFERRED
            self._fail_after_retries(cmd, last_attempt)
            raise
        except (GraphAuthError, GraphConflict):
            self._fail_after_retries(cmd, last_attempt)
            raise
        except (GraphError, AuthorizationError) as exc:
            reason = f"Outlook refused the change: {exc.message}"
            log.warning("event write %s failed permanently (%s)", cmd.op.value, exc.code,
                        extra={"tenant": cmd.tenant_id})
            self._fail(cmd, reason, alert=AlertKind.SESSION_FAILED)
            return WriteOutcome.FAILED
        except Exception:
            self._fail_after_retries(cmd, last_attempt)
            raise

    def handle_poison(self, message: Mapping[str, Any]) -> None:
        """A command that exhausted its attempts: the session ends failed and the owner is told."""
        cmd = EventWriteCommand.from_message(message)
        log.error("event write %s ended in the poison queue", cmd.op.value, extra={"tenant": cmd.tenant_id})
        self._fail(cmd, REASON_POISON, alert=None)
        self.alerts.notify(cmd.tenant_id, AlertKind.POISON_MESSAGE,
                           detail=f"A session change ({cmd.op.value}) could not be written to Outlook "
                                  f"after several attempts (session {cmd.session_id}).")

    # --- dispatch ---------------------------------------------------------------------

    def _handle(self, cmd: EventWriteCommand, dequeue_count: int, last_attempt: bool) -> WriteOutcome:
        found = self.sessions.get(cmd.tenant_id, cmd.session_id)
        if found is None:
            log.warning("event write %s: no such session", cmd.op.value, extra={"tenant": cmd.tenant_id})
            return WriteOutcome.STALE
        if not self._applies(found.value, cmd):
            return WriteOutcome.STALE
        integration = self.integrations.get(cmd.tenant_id)
        if integration is None or not integration.value.active:
            self._fail(cmd, REASON_DISABLED, alert=None)
            return WriteOutcome.FAILED
        who = self.identities.for_user(cmd.tenant_id, found.value.organizer_id, integration=integration.value)
        may_have_reached_graph = dequeue_count > 1 or cmd.deferrals > 0
        if cmd.op == PendingOp.CREATE:
            fallback = may_fall_back(integration.value.method, who, found.value)
            return self._create(who, cmd, found, may_have_reached_graph, last_attempt, fallback=fallback)
        if cmd.op == PendingOp.RESCHEDULE:
            return self._reschedule(who, cmd, found)
        return self._cancel(who, cmd, found, last_attempt)

    @staticmethod
    def _applies(session: Session, cmd: EventWriteCommand) -> bool:
        """Current, or an older create while the session still waits to be created.

        A reschedule before the event exists turns into a newer create; the older create
        command (the one carrying the subject) may do that job with the current times.
        """
        if session.command_is_current(cmd.version, cmd.op):
            return True
        return cmd.op == PendingOp.CREATE and session.pending_op == PendingOp.CREATE and cmd.version < session.version

    # --- create -----------------------------------------------------------------------

    def _create(
        self,
        who: GraphIdentity,
        cmd: EventWriteCommand,
        read: Versioned[Session],
        lookup: bool,
        last_attempt: bool,
        *,
        fallback: bool = False,
    ) -> WriteOutcome:
        s = read.value
        mailbox, calendar_id = event_mailbox(who, s), s.calendar_id
        provider = None
        if s.online_meeting:
            try:
                info = self.gateway.get_calendar(who, mailbox)
            except OutsideAppScope:
                if not fallback or calendar_id is not None:
                    raise
                mailbox, calendar_id = self._fall_back(who, s)
                info = self.gateway.get_calendar(who, mailbox)
            provider = choose_provider(info.allowed_online_meeting_providers)
        event: CreatedEvent | EventMetadata | None = None
        if s.event_id is not None:
            event = self._move_if_needed(who, s, s.event_id)
            if event is None:
                return self._save_cancelled_in_outlook(cmd, read)
        if event is None and lookup:
            event = self.gateway.find_event_by_transaction_id(
                who, mailbox, transaction_id_for(s), s.start - LOOKUP_MARGIN, s.end + LOOKUP_MARGIN
            )
            if event is not None:
                log.info("event write create: found the event of an earlier attempt", extra={"tenant": s.tenant_id})
        states = self._free_busy(who, s, mailbox) if event is None and not s.allow_conflicts else None
        if states is not None and _clash(s, states):
            # A duplicate delivery racing this one may have just made the session's own event:
            # that is not a clash. (Looked up only when something is busy, and only if not yet.)
            if not lookup:
                event = self.gateway.find_event_by_transaction_id(
                    who, mailbox, transaction_id_for(s), s.start - LOOKUP_MARGIN, s.end + LOOKUP_MARGIN
                )
            if event is None:
                chosen = self._choose_again(read, states)
                if chosen is None:
                    self._fail(cmd, SLOT_TAKEN, alert=None)
                    return WriteOutcome.SLOT_TAKEN
                read, s = chosen, chosen.value
        if event is None:
            # Watch the organizer's mailbox before the event exists, so a change made in Outlook the
            # moment it appears is notified too (after the write, such a change could slip through).
            self._first_booking(s)
            subject = self._texts(cmd, last_attempt).get("subject") or self.subject_template
            names = self._names(cmd, last_attempt)
            try:
                event = self.gateway.create_event(who, mailbox, self._new_event(s, subject, provider, calendar_id,
                                                                                names))
            except OutsideAppScope:
                # The mailbox may read the organizer's calendar but not write it.
                if not fallback or calendar_id is not None:
                    raise
                mailbox, calendar_id = self._fall_back(who, s)
                event = self.gateway.create_event(who, mailbox, self._new_event(s, subject, provider, calendar_id,
                                                                                names))
        if (event.start, event.end) != (s.start, s.end):
            # Graph answered a retried transactionId with the event at the times of an earlier request.
            moved = self._move_if_needed(who, replace(s, calendar_id=calendar_id), event.event_id)
            if moved is not None:
                event = moved
        join_url = event.join_url
        return self._record_created(who, cmd, read, event, provider if join_url else None, calendar_id=calendar_id)

    def _free_busy(self, who: GraphIdentity, s: Session, mailbox: str) -> dict[str, bool | None] | None:
        """Free/busy over the session's times of the organizer, the required colleagues, the room and any
        any-of candidates (one getSchedule per 20). Throttled and transient errors propagate (the command
        is deferred); any other Graph refusal of the check gives None: the write goes ahead and decides."""
        addresses = s.checked_addresses()
        if s.any_of is not None:
            addresses += [h.address for h in s.any_of.hosts] + [r.address for r in s.any_of.rooms]
        try:
            return free_busy(self.gateway, who, mailbox, addresses, start=s.start, end=s.end)
        except (Throttled, TransientGraphError):
            raise
        except GraphError as exc:
            log.info("event write create: slot re-check not possible (%s); writing", exc.code,
                     extra={"tenant": s.tenant_id})
            return None

    def _choose_again(self, read: Versioned[Session], states: dict[str, bool | None]) -> Versioned[Session] | None:
        """The session with a free host and/or room chosen again from its candidates (saved, and claimed),
        when only its chosen host or room is taken; None when someone else is busy or no candidate is free."""
        s = read.value
        host, room, any_of = s.host, s.room, s.any_of
        busy = {a.lower() for a in s.checked_addresses() if states.get(a.lower()) is False}
        replace_host = any_of is not None and bool(any_of.hosts) and host is not None and host.address.lower() in busy
        replace_room = any_of is not None and bool(any_of.rooms) and room is not None and room.address.lower() in busy
        fixed = busy - {host.address.lower() if replace_host and host else "", room.address.lower()
                        if replace_room and room else ""}
        if any_of is None or fixed or not (replace_host or replace_room):
            log.info("event write create: slot taken", extra={"tenant": s.tenant_id, "event": "slot_taken"})
            return None
        free = {a for a, state in states.items() if state}
        tenant, sid = s.tenant_id, s.session_id
        new_host = new_room = None
        if replace_host and host is not None:
            others = [h for h in any_of.hosts if h.user_id != host.user_id]
            new_host = self.any_of.choose_host(tenant, sid, others, start=s.start, end=s.end, free=free)
            if new_host is None:
                return None
        if replace_room and room is not None:
            others_rooms = [r for r in any_of.rooms if r.address.lower() != room.address.lower()]
            new_room = self.any_of.choose_room(tenant, sid, others_rooms, choice=any_of.room_choice,
                                               need=any_of.capacity, start=s.start, end=s.end, free=free)
            if new_room is None:
                if new_host is not None and new_host.user_id:
                    self.any_of.release_host(tenant, new_host.user_id, sid, s.start, s.end)
                return None
        changed = s.reassigned(
            self.clock.now(),
            room=new_room.address if new_room else None,
            room_reason=_again(new_room.reason) if new_room else None,
            host=HostCandidate(new_host.user_id, new_host.address) if new_host and new_host.user_id else None,
            host_reason=_again(new_host.reason) if new_host else None,
        )
        saved = self.sessions.save(changed, read.etag, previous=s)  # a lost race is retried by the host
        if new_host is not None and host is not None and host.user_id:
            self.any_of.release_host(tenant, host.user_id, sid, s.start, s.end)
        if new_room is not None and room is not None:
            self.any_of.release_room(tenant, room.address, sid, s.start, s.end)
        log.info("event write create: host or room taken meanwhile; chose again",
                 extra={"tenant": tenant, "event": "any_of_rechosen"})
        return saved

    @staticmethod
    def _new_event(s: Session, subject: str, provider: str | None, calendar_id: str | None,
                   names: tuple[tuple[str, str], ...] = ()) -> NewEvent:
        """The event to create; in the Scheduler calendar the organizer is invited like the partner.
        Optional attendees go as type optional; guests' display names (sealed) label their invitations."""
        attendees = tuple(a.address for a in s.attendees if a.required)
        if calendar_id is not None:
            attendees = (s.organizer_address, *attendees)
        return NewEvent(
            subject=subject,
            start=s.start,
            end=s.end,
            attendees=attendees,
            optional_attendees=tuple(a.address for a in s.attendees if not a.required),
            attendee_names=names,
            time_zone=s.time_zone,
            room=s.room.address if s.room else None,
            online_meeting_provider=provider,
            transaction_id=transaction_id_for(s),
            calendar_id=calendar_id,
        )

    def _fall_back(self, who: GraphIdentity, s: Session) -> tuple[str, str]:
        """(mailbox, calendar id) of the scheduling mailbox's "Scheduler" calendar, created once."""
        assert who.user_id is not None
        log.warning("event write create: no delegate right on the organizer's calendar; "
                    "booking in the Scheduler calendar", extra={"tenant": s.tenant_id, "event": "scheduler_fallback"})
        return who.user_id, self.scheduler_calendar(who)

    def scheduler_calendar(self, who: GraphIdentity) -> str:
        """The id of the "Scheduler" calendar in ``who``'s own mailbox: looked up by name first,
        created when missing (a concurrent creator's calendar is found again), cached per process."""
        assert who.user_id is not None
        key = (who.tenant_id, who.user_id)
        with self._hook_lock:
            cached = self._calendars.get(key)
        if cached is not None:
            return cached
        found = self.gateway.find_calendar(who, who.user_id, SCHEDULER_CALENDAR)
        if found is None:
            try:
                found = self.gateway.create_calendar(who, who.user_id, SCHEDULER_CALENDAR)
            except GraphConflict:
                found = self.gateway.find_calendar(who, who.user_id, SCHEDULER_CALENDAR)
                if found is None:
                    raise
        with self._hook_lock:
            self._calendars[key] = found.calendar_id
        return found.calendar_id

    def _move_if_needed(self, who: GraphIdentity, s: Session, event_id: str) -> EventMetadata | None:
        """The event at the session's times (None: it no longer exists in Outlook)."""
        try:
            return self.gateway.update_event(who, event_mailbox(who, s), event_id, s.start, s.end,
                                             time_zone=s.time_zone)
        except ItemNotFound:
            return None

    def _record_created(
        self,
        who: GraphIdentity,
        cmd: EventWriteCommand,
        read: Versioned[Session],
        event: CreatedEvent | EventMetadata,
        provider: str | None,
        *,
        calendar_id: str | None = None,
    ) -> WriteOutcome:
        current = read
        for _ in range(MAX_SAVE_RETRIES):
            s = current.value
            now = self.clock.now()
            recreated = s.status == SessionStatus.FAILED and s.pending_op is None and s.event_id is None
            if (s.version == read.value.version and s.pending_op == PendingOp.CREATE) or recreated:
                # (A session marked failed while this attempt still got the event made is booked after all.)
                booked = s.mark_created(
                    event_id=event.event_id,
                    ical_uid=event.ical_uid,
                    join_url=event.join_url,
                    online_provider=provider,
                    change_key=event.change_key,
                    now=now,
                    calendar_id=calendar_id,
                )
                if self._try_save(booked, current, s):
                    log.info("session booked", extra={"tenant": s.tenant_id, "event": "session_booked"})
                    self._first_booking(s)
                    return WriteOutcome.APPLIED
            elif s.event_id is not None and s.event_id != event.event_id:
                return WriteOutcome.STALE  # someone else recorded the event already
            else:
                merged = replace(
                    s,
                    event_id=event.event_id,
                    ical_uid=s.ical_uid or event.ical_uid,
                    join_url=s.join_url or event.join_url,
                    online_provider=s.online_provider or provider,
                    change_key=event.change_key,
                    calendar_id=s.calendar_id or calendar_id,
                )
                orphan = s.status == SessionStatus.CANCELLED and s.pending_op is None and s.event_id is None
                if orphan:
                    # The cancel ran before this event existed: cancel it now, as the organizer.
                    self._cancel_in_outlook(who, event_mailbox(who, merged), event.event_id, None)
                if merged == s or self._try_save(merged, current, s):
                    log.info("session changed meanwhile: event id merged", extra={"tenant": s.tenant_id})
                    return WriteOutcome.MERGED
            current = self.sessions.require(cmd.tenant_id, cmd.session_id)
        raise ConcurrencyConflict("The session kept changing while its event was recorded.")

    # --- reschedule -------------------------------------------------------------------

    def _reschedule(self, who: GraphIdentity, cmd: EventWriteCommand, read: Versioned[Session]) -> WriteOutcome:
        s = read.value
        if s.event_id is None:  # not reachable through the domain: a reschedule needs an event
            return WriteOutcome.STALE
        meta = self._move_if_needed(who, s, s.event_id)
        if meta is None:
            return self._save_cancelled_in_outlook(cmd, read)
        return self._save_current(cmd, read, lambda cur, now: cur.mark_rescheduled(meta, now))

    def _save_cancelled_in_outlook(self, cmd: EventWriteCommand, read: Versioned[Session]) -> WriteOutcome:
        """The organizer deleted the event in Outlook: the session is cancelled, from Outlook."""
        return self._save_current(cmd, read, lambda cur, now: cur.mark_cancelled(now, ChangeSource.OUTLOOK))

    # --- cancel -----------------------------------------------------------------------

    def _cancel(
        self, who: GraphIdentity, cmd: EventWriteCommand, read: Versioned[Session], last_attempt: bool
    ) -> WriteOutcome:
        s = read.value
        event_id = s.event_id
        if event_id is None:
            # A create may have reached Outlook without its event id being recorded.
            now = self.clock.now()
            found = self.gateway.find_event_by_transaction_id(
                who, event_mailbox(who, s), transaction_id_for(s), min(s.start, now) - LOOKUP_MARGIN,
                max(s.end, now) + LOOKUP_MARGIN,
            )
            event_id = found.event_id if found else None
        if event_id is not None:
            self._cancel_in_outlook(who, event_mailbox(who, s), event_id,
                                    self._texts(cmd, last_attempt).get("comment"))
        discovered = event_id

        def cancelled(cur: Session, now: datetime) -> Session:
            done = cur.mark_cancelled(now)
            return replace(done, event_id=discovered) if cur.event_id is None and discovered else done

        return self._save_current(cmd, read, cancelled)

    def _cancel_in_outlook(self, who: GraphIdentity, organizer: str, event_id: str, comment: str | None) -> None:
        try:
            self.gateway.cancel_event(who, organizer, event_id, comment)
        except ItemNotFound:
            log.info("event write cancel: the event was already gone", extra={"tenant": who.tenant_id})

    # --- saving and failing -----------------------------------------------------------

    def _save_current(
        self,
        cmd: EventWriteCommand,
        read: Versioned[Session],
        change: Callable[[Session, datetime], Session],
    ) -> WriteOutcome:
        """Apply ``change`` while the command is still current; re-read on ETag conflicts."""
        current = read
        for _ in range(MAX_SAVE_RETRIES):
            s = current.value
            if not s.command_is_current(cmd.version, cmd.op):
                return WriteOutcome.MERGED  # a newer change will finish the job
            if self._try_save(change(s, self.clock.now()), current, s):
                return WriteOutcome.APPLIED
            current = self.sessions.require(cmd.tenant_id, cmd.session_id)
        raise ConcurrencyConflict("The session kept changing while it was saved.")

    def _try_save(self, new: Session, read: Versioned[Session], previous: Session) -> bool:
        try:
            self.sessions.save(new, read.etag, previous=previous)
        except ConcurrencyConflict:
            return False
        return True

    def _fail(self, cmd: EventWriteCommand, reason: str, *, alert: AlertKind | None) -> None:
        """Mark the session failed if this command still applies to it, and alert the owner."""
        for _ in range(MAX_SAVE_RETRIES):
            found = self.sessions.get(cmd.tenant_id, cmd.session_id)
            if found is None or not self._applies(found.value, cmd):
                return
            s = found.value
            if self._try_save(s.mark_failed(reason, self.clock.now()), found, s):
                log.warning("session failed", extra={"tenant": cmd.tenant_id, "event": "session_failed"})
                if alert is not None:
                    self.alerts.notify(cmd.tenant_id, alert,
                                       detail=f"A session ({cmd.op.value}) could not be written to Outlook: {reason}")
                return
        log.error("event write: could not mark the session failed (kept changing)", extra={"tenant": cmd.tenant_id})

    def _fail_after_retries(self, cmd: EventWriteCommand, last_attempt: bool) -> None:
        if not last_attempt:
            return
        try:
            self._fail(cmd, REASON_ATTEMPTS, alert=AlertKind.SESSION_FAILED)
        except DependencyError:
            log.warning("event write: storage unavailable while marking failed; the poison handler will",
                        extra={"tenant": cmd.tenant_id})

    # --- helpers ----------------------------------------------------------------------

    def _texts(self, cmd: EventWriteCommand, last_attempt: bool) -> dict[str, str]:
        """The command's sealed subject/comment; empty when absent or unreadable (never fatal)."""
        return {k: v for k, v in self._opened(cmd, last_attempt).items() if isinstance(k, str) and isinstance(v, str)}

    def _names(self, cmd: EventWriteCommand, last_attempt: bool) -> tuple[tuple[str, str], ...]:
        """Guests' display names from the sealed texts, as (address, name)."""
        names = self._opened(cmd, last_attempt).get("names")
        if not isinstance(names, dict):
            return ()
        return tuple((k, v) for k, v in names.items() if isinstance(k, str) and isinstance(v, str) and v)

    def _opened(self, cmd: EventWriteCommand, last_attempt: bool) -> dict[str, Any]:
        """The command's sealed texts, opened; empty when absent or unreadable (never fatal)."""
        if not cmd.sealed:
            return {}
        try:
            opened = json.loads(self.sealer.unseal(cmd.sealed, sealing_context(cmd.tenant_id, cmd.session_id)))
        except (UnsealFailed, ValueError):
            log.warning("event write: sealed text could not be opened; using the template",
                        extra={"tenant": cmd.tenant_id})
            return {}
        except DependencyError:
            if not last_attempt:
                raise
            return {}
        if not isinstance(opened, dict):
            return {}
        return opened

    def _first_booking(self, s: Session) -> None:
        """Tell the subscription service about an organizer's first booking (once per process)."""
        if self.on_first_booking is None:
            return
        key = (s.tenant_id, s.organizer_id)
        with self._hook_lock:
            if key in self._hooked:
                return
            self._hooked.add(key)
        try:
            self.on_first_booking(s.tenant_id, s.organizer_id)
        except Exception as exc:  # a subscription problem must not undo a booking
            with self._hook_lock:
                self._hooked.discard(key)
            log.warning("first-booking hook failed (%s)", type(exc).__name__, extra={"tenant": s.tenant_id})
