"""Graph JSON <-> domain values, keeping metadata only.

Parsers read exactly the fields the service uses and drop the rest (subjects, locations,
bodies, display names of other people): nothing that is not read can leak. Unknown enum
values from a future Graph map to a safe default instead of failing a whole sync.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, time, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.domain.calendar import (
    AttendeeResponse,
    BusyInterval,
    CalendarItem,
    EventMetadata,
    EventType,
    FreeBusyStatus,
    PatternedRecurrence,
    ResponseType,
    Schedule,
    SubscriptionInfo,
    TimeZoneSpec,
    TransitionRule,
    Weekday,
    WorkingHours,
)
from core.domain.errors import GraphRequestRejected, InvalidRecurrence
from core.domain.recurrence import from_graph as recurrence_from_graph

_WALL_CLOCK = "%Y-%m-%dT%H:%M:%S"


def zone(name: str) -> tzinfo:
    """A tzinfo for an IANA or Windows zone name as Graph uses them; ValueError if unknown."""
    if name.upper() in ("UTC", "ETC/UTC", "Z", "GMT"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        pass
    from tzlocal.windows_tz import win_tz  # CLDR windowsZones: Windows name -> IANA

    iana = win_tz.get(name)
    if isinstance(iana, str):
        try:
            return ZoneInfo(iana)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    raise ValueError(f"unknown time zone {name!r}")


def to_date_time_time_zone(moment: datetime, time_zone: str = "UTC") -> dict[str, str]:
    """Graph ``dateTimeTimeZone``: wall-clock time in ``time_zone`` (no offset) plus the zone name."""
    if moment.tzinfo is None:
        raise ValueError("datetimes sent to Graph must be timezone-aware")
    local = moment.astimezone(zone(time_zone))
    return {"dateTime": local.strftime(_WALL_CLOCK), "timeZone": time_zone}


def to_utc_iso(moment: datetime) -> str:
    """An ``Edm.DateTimeOffset`` in UTC with a ``Z`` (query parameters, subscription expiry)."""
    if moment.tzinfo is None:
        raise ValueError("datetimes sent to Graph must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_date_time_time_zone(value: Any) -> datetime:
    """An aware UTC datetime from Graph's ``dateTimeTimeZone`` (7 fractional digits allowed)."""
    if not isinstance(value, Mapping) or not isinstance(value.get("dateTime"), str):
        raise GraphRequestRejected("Microsoft 365 sent a date-time in an unexpected shape.")
    try:
        naive = datetime.fromisoformat(value["dateTime"])
        if naive.tzinfo is not None:
            return naive.astimezone(UTC)
        return naive.replace(tzinfo=zone(str(value.get("timeZone") or "UTC"))).astimezone(UTC)
    except ValueError as exc:
        raise GraphRequestRejected("Microsoft 365 sent a date-time that cannot be read.") from exc


def from_date_time_offset(value: Any) -> datetime | None:
    """An aware UTC datetime from an ``Edm.DateTimeOffset`` string, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _time_of_day(value: Any) -> time:
    if not isinstance(value, str):
        raise GraphRequestRejected("Microsoft 365 sent a time of day in an unexpected shape.")
    try:
        return time.fromisoformat(value)
    except ValueError as exc:
        raise GraphRequestRejected("Microsoft 365 sent a time of day that cannot be read.") from exc


_FREE_BUSY_BY_LOWER = {s.value.lower(): s for s in FreeBusyStatus}


def _free_busy(value: Any) -> FreeBusyStatus:
    """Graph's ``freeBusyStatus``; case-insensitive, because Microsoft's own getSchedule example
    (concepts/outlook-get-free-busy-schedule.md) answers ``"Busy"`` and ``"Tentative"``."""
    if not isinstance(value, str):
        return FreeBusyStatus.UNKNOWN
    return _FREE_BUSY_BY_LOWER.get(value.strip().lower(), FreeBusyStatus.UNKNOWN)


def _response_type(value: Any) -> ResponseType:
    try:
        return ResponseType(value)
    except ValueError:
        return ResponseType.NONE


def _transition(value: Any, *, daylight: bool) -> TransitionRule | None:
    if not isinstance(value, Mapping) or not value.get("dayOfWeek"):
        return None
    return TransitionRule(
        time=_time_of_day(value.get("time") or "00:00:00"),
        day_occurrence=int(value.get("dayOccurrence") or 0),
        day_of_week=Weekday(value["dayOfWeek"]),
        month=int(value.get("month") or 0),
        year=int(value.get("year") or 0),
        bias_minutes=int(value.get("daylightBias") or 0) if daylight else 0,
    )


def time_zone_spec(value: Any) -> TimeZoneSpec:
    """``timeZoneBase`` or ``customTimeZone`` (bias and transitions kept) -> ``TimeZoneSpec``."""
    if not isinstance(value, Mapping):
        return TimeZoneSpec(name="UTC")
    name = str(value.get("name") or "")
    is_custom = "customTimeZone" in str(value.get("@odata.type") or "") or "bias" in value
    if not is_custom:
        return TimeZoneSpec(name=name or "UTC")
    return TimeZoneSpec(
        name=name or "Customized Time Zone",
        bias_minutes=int(value.get("bias") or 0),
        standard=_transition(value.get("standardOffset"), daylight=False),
        daylight=_transition(value.get("daylightOffset"), daylight=True),
    )


def working_hours(value: Any) -> WorkingHours | None:
    """Graph ``workingHours`` -> ``WorkingHours`` (None when absent)."""
    if not isinstance(value, Mapping) or not value.get("startTime") or not value.get("endTime"):
        return None
    days = frozenset(Weekday(d) for d in value.get("daysOfWeek") or () if d in Weekday._value2member_map_)
    return WorkingHours(
        days=days,
        start=_time_of_day(value["startTime"]),
        end=_time_of_day(value["endTime"]),
        time_zone=time_zone_spec(value.get("timeZone")),
    )


def schedule(address: str, value: Mapping[str, Any]) -> Schedule:
    """One ``scheduleInformation`` -> ``Schedule``: times and statuses only, details dropped."""
    error = value.get("error")
    if isinstance(error, Mapping) and error:
        return Schedule(
            address=address,
            error_code=str(error.get("responseCode") or "error"),
            error_message=str(error["message"]) if isinstance(error.get("message"), str) else None,
        )
    busy = tuple(
        BusyInterval(
            start=from_date_time_time_zone(item.get("start")),
            end=from_date_time_time_zone(item.get("end")),
            status=_free_busy(item.get("status")),
        )
        for item in value.get("scheduleItems") or ()
        if isinstance(item, Mapping)
    )
    return Schedule(
        address=address,
        busy=busy,
        working_hours=working_hours(value.get("workingHours")),
        availability_view=str(value.get("availabilityView") or ""),
    )


def _address(recipient: Any) -> str | None:
    if isinstance(recipient, Mapping):
        email = recipient.get("emailAddress")
        if isinstance(email, Mapping) and isinstance(email.get("address"), str):
            return str(email["address"])
    return None


def event_metadata(value: Mapping[str, Any]) -> EventMetadata:
    """An ``event`` -> ``EventMetadata``; subject, body, location and names are never read."""
    attendees = []
    for attendee in value.get("attendees") or ():
        address = _address(attendee)
        if address is None:
            continue
        status = attendee.get("status") if isinstance(attendee, Mapping) else None
        response = status.get("response") if isinstance(status, Mapping) else None
        attendees.append(
            AttendeeResponse(
                address=address,
                response=_response_type(response),
                is_resource=attendee.get("type") == "resource",
            )
        )
    online = value.get("onlineMeeting")
    return EventMetadata(
        event_id=str(value.get("id") or ""),
        start=from_date_time_time_zone(value.get("start")),
        end=from_date_time_time_zone(value.get("end")),
        is_cancelled=bool(value.get("isCancelled") or False),
        organizer=_address(value.get("organizer")),
        attendees=tuple(attendees),
        change_key=_str_or_none(value.get("changeKey")),
        last_modified=from_date_time_offset(value.get("lastModifiedDateTime")),
        ical_uid=_str_or_none(value.get("iCalUId")),
        transaction_id=_str_or_none(value.get("transactionId")),
        join_url=_str_or_none(online.get("joinUrl")) if isinstance(online, Mapping) else None,
        type=_event_type(value.get("type")),
        series_master_id=_str_or_none(value.get("seriesMasterId")),
        original_start=from_date_time_offset(value.get("originalStart")),
        recurrence=recurrence(value.get("recurrence")),
    )


_EVENT_TYPE_BY_LOWER = {t.value.lower(): t for t in EventType}


def _event_type(value: Any) -> EventType:
    """Graph ``eventType``; absent or unknown values read as a single event."""
    if not isinstance(value, str):
        return EventType.SINGLE_INSTANCE
    return _EVENT_TYPE_BY_LOWER.get(value.lower(), EventType.SINGLE_INSTANCE)


def recurrence(value: Any) -> PatternedRecurrence | None:
    """A master's ``patternedRecurrence`` (None on other events, or when Graph sends a shape we cannot
    read: the event's times stay usable, and the series can still be listed by its instances)."""
    if not isinstance(value, Mapping):
        return None
    try:
        return recurrence_from_graph(value)
    except InvalidRecurrence:
        return None


def calendar_item(value: Mapping[str, Any], *, include_subject: bool) -> CalendarItem:
    """An ``event`` of the user's own calendar view -> ``CalendarItem``."""
    return CalendarItem(
        event_id=str(value.get("id") or ""),
        start=from_date_time_time_zone(value.get("start")),
        end=from_date_time_time_zone(value.get("end")),
        show_as=_free_busy(value.get("showAs") or "busy"),
        subject=_str_or_none(value.get("subject")) if include_subject else None,
        is_cancelled=bool(value.get("isCancelled") or False),
        transaction_id=_str_or_none(value.get("transactionId")),
    )


def subscription(value: Mapping[str, Any]) -> SubscriptionInfo:
    """A ``subscription`` -> ``SubscriptionInfo`` with the expiry Graph actually granted."""
    expiration = from_date_time_offset(value.get("expirationDateTime"))
    if not isinstance(value.get("id"), str) or expiration is None:
        raise GraphRequestRejected("Microsoft 365 sent a subscription without id or expiry.")
    return SubscriptionInfo(
        subscription_id=str(value["id"]),
        resource=str(value.get("resource") or ""),
        expiration=expiration,
        change_type=_str_or_none(value.get("changeType")),
    )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
