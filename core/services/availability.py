"""Availability: free slots for a pairing or a list of people, rooms, and the caller's own calendar.

With application permissions Graph has no findMeetingTimes, so slots are computed
here from getSchedule (core/domain/slots.py): one getSchedule call carries every
participant's busy items *and* working hours (no mailboxSettings call), so a pair
costs exactly one Graph request for any window under Graph's 62 days.

What callers see, by design:

* other people: slots only. The gateway keeps nothing but times and statuses of
  getSchedule's items (subjects and locations are dropped in the adapter), and this
  module returns nothing but the merged free time;
* themselves: ``my_events`` shows the caller's own events with subjects, read live
  from Graph, never stored, cached or logged;
* a participant Graph cannot reach (on-premises or unlicensed mailbox, outside the
  app's allowed scope, unknown address) makes the request fail with 422
  ``participant_unreachable`` listing every participant and why: an empty slot list
  would wrongly say "no common time".

Offered hours (core/services/offered_hours.py): each participant's rules (their own,
else the tenant default), the caller's included, limit the slots to times that person
offers, keep their buffers around their busy items and withdraw days and weeks at
their caps. Nobody sees why a time is missing: a slot is offered or it is not.

Who may ask: a ``pairingId`` works only for a member of that active pairing (anything
else is 404 ``pairing_not_found``, so other pairings, in this tenant or another, are
never revealed); a free list of participants only when the tenant's pairing policy is
``sameTenant`` (403 ``participants_not_allowed`` under ``registered``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from enum import StrEnum
from typing import Final, Generic, TypeVar

from core.domain.assignment import (
    MAX_ROOM_CANDIDATES,
    Choice,
    HostCandidate,
    RoomChoice,
    RoomOption,
    pick_host,
    pick_room,
    rank_rooms,
)
from core.domain.calendar import (
    GET_SCHEDULE_MAX_ADDRESSES,
    GET_SCHEDULE_MAX_WINDOW,
    DirectoryUser,
    GraphIdentity,
    Room,
    Schedule,
    TimeZoneSpec,
    WorkingHours,
)
from core.domain.commands import chunks
from core.domain.errors import (
    Forbidden,
    GraphError,
    ItemNotFound,
    MailboxUnavailable,
    NotFound,
    ParticipantUnreachable,
    TenantNotOnboarded,
    UserNotFound,
    ValidationFailed,
)
from core.domain.integration import Integration, PairingPolicy
from core.domain.offered_hours import MAX_BUFFER_MINUTES
from core.domain.schedule_codes import MAILBOX_PROBLEMS, schedule_error
from core.domain.sessions import AttendeeType, SessionStatus
from core.domain.slots import Participant, Slot, SlotRequest, find_slots
from core.domain.timezones import iana_name
from core.ports import CalendarGateway, Clock, TableStore
from core.services.any_of import AnyOfChooser
from core.services.authz import Caller
from core.services.identity import GraphIdentities
from core.services.offered_hours import Constraint, OfferedHoursService
from core.services.party import AttendeeRequest, PartyResolver
from core.services.stores.connections import ConnectionRepository
from core.services.stores.integrations import IntegrationRepository
from core.services.stores.pairings import Pairing, PairingRepository
from core.services.stores.sessions import SessionRepository

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MAX_SCHEDULES_PER_CALL: Final = GET_SCHEDULE_MAX_ADDRESSES
# Graph wants a getSchedule window *under* 62 days; longer ones (a 62-day request plus
# buffers) are fetched in pieces of this length.
MAX_SCHEDULE_WINDOW: Final = GET_SCHEDULE_MAX_WINDOW - timedelta(days=1)
DEFAULT_STEP_MINUTES: Final = 15
MAX_VIEW_INTERVAL_MINUTES: Final = 60
ADDRESS_CACHE_SECONDS: Final = 300.0  # a user's SMTP address is not secret and rarely changes
ROOMS_CACHE_SECONDS: Final = 600.0
MAX_CACHE_ENTRIES: Final = 10_000
MAX_MY_EVENTS: Final = 1_000

OK: Final = "ok"
GUEST_STATUS: Final = "unknown"
GUEST_MESSAGE: Final = "A guest from outside your organisation: their calendar is never read."
UNREACHABLE_CODE: Final = "participant_unreachable"
_MAILBOX_ERRORS = MAILBOX_PROBLEMS
_OTHER_REASON: Final = "other"
_OTHER_MESSAGE: Final = "Microsoft 365 could not give this calendar's free/busy time."


# --- values ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AvailabilityQuery:
    """POST /api/availability as the service sees it: ``pairing_id`` or ``participants``."""

    start: datetime
    end: datetime
    duration_minutes: int
    time_zone: str
    pairing_id: str | None = None
    participants: tuple[str, ...] = ()
    step_minutes: int | None = None
    buffer_minutes: int = 0
    working_hours_only: bool = True
    attendees: tuple[AttendeeRequest, ...] = ()  # a group (core/services/party.py), instead of the above
    hosts: tuple[str, ...] = ()  # any one of these colleagues
    rooms: tuple[str, ...] = ()  # any one of these rooms
    room_choice: RoomChoice = RoomChoice.FIRST
    capacity: int | None = None

    @property
    def is_group(self) -> bool:
        return bool(self.attendees or self.hosts or self.rooms)

    def schedules(self) -> int:
        """An upper bound of the schedules one answer reads (the caller, people, hosts, rooms)."""
        people = len(self.participants) + len(self.attendees) + (1 if self.pairing_id else 0)
        return 1 + people + len(self.hosts) + len(self.rooms)

    def schedule_calls(self) -> int:
        """getSchedule calls this query costs at most: ceil(schedules / 20) per window under 62 days."""
        margin = timedelta(minutes=max(self.buffer_minutes, MAX_BUFFER_MINUTES))  # the widest buffer a rule may add
        windows = len(_windows(self.start - margin, self.end + margin))
        return windows * -(-self.schedules() // MAX_SCHEDULES_PER_CALL)


class Role(StrEnum):
    """What a participant is to the answer: must be free, shown when free, any one of, never read."""

    REQUIRED = "required"
    OPTIONAL = "optional"
    HOST = "host"
    ROOM = "room"
    GUEST = "guest"


@dataclass(frozen=True, slots=True)
class ParticipantStatus:
    """Whether one participant's calendar could be read; ``user`` is how the caller knows them.
    Guests are ``unknown``: their calendar is never read."""

    user: str
    address: str | None
    status: str = OK
    message: str | None = None
    role: Role = Role.REQUIRED

    def as_dict(self) -> dict[str, str]:
        out = {"user": self.user, "status": self.status}
        if self.address:
            out["address"] = self.address
        if self.message:
            out["message"] = self.message
        if self.role is not Role.REQUIRED:
            out["role"] = self.role.value
        return out


@dataclass(frozen=True, slots=True)
class TimeSlot:
    """A free interval in UTC (responses add the zone the caller asked for). For groups: which
    optional people, candidate hosts and candidate rooms are free then (addresses), and what a
    booking of this slot would choose (``host``, ``room``) and why."""

    start: datetime
    end: datetime
    optional: tuple[str, ...] | None = None
    hosts: tuple[str, ...] | None = None
    rooms: tuple[str, ...] | None = None
    host: Choice | None = None
    room: Choice | None = None


@dataclass(frozen=True, slots=True)
class FreeSlots:
    """The answer to an availability query: UTC slots and who was considered."""

    time_zone: str
    slots: tuple[TimeSlot, ...]
    participants: tuple[ParticipantStatus, ...] = ()


@dataclass(frozen=True, slots=True)
class RoomSlots:
    """Free slots of one room, or why its calendar could not be read (``status`` != ok)."""

    address: str
    slots: tuple[TimeSlot, ...]
    status: str = OK
    message: str | None = None


@dataclass(frozen=True, slots=True)
class WorkingHoursView:
    """Working hours as the API shows them; ``time_zone`` is IANA when Graph's zone maps to one."""

    days: tuple[str, ...]
    start: str
    end: str
    time_zone: str


@dataclass(frozen=True, slots=True)
class CalendarSettingsView:
    """The caller's time zone (IANA) and working hours."""

    time_zone: str
    working_hours: WorkingHoursView | None


@dataclass(frozen=True, slots=True)
class MyEvent:
    """One event of the caller's own calendar; ``subject`` is shown only to its owner."""

    start: datetime
    end: datetime
    show_as: str
    subject: str | None
    is_session: bool




# --- helpers -----------------------------------------------------------------------------


class TtlCache(Generic[K, V]):
    """A small thread-safe per-process cache with a fixed time to live (monotonic clock)."""

    def __init__(self, ttl_seconds: float, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._now = monotonic
        self._lock = threading.Lock()
        self._items: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            if found[0] <= self._now():
                del self._items[key]
                return None
            return found[1]

    def put(self, key: K, value: V) -> V:
        with self._lock:
            if len(self._items) >= MAX_CACHE_ENTRIES:
                self._items.clear()
            self._items[key] = (self._now() + self._ttl, value)
        return value




def reason_for_schedule(schedule: Schedule) -> tuple[str, str]:
    """``(reason code, plain message)`` for a getSchedule per-schedule error."""
    cls = schedule_error(schedule.error_code)
    if cls is None or not issubclass(cls, MAILBOX_PROBLEMS):
        return _OTHER_REASON, _OTHER_MESSAGE  # unknown, or Graph busy for this mailbox: "other"
    return cls.default_code, cls.default_message


def _reason_for_error(exc: GraphError) -> tuple[str, str]:
    return exc.code, exc.message




def _windows(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    cursor = start
    while cursor < end:
        stop = min(end, cursor + MAX_SCHEDULE_WINDOW)
        out.append((cursor, stop))
        cursor = stop
    return out


def _utc_slots(slots: Iterable[Slot]) -> tuple[TimeSlot, ...]:
    return tuple(TimeSlot(slot.start.astimezone(UTC), slot.end.astimezone(UTC)) for slot in slots)


def _unique(addresses: Iterable[str]) -> list[str]:
    """Addresses once each (case-insensitive), first spelling kept."""
    first: dict[str, str] = {}
    for address in addresses:
        first.setdefault(address.lower(), address)
    return list(first.values())


def _hhmmss(value: clock_time) -> str:
    return value.strftime("%H:%M:%S")


_WEEK_ORDER: Final = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")


def _working_hours_view(hours: WorkingHours | None) -> WorkingHoursView | None:
    if hours is None:
        return None
    days = tuple(d for d in _WEEK_ORDER if d in {str(x) for x in hours.days})
    return WorkingHoursView(
        days=days,
        start=_hhmmss(hours.start),
        end=_hhmmss(hours.end),
        time_zone=iana_name(hours.time_zone) or hours.time_zone.name,
    )


def _participant(wanted: _Wanted, schedule: Schedule, rules: Constraint | None) -> Participant:
    """A participant for the slot engine; with offered hours, their intervals, buffers and (unless the
    rules stand on their own) working hours."""
    if rules is None:
        return Participant(id=str(wanted.address), busy=schedule.busy, working_hours=schedule.working_hours)
    return Participant(
        id=str(wanted.address),
        busy=schedule.busy,
        working_hours=schedule.working_hours if rules.within_working_hours else None,
        offered=rules.offered,
        buffer_before_minutes=rules.buffer_before_minutes,
        buffer_after_minutes=rules.buffer_after_minutes,
    )


@dataclass
class _Wanted:
    """One participant to look up: how the caller named them, and their address once known."""

    user: str
    address: str | None = None
    problem: tuple[str, str] | None = None
    schedule: Schedule | None = field(default=None, repr=False)
    user_id: str | None = None  # the object id, when known (offered hours are keyed by it)
    role: Role = Role.REQUIRED
    capacity: int | None = None  # rooms: seats from the room directory

    def status(self) -> ParticipantStatus:
        if self.role is Role.GUEST:
            return ParticipantStatus(self.user, self.address, GUEST_STATUS, GUEST_MESSAGE, self.role)
        status, message = self.problem or (OK, None)
        return ParticipantStatus(self.user, self.address, status, message, self.role)


# --- the service -------------------------------------------------------------------------


class AvailabilityService:
    """Free slots, rooms, calendar settings and the caller's own events (see the module docstring)."""

    def __init__(
        self,
        gateway: CalendarGateway,
        tables: TableStore,
        clock: Clock,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        address_ttl: float = ADDRESS_CACHE_SECONDS,
        rooms_ttl: float = ROOMS_CACHE_SECONDS,
        offered: OfferedHoursService | None = None,
    ) -> None:
        self.gateway = gateway
        self.clock = clock
        self.integrations = IntegrationRepository(tables)
        self.pairings = PairingRepository(tables)
        self.sessions = SessionRepository(tables)
        self.connections = ConnectionRepository(tables)
        self.identities = GraphIdentities(self.integrations, self.connections)
        self._addresses: TtlCache[tuple[str, str], str | None] = TtlCache(address_ttl, monotonic=monotonic)
        self._ids: TtlCache[tuple[str, str], str] = TtlCache(address_ttl, monotonic=monotonic)
        self.offered = offered or OfferedHoursService(tables, clock)
        self._rooms: TtlCache[tuple[str, str], tuple[Room, ...]] = TtlCache(rooms_ttl, monotonic=monotonic)
        self._directory: TtlCache[tuple[str, str], DirectoryUser] = TtlCache(address_ttl, monotonic=monotonic)
        self.party = PartyResolver(lambda: self.gateway, self.pairings, cache=self._directory)
        self.any_of = AnyOfChooser(tables, clock)

    # --- who and how --------------------------------------------------------------------

    def _integration(self, caller: Caller) -> Integration:
        found = self.integrations.get(caller.tenant_id)
        if found is None:
            raise TenantNotOnboarded()
        if not found.value.enabled:
            raise Forbidden(
                "Calendar features are turned off for your organisation.", code="integration_disabled"
            )
        return found.value

    def _who(self, integration: Integration, caller: Caller) -> GraphIdentity:
        """The identity for the caller's Graph work; a per-user caller must have connected first
        (409 ``calendar_not_connected`` rather than a token error halfway through)."""
        return self.identities.for_user(integration.tenant_id, caller.object_id, integration=integration,
                                        require_connection=True)

    @staticmethod
    def _anchor(who: GraphIdentity, caller: Caller) -> str:
        """The mailbox getSchedule is called on: the token's own mailbox when it is delegated
        (always reachable with its own token), else the caller's."""
        return who.user_id or caller.object_id

    def _address_of(self, who: GraphIdentity, user_id: str) -> str | None:
        """A user's SMTP address (None: no mailbox), cached per process."""
        key = (who.tenant_id, user_id.lower())
        cached = self._addresses.get(key)
        if cached is not None:
            return cached
        address = self.gateway.get_user(who, user_id).mail
        if address is None:
            return None
        return self._addresses.put(key, address)

    def _pairing_for(self, caller: Caller, pairing_id: str) -> Pairing:
        found = self.pairings.get(caller.tenant_id, pairing_id)
        if found is None or not found.value.active or not found.value.includes(caller.object_id):
            raise NotFound("No such pairing.", code="pairing_not_found")
        return found.value

    # --- availability -------------------------------------------------------------------

    def free_slots(self, caller: Caller, query: AvailabilityQuery) -> FreeSlots:
        """Slots of ``query.duration_minutes`` in which the caller and the others are all free."""
        integration = self._integration(caller)
        who = self._who(integration, caller)
        if query.is_group:
            return self._group_slots(caller, integration, who, query)
        wanted = self._participants(caller, integration, who, query)
        return self._free_slots(caller, who, wanted, query)

    def offered_slots(
        self, caller: Caller, *, start: datetime, end: datetime, duration_minutes: int, time_zone: str
    ) -> tuple[TimeSlot, ...]:
        """The caller's own bookable slots: their offered hours minus their busy time and buffers (and
        outside working hours when their rules say so), i.e. what a partner with a free calendar sees."""
        integration = self._integration(caller)
        who = self._who(integration, caller)
        me = self._resolve(who, caller.object_id)
        query = AvailabilityQuery(start=start, end=end, duration_minutes=duration_minutes, time_zone=time_zone)
        return self._free_slots(caller, who, [me], query).slots

    def _free_slots(
        self, caller: Caller, who: GraphIdentity, wanted: list[_Wanted], query: AvailabilityQuery
    ) -> FreeSlots:
        step = query.step_minutes or DEFAULT_STEP_MINUTES
        now = self.clock.now()
        rules = self._offered_hours(who, caller.tenant_id, wanted, query, now)
        # Busy items up to the widest buffer outside the window still matter.
        margin = max([query.buffer_minutes]
                     + [max(c.buffer_before_minutes, c.buffer_after_minutes) for c in rules.values()])
        buffer = timedelta(minutes=margin)
        self._read_schedules(who, caller, wanted, start=query.start - buffer, end=query.end + buffer, step=step)
        statuses = tuple(
            ParticipantStatus(w.user, w.address, *(w.problem or (OK, None))) for w in wanted
        )
        if any(s.status != OK for s in statuses):
            log.info("availability: %d of %d participants unreachable",
                     sum(s.status != OK for s in statuses), len(statuses))
            raise ParticipantUnreachable([p.as_dict() for p in statuses])
        request = SlotRequest(
            window_start=query.start,
            window_end=query.end,
            duration_minutes=query.duration_minutes,
            time_zone=query.time_zone,
            step_minutes=step,
            buffer_before_minutes=query.buffer_minutes,
            buffer_after_minutes=query.buffer_minutes,
            now=now,
            working_hours_only=query.working_hours_only,
        )
        people = [
            _participant(w, w.schedule, rules.get(w.user_id or ""))
            for w in wanted
            if w.schedule is not None
        ]
        slots = _utc_slots(find_slots(request, people))
        log.info("availability: %d participants, %d slots", len(people), len(slots))
        return FreeSlots(time_zone=query.time_zone, slots=slots, participants=statuses)

    def _group_slots(
        self, caller: Caller, integration: Integration, who: GraphIdentity, query: AvailabilityQuery
    ) -> FreeSlots:
        """Slots for a group (module docstring, "Groups"): every required person free, and when any-of
        hosts or rooms are asked for, at least one of each; per slot the free optional people, hosts and
        rooms, and what booking that slot would choose."""
        people, hosts = self._group_people(caller, integration, who, query)
        size = len(people) + (1 if hosts else 0)
        need = query.capacity or size
        rooms = self._room_candidates(caller, query, need)
        readable = [w for w in [*people, *hosts, *rooms] if w.role is not Role.GUEST]
        step = query.step_minutes or DEFAULT_STEP_MINUTES
        now = self.clock.now()
        rules = self._offered_hours(who, caller.tenant_id, [w for w in readable if w.role is not Role.ROOM], query, now)
        margin = max([query.buffer_minutes]
                     + [max(c.buffer_before_minutes, c.buffer_after_minutes) for c in rules.values()])
        buffer = timedelta(minutes=margin)
        self._read_schedules(who, caller, readable, start=query.start - buffer, end=query.end + buffer, step=step)
        statuses = tuple(w.status() for w in [*people, *hosts, *rooms])
        required = [w for w in people if w.role is Role.REQUIRED]
        if any(w.problem is not None for w in required):
            log.info("availability: a required participant is unreachable")
            raise ParticipantUnreachable([p.as_dict() for p in statuses])
        request = SlotRequest(
            window_start=query.start, window_end=query.end, duration_minutes=query.duration_minutes,
            time_zone=query.time_zone, step_minutes=step, buffer_before_minutes=query.buffer_minutes,
            buffer_after_minutes=query.buffer_minutes, now=now, working_hours_only=query.working_hours_only,
        )

        def free_starts(w: _Wanted) -> set[int]:
            if w.schedule is None:
                return set()  # unreadable: never shown as free
            if w.role is Role.ROOM:
                person = Participant(id=str(w.address), busy=w.schedule.busy)
            else:
                person = _participant(w, w.schedule, rules.get(w.user_id or ""))
            return {int(slot.start.timestamp()) for slot in find_slots(request, [person])}

        base = find_slots(request, [_participant(w, w.schedule, rules.get(w.user_id or ""))
                                    for w in required if w.schedule is not None])
        optional = [w for w in people if w.role is Role.OPTIONAL]
        sets = {id(w): free_starts(w) for w in [*optional, *hosts, *rooms]}
        candidates = [HostCandidate(str(w.user_id), str(w.address)) for w in hosts if w.user_id and w.address]
        options = [RoomOption(str(w.address), w.capacity) for w in rooms if w.address]
        histories = self.any_of.histories(caller.tenant_id, [c.user_id for c in candidates], query.start,
                                          query.end) if candidates else {}
        out: list[TimeSlot] = []
        for slot in base:
            at = int(slot.start.timestamp())
            free_hosts = [w for w in hosts if at in sets[id(w)]]
            free_rooms = [w for w in rooms if at in sets[id(w)]]
            if (hosts and not free_hosts) or (rooms and not free_rooms):
                continue
            start = slot.start.astimezone(UTC)
            host = pick_host(candidates, AnyOfChooser.loads(histories, start), start,
                             {str(w.address).lower() for w in free_hosts}) if hosts else None
            room = pick_room(options, query.room_choice, need, {str(w.address).lower() for w in free_rooms},
                             given=len(query.rooms)) if rooms else None
            out.append(TimeSlot(
                start, slot.end.astimezone(UTC),
                optional=tuple(str(w.address) for w in optional if at in sets[id(w)]) if optional else None,
                hosts=tuple(str(w.address) for w in free_hosts) if hosts else None,
                rooms=tuple(str(w.address) for w in free_rooms) if rooms else None,
                host=host, room=room,
            ))
        log.info("availability (group): %d people, %d hosts, %d rooms, %d slots", len(people), len(hosts),
                 len(rooms), len(out))
        return FreeSlots(time_zone=query.time_zone, slots=tuple(out), participants=statuses)

    def _group_people(
        self, caller: Caller, integration: Integration, who: GraphIdentity, query: AvailabilityQuery
    ) -> tuple[list[_Wanted], list[_Wanted]]:
        """(the caller first, then the people; the host candidates), by the group rules
        (core/services/party.py) or, for a pairing or participant list with any-of rooms, as before."""
        if not (query.attendees or query.hosts):
            return self._participants(caller, integration, who, query), []
        party = self.party.resolve(caller, integration, who, query.attendees, query.hosts)
        people = [_Wanted(caller.object_id, party.organizer_address, user_id=caller.object_id)]
        for i in party.invitees:
            role = Role.GUEST if i.guest else Role.OPTIONAL if i.type is AttendeeType.OPTIONAL else Role.REQUIRED
            people.append(_Wanted(i.user_id or i.address, i.address, user_id=i.user_id, role=role))
        hosts = [_Wanted(h.user_id, h.address, user_id=h.user_id, role=Role.HOST) for h in party.hosts]
        return people, hosts

    def _room_candidates(self, caller: Caller, query: AvailabilityQuery, need: int) -> list[_Wanted]:
        """The any-of rooms as the directory spells them, ranked by ``roomChoice`` and without those too small;
        422 ``too_many_rooms``, ``room_not_found``, ``no_room_fits``."""
        if not query.rooms:
            return []
        if len(query.rooms) > MAX_ROOM_CANDIDATES:
            raise ValidationFailed(f"At most {MAX_ROOM_CANDIDATES} candidate rooms may be given.",
                                   code="too_many_rooms", details={"max": MAX_ROOM_CANDIDATES})
        addresses = self._known_rooms(caller, _unique(query.rooms))
        capacity = {r.address.lower(): r.capacity for r in self.rooms(caller)}
        ranked = rank_rooms([RoomOption(a, capacity.get(a.lower())) for a in addresses], query.room_choice, need)
        if not ranked:
            raise ValidationFailed(f"None of the rooms seats {need} people.", code="no_room_fits",
                                   details={"capacity": need})
        return [_Wanted(r.address, r.address, role=Role.ROOM, capacity=r.capacity) for r in ranked]

    def _offered_hours(
        self, who: GraphIdentity, tenant_id: str, wanted: list[_Wanted], query: AvailabilityQuery, now: datetime
    ) -> dict[str, Constraint]:
        """Each participant's offered-hours constraint, by object id (nothing read in tenants without rules)."""
        if not self.offered.any_rules(tenant_id):
            return {}
        for w in wanted:
            if w.user_id is None and w.address and w.problem is None:
                w.user_id = self._id_of(who, w.address)
        ids = [w.user_id for w in wanted if w.user_id]
        return self.offered.constraints(tenant_id, ids, query.start, query.end, now)

    def _id_of(self, who: GraphIdentity, address: str) -> str | None:
        """A participant named by address: their object id (cached), or None when the directory has none
        (getSchedule then reports the address)."""
        key = (who.tenant_id, address.lower())
        cached = self._ids.get(key)
        if cached is not None:
            return cached
        try:
            user = self.gateway.get_user(who, address)
        except UserNotFound:
            return None
        return self._ids.put(key, user.user_id.lower())

    def _participants(
        self, caller: Caller, integration: Integration, who: GraphIdentity, query: AvailabilityQuery
    ) -> list[_Wanted]:
        """The caller first, then the others, each once; addresses resolved where possible."""
        if query.pairing_id is not None:
            pairing = self._pairing_for(caller, query.pairing_id)
            partner_id, partner_address = pairing.partner_of(caller.object_id)
            return [
                _Wanted(caller.object_id, pairing.address_of(caller.object_id), user_id=caller.object_id),
                _Wanted(partner_id, partner_address, user_id=partner_id),
            ]
        if integration.pairing_policy is not PairingPolicy.SAME_TENANT:
            raise Forbidden(
                "Your organisation only allows availability for registered pairings; give a pairingId.",
                code="participants_not_allowed",
            )
        me = self._resolve(who, caller.object_id)
        wanted = [me]
        seen = {caller.object_id.lower(), (me.address or "").lower()} - {""}
        for ref in query.participants:
            if ref.lower() in seen:
                continue
            item = _Wanted(ref, ref) if "@" in ref else self._resolve(who, ref)
            names = {ref.lower(), (item.address or "").lower()} - {""}
            if names & seen:
                continue  # the same person named twice (by object id and by address)
            seen |= names
            wanted.append(item)
        return wanted

    def _resolve(self, who: GraphIdentity, user_id: str) -> _Wanted:
        try:
            address = self._address_of(who, user_id)
        except UserNotFound as exc:
            return _Wanted(user_id, None, _reason_for_error(exc))
        if address is None:
            return _Wanted(user_id, None, (MailboxUnavailable.default_code, MailboxUnavailable.default_message))
        return _Wanted(user_id, address, user_id=user_id.lower())

    def _read_schedules(
        self, who: GraphIdentity, caller: Caller, wanted: list[_Wanted], *, start: datetime, end: datetime, step: int
    ) -> None:
        """Fill each participant's schedule or problem, anchored on the caller's mailbox.

        If the anchor mailbox itself cannot be reached, the caller is marked and the call
        is repeated once anchored on another participant, so the report covers everyone.
        """
        addresses = [w.address for w in wanted if w.address and w.problem is None]
        if not addresses:
            return
        interval = min(step, MAX_VIEW_INTERVAL_MINUTES)
        try:
            found = self._schedules(who, self._anchor(who, caller), addresses, start=start, end=end,
                                    interval=interval)
        except _MAILBOX_ERRORS as exc:
            wanted[0].problem = _reason_for_error(exc)
            others = [a for a in addresses if a.lower() != (wanted[0].address or "").lower()]
            if not others:
                return
            try:
                found = self._schedules(who, others[0], addresses, start=start, end=end, interval=interval)
            except _MAILBOX_ERRORS:
                found = {}
        for w in wanted:
            if w.address is None or w.problem is not None:
                continue
            schedule = found.get(w.address.lower())
            if schedule is None:
                w.problem = (_OTHER_REASON, _OTHER_MESSAGE)
            elif not schedule.ok:
                w.problem = reason_for_schedule(schedule)
            else:
                w.schedule = schedule

    def _schedules(
        self,
        who: GraphIdentity,
        anchor: str,
        addresses: Sequence[str],
        *,
        start: datetime,
        end: datetime,
        interval: int,
    ) -> dict[str, Schedule]:
        """getSchedule in groups of 20 addresses and windows under 62 days, merged per address."""
        unique = list(dict.fromkeys(addresses))
        merged: dict[str, Schedule] = {}
        for window_start, window_end in _windows(start, end):
            for group in chunks(unique, MAX_SCHEDULES_PER_CALL):
                for schedule in self.gateway.get_schedule(
                    who, anchor, group, window_start, window_end, interval_minutes=interval
                ):
                    key = schedule.address.lower()
                    previous = merged.get(key)
                    if previous is None:
                        merged[key] = schedule
                    elif previous.ok and schedule.ok:
                        merged[key] = Schedule(
                            address=previous.address,
                            busy=previous.busy + schedule.busy,
                            working_hours=previous.working_hours or schedule.working_hours,
                            availability_view=previous.availability_view + schedule.availability_view,
                        )
                    elif previous.ok:
                        merged[key] = schedule  # a later window failed: the failure wins
        return merged

    # --- rooms --------------------------------------------------------------------------

    def rooms(self, caller: Caller, room_list: str | None = None) -> tuple[Room, ...]:
        """The tenant's rooms (or one room list's), cached per process for ``rooms_ttl``."""
        integration = self._integration(caller)
        key = (integration.tenant_id, (room_list or "").lower())
        cached = self._rooms.get(key)
        if cached is not None:
            return cached
        # Rooms are tenant data (Place.Read.All): the tenant identity.
        who = self.identities.for_tenant(integration.tenant_id, integration=integration)
        if room_list is not None:
            try:
                found = self.gateway.list_rooms(who, room_list)
            except ItemNotFound as exc:
                raise NotFound("No such room list.", code="room_list_not_found") from exc
        else:
            found = self.gateway.list_rooms(who)
            if not found:
                # Places can list no rooms for tenants whose rooms live only in room lists.
                by_address: dict[str, Room] = {}
                for listed in self.gateway.list_room_lists(who):
                    for room in self.gateway.list_rooms(who, listed.address):
                        by_address.setdefault(room.address.lower(), room)
                found = list(by_address.values())
        rooms = tuple(sorted(found, key=lambda r: (r.display_name.lower(), r.address.lower())))
        return self._rooms.put(key, rooms)

    def room_availability(
        self,
        caller: Caller,
        rooms: Sequence[str],
        *,
        start: datetime,
        end: datetime,
        duration_minutes: int,
        time_zone: str,
    ) -> tuple[RoomSlots, ...]:
        """Free slots per room (rooms have no working hours); an unreadable room says why.

        Only the tenant's rooms (as ``rooms`` lists them, cached; booking checks the same): any
        other address is 422 ``room_not_found``, so this route never reads a person's free/busy
        around the pairing policy."""
        integration = self._integration(caller)
        who = self._who(integration, caller)
        unique = self._known_rooms(caller, _unique(rooms))
        try:
            found = self._schedules(
                who, self._anchor(who, caller), unique, start=start, end=end, interval=DEFAULT_STEP_MINUTES
            )
        except _MAILBOX_ERRORS as exc:
            code, message = _reason_for_error(exc)
            raise ParticipantUnreachable([ParticipantStatus(caller.object_id, None, code, message).as_dict()]) from exc
        request = SlotRequest(
            window_start=start,
            window_end=end,
            duration_minutes=duration_minutes,
            time_zone=time_zone,
            step_minutes=DEFAULT_STEP_MINUTES,
            now=self.clock.now(),
            working_hours_only=False,
        )
        out: list[RoomSlots] = []
        for address in unique:
            schedule = found.get(address.lower())
            if schedule is None or not schedule.ok:
                code, message = (
                    reason_for_schedule(schedule) if schedule is not None else (_OTHER_REASON, _OTHER_MESSAGE)
                )
                out.append(RoomSlots(address, (), code, message))
                continue
            slots = find_slots(request, [Participant(id=address, busy=schedule.busy)])
            out.append(RoomSlots(address, _utc_slots(slots)))
        return tuple(out)

    def _known_rooms(self, caller: Caller, addresses: list[str]) -> list[str]:
        """The addresses as the tenant's room directory spells them; 422 ``room_not_found`` naming the others."""
        directory = {r.address.lower(): r.address for r in self.rooms(caller)}
        unknown = [i for i, a in enumerate(addresses) if a.lower() not in directory]
        if unknown:
            raise ValidationFailed(
                "Only meeting rooms of your organisation can be looked up here.", code="room_not_found",
                details={"fields": [{"loc": ["body", "rooms", i], "msg": "not a room of your organisation",
                                     "type": "room_not_found"} for i in unknown]},
            )
        return [directory[a.lower()] for a in addresses]

    # --- the caller's own calendar ------------------------------------------------------

    def calendar_settings(self, caller: Caller) -> CalendarSettingsView:
        """The caller's mailbox time zone (as IANA) and working hours, read live."""
        integration = self._integration(caller)
        who = self._who(integration, caller)
        if who.user_id is not None and who.user_id != caller.object_id.lower():
            return self._settings_from_schedule(who, caller)
        settings = self.gateway.get_mailbox_settings(who, caller.object_id)
        hours = _working_hours_view(settings.working_hours)
        zone = iana_name(TimeZoneSpec(name=settings.time_zone)) if settings.time_zone else None
        if zone is None:
            # An unmappable or missing mailbox zone: the working-hours zone, else UTC.
            fallback = iana_name(settings.working_hours.time_zone) if settings.working_hours else None
            log.warning("calendar settings: mailbox time zone %r has no IANA name", settings.time_zone)
            zone = fallback or "Etc/UTC"
        return CalendarSettingsView(time_zone=zone, working_hours=hours)

    def _settings_from_schedule(self, who: GraphIdentity, caller: Caller) -> CalendarSettingsView:
        """Service-account tenants: another user's mailbox settings are not shared with a delegate,
        but getSchedule gives anyone's working hours (and their zone)."""
        address = self._address_of(who, caller.object_id)
        if address is None:
            raise MailboxUnavailable()
        now = self.clock.now().astimezone(UTC).replace(second=0, microsecond=0)
        [schedule] = self.gateway.get_schedule(who, self._anchor(who, caller), [address], now,
                                               now + timedelta(hours=1), interval_minutes=MAX_VIEW_INTERVAL_MINUTES)
        hours = schedule.working_hours if schedule.ok else None
        zone = iana_name(hours.time_zone) if hours is not None else None
        return CalendarSettingsView(time_zone=zone or "Etc/UTC", working_hours=_working_hours_view(hours))

    def my_events(self, caller: Caller, start: datetime, end: datetime) -> tuple[MyEvent, ...]:
        """The caller's own events in [start, end) with subjects: live from Graph, never stored.

        ``is_session`` marks events booked through this service: the organizer's copy
        carries the session id as ``transactionId``; an attendee's copy is recognised
        by matching one of the caller's sessions (event id, or the same start and end).
        """
        integration = self._integration(caller)
        who = self._who(integration, caller)
        mine = [
            s
            for s in self.sessions.list_for_user(caller.tenant_id, caller.object_id, start - timedelta(days=1), end)
            if s.status is not SessionStatus.CANCELLED
        ]
        session_event_ids = {s.event_id for s in mine if s.event_id}
        session_times = {(s.start.timestamp(), s.end.timestamp()) for s in mine}
        known: dict[str, bool] = {}
        out: list[MyEvent] = []
        for item in self.gateway.calendar_view(who, caller.object_id, start, end, include_subject=True):
            if item.is_cancelled:
                continue
            is_session = item.event_id in session_event_ids or (
                (item.start.timestamp(), item.end.timestamp()) in session_times
            )
            if not is_session and item.transaction_id:
                if item.transaction_id not in known:
                    known[item.transaction_id] = (
                        self.sessions.get(caller.tenant_id, item.transaction_id) is not None
                    )
                is_session = known[item.transaction_id]
            out.append(
                MyEvent(
                    start=item.start.astimezone(UTC),
                    end=item.end.astimezone(UTC),
                    show_as=str(item.show_as),
                    subject=item.subject,
                    is_session=is_session,
                )
            )
            if len(out) >= MAX_MY_EVENTS:
                break
        out.sort(key=lambda e: (e.start, e.end))
        return tuple(out)


__all__ = [
    "AvailabilityQuery",
    "AvailabilityService",
    "CalendarSettingsView",
    "FreeSlots",
    "MyEvent",
    "ParticipantStatus",
    "ParticipantUnreachable",
    "RoomSlots",
    "TimeSlot",
    "TtlCache",
    "WorkingHoursView",
    "reason_for_schedule",
]
