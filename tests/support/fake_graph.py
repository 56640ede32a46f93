"""In-memory ``CalendarGateway`` and ``TokenProvider`` for service tests.

Why a fake and not mocks: services are tested against *state* (is the event there, did the
attendee's copy get cancelled, how many Graph calls were made), and the fake behaves like
Microsoft Graph as ``GraphGateway`` reports it, so a service written against the fake works
against Graph. ``tests/contract/test_calendar_gateway.py`` runs one suite against this fake
and against the real gateway on the local simulator so the two cannot drift.

What Exchange does, reproduced (same as ``local/simulator/events.py``):

- the organizer's event keeps the attendee list (people answer ``none`` until they respond);
  each reachable attendee gets a copy in their own calendar with a new id and the same
  ``iCalUId``, shown ``tentative`` and ``notResponded`` until answered;
- rooms answer at once: accepted when free (they get a busy copy), declined when not;
- moving a meeting resets the people's answers and makes rooms decide again;
- cancelling deletes the organizer's event and marks attendee copies cancelled (rooms drop
  theirs); declining removes the attendee's copy; ``transactionId`` is idempotent per calendar.
- recurring series (as ``local/simulator/series.py``): a master expands into occurrences with
  ids derived from the master's id and the original start; the calendar view and free/busy
  show occurrences; moving one makes an exception (never onto a neighbour's day:
  ``ErrorOccurrenceCrossingBoundary``); cancelling one removes it for the organizer and marks
  the attendees' occurrence cancelled; an attendee can answer or decline one occurrence; a
  room accepts a series only if it is free for every occurrence; changing the pattern or
  the times drops every exception and cancelled occurrence, ending the range keeps those
  inside it.

Errors are the ones ``GraphGateway`` raises for the same Graph answers: an unknown user is
``UserNotFound``, an on-premises or unlicensed mailbox ``MailboxUnavailable``, a mailbox
outside the app's access policy ``OutsideAppScope``, a missing event or subscription
``ItemNotFound``; getSchedule reports unreachable addresses per schedule
(``Schedule.error_code``); argument checks the gateway makes locally raise ``ValueError``.

Test controls: seeding (``add_user``, ``add_room``, ``add_busy``...), "as Outlook" changes
that are not Graph calls of ours (``move_event_as_organizer``, ``respond_as_attendee``...),
fault injection (``fail_next``, ``fail_always``, ``throttle``) and the call log (``calls``,
``call_count``). Everything is guarded by one re-entrant lock; ids are deterministic but
shaped like Graph's (base64 with ``/`` and ``+``) to exercise key encoding.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import math
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from dataclasses import replace as dc_replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

from core.clock import SystemClock
from core.domain import recurrence as rec
from core.domain.calendar import (
    AttendeeResponse,
    BatchOutcome,
    BatchRequest,
    BusyInterval,
    CalendarInfo,
    CalendarItem,
    CreatedEvent,
    DeltaPage,
    DirectoryUser,
    EventMetadata,
    EventType,
    FreeBusyStatus,
    GraphIdentity,
    MailboxSettings,
    NewEvent,
    PatternedRecurrence,
    RecurrenceRangeType,
    ResponseType,
    Room,
    RoomList,
    Schedule,
    SubscriptionInfo,
    TimeZoneSpec,
    Weekday,
    WorkingHours,
    check_schedule_request,
    require_aware,
)
from core.domain.errors import (
    AppNotInTenant,
    GraphConflict,
    GraphError,
    GraphRequestRejected,
    InvalidRecurrence,
    ItemNotFound,
    MailboxUnavailable,
    OutsideAppScope,
    ReconnectRequired,
    ServiceError,
    TenantNotFound,
    Throttled,
    UserNotFound,
)
from core.domain.timezones import iana_name
from core.ports import Clock, TokenProvider

# Mailbox kinds, as the simulator's control API names them (plus "disabled" for add_user).
NORMAL = "normal"
ON_PREMISES = "onPremises"
UNLICENSED = "unlicensed"
OUTSIDE_SCOPE = "outsideScope"
# Exchange hybrid, mailbox on premises: with hybrid free/busy getSchedule answers its real
# availability, while every REST call on the mailbox fails with MailboxNotEnabledForRESTAPI
# (REST for hybrid mailboxes ended March 2023: graph docs concepts/hybrid-rest-support.md), as the
# simulator's ``hybrid`` kind (local/simulator/state.py).
HYBRID = "hybrid"
DISABLED = "disabled"
MAILBOX_KINDS = (NORMAL, ON_PREMISES, UNLICENSED, OUTSIDE_SCOPE, HYBRID, DISABLED)

# getSchedule's per-schedule ``responseCode`` values (the call itself stays 200).
SCHEDULE_UNKNOWN_ADDRESS = "5009"  # "Unable to resolve e-mail address ... to an Active Directory object."
SCHEDULE_MAILBOX_UNREACHABLE = "MailboxNotEnabledForRESTAPI"
SCHEDULE_OUTSIDE_SCOPE = "ErrorAccessDenied"

# Gateway limits mirrored here (ValueError before any call, as GraphGateway does).
MAX_CLIENT_STATE = 128
OUTLOOK_SUBSCRIPTION_MINUTES = 10080
LEGACY_OUTLOOK_SUBSCRIPTION_MINUTES = 4230

DEFAULT_PROVIDERS: tuple[str, ...] = ("teamsForBusiness",)
DELTA_BASE_URL = "https://graph.microsoft.com/v1.0"
_ICAL_PREFIX = "040000008200E00074C5B7101A82E008"
_TENANT_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_MON_FRI = frozenset({Weekday.MONDAY, Weekday.TUESDAY, Weekday.WEDNESDAY, Weekday.THURSDAY, Weekday.FRIDAY})
_BLOCKING = frozenset({FreeBusyStatus.BUSY, FreeBusyStatus.TENTATIVE, FreeBusyStatus.OOF})
_VIEW_DIGIT = {
    FreeBusyStatus.FREE: 0,
    FreeBusyStatus.TENTATIVE: 1,
    FreeBusyStatus.BUSY: 2,
    FreeBusyStatus.OOF: 3,
    FreeBusyStatus.WORKING_ELSEWHERE: 4,
    FreeBusyStatus.UNKNOWN: 0,
}
_VIEW_RANK = {0: 0, 1: 1, 4: 2, 2: 3, 3: 4}
_PROVIDERS = ("teamsForBusiness", "skypeForBusiness", "skypeForConsumer")
_SUBSCRIPTION_RESOURCE = re.compile(r"^/?(?:users/([^/]+)|me)/(?:calendar/|calendars/[^/]+/)?events$", re.I)


class GraphCall(NamedTuple):
    """One port call the fake received: which method, for which tenant, a short argument summary."""

    method: str
    tenant_id: str
    args: str


# --- internal state ---------------------------------------------------------------------


@dataclass
class _Attendee:
    address: str
    is_resource: bool
    response: ResponseType = ResponseType.NONE
    type: str = "required"  # attendee.type: required, optional or resource
    name: str | None = None  # emailAddress.name as sent (a guest's display name)


@dataclass
class _Event:
    id: str
    ical_uid: str
    mailbox_id: str
    calendar_id: str
    subject: str
    start: datetime
    end: datetime
    organizer: str
    show_as: FreeBusyStatus = FreeBusyStatus.BUSY
    is_organizer: bool = True
    response: ResponseType = ResponseType.ORGANIZER
    attendees: list[_Attendee] = field(default_factory=list)
    is_cancelled: bool = False
    transaction_id: str | None = None
    join_url: str | None = None
    seq: int = 0
    modified: datetime = field(default_factory=lambda: datetime.now(UTC))
    # recurring series: the master keeps the rule, its zone, exceptions and deleted occurrences
    recurrence: PatternedRecurrence | None = None
    time_zone: str = "UTC"
    overrides: dict[datetime, _Override] = field(default_factory=dict)
    deleted: set[datetime] = field(default_factory=set)
    # set on the transient events that stand for one occurrence
    type: EventType = EventType.SINGLE_INSTANCE
    series_master_id: str | None = None
    original_start: datetime | None = None


@dataclass
class _Override:
    """What differs for one occurrence: moved times, the organizer's cancel, the attendee's own answer,
    per-occurrence attendee answers on the organizer's master."""

    start: datetime | None = None
    end: datetime | None = None
    cancelled: bool = False
    response: ResponseType | None = None
    show_as: FreeBusyStatus | None = None
    attendees: list[_Attendee] | None = None


@dataclass
class _Mailbox:
    user_id: str
    upn: str
    mail: str | None
    display_name: str | None
    kind: str
    enabled: bool
    time_zone: str
    working_hours: WorkingHours | None
    providers: tuple[str, ...]
    default_provider: str
    calendar_id: str
    is_room: bool = False
    room: Room | None = None
    events: dict[str, _Event] = field(default_factory=dict)
    tombstones: list[tuple[int, str]] = field(default_factory=list)
    transactions: dict[str, str] = field(default_factory=dict)
    secondary: dict[str, str] = field(default_factory=dict)  # secondary calendars: id -> name
    delegates: set[str] = field(default_factory=set)  # user ids with editor rights on the calendars

    @property
    def reachable(self) -> bool:
        """Graph REST reaches the mailbox (calendar, events, settings, subscriptions)."""
        return self.kind not in (ON_PREMISES, UNLICENSED, HYBRID)

    @property
    def has_free_busy(self) -> bool:
        """getSchedule answers for it: Exchange Online mailboxes and, through hybrid free/busy, hybrid ones."""
        return self.reachable or self.kind == HYBRID

    def directory_user(self) -> DirectoryUser:
        return DirectoryUser(
            user_id=self.user_id,
            display_name=self.display_name,
            user_principal_name=self.upn,
            mail=self.mail,
            account_enabled=self.enabled,
        )


@dataclass
class _Subscription:
    id: str
    resource: str
    change_type: str
    mailbox_id: str
    notification_url: str
    lifecycle_url: str
    client_state: str
    expiration: datetime
    creator: str | None = None  # the delegated user who created it; None for app-only

    def info(self) -> SubscriptionInfo:
        return SubscriptionInfo(
            subscription_id=self.id, resource=self.resource, expiration=self.expiration, change_type=self.change_type
        )


@dataclass
class _RoomList:
    info: RoomList
    rooms: list[str] = field(default_factory=list)


@dataclass
class _Tenant:
    mailboxes: dict[str, _Mailbox] = field(default_factory=dict)
    index: dict[str, str] = field(default_factory=dict)
    room_lists: dict[str, _RoomList] = field(default_factory=dict)
    subscriptions: dict[str, _Subscription] = field(default_factory=dict)

    def find(self, ref: str) -> _Mailbox | None:
        key = self.index.get(ref.strip().lower())
        return self.mailboxes.get(key) if key else None

    def add(self, mailbox: _Mailbox) -> None:
        self.mailboxes[mailbox.user_id] = mailbox
        for ref in (mailbox.user_id, mailbox.upn, mailbox.mail):
            if ref:
                self.index[ref.lower()] = mailbox.user_id


@dataclass(frozen=True, slots=True)
class _DeltaState:
    tenant_id: str
    mailbox_id: str
    start: datetime
    end: datetime
    since: int


def _graph_error(cls: type[GraphError], status: int, graph_code: str) -> GraphError:
    """The error GraphGateway builds for the same Graph answer (status and code kept)."""
    return cls(details={"status": status, "graph_code": graph_code}, graph_code=graph_code, status=status)


def _user_not_found() -> GraphError:
    return _graph_error(UserNotFound, 404, "ErrorInvalidUser")


def _item_not_found() -> GraphError:
    return _graph_error(ItemNotFound, 404, "ErrorItemNotFound")




def _ref(value: str) -> str:
    if not value:
        raise ValueError("an id in a Graph path cannot be empty")
    return value


def _check_zone(name: str) -> None:
    if name.upper() not in ("UTC", "ETC/UTC", "Z", "GMT") and iana_name(TimeZoneSpec(name=name)) is None:
        raise ValueError(f"unknown time zone {name!r}")


def _utc(moment: datetime) -> datetime:
    # Graph keeps times to the second on the wire; keep the same precision.
    return moment.astimezone(UTC).replace(microsecond=0)


def _overlaps(start: datetime, end: datetime, window_start: datetime, window_end: datetime) -> bool:
    return start < window_end and end > window_start


_OCCURRENCE_SEP = "_"  # not in standard base64, so a master id never contains it
_ENDLESS_LIMIT = 800  # occurrences of a noEnd series the fake expands


def _occurrence_id(master_id: str, original_start: datetime) -> str:
    """A stable occurrence id from the master's id and the original start (Exchange's ids carry both)."""
    return f"{master_id}{_OCCURRENCE_SEP}{original_start.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def _split_occurrence_id(event_id: str) -> tuple[str, datetime] | None:
    master_id, sep, stamp = event_id.rpartition(_OCCURRENCE_SEP)
    if not sep or not master_id:
        return None
    try:
        return master_id, datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _occurrences(master: _Event) -> list[rec.Occurrence]:
    """Every occurrence the master's rule gives (original times), bounded for endless series."""
    assert master.recurrence is not None
    return rec.expand(master.recurrence, master.start, master.end, master.time_zone, limit=_ENDLESS_LIMIT)


class FakeCalendarGateway:
    """``CalendarGateway`` over in-memory tenants, with seeding, Outlook-side changes and faults.

    ``tokens`` (optional) is asked for a token on every call, like the real gateway does, so
    a ``FakeTokenProvider`` without consent makes every call fail with its
    ``AuthorizationError``. ``max_subscription_minutes`` is the lifetime Graph grants
    (10,080 in the newest docs, 4,230 in older ones).
    """

    def __init__(
        self,
        *,
        tokens: TokenProvider | None = None,
        clock: Clock | None = None,
        max_subscription_minutes: int = OUTLOOK_SUBSCRIPTION_MINUTES,
    ) -> None:
        self._tokens = tokens
        self._clock: Clock = clock or SystemClock()
        self.max_subscription_minutes = max_subscription_minutes
        self._lock = threading.RLock()
        self._tenants: dict[str, _Tenant] = {}
        self._counter = 0
        self._seq = 0
        self._calls: list[GraphCall] = []
        self._fail_next: dict[str, deque[ServiceError]] = {}
        self._fail_always: dict[str, Callable[[], ServiceError]] = {}
        self._throttle: float | None = None
        self._throttled = False
        self._delta: dict[str, _DeltaState] = {}
        self._rejected_urls: set[str] = set()

    # === seeding =========================================================================

    def add_user(
        self,
        tenant_id: str,
        address: str,
        *,
        kind: str = NORMAL,
        user_id: str | None = None,
        display_name: str | None = None,
        mail: str | None = "",
        enabled: bool = True,
        time_zone: str = "Pacific Standard Time",
        working_hours: WorkingHours | None = None,
        providers: Sequence[str] = DEFAULT_PROVIDERS,
        default_provider: str | None = None,
    ) -> DirectoryUser:
        """Add a directory user. ``address`` is the UPN; ``mail`` defaults to it (None: no mailbox
        address, so ``list_users`` skips the user). ``kind`` is normal, onPremises, unlicensed,
        outsideScope, hybrid, or disabled (a normal mailbox whose account is disabled)."""
        if kind not in MAILBOX_KINDS:
            raise ValueError(f"kind must be one of {MAILBOX_KINDS}")
        with self._lock:
            tenant = self._tenant(tenant_id)
            uid = user_id or str(uuid.UUID(bytes=self._digest("user", self._next())[:16], version=4))
            if kind == DISABLED:
                kind, enabled = NORMAL, False
            hours = working_hours or WorkingHours(
                days=_MON_FRI, start=time(8), end=time(17), time_zone=TimeZoneSpec(name=time_zone)
            )
            mailbox = _Mailbox(
                user_id=uid,
                upn=address,
                mail=address if mail == "" else mail,
                display_name=display_name or address.split("@", 1)[0].title(),
                kind=kind,
                enabled=enabled,
                time_zone=time_zone,
                working_hours=hours,
                providers=tuple(providers),
                default_provider=default_provider or (providers[0] if providers else "unknown"),
                calendar_id=self._new_id("AAMkADcal"),
            )
            tenant.add(mailbox)
            return mailbox.directory_user()

    def add_room_list(self, tenant_id: str, address: str, display_name: str) -> RoomList:
        """Add a room list (a building)."""
        with self._lock:
            info = RoomList(address=address, display_name=display_name)
            self._tenant(tenant_id).room_lists[address.lower()] = _RoomList(info)
            return info

    def add_room(
        self,
        tenant_id: str,
        address: str,
        display_name: str,
        *,
        capacity: int | None = None,
        building: str | None = None,
        floor_label: str | None = None,
        is_wheelchair_accessible: bool | None = None,
        room_list: str | None = None,
        time_zone: str = "Pacific Standard Time",
    ) -> Room:
        """Add a room mailbox (disabled account, auto-accepts when free), optionally in a room list."""
        with self._lock:
            tenant = self._tenant(tenant_id)
            room = Room(
                address=address,
                display_name=display_name,
                capacity=capacity,
                building=building,
                floor_label=floor_label,
                is_wheelchair_accessible=is_wheelchair_accessible,
            )
            mailbox = _Mailbox(
                user_id=str(uuid.UUID(bytes=self._digest("room", self._next())[:16], version=4)),
                upn=address,
                mail=address,
                display_name=display_name,
                kind=NORMAL,
                enabled=False,
                time_zone=time_zone,
                working_hours=WorkingHours(
                    days=_MON_FRI, start=time(8), end=time(18), time_zone=TimeZoneSpec(name=time_zone)
                ),
                providers=(),
                default_provider="unknown",
                calendar_id=self._new_id("AAMkADcal"),
                is_room=True,
                room=room,
            )
            tenant.add(mailbox)
            if room_list is not None:
                entry = tenant.room_lists.get(room_list.lower())
                if entry is None:
                    raise ValueError(f"no room list {room_list!r}; add it first")
                entry.rooms.append(address)
            return room

    def grant_delegate(self, tenant_id: str, owner: str, delegate: str, *, grant: bool = True) -> None:
        """Exchange delegate (editor) rights: ``delegate``'s delegated token reaches ``owner``'s calendars
        (the service-account method); ``grant=False`` takes them back."""
        with self._lock:
            mailbox = self._seeded(tenant_id, owner)
            delegate_id = self._seeded(tenant_id, delegate).user_id
            if grant:
                mailbox.delegates.add(delegate_id)
            else:
                mailbox.delegates.discard(delegate_id)

    def calendars_of(self, tenant_id: str, user: str) -> dict[str, str]:
        """The user's secondary calendars (id -> name)."""
        with self._lock:
            return dict(self._seeded(tenant_id, user).secondary)

    def set_mailbox_settings(
        self, tenant_id: str, user: str, *, time_zone: str | None = None, working_hours: WorkingHours | None = None
    ) -> None:
        """Change what ``get_mailbox_settings`` and getSchedule report for a mailbox."""
        with self._lock:
            mailbox = self._seeded(tenant_id, user)
            if time_zone is not None:
                mailbox.time_zone = time_zone
            if working_hours is not None:
                mailbox.working_hours = working_hours

    def add_busy(
        self,
        tenant_id: str,
        user: str,
        start: datetime,
        end: datetime,
        status: FreeBusyStatus | str = FreeBusyStatus.BUSY,
        *,
        subject: str = "Busy",
    ) -> str:
        """An existing appointment (no attendees) in the user's calendar; returns its id."""
        require_aware(start, end)
        with self._lock:
            mailbox = self._seeded(tenant_id, user)
            event = _Event(
                id=self._new_id("AAMkAD"),
                ical_uid=self._new_ical_uid(),
                mailbox_id=mailbox.user_id,
                calendar_id=mailbox.calendar_id,
                subject=subject,
                start=_utc(start),
                end=_utc(end),
                organizer=mailbox.mail or mailbox.upn,
                show_as=FreeBusyStatus(status),
            )
            self._touch(mailbox, event)
            return event.id

    # === "as Outlook": changes people make, not Graph calls of ours =====================

    def move_event_as_organizer(self, tenant_id: str, user: str, event_id: str, start: datetime, end: datetime) -> None:
        """The organizer drags the meeting in Outlook: answers reset, rooms decide again."""
        require_aware(start, end)
        with self._lock:
            tenant = self._tenant(tenant_id)
            mailbox = self._seeded(tenant_id, user)
            event = self._event(mailbox, event_id)
            if not event.is_organizer:
                raise GraphRequestRejected("Only the organizer can move a meeting.")
            if event.series_master_id is not None:
                self._move_occurrence(tenant, mailbox, event, _utc(start), _utc(end))
            elif event.recurrence is not None:
                self._change_series(
                    tenant, mailbox, event, None, start=_utc(start), end=_utc(end), time_zone=event.time_zone
                )
            else:
                self._move(tenant, mailbox, event, _utc(start), _utc(end))

    def cancel_event_as_organizer(self, tenant_id: str, user: str, event_id: str) -> None:
        """The organizer cancels in Outlook (one occurrence when ``event_id`` names one)."""
        with self._lock:
            tenant = self._tenant(tenant_id)
            mailbox = self._seeded(tenant_id, user)
            event = self._event(mailbox, event_id)
            if event.series_master_id is not None:
                self._cancel_occurrence(tenant, mailbox, event)
            else:
                self._cancel(tenant, mailbox, event)

    def delete_event_in_outlook(self, tenant_id: str, user: str, event_id: str) -> None:
        """The user deletes the event in Outlook (an organizer's delete also cancels the meeting)."""
        with self._lock:
            tenant = self._tenant(tenant_id)
            mailbox = self._seeded(tenant_id, user)
            self._delete(tenant, mailbox, self._event(mailbox, event_id))

    def respond_as_attendee(
        self, tenant_id: str, attendee: str, event_id: str, response: ResponseType | str
    ) -> None:
        """The attendee answers their copy ``event_id``; the organizer's event shows the answer.
        Declining removes the attendee's copy, as Outlook does."""
        answer = ResponseType(response)
        if answer not in (ResponseType.ACCEPTED, ResponseType.DECLINED, ResponseType.TENTATIVELY_ACCEPTED):
            raise ValueError("response must be accepted, declined or tentativelyAccepted")
        with self._lock:
            tenant = self._tenant(tenant_id)
            mailbox = self._seeded(tenant_id, attendee)
            event = self._event(mailbox, event_id)
            if event.is_organizer or event.is_cancelled:
                raise GraphRequestRejected("Only an attendee can answer a meeting that is not cancelled.")
            if event.series_master_id is not None:
                self._respond_to_occurrence(tenant, mailbox, event, answer)
                return
            before = self._instance_ids(event)
            if answer == ResponseType.DECLINED:
                self._remove(mailbox, event)
            else:
                event.response = answer
                event.show_as = FreeBusyStatus.BUSY if answer == ResponseType.ACCEPTED else FreeBusyStatus.TENTATIVE
                self._touch(mailbox, event)
            organizer = tenant.find(event.organizer)
            original = self._copy_in(organizer, event.ical_uid) if organizer is not None else None
            if organizer is not None and original is not None and original.is_organizer:
                refs = {r.lower() for r in (mailbox.upn, mailbox.mail or "", mailbox.user_id)}
                for att in original.attendees:
                    if att.address.lower() in refs:
                        att.response = answer
                self._touch(organizer, original)
            if event.recurrence is not None:
                self._retire(mailbox, event, before)

    def respond_as_guest(self, tenant_id: str, organizer: str, event_id: str, address: str,
                         response: ResponseType | str) -> None:
        """A guest (outside the tenant) answers the invitation by email: only the organizer's event changes."""
        answer = ResponseType(response)
        with self._lock:
            mailbox = self._seeded(tenant_id, organizer)
            event = self._event(mailbox, event_id)
            for att in event.attendees:
                if att.address.lower() == address.lower():
                    att.response = answer
            self._touch(mailbox, event)

    def attendees_of(self, tenant_id: str, user: str, event_id: str) -> list[tuple[str, str, str | None]]:
        """(address, type, display name as sent) of each attendee of ``user``'s event, rooms included."""
        with self._lock:
            event = self._event(self._seeded(tenant_id, user), event_id)
            return [(a.address, a.type, a.name) for a in event.attendees]

    def cancel_occurrence_as_organizer(self, tenant_id: str, user: str, occurrence_id: str) -> None:
        """The organizer deletes one occurrence in Outlook ("cancel this occurrence")."""
        with self._lock:
            tenant = self._tenant(tenant_id)
            mailbox = self._seeded(tenant_id, user)
            event = self._event(mailbox, occurrence_id)
            if event.series_master_id is None or not event.is_organizer:
                raise GraphRequestRejected("Only the organizer can cancel an occurrence of their series.")
            self._cancel_occurrence(tenant, mailbox, event)

    def change_series_as_organizer(
        self,
        tenant_id: str,
        user: str,
        series_id: str,
        *,
        recurrence: PatternedRecurrence | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> None:
        """The organizer edits the whole series in Outlook (pattern and/or times)."""
        with self._lock:
            tenant = self._tenant(tenant_id)
            mailbox = self._seeded(tenant_id, user)
            master = self._series_master(mailbox, series_id)
            self._change_series(
                tenant,
                mailbox,
                master,
                recurrence,
                start=_utc(start) if start is not None else None,
                end=_utc(end) if end is not None else None,
                time_zone=master.time_zone,
            )

    def copy_of(self, tenant_id: str, user: str, ical_uid: str) -> str | None:
        """The id of the event with ``ical_uid`` in ``user``'s calendar (an attendee's copy), if any."""
        with self._lock:
            found = self._copy_in(self._seeded(tenant_id, user), ical_uid)
            return found.id if found is not None else None

    def events_of(self, tenant_id: str, user: str) -> list[EventMetadata]:
        """Everything in ``user``'s calendar now, by start (for assertions; not a Graph call)."""
        with self._lock:
            mailbox = self._seeded(tenant_id, user)
            return [self._metadata(e) for e in sorted(mailbox.events.values(), key=lambda e: (e.start, e.id))]

    def response_of(self, tenant_id: str, user: str, event_id: str) -> ResponseType:
        """The user's own answer on an event in their calendar (``organizer`` on their own events)."""
        with self._lock:
            return self._event(self._seeded(tenant_id, user), event_id).response

    def subscriptions_of(self, tenant_id: str) -> list[SubscriptionInfo]:
        """Active subscriptions of a tenant (expired ones are gone, as in Graph)."""
        with self._lock:
            tenant = self._tenant(tenant_id)
            self._purge(tenant)
            return [s.info() for s in tenant.subscriptions.values()]

    def client_state_of(self, tenant_id: str, subscription_id: str) -> str | None:
        """The clientState a subscription was created with (to build notifications in tests)."""
        with self._lock:
            sub = self._tenant(tenant_id).subscriptions.get(subscription_id)
            return sub.client_state if sub is not None else None

    def remove_subscription(self, tenant_id: str, subscription_id: str) -> None:
        """Graph removes a subscription on its own (``subscriptionRemoved``): renewals then fail."""
        with self._lock:
            self._tenant(tenant_id).subscriptions.pop(subscription_id, None)

    def reject_notification_url(self, url: str) -> None:
        """Graph's validation request to ``url`` fails: creating a subscription is refused."""
        with self._lock:
            self._rejected_urls.add(url)

    def expire_delta_links(self) -> None:
        """Every issued delta link becomes unknown to Graph (410 SyncStateNotFound on use)."""
        with self._lock:
            self._delta.clear()

    # === fault injection and the call log ================================================

    def fail_next(self, method: str, error: ServiceError) -> None:
        """The next call of ``method`` raises ``error`` (queued: call again for more failures)."""
        self._check_method(method)
        with self._lock:
            self._fail_next.setdefault(method, deque()).append(error)

    def fail_always(self, method: str, error_factory: Callable[[], ServiceError]) -> None:
        """Every call of ``method`` raises a fresh ``error_factory()`` until ``clear_faults``."""
        self._check_method(method)
        with self._lock:
            self._fail_always[method] = error_factory

    def throttle(self, retry_after: float = 30.0) -> None:
        """Every call raises ``Throttled(retry_after)``, as the gateway does once its retry budget is spent."""
        with self._lock:
            self._throttled, self._throttle = True, retry_after

    def stop_throttling(self) -> None:
        with self._lock:
            self._throttled, self._throttle = False, None

    def clear_faults(self) -> None:
        """Forget every injected failure and the throttle switch."""
        with self._lock:
            self._fail_next.clear()
            self._fail_always.clear()
            self._throttled, self._throttle = False, None

    @property
    def calls(self) -> list[GraphCall]:
        """Every port call received, in order (failed ones included)."""
        with self._lock:
            return list(self._calls)

    def call_count(self, method: str | None = None, *, tenant_id: str | None = None) -> int:
        """How many port calls (of ``method``, for ``tenant_id``) were made."""
        with self._lock:
            return sum(
                1
                for c in self._calls
                if (method is None or c.method == method) and (tenant_id is None or c.tenant_id == tenant_id)
            )

    def reset_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    # === CalendarGateway: directory ======================================================

    def list_users(self, who: GraphIdentity, *, page_size: int = 100) -> Iterator[DirectoryUser]:
        """Enabled accounts that have a mailbox address (lazily, like the real one)."""
        with self._lock:
            self._enter("list_users", who, f"page_size={page_size}")
            users = [
                m.directory_user()
                for m in sorted(self._tenant(who.tenant_id).mailboxes.values(), key=lambda m: m.upn.lower())
                if m.enabled and m.mail and not m.is_room
            ]
        yield from users

    def get_user(self, who: GraphIdentity, user: str) -> DirectoryUser:
        _ref(user)
        with self._lock:
            self._enter("get_user", who, user)
            mailbox = self._tenant(who.tenant_id).find(user)
            if mailbox is None:
                raise _user_not_found()
            return mailbox.directory_user()

    def get_users(self, who: GraphIdentity, refs: Sequence[str]) -> dict[str, DirectoryUser | ServiceError]:
        unique = list(dict.fromkeys(refs))
        for ref in unique:
            _ref(ref)
        out: dict[str, DirectoryUser | ServiceError] = {}
        with self._lock:
            for start in range(0, len(unique), 20):  # one $batch per 20 parts
                group = unique[start:start + 20]
                self._enter("get_users", who, f"n={len(group)}")
                for ref in group:
                    mailbox = self._tenant(who.tenant_id).find(ref)
                    out[ref] = mailbox.directory_user() if mailbox is not None else _user_not_found()
        return out

    # === calendars and schedules =========================================================

    def get_calendar(self, who: GraphIdentity, user: str) -> CalendarInfo:
        _ref(user)
        with self._lock:
            self._enter("get_calendar", who, user)
            mailbox = self._reachable(who, user)
            return CalendarInfo(
                calendar_id=mailbox.calendar_id,
                can_edit=True,
                allowed_online_meeting_providers=mailbox.providers,
                default_online_meeting_provider=mailbox.default_provider,
            )

    def find_calendar(self, who: GraphIdentity, user: str, name: str) -> CalendarInfo | None:
        _ref(user)
        with self._lock:
            self._enter("find_calendar", who, f"{user} name={name}")
            mailbox = self._reachable(who, user)
            wanted = name.strip().lower()
            for calendar_id, calendar_name in mailbox.secondary.items():
                if calendar_name.strip().lower() == wanted:
                    return self._calendar_info(mailbox, calendar_id)
            if wanted == "calendar":
                return self._calendar_info(mailbox, mailbox.calendar_id)
            return None

    def create_calendar(self, who: GraphIdentity, user: str, name: str) -> CalendarInfo:
        _ref(user)
        if not name.strip():
            raise ValueError("a calendar needs a name")
        with self._lock:
            self._enter("create_calendar", who, f"{user} name={name}")
            mailbox = self._reachable(who, user)
            taken = {n.strip().lower() for n in mailbox.secondary.values()} | {"calendar"}
            if name.strip().lower() in taken:
                raise _graph_error(GraphConflict, 409, "ErrorFolderExists")
            calendar_id = self._new_id("AAMkADcal")
            mailbox.secondary[calendar_id] = name
            return self._calendar_info(mailbox, calendar_id)

    def get_schedule(
        self,
        who: GraphIdentity,
        anchor_user: str,
        addresses: Sequence[str],
        start: datetime,
        end: datetime,
        *,
        interval_minutes: int = 30,
    ) -> list[Schedule]:
        check_schedule_request(addresses, start, end, interval_minutes)
        _ref(anchor_user)
        with self._lock:
            self._enter("get_schedule", who, f"anchor={anchor_user} n={len(addresses)}")
            self._reachable(who, anchor_user)
            tenant = self._tenant(who.tenant_id)
            return [
                self._schedule(who, tenant, a, _utc(start), _utc(end), interval=interval_minutes)
                for a in addresses
            ]

    def get_mailbox_settings(self, who: GraphIdentity, user: str) -> MailboxSettings:
        _ref(user)
        with self._lock:
            self._enter("get_mailbox_settings", who, user)
            mailbox = self._reachable(who, user, shared=False)
            return MailboxSettings(time_zone=mailbox.time_zone, working_hours=mailbox.working_hours)

    # === events ==========================================================================

    def create_event(self, who: GraphIdentity, user: str, event: NewEvent) -> CreatedEvent:
        require_aware(event.start, event.end)
        if event.end <= event.start:
            raise ValueError("end must be after start")
        _check_zone(event.time_zone)
        if event.recurrence is not None:
            rec.check(event.recurrence, allow_no_end=True)
        _ref(user)
        with self._lock:
            self._enter("create_event", who, f"{user} tx={event.transaction_id}")
            tenant = self._tenant(who.tenant_id)
            mailbox = self._reachable(who, user)
            calendar_id = event.calendar_id or mailbox.calendar_id
            if calendar_id != mailbox.calendar_id and calendar_id not in mailbox.secondary:
                raise _item_not_found()
            tx_key = f"{calendar_id}|{event.transaction_id}" if event.transaction_id else None
            if tx_key and (existing := mailbox.events.get(mailbox.transactions.get(tx_key, ""))) is not None:
                return self._created(existing)
            names = {a.lower(): n for a, n in event.attendee_names}
            attendees = [_Attendee(address=a, is_resource=False, name=names.get(a.lower())) for a in event.attendees]
            attendees += [_Attendee(address=a, is_resource=False, type="optional", name=names.get(a.lower()))
                          for a in event.optional_attendees]
            if event.room:
                attendees.append(_Attendee(address=event.room, is_resource=True, type="resource"))
            created = _Event(
                id=self._new_id("AAMkAD"),
                ical_uid=self._new_ical_uid(),
                mailbox_id=mailbox.user_id,
                calendar_id=calendar_id,
                subject=event.subject,
                start=_utc(event.start),
                end=_utc(event.end),
                organizer=mailbox.mail or mailbox.upn,
                attendees=attendees,
                transaction_id=event.transaction_id,
                recurrence=event.recurrence,
                time_zone=event.time_zone,
            )
            if event.recurrence is not None:
                self._check_series_start(created)
            if event.online_meeting_provider:
                created.join_url = self._join_url(mailbox, event.online_meeting_provider)
            self._room_decisions(tenant, created, [a.address for a in attendees])
            self._touch(mailbox, created)
            if tx_key:
                mailbox.transactions[tx_key] = created.id
            self._sync_attendees(tenant, created, time_changed=True, previous=set())
            return self._created(created)

    def update_event(
        self,
        who: GraphIdentity,
        user: str,
        event_id: str,
        start: datetime,
        end: datetime,
        *,
        time_zone: str = "UTC",
    ) -> EventMetadata:
        require_aware(start, end)
        if end <= start:
            raise ValueError("end must be after start")
        _check_zone(time_zone)
        _ref(user)
        _ref(event_id)
        with self._lock:
            self._enter("update_event", who, f"{user} {event_id}")
            tenant = self._tenant(who.tenant_id)
            mailbox = self._reachable(who, user)
            event = self._event(mailbox, event_id)
            if event.series_master_id is not None:
                self._move_occurrence(tenant, mailbox, event, _utc(start), _utc(end))
                return self._metadata(self._event(mailbox, event_id))
            if event.recurrence is not None:
                return self._metadata(
                    self._change_series(
                        tenant, mailbox, event, None, start=_utc(start), end=_utc(end), time_zone=time_zone
                    )
                )
            if event.is_organizer:
                self._move(tenant, mailbox, event, _utc(start), _utc(end))
            else:
                event.start, event.end = _utc(start), _utc(end)
                self._touch(mailbox, event)
            return self._metadata(event)

    def cancel_event(self, who: GraphIdentity, user: str, event_id: str, comment: str | None = None) -> None:
        _ref(user)
        _ref(event_id)
        with self._lock:
            self._enter("cancel_event", who, f"{user} {event_id}")
            tenant = self._tenant(who.tenant_id)
            mailbox = self._reachable(who, user)
            event = self._event(mailbox, event_id)
            if not event.is_organizer:
                # Graph: 400 ErrorInvalidRequest "You need to be an organizer to cancel a meeting."
                raise _graph_error(GraphRequestRejected, 400, "ErrorInvalidRequest")
            if event.series_master_id is not None:
                self._cancel_occurrence(tenant, mailbox, event)
            else:
                self._cancel(tenant, mailbox, event)

    def delete_event(self, who: GraphIdentity, user: str, event_id: str) -> None:
        _ref(user)
        _ref(event_id)
        with self._lock:
            self._enter("delete_event", who, f"{user} {event_id}")
            tenant = self._tenant(who.tenant_id)
            mailbox = self._reachable(who, user)
            self._delete(tenant, mailbox, self._event(mailbox, event_id))

    # === recurring series =================================================================

    def list_instances(
        self, who: GraphIdentity, user: str, series_id: str, start: datetime, end: datetime
    ) -> Iterator[EventMetadata]:
        require_aware(start, end)
        _ref(user)
        _ref(series_id)
        with self._lock:
            self._enter("list_instances", who, f"{user} {series_id}")
            master = self._event(self._reachable(who, user), series_id)
            found = [] if master.recurrence is None else self._instances(master, _utc(start), _utc(end))
            items = [self._metadata(i) for i in found]
        yield from items

    def update_series(
        self,
        who: GraphIdentity,
        user: str,
        series_id: str,
        *,
        recurrence: PatternedRecurrence | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        time_zone: str = "UTC",
    ) -> EventMetadata:
        if (start is None) != (end is None):
            raise ValueError("start and end change together")
        if start is not None and end is not None:
            require_aware(start, end)
            if end <= start:
                raise ValueError("end must be after start")
        if recurrence is None and start is None:
            raise ValueError("nothing to change: give a recurrence, or start and end")
        if recurrence is not None:
            rec.check(recurrence, allow_no_end=True)
        _check_zone(time_zone)
        _ref(user)
        _ref(series_id)
        with self._lock:
            self._enter("update_series", who, f"{user} {series_id}")
            tenant = self._tenant(who.tenant_id)
            mailbox = self._reachable(who, user)
            master = self._series_master(mailbox, series_id)
            changed = self._change_series(
                tenant,
                mailbox,
                master,
                recurrence,
                start=_utc(start) if start is not None else None,
                end=_utc(end) if end is not None else None,
                time_zone=time_zone,
            )
            return self._metadata(changed)

    def end_series(self, who: GraphIdentity, user: str, series_id: str, last_date: date) -> EventMetadata:
        _ref(user)
        _ref(series_id)
        with self._lock:
            self._enter("end_series", who, f"{user} {series_id} {last_date}")
            tenant = self._tenant(who.tenant_id)
            mailbox = self._reachable(who, user)
            master = self._series_master(mailbox, series_id)
            rule = master.recurrence
            assert rule is not None
            if last_date < rule.range.start_date:
                raise InvalidRecurrence("end_before_start", rec.PROBLEMS["end_before_start"], field="range.endDate")
            zone = rule.range.recurrence_time_zone or master.time_zone
            occurrences = _occurrences(master)
            if rule.range.type != RecurrenceRangeType.NO_END and occurrences and (
                rec.on_day(occurrences[-1].start, zone) <= last_date
            ):
                return self._metadata(master)
            ended = dc_replace(
                rule,
                range=dc_replace(
                    rule.range, type=RecurrenceRangeType.END_DATE, end_date=last_date, number_of_occurrences=None
                ),
            )
            return self._metadata(self._change_series(
                    tenant, mailbox, master, ended, start=None, end=None, time_zone=master.time_zone
                ))

    def get_event(self, who: GraphIdentity, user: str, event_id: str) -> EventMetadata:
        _ref(user)
        _ref(event_id)
        with self._lock:
            self._enter("get_event", who, f"{user} {event_id}")
            return self._metadata(self._event(self._reachable(who, user), event_id))

    def find_event_by_transaction_id(
        self, who: GraphIdentity, user: str, transaction_id: str, start: datetime, end: datetime
    ) -> EventMetadata | None:
        require_aware(start, end)
        _ref(user)
        with self._lock:
            self._enter("find_event_by_transaction_id", who, f"{user} tx={transaction_id}")
            mailbox = self._reachable(who, user)
            for event in self._view(mailbox, _utc(start), _utc(end)):
                if event.transaction_id == transaction_id:
                    return self._metadata(event)
            return None

    def calendar_view(
        self, who: GraphIdentity, user: str, start: datetime, end: datetime, *, include_subject: bool = False
    ) -> Iterator[CalendarItem]:
        require_aware(start, end)
        _ref(user)
        with self._lock:
            self._enter("calendar_view", who, f"{user} subject={include_subject}")
            mailbox = self._reachable(who, user)
            items = [self._item(e, include_subject) for e in self._view(mailbox, _utc(start), _utc(end))]
        yield from items

    def calendar_view_delta(
        self, who: GraphIdentity, user: str, start: datetime, end: datetime, delta_link: str | None = None
    ) -> DeltaPage:
        if not delta_link:
            require_aware(start, end)
        _ref(user)
        with self._lock:
            self._enter("calendar_view_delta", who, f"{user} initial={not delta_link}")
            mailbox = self._reachable(who, user)
            if delta_link:
                token = (parse_qs(urlsplit(delta_link).query).get("$deltatoken") or [""])[0]
                state = self._delta.get(token)
                if state is None or state.mailbox_id != mailbox.user_id:
                    raise _graph_error(GraphRequestRejected, 410, "SyncStateNotFound")
                window_start, window_end = state.start, state.end
                changed = sorted(
                    (e for e in mailbox.events.values() if e.seq > state.since), key=lambda e: (e.seq, e.id)
                )
                singles = [e for e in changed if e.recurrence is None]
                instances = [
                    i for e in changed if e.recurrence is not None and e.calendar_id == mailbox.calendar_id
                    for i in self._instances(e, window_start, window_end)
                ]
                items = tuple(
                    self._item(e, False)
                    for e in singles + instances
                    if _overlaps(e.start, e.end, window_start, window_end)
                )
                removed = [i for seq, i in mailbox.tombstones if seq > state.since]
                removed += [e.id for e in singles if not _overlaps(e.start, e.end, window_start, window_end)]
            else:
                window_start, window_end = _utc(start), _utc(end)
                items = tuple(self._item(e, False) for e in self._view(mailbox, window_start, window_end))
                removed = []
            token = self._new_token()
            self._delta[token] = _DeltaState(who.tenant_id, mailbox.user_id, window_start, window_end, self._seq)
            link = f"{DELTA_BASE_URL}/users/{mailbox.user_id}/calendarView/delta?$deltatoken={token}"
            return DeltaPage(items=items, removed=tuple(dict.fromkeys(removed)), delta_link=link)

    # === rooms ===========================================================================

    def list_room_lists(self, who: GraphIdentity) -> list[RoomList]:
        with self._lock:
            self._enter("list_room_lists", who, "")
            return [entry.info for entry in self._tenant(who.tenant_id).room_lists.values()]

    def list_rooms(self, who: GraphIdentity, room_list_email: str | None = None) -> list[Room]:
        if room_list_email is not None:
            _ref(room_list_email)
        with self._lock:
            self._enter("list_rooms", who, room_list_email or "*")
            tenant = self._tenant(who.tenant_id)
            if room_list_email is None:
                ordered = sorted(tenant.mailboxes.values(), key=lambda m: m.upn.lower())
                return [m.room for m in ordered if m.room is not None]
            entry = tenant.room_lists.get(room_list_email.lower())
            if entry is None:
                raise _graph_error(ItemNotFound, 404, "ErrorItemNotFound")
            rooms = [tenant.find(address) for address in entry.rooms]
            return [m.room for m in rooms if m is not None and m.room is not None]

    # === subscriptions ===================================================================

    def create_subscription(
        self,
        who: GraphIdentity,
        *,
        resource: str,
        change_type: str,
        notification_url: str,
        lifecycle_url: str,
        client_state: str,
        expiration: datetime,
    ) -> SubscriptionInfo:
        if not client_state or len(client_state) > MAX_CLIENT_STATE:
            raise ValueError(f"clientState must be 1 to {MAX_CLIENT_STATE} characters")
        require_aware(expiration)
        with self._lock:
            self._enter("create_subscription", who, f"{resource} {change_type}")
            tenant = self._tenant(who.tenant_id)
            match = _SUBSCRIPTION_RESOURCE.match(resource.strip())
            if match is None:
                raise _graph_error(GraphRequestRejected, 400, "InvalidRequest")
            mailbox = self._reachable(who, unquote(match.group(1) or who.user_id or ""), shared=False)
            expiration = self._granted(expiration)
            if notification_url in self._rejected_urls or lifecycle_url in self._rejected_urls:
                # "Subscription validation request failed. Notification endpoint must respond with 200 OK..."
                raise _graph_error(GraphRequestRejected, 400, "ValidationError")
            sub = _Subscription(
                id=str(uuid.UUID(bytes=self._digest("sub", self._next())[:16], version=4)),
                resource=resource,
                change_type=change_type,
                mailbox_id=mailbox.user_id,
                notification_url=notification_url,
                lifecycle_url=lifecycle_url,
                client_state=client_state,
                expiration=expiration,
                creator=who.user_id,
            )
            tenant.subscriptions[sub.id] = sub
            return sub.info()

    def renew_subscription(self, who: GraphIdentity, subscription_id: str, expiration: datetime) -> SubscriptionInfo:
        _ref(subscription_id)
        require_aware(expiration)
        with self._lock:
            self._enter("renew_subscription", who, subscription_id)
            return self._renew(who.tenant_id, subscription_id, expiration)

    def delete_subscription(self, who: GraphIdentity, subscription_id: str) -> None:
        _ref(subscription_id)
        with self._lock:
            self._enter("delete_subscription", who, subscription_id)
            self._tenant(who.tenant_id).subscriptions.pop(subscription_id, None)

    def reauthorize_subscription(self, who: GraphIdentity, subscription_id: str) -> None:
        _ref(subscription_id)
        with self._lock:
            self._enter("reauthorize_subscription", who, subscription_id)
            tenant = self._tenant(who.tenant_id)
            self._purge(tenant)
            if subscription_id not in tenant.subscriptions:
                raise _item_not_found()

    def list_subscriptions(self, who: GraphIdentity) -> list[SubscriptionInfo]:
        """Like GET /subscriptions: app-only sees every subscription of the tenant (this fake plays one
        app), a delegated caller only those created for them; expired ones are gone."""
        with self._lock:
            self._enter("list_subscriptions", who, "")
            tenant = self._tenant(who.tenant_id)
            self._purge(tenant)
            return [
                s.info()
                for s in tenant.subscriptions.values()
                if who.user_id is None or (s.creator or "").lower() == who.user_id.lower()
            ]

    # === batches =========================================================================

    def batch(self, who: GraphIdentity, requests: Sequence[BatchRequest]) -> list[BatchOutcome]:
        """A small ``$batch`` router: GET users/{u}, users/{u}/calendar, users/{u}/events/{id};
        DELETE users/{u}/events/{id}; PATCH/DELETE subscriptions/{id}. Anything else is a 400 part."""
        ids = [r.id for r in requests]
        if len(set(ids)) != len(ids):
            raise ValueError("batch request ids must be unique")
        with self._lock:
            self._enter("batch", who, f"n={len(requests)}")
            return [self._batch_part(who, r) for r in requests]

    def get_events(
        self, who: GraphIdentity, refs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], EventMetadata | ServiceError]:
        for user, event_id in refs:
            _ref(user)
            _ref(event_id)
        with self._lock:
            self._enter("get_events", who, f"n={len(refs)}")
            out: dict[tuple[str, str], EventMetadata | ServiceError] = {}
            for user, event_id in dict.fromkeys(refs):
                try:
                    out[(user, event_id)] = self._metadata(self._event(self._reachable(who, user), event_id))
                except ServiceError as exc:
                    out[(user, event_id)] = exc
            return out

    def renew_subscriptions(
        self, who: GraphIdentity, renewals: Sequence[tuple[str, datetime]]
    ) -> dict[str, SubscriptionInfo | ServiceError]:
        latest = dict(renewals)
        for sub_id, expiration in latest.items():
            _ref(sub_id)
            require_aware(expiration)
        with self._lock:
            self._enter("renew_subscriptions", who, f"n={len(latest)}")
            out: dict[str, SubscriptionInfo | ServiceError] = {}
            for sub_id, expiration in latest.items():
                try:
                    out[sub_id] = self._renew(who.tenant_id, sub_id, expiration)
                except ServiceError as exc:
                    out[sub_id] = exc
            return out

    def probe_mailboxes(self, who: GraphIdentity, users: Sequence[str]) -> dict[str, ServiceError | None]:
        for user in users:
            _ref(user)
        with self._lock:
            self._enter("probe_mailboxes", who, f"n={len(users)}")
            out: dict[str, ServiceError | None] = {}
            for user in dict.fromkeys(users):
                try:
                    self._reachable(who, user)
                    out[user] = None
                except ServiceError as exc:
                    out[user] = exc
            return out

    # === internals =======================================================================

    _METHODS = frozenset(
        {
            "list_users",
            "get_user",
            "get_calendar",
            "find_calendar",
            "create_calendar",
            "get_schedule",
            "get_mailbox_settings",
            "create_event",
            "update_event",
            "cancel_event",
            "delete_event",
            "get_event",
            "find_event_by_transaction_id",
            "list_instances",
            "update_series",
            "end_series",
            "calendar_view",
            "calendar_view_delta",
            "list_room_lists",
            "list_rooms",
            "create_subscription",
            "renew_subscription",
            "delete_subscription",
            "reauthorize_subscription",
            "list_subscriptions",
            "batch",
            "get_events",
            "renew_subscriptions",
            "probe_mailboxes",
        }
    )

    def _check_method(self, method: str) -> None:
        if method not in self._METHODS:
            raise ValueError(f"{method!r} is not a CalendarGateway method")

    def _enter(self, method: str, who: GraphIdentity, args: str) -> None:
        """Record the call, then fail it the way the real gateway would: token first, then Graph."""
        self._calls.append(GraphCall(method, who.tenant_id, args))
        if self._tokens is not None:
            self._tokens.token(who)
        if self._throttled:
            raise Throttled(retry_after=self._throttle, details={"status": 429})
        queued = self._fail_next.get(method)
        if queued:
            raise queued.popleft()
        factory = self._fail_always.get(method)
        if factory is not None:
            raise factory()

    def _next(self) -> int:
        self._counter += 1
        return self._counter

    @staticmethod
    def _digest(kind: str, n: int) -> bytes:
        return hashlib.sha256(f"fake-graph-{kind}-{n}".encode()).digest()

    def _new_id(self, prefix: str) -> str:
        """A Graph-shaped id: standard base64, so '/' and '+' occur (as in real Exchange ids)."""
        raw = self._digest("id", self._next()) + self._digest("id2", self._counter)[:12]
        return prefix + base64.b64encode(raw).decode("ascii").rstrip("=")

    def _new_ical_uid(self) -> str:
        return _ICAL_PREFIX + self._digest("ical", self._next()).hex()[:32].upper()

    def _new_token(self) -> str:
        return base64.urlsafe_b64encode(self._digest("delta", self._next())[:18]).decode("ascii")

    def _tenant(self, tenant_id: str) -> _Tenant:
        return self._tenants.setdefault(tenant_id.lower(), _Tenant())

    def _seeded(self, tenant_id: str, user: str) -> _Mailbox:
        mailbox = self._tenant(tenant_id).find(user)
        if mailbox is None:
            raise ValueError(f"no user {user!r} in tenant {tenant_id!r}; add_user first")
        return mailbox

    def _reachable(self, who: GraphIdentity, user: str, *, shared: bool = True) -> _Mailbox:
        """The mailbox behind ``/users/{user}/...``, or the error Graph gives for it.

        A delegated token reaches only its own mailbox (403), except the calendar paths
        (``shared``) of a mailbox that made the caller a delegate (``grant_delegate``);
        mailbox settings and subscriptions are never shared. The app's access policy
        (``outsideScope``) restricts app-only tokens only.
        """
        mailbox = self._tenant(who.tenant_id).find(user)
        if mailbox is None:
            raise _user_not_found()
        delegated = who.user_id.lower() if who.user_id is not None else None
        if delegated is not None and delegated != mailbox.user_id.lower() and not (
            shared and delegated in mailbox.delegates
        ):
            raise _graph_error(OutsideAppScope, 403, "ErrorAccessDenied")
        if not mailbox.reachable:
            raise _graph_error(MailboxUnavailable, 404, "MailboxNotEnabledForRESTAPI")
        if mailbox.kind == OUTSIDE_SCOPE and who.user_id is None:
            raise _graph_error(OutsideAppScope, 403, "ErrorAccessDenied")
        return mailbox

    @staticmethod
    def _event(mailbox: _Mailbox, event_id: str) -> _Event:
        event = mailbox.events.get(event_id)
        if event is not None:
            return event
        split = _split_occurrence_id(event_id)
        master = mailbox.events.get(split[0]) if split else None
        if split is None or master is None or master.recurrence is None:
            raise _item_not_found()
        for instance in FakeCalendarGateway._instances(master):
            if instance.original_start == split[1]:
                return instance
        raise _item_not_found()

    @staticmethod
    def _instances(master: _Event, start: datetime | None = None, end: datetime | None = None) -> list[_Event]:
        """The master's occurrences and exceptions (not the deleted ones) overlapping [start, end)."""
        out = []
        for occurrence in _occurrences(master):
            original = occurrence.original_start
            if original in master.deleted:
                continue
            override = master.overrides.get(original, _Override())
            instance = _Event(
                id=_occurrence_id(master.id, original),
                ical_uid=master.ical_uid,
                mailbox_id=master.mailbox_id,
                calendar_id=master.calendar_id,
                subject=master.subject,
                start=override.start if override.start is not None else occurrence.start,
                end=override.end if override.end is not None else occurrence.end,
                organizer=master.organizer,
                show_as=override.show_as or master.show_as,
                is_organizer=master.is_organizer,
                response=override.response or master.response,
                attendees=copy.deepcopy(override.attendees if override.attendees is not None else master.attendees),
                is_cancelled=master.is_cancelled or override.cancelled,
                join_url=master.join_url,
                seq=master.seq,
                modified=master.modified,
                time_zone=master.time_zone,
                transaction_id=master.transaction_id,  # occurrences show their master's (as the simulator's do)
                type=EventType.EXCEPTION if original in master.overrides else EventType.OCCURRENCE,
                series_master_id=master.id,
                original_start=original,
            )
            if start is None or end is None or _overlaps(instance.start, instance.end, start, end):
                out.append(instance)
        return sorted(out, key=lambda e: (e.start, e.id))

    def _master_of(self, mailbox: _Mailbox, instance: _Event) -> _Event:
        master = mailbox.events.get(instance.series_master_id or "")
        if master is None:
            raise _item_not_found()
        return master

    def _retire(self, mailbox: _Mailbox, master: _Event, before: set[str]) -> None:
        """Tombstone the occurrence ids of ``master`` that no longer exist (for calendarView delta)."""
        after = {i.id for i in self._instances(master)} if master.id in mailbox.events else set()
        for gone in sorted(before - after):
            self._seq += 1
            mailbox.tombstones.append((self._seq, gone))

    def _instance_ids(self, master: _Event) -> set[str]:
        return {i.id for i in self._instances(master)} if master.recurrence is not None else set()

    def _touch(self, mailbox: _Mailbox, event: _Event) -> None:
        self._seq += 1
        event.seq = self._seq
        event.modified = self._clock.now().astimezone(UTC)
        mailbox.events[event.id] = event

    def _remove(self, mailbox: _Mailbox, event: _Event) -> None:
        gone = self._instance_ids(event) if event.series_master_id is None else set()
        self._seq += 1
        mailbox.events.pop(event.id, None)
        mailbox.tombstones.append((self._seq, event.id))
        for occurrence_id in sorted(gone):
            self._seq += 1
            mailbox.tombstones.append((self._seq, occurrence_id))

    @staticmethod
    def _copy_in(mailbox: _Mailbox, ical_uid: str) -> _Event | None:
        for event in mailbox.events.values():
            if event.ical_uid == ical_uid:
                return event
        return None

    @staticmethod
    def _calendar_info(mailbox: _Mailbox, calendar_id: str) -> CalendarInfo:
        return CalendarInfo(
            calendar_id=calendar_id,
            can_edit=True,
            allowed_online_meeting_providers=mailbox.providers,
            default_online_meeting_provider=mailbox.default_provider,
        )

    @staticmethod
    def _view(mailbox: _Mailbox, start: datetime, end: datetime) -> list[_Event]:
        """The default calendar's events (like Graph's /calendarView without a calendar id):
        single events, and the occurrences and exceptions of series (never the masters)."""
        found: list[_Event] = []
        for e in mailbox.events.values():
            if e.calendar_id != mailbox.calendar_id:
                continue
            if e.recurrence is not None:
                found.extend(FakeCalendarGateway._instances(e, start, end))
            elif _overlaps(e.start, e.end, start, end):
                found.append(e)
        return sorted(found, key=lambda e: (e.start, e.end, e.id))

    def _join_url(self, mailbox: _Mailbox, requested: str) -> str | None:
        """Teams/Skype link per the calendar's allowed providers; Exchange falls back to the default."""
        provider = requested if requested in _PROVIDERS else mailbox.default_provider
        if provider not in mailbox.providers:
            provider = mailbox.default_provider
        if provider not in mailbox.providers or provider == "unknown":
            return None
        token = self._digest("meeting", self._next()).hex()[:32]
        if provider == "teamsForBusiness":
            return f"https://teams.microsoft.com/l/meetup-join/19%3ameeting_{token}%40thread.v2/0"
        local, _, domain = mailbox.upn.partition("@")
        return f"https://meet.lync.com/{domain}/{local}/{token[:8].upper()}"

    def _room_decisions(self, tenant: _Tenant, event: _Event, addresses: Iterable[str]) -> None:
        """Rooms among ``addresses`` accept if free over the event's time, else decline."""
        wanted = {a.lower() for a in addresses}
        spans = (
            [(i.start, i.end) for i in self._instances(event)]
            if event.recurrence is not None
            else [(event.start, event.end)]
        )
        for att in event.attendees:
            room = tenant.find(att.address)
            if room is None or not room.is_room or att.address.lower() not in wanted:
                continue
            # A series is accepted only if every occurrence is free (Exchange's default
            # MaximumConflictInstances 0 declines the whole series on any conflict).
            free = all(self._room_free(room, event.ical_uid, s, e) for s, e in spans)
            att.is_resource = True
            att.response = ResponseType.ACCEPTED if free else ResponseType.DECLINED

    def _room_free(self, room: _Mailbox, ical_uid: str, start: datetime, end: datetime) -> bool:
        return not any(
            not other.is_cancelled and other.ical_uid != ical_uid and other.show_as in _BLOCKING
            for other in self._view(room, start, end)
        )

    def _sync_attendees(self, tenant: _Tenant, original: _Event, *, time_changed: bool, previous: set[str]) -> None:
        """Create or update every reachable attendee's copy of the organizer's event."""
        for att in original.attendees:
            target = tenant.find(att.address)
            if target is None or target.user_id == original.mailbox_id or not target.reachable:
                continue
            existing = self._copy_in(target, original.ical_uid)
            if target.is_room and att.response == ResponseType.DECLINED:
                if existing is not None:
                    self._remove(target, existing)
                continue
            if existing is None:
                existing = _Event(
                    id=self._new_id("AAMkAD"),
                    ical_uid=original.ical_uid,
                    mailbox_id=target.user_id,
                    calendar_id=target.calendar_id,
                    subject=original.subject,
                    start=original.start,
                    end=original.end,
                    organizer=original.organizer,
                    is_organizer=False,
                    response=ResponseType.ACCEPTED if target.is_room else ResponseType.NOT_RESPONDED,
                    show_as=FreeBusyStatus.BUSY if target.is_room else FreeBusyStatus.TENTATIVE,
                )
            elif not time_changed and att.address.lower() in previous:
                continue
            elif time_changed and not target.is_room:
                existing.response, existing.show_as = ResponseType.NOT_RESPONDED, FreeBusyStatus.TENTATIVE
            self._mirror(existing, original)
            self._touch(target, existing)

    @staticmethod
    def _mirror(copy_event: _Event, original: _Event) -> None:
        copy_event.recurrence, copy_event.time_zone = original.recurrence, original.time_zone
        for original_start, override in original.overrides.items():
            if override.start is not None:
                mine = copy_event.overrides.setdefault(original_start, _Override())
                mine.start, mine.end = override.start, override.end
        for original_start in original.deleted:
            copy_event.overrides.setdefault(original_start, _Override()).cancelled = True
        copy_event.subject = original.subject
        copy_event.start, copy_event.end = original.start, original.end
        copy_event.organizer = original.organizer
        copy_event.attendees = copy.deepcopy(original.attendees)
        copy_event.join_url = original.join_url
        copy_event.is_cancelled = original.is_cancelled

    def _move(self, tenant: _Tenant, mailbox: _Mailbox, event: _Event, start: datetime, end: datetime) -> None:
        time_changed = (start, end) != (event.start, event.end)
        event.start, event.end = start, end
        previous = {a.address.lower() for a in event.attendees}
        if time_changed:
            for att in event.attendees:
                att.response = ResponseType.NONE
            self._room_decisions(tenant, event, [a.address for a in event.attendees])
        self._touch(mailbox, event)
        self._sync_attendees(tenant, event, time_changed=time_changed, previous=previous)

    def _cancel(self, tenant: _Tenant, mailbox: _Mailbox, event: _Event) -> None:
        for att in event.attendees:
            self._cancel_copy(tenant, att.address, event.ical_uid)
        self._remove(mailbox, event)

    def _delete(self, tenant: _Tenant, mailbox: _Mailbox, event: _Event) -> None:
        if event.series_master_id is not None:
            if event.is_organizer:
                self._cancel_occurrence(tenant, mailbox, event)
                return
            master = self._master_of(mailbox, event)
            before = self._instance_ids(master)
            assert event.original_start is not None
            master.deleted.add(event.original_start)
            self._touch(mailbox, master)
            self._retire(mailbox, master, before)
            return
        if event.is_organizer:
            for att in event.attendees:
                self._cancel_copy(tenant, att.address, event.ical_uid)
        self._remove(mailbox, event)

    def _cancel_copy(self, tenant: _Tenant, address: str, ical_uid: str) -> None:
        target = tenant.find(address)
        if target is None or not target.reachable:
            return
        existing = self._copy_in(target, ical_uid)
        if existing is None or existing.is_organizer:
            return
        if target.is_room:
            self._remove(target, existing)
            return
        existing.is_cancelled = True
        if not existing.subject.startswith("Canceled: "):
            existing.subject = "Canceled: " + existing.subject
        self._touch(target, existing)

    # --- series internals -----------------------------------------------------------------

    def _series_master(self, mailbox: _Mailbox, series_id: str) -> _Event:
        master = self._event(mailbox, series_id)
        if master.recurrence is None or master.series_master_id is not None:
            raise _graph_error(GraphRequestRejected, 400, "ErrorInvalidRequest")
        if not master.is_organizer:
            raise _graph_error(GraphRequestRejected, 400, "ErrorInvalidRequest")
        return master

    @staticmethod
    def _check_series_start(master: _Event) -> None:
        """Graph's 400 for a range whose start date is not the event's start date in its zone."""
        assert master.recurrence is not None
        zone = master.recurrence.range.recurrence_time_zone or master.time_zone
        if rec.on_day(master.start, zone) != master.recurrence.range.start_date:
            raise _graph_error(GraphRequestRejected, 400, "ErrorPropertyValidationFailure")

    def _copies(self, tenant: _Tenant, master: _Event) -> Iterator[tuple[_Mailbox, _Event]]:
        for att in master.attendees:
            target = tenant.find(att.address)
            if target is None or target.user_id == master.mailbox_id or not target.reachable:
                continue
            found = self._copy_in(target, master.ical_uid)
            if found is not None and not found.is_organizer:
                yield target, found

    def _change_series(
        self,
        tenant: _Tenant,
        mailbox: _Mailbox,
        master: _Event,
        recurrence: PatternedRecurrence | None,
        *,
        start: datetime | None,
        end: datetime | None,
        time_zone: str,
    ) -> _Event:
        """PATCH on a master. A new pattern or new times drop every exception and cancelled occurrence
        ([MS-OXOCAL] 3.1.4.7.3.5: a client that changes the pattern "removes every exception"); a new
        range alone keeps those still inside it."""
        assert master.recurrence is not None
        before = self._instance_ids(master)
        times_changed = start is not None and end is not None and (start, end) != (master.start, master.end)
        new_rule = recurrence or master.recurrence
        pattern_changed = new_rule.pattern != master.recurrence.pattern or times_changed
        if start is not None and end is not None:
            master.start, master.end, master.time_zone = start, end, time_zone
        master.recurrence = new_rule
        self._check_series_start(master)
        copies = list(self._copies(tenant, master))
        if pattern_changed:
            master.overrides.clear()
            master.deleted.clear()
            for _target, found in copies:
                found.overrides.clear()
                found.deleted.clear()
            for att in master.attendees:
                att.response = ResponseType.NONE
            self._room_decisions(tenant, master, [a.address for a in master.attendees])
        else:
            kept = {o.original_start for o in _occurrences(master)}
            for event in [master] + [found for _t, found in copies]:
                event.overrides = {k: v for k, v in event.overrides.items() if k in kept}
                event.deleted &= kept
        self._touch(mailbox, master)
        self._retire(mailbox, master, before)
        previous = {a.address.lower() for a in master.attendees}
        for target, found in copies:
            found_before = self._instance_ids(found)
            self._mirror(found, master)
            if pattern_changed and not target.is_room:
                found.response, found.show_as = ResponseType.NOT_RESPONDED, FreeBusyStatus.TENTATIVE
            self._touch(target, found)
            self._retire(target, found, found_before)
        self._sync_attendees(tenant, master, time_changed=False, previous=previous)
        return master

    def _move_occurrence(
        self, tenant: _Tenant, mailbox: _Mailbox, instance: _Event, start: datetime, end: datetime
    ) -> None:
        """PATCH on an occurrence id: it becomes an exception; attendees' copies follow."""
        master = self._master_of(mailbox, instance)
        original = instance.original_start
        assert original is not None
        if not master.is_organizer:
            mine = master.overrides.setdefault(original, _Override())
            mine.start, mine.end = start, end
            self._touch(mailbox, master)
            return
        current = [rec.Occurrence(i.original_start or i.start, i.start, i.end) for i in self._instances(master)]
        if rec.crosses_boundary(current, original, start, master.time_zone):
            # "Modified occurrence is crossing or overlapping adjacent occurrence." (event-update.md)
            raise _graph_error(GraphRequestRejected, 400, "ErrorOccurrenceCrossingBoundary")
        time_changed = (start, end) != (instance.start, instance.end)
        override = master.overrides.setdefault(original, _Override())
        override.start, override.end = start, end
        if time_changed:
            attendees = copy.deepcopy(override.attendees if override.attendees is not None else master.attendees)
            for att in attendees:
                att.response = ResponseType.NONE
                room = tenant.find(att.address)
                if room is not None and room.is_room:
                    free = self._room_free(room, master.ical_uid, start, end)
                    att.response = ResponseType.ACCEPTED if free else ResponseType.DECLINED
            override.attendees = attendees
        self._touch(mailbox, master)
        statuses = {a.address.lower(): a.response for a in override.attendees or master.attendees}
        for target, found in self._copies(tenant, master):
            before = self._instance_ids(found)
            mine = found.overrides.setdefault(original, _Override())
            mine.start, mine.end = start, end
            if target.is_room:
                if statuses.get(target.upn.lower()) == ResponseType.DECLINED:
                    found.deleted.add(original)
                else:
                    found.deleted.discard(original)
            elif time_changed:
                mine.response, mine.show_as = ResponseType.NOT_RESPONDED, FreeBusyStatus.TENTATIVE
            self._touch(target, found)
            self._retire(target, found, before)

    def _cancel_occurrence(self, tenant: _Tenant, mailbox: _Mailbox, instance: _Event) -> None:
        """The organizer cancels one occurrence: gone from their series; attendees see it cancelled,
        rooms drop it."""
        master = self._master_of(mailbox, instance)
        original = instance.original_start
        assert original is not None
        before = self._instance_ids(master)
        master.deleted.add(original)
        master.overrides.pop(original, None)
        self._touch(mailbox, master)
        self._retire(mailbox, master, before)
        for target, found in self._copies(tenant, master):
            found_before = self._instance_ids(found)
            if target.is_room:
                found.deleted.add(original)
            else:
                found.overrides.setdefault(original, _Override()).cancelled = True
            self._touch(target, found)
            self._retire(target, found, found_before)

    def _respond_to_occurrence(
        self, tenant: _Tenant, mailbox: _Mailbox, instance: _Event, answer: ResponseType
    ) -> None:
        """An attendee answers one occurrence; declining removes it from their calendar only."""
        copy_master = self._master_of(mailbox, instance)
        original = instance.original_start
        assert original is not None
        before = self._instance_ids(copy_master)
        if answer == ResponseType.DECLINED:
            copy_master.deleted.add(original)
        else:
            mine = copy_master.overrides.setdefault(original, _Override())
            mine.response = answer
            mine.show_as = FreeBusyStatus.BUSY if answer == ResponseType.ACCEPTED else FreeBusyStatus.TENTATIVE
        self._touch(mailbox, copy_master)
        self._retire(mailbox, copy_master, before)
        organizer = tenant.find(copy_master.organizer)
        original_master = self._copy_in(organizer, copy_master.ical_uid) if organizer is not None else None
        if organizer is None or original_master is None or not original_master.is_organizer:
            return
        override = original_master.overrides.setdefault(original, _Override())
        if override.attendees is None:
            override.attendees = copy.deepcopy(original_master.attendees)
        refs = {r.lower() for r in (mailbox.upn, mailbox.mail or "", mailbox.user_id)}
        for att in override.attendees:
            if att.address.lower() in refs:
                att.response = answer
        self._touch(organizer, original_master)

    def _schedule(
        self, who: GraphIdentity, tenant: _Tenant, address: str, start: datetime, end: datetime, *, interval: int
    ) -> Schedule:
        mailbox = tenant.find(address)
        if mailbox is None:
            return Schedule(address=address, error_code=SCHEDULE_UNKNOWN_ADDRESS)
        if not mailbox.has_free_busy:
            return Schedule(address=address, error_code=SCHEDULE_MAILBOX_UNREACHABLE)
        if mailbox.kind == OUTSIDE_SCOPE and who.user_id is None:
            return Schedule(address=address, error_code=SCHEDULE_OUTSIDE_SCOPE)
        items = [
            e
            for e in self._view(mailbox, start, end)
            if e.calendar_id == mailbox.calendar_id and not e.is_cancelled and e.show_as != FreeBusyStatus.FREE
        ]
        slots = max(1, math.ceil((end - start) / timedelta(minutes=interval)))
        view = []
        for i in range(slots):
            slot_start = start + timedelta(minutes=interval * i)
            slot_end = min(end, slot_start + timedelta(minutes=interval))
            digit = 0
            for item in items:
                if _overlaps(item.start, item.end, slot_start, slot_end):
                    candidate = _VIEW_DIGIT[item.show_as]
                    if _VIEW_RANK[candidate] > _VIEW_RANK[digit]:
                        digit = candidate
            view.append(str(digit))
        return Schedule(
            address=address,
            busy=tuple(BusyInterval(start=e.start, end=e.end, status=e.show_as) for e in items),
            working_hours=mailbox.working_hours,
            availability_view="".join(view),
        )

    def _granted(self, requested: datetime) -> datetime:
        """Graph grants the requested expiry, and refuses (400) one in the past or beyond the maximum
        ("Subscription expiration can only be 10080 minutes in the future", code ExtensionError:
        microsoftgraph/microsoft-graph-docs-contrib#7726)."""
        now = self._clock.now().astimezone(UTC)
        granted = _utc(requested)
        if granted <= now:
            raise _graph_error(GraphRequestRejected, 400, "InvalidRequest")
        if granted > now + timedelta(minutes=self.max_subscription_minutes):
            # The gateway keeps the N of the documented message in details (core/adapters/graph/errors.py).
            refused = _graph_error(GraphRequestRejected, 400, "ExtensionError")
            refused.details["max_lifetime_minutes"] = self.max_subscription_minutes
            raise refused
        return granted

    def _renew(self, tenant_id: str, subscription_id: str, expiration: datetime) -> SubscriptionInfo:
        tenant = self._tenant(tenant_id)
        self._purge(tenant)
        sub = tenant.subscriptions.get(subscription_id)
        if sub is None:
            raise _item_not_found()
        sub.expiration = self._granted(expiration)
        return sub.info()

    def _purge(self, tenant: _Tenant) -> None:
        """Graph silently deletes subscriptions that were not renewed in time."""
        now = self._clock.now().astimezone(UTC)
        for sub_id in [s.id for s in tenant.subscriptions.values() if s.expiration <= now]:
            del tenant.subscriptions[sub_id]

    @staticmethod
    def _created(event: _Event) -> CreatedEvent:
        return CreatedEvent(
            event_id=event.id,
            start=event.start,
            end=event.end,
            ical_uid=event.ical_uid,
            transaction_id=event.transaction_id,
            change_key=_change_key(event),
            join_url=event.join_url,
        )

    @staticmethod
    def _metadata(event: _Event) -> EventMetadata:
        return EventMetadata(
            event_id=event.id,
            start=event.start,
            end=event.end,
            is_cancelled=event.is_cancelled,
            organizer=event.organizer,
            attendees=tuple(
                AttendeeResponse(address=a.address, response=a.response, is_resource=a.is_resource)
                for a in event.attendees
            ),
            change_key=_change_key(event),
            last_modified=event.modified.replace(microsecond=0),
            ical_uid=event.ical_uid,
            transaction_id=event.transaction_id,
            join_url=event.join_url,
            type=EventType.SERIES_MASTER if event.recurrence is not None and event.series_master_id is None
            else event.type,
            series_master_id=event.series_master_id,
            original_start=event.original_start,
            recurrence=event.recurrence if event.series_master_id is None else None,
        )

    @staticmethod
    def _item(event: _Event, include_subject: bool) -> CalendarItem:
        return CalendarItem(
            event_id=event.id,
            start=event.start,
            end=event.end,
            show_as=event.show_as,
            subject=event.subject if include_subject else None,
            is_cancelled=event.is_cancelled,
            transaction_id=event.transaction_id,
        )

    def _batch_part(self, who: GraphIdentity, request: BatchRequest) -> BatchOutcome:
        method = request.method.upper()
        path = request.url.split("?", 1)[0]
        parts = [unquote(p) for p in path.strip("/").split("/")]
        try:
            if len(parts) >= 2 and parts[0].lower() == "users":
                return self._batch_user_part(who, request.id, method, parts)
            if len(parts) == 2 and parts[0].lower() == "subscriptions":
                if method == "PATCH":
                    raw = (request.body or {}).get("expirationDateTime")
                    expiration = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
                    info = self._renew(who.tenant_id, parts[1], expiration)
                    return BatchOutcome(request.id, 200, _subscription_json(info))
                if method == "DELETE":
                    self._tenant(who.tenant_id).subscriptions.pop(parts[1], None)
                    return BatchOutcome(request.id, 204)
        except GraphError as exc:
            return BatchOutcome(request.id, exc.status or 400, None, exc)
        except ValueError:
            error = _graph_error(GraphRequestRejected, 400, "BadRequest")
            return BatchOutcome(request.id, 400, None, error)
        error = _graph_error(GraphRequestRejected, 400, "BadRequest")
        return BatchOutcome(request.id, 400, None, error)

    def _batch_user_part(self, who: GraphIdentity, part_id: str, method: str, parts: list[str]) -> BatchOutcome:
        if len(parts) == 2 and method == "GET":
            found = self._tenant(who.tenant_id).find(parts[1])
            if found is None:
                raise _user_not_found()
            user = found.directory_user()
            body: dict[str, Any] = {
                "id": user.user_id,
                "displayName": user.display_name,
                "userPrincipalName": user.user_principal_name,
                "mail": user.mail,
                "accountEnabled": user.account_enabled,
            }
            return BatchOutcome(part_id, 200, body)
        mailbox = self._reachable(who, parts[1])
        if len(parts) == 3 and parts[2].lower() == "calendar" and method == "GET":
            return BatchOutcome(part_id, 200, {"id": mailbox.calendar_id})
        if len(parts) == 4 and parts[2].lower() == "events":
            event = self._event(mailbox, parts[3])
            if method == "GET":
                return BatchOutcome(part_id, 200, _event_json(self._metadata(event)))
            if method == "DELETE":
                self._delete(self._tenant(who.tenant_id), mailbox, event)
                return BatchOutcome(part_id, 204)
        raise _graph_error(GraphRequestRejected, 400, "BadRequest")


def _change_key(event: _Event) -> str:
    return base64.b64encode(f"fake-ck-{event.seq:012d}".encode()).decode("ascii")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _event_json(meta: EventMetadata) -> dict[str, Any]:
    """The Graph ``event`` JSON (selected metadata fields) that GraphGateway's parser reads."""
    return {
        "id": meta.event_id,
        "start": {"dateTime": meta.start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"},
        "end": {"dateTime": meta.end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"},
        "isCancelled": meta.is_cancelled,
        "organizer": {"emailAddress": {"address": meta.organizer}},
        "attendees": [
            {
                "type": "resource" if a.is_resource else "required",
                "status": {"response": str(a.response)},
                "emailAddress": {"address": a.address},
            }
            for a in meta.attendees
        ],
        "changeKey": meta.change_key,
        "lastModifiedDateTime": _iso(meta.last_modified) if meta.last_modified else None,
        "iCalUId": meta.ical_uid,
        "transactionId": meta.transaction_id,
        "onlineMeeting": {"joinUrl": meta.join_url} if meta.join_url else None,
    }


def _subscription_json(info: SubscriptionInfo) -> dict[str, Any]:
    return {
        "id": info.subscription_id,
        "resource": info.resource,
        "changeType": info.change_type,
        "expirationDateTime": _iso(info.expiration),
    }


# --- tokens -------------------------------------------------------------------------------


class FakeTokenProvider:
    """``TokenProvider`` with consent per tenant and delegated connections per user.

    Like Entra ID: a tenant without the app's consent (never given, or revoked: the service
    principal is gone) answers AADSTS700016 (``AppNotInTenant``), a tenant id that is not
    a GUID ``TenantNotFound``; a user who is not connected (or was revoked) needs to sign in
    again (``ReconnectRequired``, ``invalid_grant``). ``requests`` counts token requests.
    """

    def __init__(self, consented: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._consented = {t.lower() for t in consented}
        self._users: set[tuple[str, str]] = set()
        self._fail_next: deque[ServiceError] = deque()
        self._issued = 0
        self.requests = 0
        self.invalidated: list[str] = []

    def grant_consent(self, tenant_id: str) -> None:
        with self._lock:
            self._consented.add(tenant_id.lower())

    def revoke_consent(self, tenant_id: str) -> None:
        with self._lock:
            self._consented.discard(tenant_id.lower())

    def connect_user(self, tenant_id: str, user_id: str) -> None:
        """The user signed in: delegated tokens for them work."""
        with self._lock:
            self._users.add((tenant_id.lower(), user_id.lower()))

    def revoke_user(self, tenant_id: str, user_id: str) -> None:
        """The user's refresh token died (revoked, expired by inactivity, password reset)."""
        with self._lock:
            self._users.discard((tenant_id.lower(), user_id.lower()))

    def fail_next(self, error: ServiceError) -> None:
        """The next token request raises ``error`` (e.g. ``TransientGraphError``)."""
        with self._lock:
            self._fail_next.append(error)

    def token(self, who: GraphIdentity) -> str:
        with self._lock:
            self.requests += 1
            if self._fail_next:
                raise self._fail_next.popleft()
            tenant = who.tenant_id.lower()
            if not _TENANT_GUID.match(tenant):
                raise TenantNotFound("The tenant id is not a GUID.")
            if who.user_id is not None:
                if (tenant, who.user_id.lower()) not in self._users:
                    raise ReconnectRequired(aadsts=700082, oauth_error="invalid_grant", details={"aadsts": 700082})
            elif tenant not in self._consented:
                raise AppNotInTenant(aadsts=700016, oauth_error="unauthorized_client", details={"aadsts": 700016})
            self._issued += 1
            return f"fake-token-{self._issued}"

    def invalidate(self, tenant_id: str) -> None:
        with self._lock:
            self.invalidated.append(tenant_id.lower())


__all__ = [
    "DISABLED",
    "LEGACY_OUTLOOK_SUBSCRIPTION_MINUTES",
    "NORMAL",
    "ON_PREMISES",
    "OUTLOOK_SUBSCRIPTION_MINUTES",
    "OUTSIDE_SCOPE",
    "SCHEDULE_MAILBOX_UNREACHABLE",
    "SCHEDULE_OUTSIDE_SCOPE",
    "SCHEDULE_UNKNOWN_ADDRESS",
    "UNLICENSED",
    "FakeCalendarGateway",
    "FakeTokenProvider",
    "GraphCall",
]
