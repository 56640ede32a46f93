"""Calendar values shared by the Graph gateway (which produces them) and the domain
rules (slot finding, access-test classification, sync) that consume them.

These carry metadata only: no subject, body or location text of other people's events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from core.domain.errors import ServiceError


class FreeBusyStatus(StrEnum):
    """Graph ``freeBusyStatus`` values (CSDL enum ``freeBusyStatus``)."""

    FREE = "free"
    TENTATIVE = "tentative"
    BUSY = "busy"
    OOF = "oof"
    WORKING_ELSEWHERE = "workingElsewhere"
    UNKNOWN = "unknown"


class Weekday(StrEnum):
    """Graph ``dayOfWeek`` values."""

    SUNDAY = "sunday"
    MONDAY = "monday"
    TUESDAY = "tuesday"
    WEDNESDAY = "wednesday"
    THURSDAY = "thursday"
    FRIDAY = "friday"
    SATURDAY = "saturday"

    @property
    def iso(self) -> int:
        """ISO weekday number (Monday=1 ... Sunday=7), as ``datetime.isoweekday()``."""
        return _ISO[self]


_ISO = {
    Weekday.MONDAY: 1,
    Weekday.TUESDAY: 2,
    Weekday.WEDNESDAY: 3,
    Weekday.THURSDAY: 4,
    Weekday.FRIDAY: 5,
    Weekday.SATURDAY: 6,
    Weekday.SUNDAY: 7,
}


class ResponseType(StrEnum):
    """Graph ``responseType`` values: what an attendee answered."""

    NONE = "none"
    ORGANIZER = "organizer"
    TENTATIVELY_ACCEPTED = "tentativelyAccepted"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    NOT_RESPONDED = "notResponded"


@dataclass(frozen=True, slots=True)
class TransitionRule:
    """Graph ``standardTimeZoneOffset`` / ``daylightTimeZoneOffset`` of a custom zone.

    ``day_occurrence`` 1-4 is the Nth ``day_of_week`` of ``month``; 5 means the last.
    ``year`` 0 means every year. ``bias_minutes`` is the extra bias of daylight time.
    """

    time: time
    day_occurrence: int
    day_of_week: Weekday
    month: int
    year: int = 0
    bias_minutes: int = 0


@dataclass(frozen=True, slots=True)
class TimeZoneSpec:
    """A time zone as Graph names it: a Windows or IANA name, or a custom zone.

    Graph's custom zone (``customTimeZone``): local time = UTC - bias (minutes);
    during daylight time the bias is ``bias + daylight.bias_minutes``.
    """

    name: str
    bias_minutes: int | None = None
    standard: TransitionRule | None = None
    daylight: TransitionRule | None = None

    @property
    def is_custom(self) -> bool:
        return self.bias_minutes is not None


@dataclass(frozen=True, slots=True)
class WorkingHours:
    """A person's working hours in their own time zone (Graph ``workingHours``)."""

    days: frozenset[Weekday]
    start: time
    end: time
    time_zone: TimeZoneSpec


@dataclass(frozen=True, slots=True)
class BusyInterval:
    """One blocked (or free) stretch of someone's calendar; timezone-aware datetimes."""

    start: datetime
    end: datetime
    status: FreeBusyStatus = FreeBusyStatus.BUSY


@dataclass(frozen=True, slots=True)
class Schedule:
    """Free/busy of one address from getSchedule, or the per-schedule error Graph gave.

    ``error_code`` holds Graph's per-schedule ``responseCode`` (the HTTP status of the
    call stays 200 when one schedule fails). Nothing but times and statuses is kept.
    """

    address: str
    busy: tuple[BusyInterval, ...] = ()
    working_hours: WorkingHours | None = None
    availability_view: str = ""
    error_code: str | None = None
    error_message: str | None = None

    @property
    def ok(self) -> bool:
        return self.error_code is None


@dataclass(frozen=True, slots=True)
class AttendeeResponse:
    """An attendee (person or room) of a tracked event and their answer."""

    address: str
    response: ResponseType
    is_resource: bool = False


# --- Recurrence values (Graph ``patternedRecurrence``) ------------------------------------
# The values live here, beside the other calendar values, so that ``EventMetadata`` and
# ``NewEvent`` can carry them without an import cycle; the rules about them (validation,
# Graph JSON, expansion into occurrences, getSchedule windows, clashes) are in
# ``core.domain.recurrence``, which re-exports these names.


class EventType(StrEnum):
    """Graph ``eventType``: what kind of item an event id names."""

    SINGLE_INSTANCE = "singleInstance"
    OCCURRENCE = "occurrence"
    EXCEPTION = "exception"
    SERIES_MASTER = "seriesMaster"


class RecurrencePatternType(StrEnum):
    """Graph ``recurrencePatternType``."""

    DAILY = "daily"
    WEEKLY = "weekly"
    ABSOLUTE_MONTHLY = "absoluteMonthly"
    RELATIVE_MONTHLY = "relativeMonthly"
    ABSOLUTE_YEARLY = "absoluteYearly"
    RELATIVE_YEARLY = "relativeYearly"


class WeekIndex(StrEnum):
    """Graph ``weekIndex``: which of the matching days of a month (relative patterns)."""

    FIRST = "first"
    SECOND = "second"
    THIRD = "third"
    FOURTH = "fourth"
    LAST = "last"


class RecurrenceRangeType(StrEnum):
    """Graph ``recurrenceRangeType``."""

    END_DATE = "endDate"
    NO_END = "noEnd"
    NUMBERED = "numbered"


@dataclass(frozen=True, slots=True)
class RecurrencePattern:
    """How often a series repeats (Graph ``recurrencePattern``).

    ``days_of_week`` for weekly and relative patterns, ``day_of_month`` for absolute ones,
    ``month`` (1-12) for yearly ones, ``index`` for relative ones; ``first_day_of_week``
    decides where a week starts for weekly patterns with ``interval`` > 1 (Graph's default
    is Sunday).
    """

    type: RecurrencePatternType
    interval: int = 1
    days_of_week: tuple[Weekday, ...] = ()
    day_of_month: int | None = None
    month: int | None = None
    index: WeekIndex = WeekIndex.FIRST
    first_day_of_week: Weekday = Weekday.SUNDAY


@dataclass(frozen=True, slots=True)
class RecurrenceRange:
    """For how long a series repeats (Graph ``recurrenceRange``).

    ``start_date`` must be the date of the first event's start in ``recurrence_time_zone``
    (the event's own start zone when None); ``end_date`` is inclusive.
    """

    type: RecurrenceRangeType
    start_date: date
    end_date: date | None = None
    number_of_occurrences: int | None = None
    recurrence_time_zone: str | None = None


@dataclass(frozen=True, slots=True)
class PatternedRecurrence:
    """A series' recurrence rule (Graph ``patternedRecurrence``): pattern plus range."""

    pattern: RecurrencePattern
    range: RecurrenceRange


@dataclass(frozen=True, slots=True)
class EventMetadata:
    """The metadata of a tracked event the service reads back: never subject or body.

    ``type`` says whether the id names a single event, a series master, one generated
    occurrence or an exception (a changed occurrence); occurrences and exceptions carry
    their ``series_master_id`` and ``original_start`` (the start the pattern gave them,
    which identifies them even after a move); masters carry their ``recurrence``.
    """

    event_id: str
    start: datetime
    end: datetime
    is_cancelled: bool = False
    organizer: str | None = None
    attendees: tuple[AttendeeResponse, ...] = field(default_factory=tuple)
    change_key: str | None = None
    last_modified: datetime | None = None
    ical_uid: str | None = None
    transaction_id: str | None = None
    join_url: str | None = None
    type: EventType = EventType.SINGLE_INSTANCE
    series_master_id: str | None = None
    original_start: datetime | None = None
    recurrence: PatternedRecurrence | None = None


# --- Values of the Graph gateway (core/adapters/graph) and its ports ---------------------


@dataclass(frozen=True, slots=True)
class GraphIdentity:
    """Whose token a Graph call uses: the tenant's app-only token (``user_id=None``) or,
    for per-user and service-account connections, that user's delegated token."""

    tenant_id: str
    user_id: str | None = None


class OnlineMeetingProvider(StrEnum):
    """Graph ``onlineMeetingProviderType`` values."""

    UNKNOWN = "unknown"
    SKYPE_FOR_BUSINESS = "skypeForBusiness"
    SKYPE_FOR_CONSUMER = "skypeForConsumer"
    TEAMS_FOR_BUSINESS = "teamsForBusiness"


@dataclass(frozen=True, slots=True)
class DirectoryUser:
    """A directory account; ``mail`` is None when it has no mailbox (``list_users`` skips those)."""

    user_id: str
    display_name: str | None
    user_principal_name: str | None
    mail: str | None
    account_enabled: bool = True


@dataclass(frozen=True, slots=True)
class CalendarInfo:
    """A user's default calendar: which online-meeting providers it allows (Teams or not)."""

    calendar_id: str
    can_edit: bool | None = None
    allowed_online_meeting_providers: tuple[str, ...] = ()
    default_online_meeting_provider: str | None = None

    def allows(self, provider: str) -> bool:
        return provider in self.allowed_online_meeting_providers


@dataclass(frozen=True, slots=True)
class MailboxSettings:
    """The mailbox's time zone name (Windows or IANA, as Graph gives it) and working hours."""

    time_zone: str | None
    working_hours: WorkingHours | None = None


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to create in the organizer's calendar.

    ``start``/``end`` are timezone-aware; they are sent as wall-clock time in ``time_zone``
    (an IANA name, default UTC). ``attendees`` are people of type required,
    ``optional_attendees`` of type optional; ``attendee_names`` gives display names for
    some of them (a guest's, which the service never stores); ``room`` is a
    room mailbox added as a resource attendee and as the location. ``transaction_id``
    makes a retried create idempotent. With ``recurrence`` the event is a series master:
    ``start``/``end`` are the first occurrence's, and the range's start date must be
    ``start``'s date in the range's zone (``time_zone`` when it names none). There is
    deliberately no body.
    """

    subject: str
    start: datetime
    end: datetime
    attendees: tuple[str, ...] = ()
    time_zone: str = "UTC"
    room: str | None = None
    room_name: str | None = None
    online_meeting_provider: str | None = None
    transaction_id: str | None = None
    calendar_id: str | None = None
    allow_new_time_proposals: bool = False
    recurrence: PatternedRecurrence | None = None
    optional_attendees: tuple[str, ...] = ()  # people invited as type optional
    attendee_names: tuple[tuple[str, str], ...] = ()  # (address, display name) shown in the invitation (guests)


@dataclass(frozen=True, slots=True)
class CreatedEvent:
    """What Graph assigned to a created event: ids, change key and Teams link."""

    event_id: str
    start: datetime
    end: datetime
    ical_uid: str | None = None
    transaction_id: str | None = None
    change_key: str | None = None
    join_url: str | None = None


@dataclass(frozen=True, slots=True)
class CalendarItem:
    """One event of a user's own calendar view; ``subject`` only when the user asked to see it."""

    event_id: str
    start: datetime
    end: datetime
    show_as: FreeBusyStatus = FreeBusyStatus.BUSY
    subject: str | None = None
    is_cancelled: bool = False
    transaction_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeltaPage:
    """Changes of a calendar view since the last delta link: changed items, removed ids, next link."""

    items: tuple[CalendarItem, ...]
    removed: tuple[str, ...]
    delta_link: str


@dataclass(frozen=True, slots=True)
class Room:
    """A room mailbox from Graph places."""

    address: str
    display_name: str
    capacity: int | None = None
    building: str | None = None
    floor_label: str | None = None
    is_wheelchair_accessible: bool | None = None


@dataclass(frozen=True, slots=True)
class RoomList:
    """A room list (a group of rooms, usually a building)."""

    address: str
    display_name: str


@dataclass(frozen=True, slots=True)
class SubscriptionInfo:
    """A Graph change-notification subscription as Graph granted it (read-back expiry)."""

    subscription_id: str
    resource: str
    expiration: datetime
    change_type: str | None = None


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """One part of a JSON ``$batch``: ``url`` is relative to the Graph version root
    (``/users/{id}/calendar?$select=id``)."""

    id: str
    method: str
    url: str
    body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """The answer to one batch part: a body on success, otherwise the translated error."""

    id: str
    status: int
    body: Mapping[str, Any] | None = None
    error: ServiceError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


# Graph's getSchedule limits (/graph/api/calendar-getschedule): at most 20 schedules per
# call, a window under 62 days, availabilityViewInterval 5-1440 minutes.
GET_SCHEDULE_MAX_ADDRESSES = 20
GET_SCHEDULE_MAX_WINDOW = timedelta(days=62)


def require_aware(*moments: datetime) -> None:
    """Refuse naive datetimes: every time the service sends to Graph carries its offset."""
    for moment in moments:
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError("datetimes must be timezone-aware")


def check_schedule_request(addresses: Sequence[str], start: datetime, end: datetime, interval_minutes: int) -> None:
    """ValueError unless a getSchedule call with these arguments is one Graph accepts."""
    if not 1 <= len(addresses) <= GET_SCHEDULE_MAX_ADDRESSES:
        raise ValueError(f"getSchedule takes 1 to {GET_SCHEDULE_MAX_ADDRESSES} addresses, got {len(addresses)}")
    require_aware(start, end)
    if end <= start or end - start >= GET_SCHEDULE_MAX_WINDOW:
        raise ValueError("the getSchedule window must be positive and shorter than 62 days")
    if not 5 <= interval_minutes <= 1440:
        raise ValueError("availabilityViewInterval must be 5 to 1440 minutes")
