"""Booking: the API side of sessions (create, read, list, reschedule, cancel).

The caller books as the organizer of their own event, the partner is a required
attendee (so the organizer sees the RSVP and manages the invite in Outlook), an
optional room is a resource attendee. A group session (API 1.1) invites up to 50
people instead, colleagues and guests, each required or optional
(``core/services/party.py``: resolution, limits, pairing policy), and may leave the
room and one host to the service: any of ``rooms`` (``first`` or ``bestFit`` for the
party's size) and any of ``hosts`` (the free one with the fewest sessions around the
slot), chosen and claimed here (``core/services/any_of.py``) and chosen again by the
worker when taken meanwhile; the booking answer says what was chosen and why.

Nothing is written to Outlook here: each change is validated, stored on the session
(``pending_op`` + a new ``version``) with its ETag, and queued as an ``EventWriteCommand`` for the event-write worker
(``core/services/event_writer.py``), which answers 202 at once and survives Graph
throttling and outages.

Who may book with whom follows the tenant's pairing policy: ``registered`` allows a
partner only inside an active pairing of the caller (anything else is 404
``pairing_not_found`` / 403 ``partner_not_paired``) unless the product's server or an
admin books, ``sameTenant`` any colleague Graph can resolve; groups and guests follow
the same rule (``core/services/party.py``). Reads are for the organizer and the attendees; anyone else in the tenant
gets 404, not 403, so a session id reveals nothing to strangers. Changes are for the
organizer only (attendees 403). A change racing another one loses with 409.

Slot taken: unless the request says ``allowConflicts``, a booking or a move first reads
the organizer's, the required colleagues' (the chosen host included) and the room's
free/busy for exactly those times (one ``getSchedule`` per 20 addresses, with any-of
candidates in the same calls) and answers 409 ``slot_taken`` when one of them is busy,
or when no candidate host or room is free (a move ignores its own event, and keeps its
host and room); optional people and guests never take a slot. Then it claims the
organizer's time range (``core/services/slot_guard.py``), and the chosen host's and room's,
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

from core.domain.assignment import MAX_ROOM_CANDIDATES, AnyOf, HostCandidate, RoomChoice, RoomOption, rank_rooms
from core.domain.calendar import GraphIdentity, Room
from core.domain.commands import EventWriteCommand
from core.domain.errors import (
    AuthorizationError,
    DependencyError,
    Forbidden,
    GraphError,
    MailboxUnavailable,
    NotFound,
    OutsideOfferedHours,
    SlotTaken,
    UserNotFound,
    ValidationFailed,
)
from core.domain.integration import Integration, PairingPolicy
from core.domain.sessions import AttendeeState, PendingOp, Session, SessionStatus, validate_times
from core.log import correlation_id
from core.names import Queues
from core.ports import CalendarGateway, Clock, CommandQueue, Sealer, TableStore
from core.services.any_of import AnyOfChooser
from core.services.authz import Caller, require_organizer, require_participant, require_sessions_app
from core.services.event_writer import seal_texts
from core.services.identity import GraphIdentities
from core.services.offered_hours import OfferedHoursService
from core.services.pairings import require_enabled_integration
from core.services.party import AttendeeRequest, Invitee, Party, PartyResolver
from core.services.series_sync import check_occurrence_change
from core.services.slot_guard import SlotClaims, free_busy, slot_taken
from core.services.stores.access_tests import UnreachableMailboxes
from core.services.stores.codec import Versioned, on_latest
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
    """POST /api/sessions as the service sees it: ``pairing_id`` or ``partner`` (id or email), or a
    group (``attendees`` and/or ``hosts``, core/services/party.py); a ``room`` or any of ``rooms``."""

    start: datetime
    end: datetime
    time_zone: str
    pairing_id: str | None = None
    partner: str | None = None
    online_meeting: bool = True
    room: str | None = None
    subject: str | None = None
    allow_conflicts: bool = False
    attendees: tuple[AttendeeRequest, ...] = ()
    hosts: tuple[str, ...] = ()
    rooms: tuple[str, ...] = ()
    room_choice: RoomChoice = RoomChoice.FIRST
    capacity: int | None = None


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
        self._rooms: dict[str, tuple[float, tuple[Room, ...]]] = {}
        self.claims = SlotClaims(tables, clock)
        self.any_of = AnyOfChooser(tables, clock)
        self.party = PartyResolver(lambda: self.gateway, self.pairings)

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
        party = self._party(caller, integration, request)
        self._require_usable_mailboxes(caller, party)
        self.offered.require_offered(caller.tenant_id, party.required_ids, start, end)
        hosts = self._offered_hosts(caller.tenant_id, party.hosts, start, end)
        room: str | None = None
        rooms: tuple[RoomOption, ...] = ()
        need = request.capacity or party.size
        if request.room or request.rooms:
            directory = self.identities.for_tenant(integration.tenant_id, integration=integration)
            if request.room:
                room = self._room(directory, request.room)
            else:
                rooms = self._room_options(directory, request.rooms, request.room_choice, need)
        session_id = uuid.uuid4().hex
        checked = [party.organizer_address, *party.required_addresses, *([room] if room else [])]
        candidates = [*(h.address for h in hosts), *(r.address for r in rooms)]
        free = self._check_slot(who, caller, checked, start, end, allow_conflicts=request.allow_conflicts,
                                candidates=candidates)
        self._claim(caller, party.organizer_address, session_id, start, end,
                    allow_conflicts=request.allow_conflicts)
        any_of: AnyOf | None = None
        attendees = tuple(i.state() for i in party.invitees)
        try:
            if hosts or rooms:
                any_of, host, room = self._choose(caller, session_id, request, hosts=hosts, rooms=rooms, need=need,
                                                  start=start, end=end, free=free)
                if host is not None:
                    attendees = (*attendees, host)
            session = Session(
                tenant_id=caller.tenant_id,
                session_id=session_id,
                organizer_id=caller.object_id,
                organizer_address=party.organizer_address,
                attendees=attendees,
                start=start,
                end=end,
                time_zone=request.time_zone,
                room=AttendeeState(room) if room else None,
                online_meeting=request.online_meeting,
                pairing_id=party.pairing_id,
                allow_conflicts=request.allow_conflicts,
                any_of=any_of,
                created_at=now,
                updated_at=now,
            )
            sealed = seal_texts(self.sealer, session.tenant_id, session.session_id, subject=request.subject,
                                names=party.names)
            stored = self.sessions.add(session)
        except Exception:
            self._release(caller, session_id, start=start, end=end, any_of=any_of, attendees=attendees, room=room)
            raise
        self._enqueue(stored, PendingOp.CREATE, sealed, undo=None)
        log.info("session requested", extra={"tenant": caller.tenant_id, "event": "session_requested"})
        return stored.value

    def _party(self, caller: Caller, integration: Integration, request: BookingRequest) -> Party:
        """Who the session invites: the pairing or partner (one required attendee), or the group."""
        if request.pairing_id is not None or request.partner is not None:
            partner = self._partner(caller, integration, request)
            return Party(partner.organizer_address, (Invitee(partner.address, partner.user_id),),
                         pairing_id=partner.pairing_id)
        who = self.identities.for_user(caller.tenant_id, caller.object_id, integration=integration)
        return self.party.resolve(caller, integration, who, request.attendees, request.hosts)

    def _offered_hosts(self, tenant_id: str, hosts: tuple[HostCandidate, ...], start: datetime,
                       end: datetime) -> tuple[HostCandidate, ...]:
        """The host candidates whose offered hours hold [start, end) (422 ``outside_offered_hours`` if none)."""
        if not hosts:
            return ()
        offered = []
        for host in hosts:
            try:
                self.offered.require_offered(tenant_id, [host.user_id], start, end)
            except OutsideOfferedHours:
                continue
            offered.append(host)
        if not offered:
            raise OutsideOfferedHours()
        return tuple(offered)

    def _choose(self, caller: Caller, session_id: str, request: BookingRequest, *, hosts: tuple[HostCandidate, ...],
                rooms: tuple[RoomOption, ...], need: int, start: datetime, end: datetime,
                free: set[str] | None) -> tuple[AnyOf, AttendeeState | None, str | None]:
        """Choose (and claim) a host and a room among the candidates; 409 ``slot_taken`` when none is free."""
        tenant = caller.tenant_id
        host_choice = room_choice = None
        if hosts:
            host_choice = self.any_of.choose_host(tenant, session_id, hosts, start=start, end=end, free=free,
                                                  allow_conflicts=request.allow_conflicts)
            if host_choice is None:
                raise SlotTaken("None of the hosts is free at that time; pick another time.",
                                details={"busy": [h.address for h in hosts], "anyOf": "hosts"})
        if rooms:
            room_choice = self.any_of.choose_room(tenant, session_id, rooms, choice=request.room_choice, need=need,
                                                  start=start, end=end, free=free,
                                                  allow_conflicts=request.allow_conflicts)
            if room_choice is None:
                if host_choice is not None and host_choice.user_id:
                    self.any_of.release_host(tenant, host_choice.user_id, session_id, start, end)
                raise SlotTaken("None of the rooms is free at that time; pick another time.",
                                details={"busy": [r.address for r in rooms], "anyOf": "rooms"})
        any_of = AnyOf(rooms=rooms, room_choice=request.room_choice, capacity=need if rooms else None, hosts=hosts,
                       room_reason=room_choice.reason if room_choice else None,
                       host_reason=host_choice.reason if host_choice else None)
        host = None
        if host_choice is not None:
            host = AttendeeState(host_choice.address, user_id=host_choice.user_id, host=True)
        return any_of, host, room_choice.address if room_choice else None

    def _release(self, caller: Caller, session_id: str, *, start: datetime, end: datetime, any_of: AnyOf | None,
                 attendees: tuple[AttendeeState, ...], room: str | None) -> None:
        """A booking that was not stored gives back every claim it made (best effort)."""
        self.claims.release(caller.tenant_id, caller.object_id, session_id, start, end)
        if any_of is None:
            return
        host = next((a for a in attendees if a.host and a.user_id), None)
        if host is not None and host.user_id:
            self.any_of.release_host(caller.tenant_id, host.user_id, session_id, start, end)
        if any_of.rooms and room:
            self.any_of.release_room(caller.tenant_id, room, session_id, start, end)

    def _room_options(self, who: GraphIdentity, addresses: tuple[str, ...], choice: RoomChoice,
                      need: int) -> tuple[RoomOption, ...]:
        """The candidate rooms as the directory spells them, ranked (``rank_rooms``) and without those too
        small for the party; 422 ``room_not_found``, ``duplicate_room``, ``too_many_rooms``, ``no_room_fits``."""
        if len(addresses) > MAX_ROOM_CANDIDATES:
            raise ValidationFailed(f"At most {MAX_ROOM_CANDIDATES} candidate rooms may be given.",
                                   code="too_many_rooms", details={"max": MAX_ROOM_CANDIDATES})
        directory = {r.address.lower(): r for r in self._room_directory(who)}
        seen: set[str] = set()
        options: list[RoomOption] = []
        for i, address in enumerate(addresses):
            known = directory.get(address.strip().lower())
            if known is None:
                raise ValidationFailed("No meeting room with that address in your organisation.",
                                       code="room_not_found",
                                       details={"fields": [{"loc": ["body", "rooms", i], "msg": "unknown room"}]})
            if known.address.lower() in seen:
                raise ValidationFailed("The same room is named twice.", code="duplicate_room",
                                       details={"fields": [{"loc": ["body", "rooms", i], "msg": "named twice"}]})
            seen.add(known.address.lower())
            options.append(RoomOption(known.address, known.capacity))
        ranked = tuple(rank_rooms(options, choice, need))
        if not ranked:
            raise ValidationFailed(f"None of the rooms seats {need} people.", code="no_room_fits",
                                   details={"capacity": need})
        return ranked

    def _require_writable(self, integration: Integration, organizer: Caller) -> GraphIdentity:
        """Refuse at request time (409) what the worker could not write: a per-user organizer who
        has not connected (or must reconnect), or a service-account tenant without its mailbox."""
        return self.identities.for_user(integration.tenant_id, organizer.object_id, integration=integration,
                                        require_connection=True)

    def _check_slot(self, who: GraphIdentity, organizer: Caller, addresses: list[str], start: datetime,
                    end: datetime, *, allow_conflicts: bool, ignore: tuple[datetime, datetime] | None = None,
                    candidates: list[str] | None = None) -> set[str] | None:
        """409 ``slot_taken`` when free/busy shows one of ``addresses`` busy (one getSchedule per 20
        addresses, any-of ``candidates`` read in the same calls). Returns the lower-case addresses found
        free, or None when free/busy was not read: with ``allow_conflicts``, or when Graph cannot tell
        now (the request goes ahead and the worker checks again before writing)."""
        if allow_conflicts:
            return None
        try:
            states = free_busy(self.gateway, who, who.user_id or organizer.object_id, [*addresses, *(candidates or [])],
                               start=start, end=end, ignore=ignore)
        except (GraphError, DependencyError, AuthorizationError) as exc:
            log.info("slot check deferred to the worker (%s)", exc.code, extra={"tenant": organizer.tenant_id})
            return None
        busy = [a for a in dict.fromkeys(addresses) if states.get(a.lower()) is False]
        if busy:
            log.info("slot taken at request time", extra={"tenant": organizer.tenant_id, "event": "slot_taken"})
            raise slot_taken(busy)
        return {address for address, free in states.items() if free}

    def _claim(self, organizer: Caller, organizer_address: str, session_id: str, start: datetime, end: datetime,
               *, allow_conflicts: bool) -> None:
        """Hold the organizer's time range for this session (409 ``slot_taken`` when another booking does)."""
        try:
            self.claims.claim(organizer.tenant_id, organizer.object_id, session_id, start, end,
                              allow_conflicts=allow_conflicts)
        except SlotTaken:
            log.info("slot claimed by another booking", extra={"tenant": organizer.tenant_id, "event": "slot_taken"})
            raise slot_taken([organizer_address]) from None

    def _require_usable_mailboxes(self, caller: Caller, party: Party) -> None:
        """422 ``mailbox_on_premises_or_unlicensed`` when an access test found the organizer's, a colleague
        attendee's or a host candidate's mailbox on premises (Exchange hybrid), unlicensed or inactive:
        free/busy may still answer for a hybrid mailbox, but the event could never be written or its
        answer read. Guests are not checked (their mailboxes are not the tenant's)."""
        people = [("organizer", caller.object_id), *(("attendee", uid) for uid in party.colleague_ids),
                  *(("host", h.user_id) for h in party.hosts)]
        for role, user_id in people:
            if self.unreachable.reason_of(caller.tenant_id, user_id) is not None:
                who = {"organizer": "Your", "attendee": "An attendee's", "host": "A host candidate's"}[role]
                if role == "attendee" and len(party.invitees) == 1:
                    who = "Your partner's"
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
        if integration.pairing_policy != PairingPolicy.SAME_TENANT and not (caller.acting_app or caller.is_admin):
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
        for candidate in self._room_directory(who):
            if candidate.address.lower() == address.lower():
                return candidate.address
        raise ValidationFailed("No meeting room with that address in your organisation.", code="room_not_found",
                               details={"fields": [{"loc": ["body", "room"], "msg": "unknown room"}]})

    def _room_directory(self, who: GraphIdentity) -> tuple[Room, ...]:
        cached = self._rooms.get(who.tenant_id)
        if cached is not None and cached[0] > self._monotonic():
            return cached[1]
        rooms = tuple(self.gateway.list_rooms(who))
        self._rooms[who.tenant_id] = (self._monotonic() + ROOMS_CACHE_SECONDS, rooms)
        return rooms

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
        new times are not free (the session's own event ignored) unless ``allow_conflicts``. Made on the
        latest version of the session (``on_latest``)."""
        return on_latest(lambda: self._reschedule(caller, session_id, start, end, time_zone,
                                                  allow_conflicts=allow_conflicts))

    def _reschedule(self, caller: Caller, session_id: str, start: datetime, end: datetime, time_zone: str,
                    *, allow_conflicts: bool) -> Session:
        integration = require_enabled_integration(self.integrations, caller.tenant_id)
        read = self._for_organizer(caller, session_id)
        who = self._require_writable(integration, caller)
        current = read.value
        changed = current.request_reschedule(_seconds(start), _seconds(end), time_zone, self.clock.now(),
                                             allow_conflicts=allow_conflicts)
        self._series_guard(current, changed.start)
        required = [a.user_id for a in current.attendees if a.user_id and a.required]
        self.offered.require_offered(caller.tenant_id, required, changed.start, changed.end,
                                     exclude_session=session_id)
        addresses = current.checked_addresses()  # a move keeps its host and room: they must be free too
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
        """Cancel a session (organizer only); Outlook's cancellation reaches the attendees. Made on the
        latest version of the session (``on_latest``)."""
        return on_latest(lambda: self._cancel(caller, session_id, comment))

    def _cancel(self, caller: Caller, session_id: str, comment: str | None) -> Session:
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
        self._require_usable_mailboxes(caller, Party(partner.organizer_address,
                                                     (Invitee(partner.address, partner.user_id),)))
        return partner

    def room_address(self, integration: Integration, room: str) -> str:
        """The room as the tenant's room directory spells it (422 ``room_not_found``)."""
        return self._room(self.identities.for_tenant(integration.tenant_id, integration=integration), room)

    def _series_guard(self, occurrence: Session, new_start: datetime | None) -> None:
        """An occurrence of a series changes only while its series is not being changed, and moves
        only within its neighbours' days (core/services/series_sync.py)."""
        if occurrence.series_id:
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
