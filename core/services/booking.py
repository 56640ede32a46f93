"""Booking: the API side of sessions (create, read, list, reschedule, cancel).

The caller books as the organizer of their own event, the partner is a required
attendee (so the organizer sees the RSVP and manages the invite in Outlook), an
optional room is a resource attendee. Nothing is written to Outlook here: each change
is validated, stored on the session (``pending_op`` + a new ``version``) with its ETag,
and queued as an ``EventWriteCommand`` for the event-write worker
(``core/services/event_writer.py``), which answers 202 at once and survives Graph
throttling and outages.

Who may book with whom follows the tenant's pairing policy: ``registered`` allows a
partner only inside an active pairing of the caller (anything else is 404
``pairing_not_found`` / 403 ``partner_not_paired``), ``sameTenant`` any colleague Graph
can resolve. Reads are for the organizer and the attendees; anyone else in the tenant
gets 404, not 403, so a session id reveals nothing to strangers. Changes are for the
organizer only (attendees 403). A change racing another one loses with 409.

Slot taken: unless the request says ``allowConflicts``, a booking or a move first reads
the organizer's, the attendees' and the room's free/busy for exactly those times (one
``getSchedule``) and answers 409 ``slot_taken`` when one of them is busy (a move ignores
its own event); then it claims the organizer's time range (``core/services/slot_guard.py``),
so two requests racing for the same slot cannot both pass before either event exists.
When Graph cannot answer now (throttled, down, a mailbox it cannot read) the request is
accepted and the event-write worker makes the same check before writing.

The product's server reaches all of this by acting for a user (``Caller.acting_app``);
it may also read sessions across its tenant (``list_sessions``, ``get`` with an
app-only caller holding ``Sessions.ReadWrite.All``).

Offered hours: a time outside an attendee's offered hours is refused with 422
``outside_offered_hours`` at create and reschedule (core/services/offered_hours.py);
the organizer's own rules do not bind their own bookings.

The subject (and a cancel comment) is sealed into the queue message and never stored.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from core.domain.calendar import GraphIdentity, Room
from core.domain.commands import EventWriteCommand
from core.domain.errors import (
    AuthorizationError,
    DependencyError,
    Forbidden,
    GraphError,
    MailboxUnavailable,
    NotFound,
    SlotTaken,
    UserNotFound,
    ValidationFailed,
)
from core.domain.integration import Integration, PairingPolicy
from core.domain.sessions import AttendeeState, PendingOp, Session, SessionStatus, validate_times
from core.log import correlation_id
from core.names import Queues
from core.ports import CalendarGateway, Clock, CommandQueue, Sealer, TableStore
from core.services.authz import Caller, require_organizer, require_participant, require_sessions_app
from core.services.event_writer import seal_texts
from core.services.identity import GraphIdentities
from core.services.offered_hours import OfferedHoursService
from core.services.pairings import require_enabled_integration
from core.services.slot_guard import SlotClaims, busy_addresses, slot_taken
from core.services.stores.access_tests import UnreachableMailboxes
from core.services.stores.codec import Versioned
from core.services.stores.connections import ConnectionRepository
from core.services.stores.integrations import IntegrationRepository
from core.services.stores.pairings import Pairing, PairingRepository
from core.services.stores.sessions import SessionRepository

log = logging.getLogger(__name__)

ROOMS_CACHE_SECONDS: Final = 600.0
MAX_LIST_WINDOW: Final = timedelta(days=62)
DEFAULT_LIST_WINDOW: Final = timedelta(days=62)  # GET /api/sessions without a window: now to now + 62 days
MAX_LIST_LIMIT: Final = 500
DEFAULT_LIST_LIMIT: Final = 200
REASON_NOT_QUEUED: Final = "The booking could not be queued; please try again."


@dataclass(frozen=True, slots=True)
class BookingRequest:
    """POST /api/sessions as the service sees it: ``pairing_id`` or ``partner`` (id or email)."""

    start: datetime
    end: datetime
    time_zone: str
    pairing_id: str | None = None
    partner: str | None = None
    online_meeting: bool = True
    room: str | None = None
    subject: str | None = None
    allow_conflicts: bool = False


@dataclass(frozen=True, slots=True)
class SessionQuery:
    """GET /api/sessions: a window (defaults: from now, 62 days), a pairing filter, a page."""

    start: datetime | None = None
    end: datetime | None = None
    pairing_id: str | None = None
    limit: int = DEFAULT_LIST_LIMIT
    after: tuple[datetime, str] | None = None  # the cursor: (start, session id) of the last one seen


@dataclass(frozen=True, slots=True)
class SessionPage:
    """Sessions by (start, id), and the cursor of the next page when there are more."""

    sessions: list[Session]
    next_after: tuple[datetime, str] | None = None


@dataclass(frozen=True, slots=True)
class _Partner:
    user_id: str
    address: str
    organizer_address: str
    pairing_id: str | None


class BookingService:
    """Sessions through the event-write queue (see the module docstring)."""

    def __init__(
        self,
        gateway: CalendarGateway | None,
        tables: TableStore,
        queues: CommandQueue,
        clock: Clock,
        sealer: Sealer,
        *,
        monotonic: Callable[[], float] | None = None,
        offered: OfferedHoursService | None = None,
    ) -> None:
        self._gateway = gateway
        self.queues = queues
        self.clock = clock
        self.sealer = sealer
        self.tables = tables
        self.sessions = SessionRepository(tables)
        self.pairings = PairingRepository(tables)
        self.integrations = IntegrationRepository(tables)
        self.connections = ConnectionRepository(tables)
        self.identities = GraphIdentities(self.integrations, self.connections)
        self.unreachable = UnreachableMailboxes(tables)
        self._monotonic = monotonic or time.monotonic
        self.offered = offered or OfferedHoursService(tables, clock)
        self._rooms: dict[str, tuple[float, frozenset[str]]] = {}
        self.claims = SlotClaims(tables, clock)

    @property
    def gateway(self) -> CalendarGateway:
        """Microsoft Graph, needed only by the operations that resolve users or rooms."""
        if self._gateway is None:
            raise DependencyError("Microsoft Graph is not configured for this process.")
        return self._gateway

    # --- create -----------------------------------------------------------------------

    def create(self, caller: Caller, request: BookingRequest) -> Session:
        """Validate, store a pending session and queue its creation in Outlook."""
        integration = require_enabled_integration(self.integrations, caller.tenant_id)
        who = self._require_writable(integration, caller)
        now = self.clock.now()
        start, end = _seconds(request.start), _seconds(request.end)
        validate_times(start, end, now)
        partner = self._partner(caller, integration, request)
        self._require_usable_mailboxes(caller, partner)
        self.offered.require_offered(caller.tenant_id, [partner.user_id], start, end)
        room = None
        if request.room:
            room = self._room(self.identities.for_tenant(integration.tenant_id, integration=integration), request.room)
        session_id = uuid.uuid4().hex
        addresses = [partner.organizer_address, partner.address, *([room] if room else [])]
        self._check_slot(who, caller, addresses, start, end, allow_conflicts=request.allow_conflicts)
        self._claim(caller, partner.organizer_address, session_id, start, end,
                    allow_conflicts=request.allow_conflicts)
        session = Session(
            tenant_id=caller.tenant_id,
            session_id=session_id,
            organizer_id=caller.object_id,
            organizer_address=partner.organizer_address,
            attendees=(AttendeeState(partner.address, user_id=partner.user_id),),
            start=start,
            end=end,
            time_zone=request.time_zone,
            room=AttendeeState(room) if room else None,
            online_meeting=request.online_meeting,
            pairing_id=partner.pairing_id,
            allow_conflicts=request.allow_conflicts,
            created_at=now,
            updated_at=now,
        )
        sealed = seal_texts(self.sealer, session.tenant_id, session.session_id, subject=request.subject)
        try:
            stored = self.sessions.add(session)
        except Exception:
            self.claims.release(caller.tenant_id, caller.object_id, session_id, start, end)
            raise
        self._enqueue(stored, PendingOp.CREATE, sealed, undo=None)
        log.info("session requested", extra={"tenant": caller.tenant_id, "event": "session_requested"})
        return stored.value

    def _require_writable(self, integration: Integration, organizer: Caller) -> GraphIdentity:
        """Refuse at request time (409) what the worker could not write: a per-user organizer who
        has not connected (or must reconnect), or a service-account tenant without its mailbox."""
        return self.identities.for_user(integration.tenant_id, organizer.object_id, integration=integration,
                                        require_connection=True)

    def _check_slot(self, who: GraphIdentity, organizer: Caller, addresses: list[str], start: datetime,
                    end: datetime, *, allow_conflicts: bool, ignore: tuple[datetime, datetime] | None = None) -> None:
        """409 ``slot_taken`` when free/busy shows someone busy (one getSchedule). When Graph cannot
        tell now, the request goes ahead: the worker checks again before writing."""
        if allow_conflicts:
            return
        try:
            busy = busy_addresses(self.gateway, who, who.user_id or organizer.object_id, addresses, start=start,
                                  end=end, ignore=ignore)
        except (GraphError, DependencyError, AuthorizationError) as exc:
            log.info("slot check deferred to the worker (%s)", exc.code, extra={"tenant": organizer.tenant_id})
            return
        if busy:
            log.info("slot taken at request time", extra={"tenant": organizer.tenant_id, "event": "slot_taken"})
            raise slot_taken(busy)

    def _claim(self, organizer: Caller, organizer_address: str, session_id: str, start: datetime, end: datetime,
               *, allow_conflicts: bool) -> None:
        """Hold the organizer's time range for this session (409 ``slot_taken`` when another booking does)."""
        try:
            self.claims.claim(organizer.tenant_id, organizer.object_id, session_id, start, end,
                              allow_conflicts=allow_conflicts)
        except SlotTaken:
            log.info("slot claimed by another booking", extra={"tenant": organizer.tenant_id, "event": "slot_taken"})
            raise slot_taken([organizer_address]) from None

    def _require_usable_mailboxes(self, caller: Caller, partner: _Partner) -> None:
        """422 ``mailbox_on_premises_or_unlicensed`` when an access test found the organizer's or the
        partner's mailbox on premises (Exchange hybrid), unlicensed or inactive: free/busy may still
        answer for a hybrid mailbox, but the event could never be written or its answer read."""
        for role, user_id in (("organizer", caller.object_id), ("attendee", partner.user_id)):
            if self.unreachable.reason_of(caller.tenant_id, user_id) is not None:
                who = "Your" if role == "organizer" else "Your partner's"
                raise MailboxUnavailable(
                    f"{who} mailbox is on premises (Exchange hybrid), unlicensed or inactive, so Outlook "
                    "events cannot be written to it through Microsoft Graph. Only Exchange Online mailboxes "
                    "can take part in bookings.",
                    details={"role": role, "userId": user_id.lower()},
                )

    def _partner(self, caller: Caller, integration: Integration, request: BookingRequest) -> _Partner:
        if request.pairing_id is not None:
            pairing = self._pairing(caller, request.pairing_id)
            return self._from_pairing(caller, pairing)
        assert request.partner is not None
        ref = request.partner.strip().lower()
        if ref == caller.object_id:
            raise ValidationFailed("You cannot book a session with yourself.", code="partner_is_caller",
                                   details={"fields": [{"loc": ["body", "partner"], "msg": "that is you"}]})
        for pairing in self.pairings.list_for_user(caller.tenant_id, caller.object_id):
            partner_id, partner_address = pairing.partner_of(caller.object_id)
            if pairing.active and ref in (partner_id, partner_address.lower()):
                return self._from_pairing(caller, pairing)
        if integration.pairing_policy != PairingPolicy.SAME_TENANT:
            raise Forbidden("You can only book sessions with someone you are paired with.",
                            code="partner_not_paired")
        who = self.identities.for_user(caller.tenant_id, caller.object_id, integration=integration)
        try:
            other = self.gateway.get_user(who, request.partner)
        except UserNotFound as exc:
            raise ValidationFailed("The partner is not a user of your organisation.", code="user_not_found",
                                   details={"fields": [{"loc": ["body", "partner"], "msg": "no such user"}]}) from exc
        if other.user_id.lower() == caller.object_id:
            raise ValidationFailed("You cannot book a session with yourself.", code="partner_is_caller",
                                   details={"fields": [{"loc": ["body", "partner"], "msg": "that is you"}]})
        if not other.mail:
            raise ValidationFailed("The partner has no mailbox.", code="user_without_mailbox",
                                   details={"fields": [{"loc": ["body", "partner"], "msg": "no mailbox"}]})
        me = self.gateway.get_user(who, caller.object_id)
        if not me.mail:
            raise ValidationFailed("You have no mailbox to organize the session from.", code="user_without_mailbox")
        return _Partner(other.user_id.lower(), other.mail, me.mail, None)

    def _pairing(self, caller: Caller, pairing_id: str) -> Pairing:
        found = self.pairings.get(caller.tenant_id, pairing_id)
        if found is None or not found.value.active or not found.value.includes(caller.object_id):
            raise NotFound("No such pairing.", code="pairing_not_found")
        return found.value

    @staticmethod
    def _from_pairing(caller: Caller, pairing: Pairing) -> _Partner:
        partner_id, partner_address = pairing.partner_of(caller.object_id)
        return _Partner(partner_id, partner_address, pairing.address_of(caller.object_id), pairing.pairing_id)

    def _room(self, who: GraphIdentity, address: str) -> str:
        """The room's address as the tenant's room directory spells it (422 for an unknown room)."""
        known = self._room_addresses(who)
        for candidate in known:
            if candidate.lower() == address.lower():
                return candidate
        raise ValidationFailed("No meeting room with that address in your organisation.", code="room_not_found",
                               details={"fields": [{"loc": ["body", "room"], "msg": "unknown room"}]})

    def _room_addresses(self, who: GraphIdentity) -> frozenset[str]:
        cached = self._rooms.get(who.tenant_id)
        if cached is not None and cached[0] > self._monotonic():
            return cached[1]
        rooms: list[Room] = self.gateway.list_rooms(who)
        addresses = frozenset(r.address for r in rooms)
        self._rooms[who.tenant_id] = (self._monotonic() + ROOMS_CACHE_SECONDS, addresses)
        return addresses

    # --- read -------------------------------------------------------------------------

    def get(self, caller: Caller, session_id: str) -> Session:
        """One session, for its organizer and attendees (404 for anyone else); the product's server
        (app-only, Sessions.ReadWrite.All) reads any session of its tenant."""
        session = self._read(caller, session_id).value
        if caller.is_app:
            require_sessions_app(caller)
            return session
        require_participant(session.organizer_id, _attendee_ids(session), caller)
        return session

    def list_for(self, caller: Caller, start: datetime, end: datetime) -> list[Session]:
        """The caller's sessions (organizer or attendee) starting in [start, end), by start."""
        found = self.sessions.list_for_user(caller.tenant_id, caller.object_id, start, end)
        return sorted(found, key=lambda s: (s.start, s.session_id))

    def list_sessions(self, caller: Caller, query: SessionQuery) -> SessionPage:
        """GET /api/sessions (see ``SessionQuery``): a user's own sessions (optionally of one of their
        pairings); for the product's server acting as itself, a pairing's or the whole tenant's.

        Sessions starting in [start, end), by (start, id), at most ``limit`` per page; without a
        window, from now for ``DEFAULT_LIST_WINDOW``.
        """
        start, end = _list_window(query.start, query.end, self.clock.now())
        if end <= start or end - start > MAX_LIST_WINDOW:
            raise ValidationFailed("The window must end after it starts and span at most 62 days.",
                                   details={"fields": [{"loc": ["query", "to"], "msg": "at most 62 days after from"}]})
        limit = max(1, min(query.limit, MAX_LIST_LIMIT))
        after = query.after
        lower = after[0] if after is not None and after[0] > start else start

        def past_cursor(s: Session) -> bool:
            return after is None or (s.start, s.session_id) > after

        if caller.is_app:
            require_sessions_app(caller)
            if query.pairing_id is not None:
                candidates = self._pairing_sessions(caller.tenant_id, query.pairing_id, lower, end)
            else:
                candidates = self._tenant_sessions(caller.tenant_id, lower, end, after, limit + 1)
        else:
            candidates = self.list_for(caller, lower, end)
            if query.pairing_id is not None:
                self._pairing(caller, query.pairing_id)  # 404 unless the caller is a member
                candidates = [s for s in candidates if s.pairing_id == query.pairing_id]
        page = [s for s in candidates if past_cursor(s)][: limit + 1]
        if len(page) > limit:
            last = page[limit - 1]
            return SessionPage(page[:limit], (last.start, last.session_id))
        return SessionPage(page)

    def _pairing_sessions(self, tenant_id: str, pairing_id: str, start: datetime, end: datetime) -> list[Session]:
        """A pairing's sessions, read through its mentor's index (every session of a pairing involves both)."""
        found = self.pairings.get(tenant_id, pairing_id)
        if found is None:
            raise NotFound("No such pairing.", code="pairing_not_found")
        member = found.value.mentor_id
        return [s for s in self.list_for(Caller(tenant_id, member), start, end) if s.pairing_id == pairing_id]

    def _tenant_sessions(self, tenant_id: str, start: datetime, end: datetime, after: tuple[datetime, str] | None,
                         wanted: int) -> list[Session]:
        """The tenant's sessions starting in [start, end) through the start-time index, reading only
        as many sessions as the page needs."""
        out: list[Session] = []
        for row in self.sessions.start_index(tenant_id, start, end):
            if after is not None and (row.start, row.session_id) <= after:
                continue
            found = self.sessions.get(tenant_id, row.session_id)
            if found is None or found.value.start != row.start:
                continue  # a row left behind by an interrupted move
            out.append(found.value)
            if len(out) >= wanted:
                break
        return out

    # --- change -----------------------------------------------------------------------

    def reschedule(self, caller: Caller, session_id: str, start: datetime, end: datetime, time_zone: str,
                   *, allow_conflicts: bool = False) -> Session:
        """Move a session (organizer only); the Outlook update is queued. 409 ``slot_taken`` when the
        new times are not free (the session's own event ignored) unless ``allow_conflicts``."""
        integration = require_enabled_integration(self.integrations, caller.tenant_id)
        read = self._for_organizer(caller, session_id)
        who = self._require_writable(integration, caller)
        current = read.value
        changed = current.request_reschedule(_seconds(start), _seconds(end), time_zone, self.clock.now(),
                                             allow_conflicts=allow_conflicts)
        self._series_guard(current, changed.start)
        self.offered.require_offered(caller.tenant_id, _attendee_ids(current), changed.start, changed.end,
                                     exclude_session=session_id)
        addresses = [current.organizer_address, *(a.address for a in current.attendees),
                     *([current.room.address] if current.room else [])]
        own = (current.start, current.end) if current.event_id else None
        self._check_slot(who, caller, addresses, changed.start, changed.end, allow_conflicts=allow_conflicts,
                         ignore=own)
        self._claim(caller, current.organizer_address, session_id, changed.start, changed.end,
                    allow_conflicts=allow_conflicts)
        saved = self.sessions.save(changed, read.etag, previous=read.value)
        assert changed.pending_op is not None
        self._enqueue(saved, changed.pending_op, None, undo=read.value)
        return saved.value

    def cancel(self, caller: Caller, session_id: str, comment: str | None = None) -> Session:
        """Cancel a session (organizer only); Outlook's cancellation reaches the attendees."""
        integration = require_enabled_integration(self.integrations, caller.tenant_id)
        read = self._for_organizer(caller, session_id)
        self._require_writable(integration, caller)
        self._series_guard(read.value, None)
        changed = read.value.request_cancel(self.clock.now())
        saved = self.sessions.save(changed, read.etag, previous=read.value)
        sealed = seal_texts(self.sealer, changed.tenant_id, changed.session_id, comment=comment)
        self._enqueue(saved, PendingOp.CANCEL, sealed, undo=read.value)
        return saved.value

    def _for_organizer(self, caller: Caller, session_id: str) -> Versioned[Session]:
        read = self._read(caller, session_id)
        require_organizer(read.value.organizer_id, _attendee_ids(read.value), caller)
        return read

    def _read(self, caller: Caller, session_id: str) -> Versioned[Session]:
        """The session in the caller's tenant; missing is the same bare 404 as "not yours"."""
        found = self.sessions.get(caller.tenant_id, session_id)
        if found is None:
            raise NotFound()
        return found

    def _enqueue(self, stored: Versioned[Session], op: PendingOp, sealed: str | None, *, undo: Session | None) -> None:
        """Queue the Outlook write. If the queue is down the caller gets 503 and the session does not
        wait forever: a new one is marked failed, a change is rolled back to ``undo``."""
        s = stored.value
        command = EventWriteCommand(s.tenant_id, s.session_id, op, s.version, correlation_id.get(), sealed)
        try:
            self.queues.send(Queues.EVENT_WRITES, command.to_message())
        except DependencyError:
            back = s.mark_failed(REASON_NOT_QUEUED, self.clock.now()) if undo is None else undo
            try:
                self.sessions.save(back, stored.etag, previous=s)
            except Exception:  # the 503 below is what matters to the caller
                log.warning("session could not be restored after a queue outage", extra={"tenant": s.tenant_id})
            raise


    # --- shared with series (core/services/series.py): the same rules as one session ------------------

    def writable_identity(self, integration: Integration, organizer: Caller) -> GraphIdentity:
        """The organizer's Graph identity for writes (409 when they must connect first)."""
        return self._require_writable(integration, organizer)

    def resolve_partner(self, caller: Caller, integration: Integration, request: BookingRequest) -> _Partner:
        """The partner by the tenant's pairing policy, and whether both mailboxes can take part."""
        partner = self._partner(caller, integration, request)
        self._require_usable_mailboxes(caller, partner)
        return partner

    def room_address(self, integration: Integration, room: str) -> str:
        """The room as the tenant's room directory spells it (422 ``room_not_found``)."""
        return self._room(self.identities.for_tenant(integration.tenant_id, integration=integration), room)

    def _series_guard(self, occurrence: Session, new_start: datetime | None) -> None:
        """An occurrence of a series changes only while its series is not being changed, and moves
        only within its neighbours' days (core/services/series_sync.py)."""
        if occurrence.series_id:
            from core.services.series_sync import check_occurrence_change

            check_occurrence_change(self.tables, occurrence, new_start)


def online_meeting_unavailable(session: Session) -> bool:
    """An online meeting was asked for, the event exists, but the calendar allowed no provider."""
    return session.online_meeting and session.status == SessionStatus.BOOKED and session.join_url is None


def _list_window(start: datetime | None, end: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """The listing window: as given; from ``start`` for 62 days; up to ``end`` from now (or the 62 days
    before a past ``end``); or, with neither, the upcoming 62 days."""
    if start is not None:
        return start, end or start + DEFAULT_LIST_WINDOW
    if end is not None:
        return (max(now, end - DEFAULT_LIST_WINDOW) if end > now else end - DEFAULT_LIST_WINDOW), end
    return now, now + DEFAULT_LIST_WINDOW


def _attendee_ids(session: Session) -> list[str]:
    return [a.user_id for a in session.attendees if a.user_id]


def _seconds(moment: datetime) -> datetime:
    """Graph keeps times to the second; so do sessions (a retried create compares equal)."""
    return moment.astimezone(UTC).replace(microsecond=0)
