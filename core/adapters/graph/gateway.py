"""``CalendarGateway`` on Microsoft Graph: one method per operation the services need.

Every read names its fields with ``$select`` (never ``body``; ``subject`` only when a user
views their own calendar), every body is built from CSDL names (tests check them
against the official metadata), and every answer is parsed into metadata-only values
(``core.adapters.graph.parse``). Retries, paging, ``$batch`` and error translation live
in ``GraphClient``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from core.adapters.graph import parse
from core.adapters.graph.client import GraphClient
from core.domain.calendar import (
    BatchOutcome,
    BatchRequest,
    CalendarInfo,
    CalendarItem,
    CreatedEvent,
    DeltaPage,
    DirectoryUser,
    EventMetadata,
    GraphIdentity,
    MailboxSettings,
    NewEvent,
    PatternedRecurrence,
    RecurrenceRangeType,
    Room,
    RoomList,
    Schedule,
    SubscriptionInfo,
    check_schedule_request,
    require_aware,
)
from core.domain.errors import GraphRequestRejected, InvalidRecurrence, ItemNotFound, ServiceError
from core.domain.recurrence import PROBLEMS as RECURRENCE_PROBLEMS
from core.domain.recurrence import check as check_recurrence
from core.domain.recurrence import expand, on_day
from core.domain.recurrence import to_graph as recurrence_to_graph

USER_SELECT = ("id", "displayName", "userPrincipalName", "mail", "accountEnabled")
CALENDAR_SELECT = ("id", "canEdit", "allowedOnlineMeetingProviders", "defaultOnlineMeetingProvider")
MAILBOX_SETTINGS_SELECT = ("timeZone", "workingHours")
EVENT_SELECT = (
    "id",
    "start",
    "end",
    "isCancelled",
    "organizer",
    "attendees",
    "changeKey",
    "lastModifiedDateTime",
    "iCalUId",
    "transactionId",
    "onlineMeeting",
    "type",
    "seriesMasterId",
    "originalStart",
    "recurrence",
)
# Instances of a series: what the service tracks per occurrence (organizer and attendee answers
# included, since an attendee can decline one occurrence), never subject or body.
INSTANCE_SELECT = (
    "id",
    "start",
    "end",
    "isCancelled",
    "organizer",
    "attendees",
    "changeKey",
    "lastModifiedDateTime",
    "iCalUId",
    "type",
    "seriesMasterId",
    "originalStart",
)
SERIES_SELECT = ("id", "start", "end", "recurrence", "type", "originalStartTimeZone")
CALENDAR_VIEW_SELECT = ("id", "start", "end", "showAs", "isCancelled", "transactionId")
ROOM_SELECT = ("id", "emailAddress", "displayName", "capacity", "building", "floorLabel", "isWheelChairAccessible")
ROOM_LIST_SELECT = ("id", "emailAddress", "displayName")
PROBE_SELECT = ("id",)

MAX_CLIENT_STATE = 128
MAX_EXPANSION = 5000  # occurrences read to find a bounded series' last date (Outlook allows up to 999)
PLACES_PAGE_SIZE = 100
VIEW_PAGE_SIZE = 100


def _seg(value: str) -> str:
    """One URL path segment (user id/UPN, event id, subscription id), safely quoted."""
    if not value:
        raise ValueError("an id in a Graph path cannot be empty")
    return quote(value, safe="@=")


def _select(fields: Sequence[str]) -> str:
    return ",".join(fields)




class GraphGateway:
    """The ``CalendarGateway`` port over a ``GraphClient``."""

    def __init__(self, client: GraphClient) -> None:
        self._graph = client

    # --- directory -------------------------------------------------------------------

    def list_users(self, who: GraphIdentity, *, page_size: int = 100) -> Iterator[DirectoryUser]:
        """Enabled accounts that have a mailbox (users without ``mail`` are skipped)."""
        params = {
            "$select": _select(USER_SELECT),
            "$filter": "accountEnabled eq true",
            "$top": str(max(1, min(page_size, 999))),
        }
        for item in self._graph.items(who, "/users", params):
            user = _directory_user(item)
            if user.mail and user.account_enabled:
                yield user

    def get_user(self, who: GraphIdentity, user: str) -> DirectoryUser:
        """One user by id or UPN."""
        item = self._graph.get(who, f"/users/{_seg(user)}", {"$select": _select(USER_SELECT)})
        return _directory_user(_object(item))

    # --- calendars and schedules -----------------------------------------------------

    def get_calendar(self, who: GraphIdentity, user: str) -> CalendarInfo:
        """The default calendar and the online-meeting providers it allows."""
        item = _object(self._graph.get(who, f"/users/{_seg(user)}/calendar", {"$select": _select(CALENDAR_SELECT)}))
        return _calendar_info(item)

    def find_calendar(self, who: GraphIdentity, user: str, name: str) -> CalendarInfo | None:
        """The user's calendar named ``name`` (case-insensitive), or None. Lists the calendars and
        compares here: mailboxes have few calendars, and ``$filter`` on names is not everywhere."""
        params = {"$select": _select((*CALENDAR_SELECT, "name"))}
        wanted = name.strip().lower()
        for item in self._graph.items(who, f"/users/{_seg(user)}/calendars", params):
            if str(item.get("name") or "").strip().lower() == wanted:
                return _calendar_info(item)
        return None

    def create_calendar(self, who: GraphIdentity, user: str, name: str) -> CalendarInfo:
        """Create a secondary calendar in ``user``'s mailbox; ``GraphConflict`` when the name is taken."""
        answer = self._graph.request(who, "POST", f"/users/{_seg(user)}/calendars", json={"name": name})
        return _calendar_info(_object(answer.json))

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
        """Free/busy of 1-20 addresses, returned in request order; per-address errors kept."""
        check_schedule_request(addresses, start, end, interval_minutes)
        body = schedule_body(addresses, start, end, interval_minutes)
        answer = self._graph.request(who, "POST", f"/users/{_seg(anchor_user)}/calendar/getSchedule", json=body)
        by_id: dict[str, Mapping[str, Any]] = {}
        for info in _object(answer.json).get("value") or ():
            if isinstance(info, Mapping) and isinstance(info.get("scheduleId"), str):
                by_id[info["scheduleId"].lower()] = info
        out = []
        for address in addresses:
            info = by_id.get(address.lower())
            if info is None:
                out.append(Schedule(address=address, error_code="NoScheduleReturned"))
            else:
                out.append(parse.schedule(address, info))
        return out

    def get_mailbox_settings(self, who: GraphIdentity, user: str) -> MailboxSettings:
        """Time zone (Windows or IANA name) and working hours of the mailbox."""
        item = _object(
            self._graph.get(
                who, f"/users/{_seg(user)}/mailboxSettings", {"$select": _select(MAILBOX_SETTINGS_SELECT)}
            )
        )
        return MailboxSettings(
            time_zone=_opt_str(item.get("timeZone")), working_hours=parse.working_hours(item.get("workingHours"))
        )

    # --- events ----------------------------------------------------------------------

    def create_event(self, who: GraphIdentity, user: str, event: NewEvent) -> CreatedEvent:
        """Create the event as ``user`` (the organizer); attendees get invitations."""
        path = (
            f"/users/{_seg(user)}/calendars/{_seg(event.calendar_id)}/events"
            if event.calendar_id
            else f"/users/{_seg(user)}/events"
        )
        answer = _object(self._graph.request(who, "POST", path, json=event_body(event)).json)
        try:
            start = parse.from_date_time_time_zone(answer.get("start"))
            end = parse.from_date_time_time_zone(answer.get("end"))
        except GraphRequestRejected:
            start, end = event.start, event.end
        online = answer.get("onlineMeeting")
        return CreatedEvent(
            event_id=str(answer.get("id") or ""),
            start=start,
            end=end,
            ical_uid=_opt_str(answer.get("iCalUId")),
            transaction_id=_opt_str(answer.get("transactionId")),
            change_key=_opt_str(answer.get("changeKey")),
            join_url=_opt_str(online.get("joinUrl")) if isinstance(online, Mapping) else None,
        )

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
        """Move the event; attendees are notified by Exchange."""
        require_aware(start, end)
        if end <= start:
            raise ValueError("end must be after start")
        answer = self._graph.request(
            who, "PATCH", f"/users/{_seg(user)}/events/{_seg(event_id)}", json=event_times_body(start, end, time_zone)
        )
        return parse.event_metadata(_object(answer.json))

    def cancel_event(self, who: GraphIdentity, user: str, event_id: str, comment: str | None = None) -> None:
        """Cancel as organizer (202); a 404 surfaces as ``ItemNotFound`` ("already gone")."""
        body: dict[str, Any] = {"comment": comment} if comment else {}
        self._graph.request(who, "POST", f"/users/{_seg(user)}/events/{_seg(event_id)}/cancel", json=body)

    def delete_event(self, who: GraphIdentity, user: str, event_id: str) -> None:
        """Delete from the calendar; a 404 surfaces as ``ItemNotFound``."""
        self._graph.request(who, "DELETE", f"/users/{_seg(user)}/events/{_seg(event_id)}")

    def get_event(self, who: GraphIdentity, user: str, event_id: str) -> EventMetadata:
        """Metadata of one event (no subject, no body)."""
        item = self._graph.get(
            who, f"/users/{_seg(user)}/events/{_seg(event_id)}", {"$select": _select(EVENT_SELECT)}
        )
        return parse.event_metadata(_object(item))

    def find_event_by_transaction_id(
        self, who: GraphIdentity, user: str, transaction_id: str, start: datetime, end: datetime
    ) -> EventMetadata | None:
        """Look through the calendar view of [start, end) for the event created with ``transaction_id``."""
        require_aware(start, end)
        for item in self._graph.items(
            who, f"/users/{_seg(user)}/calendarView", _view_params(start, end, EVENT_SELECT)
        ):
            if item.get("transactionId") == transaction_id:
                return parse.event_metadata(item)
        return None

    # --- recurring series ----------------------------------------------------------------

    def list_instances(
        self, who: GraphIdentity, user: str, series_id: str, start: datetime, end: datetime
    ) -> Iterator[EventMetadata]:
        """GET /users/{id}/events/{id}/instances?startDateTime&endDateTime (api-reference/v1.0/api/
        event-list-instances.md): occurrences and exceptions of a master, metadata via ``$select``,
        every ``@odata.nextLink`` followed."""
        require_aware(start, end)
        params = _view_params(start, end, INSTANCE_SELECT)
        path = f"/users/{_seg(user)}/events/{_seg(series_id)}/instances"
        for item in self._graph.items(who, path, params):
            yield parse.event_metadata(item)

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
        """PATCH the master with ``recurrence`` and/or ``start``+``end`` (api-reference/v1.0/api/event-update.md)."""
        body = series_body(recurrence=recurrence, start=start, end=end, time_zone=time_zone)
        answer = self._graph.request(who, "PATCH", f"/users/{_seg(user)}/events/{_seg(series_id)}", json=body)
        return parse.event_metadata(_object(answer.json))

    def end_series(self, who: GraphIdentity, user: str, series_id: str, last_date: date) -> EventMetadata:
        """Read the master's rule, then PATCH its range to end on ``last_date`` (two calls)."""
        path = f"/users/{_seg(user)}/events/{_seg(series_id)}"
        item = _object(self._graph.get(who, path, {"$select": _select(SERIES_SELECT)}))
        current = parse.event_metadata(item)
        if current.recurrence is None:
            raise GraphRequestRejected("This event is not a recurring series.")
        zone = current.recurrence.range.recurrence_time_zone or _opt_str(item.get("originalStartTimeZone")) or "UTC"
        current_last = series_last_date(current, zone)
        if current_last is not None and current_last <= last_date:
            return current  # it already ends by then: ending it "later" must not extend it
        ended = ended_recurrence(current.recurrence, last_date)
        answer = self._graph.request(who, "PATCH", path, json={"recurrence": recurrence_to_graph(ended)})
        return parse.event_metadata(_object(answer.json))

    def calendar_view(
        self, who: GraphIdentity, user: str, start: datetime, end: datetime, *, include_subject: bool = False
    ) -> Iterator[CalendarItem]:
        """Occurrences in [start, end), paged; subjects only when ``include_subject``."""
        require_aware(start, end)
        fields = CALENDAR_VIEW_SELECT + (("subject",) if include_subject else ())
        for item in self._graph.items(who, f"/users/{_seg(user)}/calendarView", _view_params(start, end, fields)):
            yield parse.calendar_item(item, include_subject=include_subject)

    def calendar_view_delta(
        self, who: GraphIdentity, user: str, start: datetime, end: datetime, delta_link: str | None = None
    ) -> DeltaPage:
        """Changes of the window since ``delta_link`` (all pages, up to the new delta link).

        Delta takes no ``$select``: Graph returns whole events, so subjects and bodies are
        dropped here while parsing. ``@removed`` entries can lie outside the window.
        """
        if delta_link:
            url, params = delta_link, None
        else:
            require_aware(start, end)
            url = f"/users/{_seg(user)}/calendarView/delta"
            params = {"startDateTime": parse.to_utc_iso(start), "endDateTime": parse.to_utc_iso(end)}
        headers = {"Prefer": f"odata.maxpagesize={VIEW_PAGE_SIZE}"}
        items: list[CalendarItem] = []
        removed: list[str] = []
        for page in self._graph.pages(who, url, params, headers):
            for entry in page.get("value") or ():
                if not isinstance(entry, Mapping):
                    continue
                if "@removed" in entry:
                    if isinstance(entry.get("id"), str):
                        removed.append(entry["id"])
                    continue
                items.append(parse.calendar_item(entry, include_subject=False))
            new_link = page.get("@odata.deltaLink")
            if isinstance(new_link, str) and new_link:
                return DeltaPage(items=tuple(items), removed=tuple(removed), delta_link=new_link)
        raise GraphRequestRejected("Microsoft 365 ended a delta sync without a delta link.")

    # --- rooms -----------------------------------------------------------------------

    def list_room_lists(self, who: GraphIdentity) -> list[RoomList]:
        """Every room list of the tenant."""
        params = {"$select": _select(ROOM_LIST_SELECT), "$top": str(PLACES_PAGE_SIZE)}
        return [
            RoomList(address=item["emailAddress"], display_name=str(item.get("displayName") or ""))
            for item in self._graph.items(who, "/places/microsoft.graph.roomlist", params)
            if isinstance(item.get("emailAddress"), str) and item["emailAddress"]
        ]

    def list_rooms(self, who: GraphIdentity, room_list_email: str | None = None) -> list[Room]:
        """Every room, or the rooms of one room list (page size 100)."""
        path = (
            f"/places/{_seg(room_list_email)}/microsoft.graph.roomlist/rooms"
            if room_list_email
            else "/places/microsoft.graph.room"
        )
        params = {"$select": _select(ROOM_SELECT), "$top": str(PLACES_PAGE_SIZE)}
        return [
            Room(
                address=item["emailAddress"],
                display_name=str(item.get("displayName") or ""),
                capacity=item["capacity"] if isinstance(item.get("capacity"), int) else None,
                building=_opt_str(item.get("building")),
                floor_label=_opt_str(item.get("floorLabel")),
                is_wheelchair_accessible=(
                    item["isWheelChairAccessible"] if isinstance(item.get("isWheelChairAccessible"), bool) else None
                ),
            )
            for item in self._graph.items(who, path, params)
            if isinstance(item.get("emailAddress"), str) and item["emailAddress"]
        ]

    # --- subscriptions ---------------------------------------------------------------

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
        """Create a subscription (Graph validates both URLs first); returns the granted expiry."""
        if not client_state or len(client_state) > MAX_CLIENT_STATE:
            raise ValueError(f"clientState must be 1 to {MAX_CLIENT_STATE} characters")
        body = subscription_body(
            resource=resource,
            change_type=change_type,
            notification_url=notification_url,
            lifecycle_url=lifecycle_url,
            client_state=client_state,
            expiration=expiration,
        )
        return parse.subscription(_object(self._graph.request(who, "POST", "/subscriptions", json=body).json))

    def renew_subscription(self, who: GraphIdentity, subscription_id: str, expiration: datetime) -> SubscriptionInfo:
        """PATCH a new expiry; the answer carries what Graph granted."""
        answer = self._graph.request(
            who, "PATCH", f"/subscriptions/{_seg(subscription_id)}", json=renewal_body(expiration)
        )
        return parse.subscription(_object(answer.json))

    def delete_subscription(self, who: GraphIdentity, subscription_id: str) -> None:
        """Delete; already gone (404) counts as done."""
        try:
            self._graph.request(who, "DELETE", f"/subscriptions/{_seg(subscription_id)}")
        except ItemNotFound:
            return

    def reauthorize_subscription(self, who: GraphIdentity, subscription_id: str) -> None:
        """POST /subscriptions/{id}/reauthorize (204)."""
        self._graph.request(who, "POST", f"/subscriptions/{_seg(subscription_id)}/reauthorize")

    def list_subscriptions(self, who: GraphIdentity) -> list[SubscriptionInfo]:
        """GET /subscriptions, following ``@odata.nextLink`` (api-reference/v1.0/api/subscription-list.md:
        app-only callers see the subscriptions this app created in the tenant; ``clientState`` is
        never returned). Entries without an id or expiry are skipped, not fatal."""
        out: list[SubscriptionInfo] = []
        for item in self._graph.items(who, "/subscriptions"):
            try:
                out.append(parse.subscription(item))
            except GraphRequestRejected:
                continue
        return out

    # --- batches ---------------------------------------------------------------------

    def batch(self, who: GraphIdentity, requests: Sequence[BatchRequest]) -> list[BatchOutcome]:
        """Generic ``$batch`` (groups of 20, throttled parts retried, per-part outcomes)."""
        return self._graph.batch(who, requests)

    def get_events(
        self, who: GraphIdentity, refs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], EventMetadata | ServiceError]:
        """Metadata of many events in as few calls as possible."""
        unique = list(dict.fromkeys(refs))
        requests = [
            BatchRequest(
                id=str(i),
                method="GET",
                url=f"/users/{_seg(user)}/events/{_seg(event_id)}?$select={_select(EVENT_SELECT)}",
            )
            for i, (user, event_id) in enumerate(unique)
        ]
        out: dict[tuple[str, str], EventMetadata | ServiceError] = {}
        for ref, outcome in zip(unique, self._graph.batch(who, requests), strict=True):
            out[ref] = _outcome(outcome, parse.event_metadata)
        return out

    def get_users(self, who: GraphIdentity, refs: Sequence[str]) -> dict[str, DirectoryUser | ServiceError]:
        """Many users by id or UPN in ``$batch`` groups of 20 (a group booking's attendees in one call)."""
        unique = list(dict.fromkeys(refs))
        requests = [
            BatchRequest(id=str(i), method="GET", url=f"/users/{_seg(ref)}?$select={_select(USER_SELECT)}")
            for i, ref in enumerate(unique)
        ]
        out: dict[str, DirectoryUser | ServiceError] = {}
        for ref, outcome in zip(unique, self._graph.batch(who, requests), strict=True):
            out[ref] = _outcome(outcome, _directory_user)
        return out

    def renew_subscriptions(
        self, who: GraphIdentity, renewals: Sequence[tuple[str, datetime]]
    ) -> dict[str, SubscriptionInfo | ServiceError]:
        """Renew many subscriptions; each id gets its granted expiry or its error."""
        latest = dict(renewals)
        ids = list(latest)
        requests = [
            BatchRequest(
                id=str(i), method="PATCH", url=f"/subscriptions/{_seg(sub_id)}", body=renewal_body(latest[sub_id])
            )
            for i, sub_id in enumerate(ids)
        ]
        out: dict[str, SubscriptionInfo | ServiceError] = {}
        for sub_id, outcome in zip(ids, self._graph.batch(who, requests), strict=True):
            out[sub_id] = _outcome(outcome, parse.subscription)
        return out

    def probe_mailboxes(self, who: GraphIdentity, users: Sequence[str]) -> dict[str, ServiceError | None]:
        """Can the app read each user's calendar? ``None`` = reachable, else the classified error."""
        unique = list(dict.fromkeys(users))
        requests = [
            BatchRequest(id=str(i), method="GET", url=f"/users/{_seg(user)}/calendar?$select={_select(PROBE_SELECT)}")
            for i, user in enumerate(unique)
        ]
        return {
            user: outcome.error
            for user, outcome in zip(unique, self._graph.batch(who, requests), strict=True)
        }


# --- request bodies (public so tests validate each against the CSDL) ---------------------


def schedule_body(addresses: Sequence[str], start: datetime, end: datetime, interval_minutes: int) -> dict[str, Any]:
    """getSchedule's parameters, times as UTC ``dateTimeTimeZone``."""
    return {
        "schedules": list(addresses),
        "startTime": parse.to_date_time_time_zone(start, "UTC"),
        "endTime": parse.to_date_time_time_zone(end, "UTC"),
        "availabilityViewInterval": interval_minutes,
    }


def event_body(event: NewEvent) -> dict[str, Any]:
    """The POST body of a new event: no ``body``; rooms as resource attendee plus location."""
    require_aware(event.start, event.end)
    if event.end <= event.start:
        raise ValueError("end must be after start")
    names = {address.lower(): name for address, name in event.attendee_names}

    def person(address: str, kind: str) -> dict[str, Any]:
        email = {"address": address}
        if names.get(address.lower()):
            email["name"] = names[address.lower()]
        return {"emailAddress": email, "type": kind}

    # attendee.type: required, optional or resource (api-reference/v1.0/resources/attendee.md)
    attendees: list[dict[str, Any]] = [person(a, "required") for a in event.attendees]
    attendees += [person(a, "optional") for a in event.optional_attendees]
    body: dict[str, Any] = {
        "subject": event.subject,
        "start": parse.to_date_time_time_zone(event.start, event.time_zone),
        "end": parse.to_date_time_time_zone(event.end, event.time_zone),
        "attendees": attendees,
        "allowNewTimeProposals": event.allow_new_time_proposals,
        "responseRequested": True,
    }
    if event.room:
        room_email: dict[str, str] = {"address": event.room}
        if event.room_name:
            room_email["name"] = event.room_name
        attendees.append({"emailAddress": room_email, "type": "resource"})
        body["location"] = {
            "displayName": event.room_name or event.room,
            "locationEmailAddress": event.room,
            "locationType": "conferenceRoom",
        }
    if event.online_meeting_provider:
        body["isOnlineMeeting"] = True
        body["onlineMeetingProvider"] = event.online_meeting_provider
    if event.transaction_id:
        body["transactionId"] = event.transaction_id
    if event.recurrence is not None:
        check_recurrence(event.recurrence, allow_no_end=True)
        body["recurrence"] = recurrence_to_graph(event.recurrence)
    return body


def series_body(
    *,
    recurrence: PatternedRecurrence | None,
    start: datetime | None,
    end: datetime | None,
    time_zone: str = "UTC",
) -> dict[str, Any]:
    """The PATCH body that changes a series master's rule and/or its times."""
    if (start is None) != (end is None):
        raise ValueError("start and end change together")
    body: dict[str, Any] = {}
    if start is not None and end is not None:
        body.update(event_times_body(start, end, time_zone))
        if end <= start:
            raise ValueError("end must be after start")
    if recurrence is not None:
        check_recurrence(recurrence, allow_no_end=True)
        body["recurrence"] = recurrence_to_graph(recurrence)
    if not body:
        raise ValueError("nothing to change: give a recurrence, or start and end")
    return body


def series_last_date(master: EventMetadata, time_zone: str) -> date | None:
    """The date (in ``time_zone``) of a bounded series' last occurrence by its rule; None when endless
    or when the rule cannot be expanded here (an unknown zone name)."""
    rule = master.recurrence
    if rule is None or rule.range.type == RecurrenceRangeType.NO_END:
        return None
    try:
        occurrences = expand(rule, master.start, master.end, time_zone, limit=MAX_EXPANSION)
        return on_day(occurrences[-1].start, time_zone) if occurrences else None
    except ServiceError:
        return None


def ended_recurrence(recurrence: PatternedRecurrence, last_date: date) -> PatternedRecurrence:
    """``recurrence`` with its range ending on ``last_date`` (inclusive), pattern untouched."""
    if last_date < recurrence.range.start_date:
        raise InvalidRecurrence("end_before_start", RECURRENCE_PROBLEMS["end_before_start"], field="range.endDate")
    new_range = replace(
        recurrence.range, type=RecurrenceRangeType.END_DATE, end_date=last_date, number_of_occurrences=None
    )
    return replace(recurrence, range=new_range)


def event_times_body(start: datetime, end: datetime, time_zone: str = "UTC") -> dict[str, Any]:
    """The PATCH body that moves an event."""
    return {
        "start": parse.to_date_time_time_zone(start, time_zone),
        "end": parse.to_date_time_time_zone(end, time_zone),
    }


def subscription_body(
    *,
    resource: str,
    change_type: str,
    notification_url: str,
    lifecycle_url: str,
    client_state: str,
    expiration: datetime,
) -> dict[str, Any]:
    """The POST body of a new subscription (lifecycle URL can only be set here)."""
    return {
        "changeType": change_type,
        "notificationUrl": notification_url,
        "lifecycleNotificationUrl": lifecycle_url,
        "resource": resource,
        "expirationDateTime": parse.to_utc_iso(expiration),
        "clientState": client_state,
    }


def renewal_body(expiration: datetime) -> dict[str, Any]:
    """The PATCH body that renews a subscription."""
    return {"expirationDateTime": parse.to_utc_iso(expiration)}


# --- helpers ---------------------------------------------------------------------------


def _view_params(start: datetime, end: datetime, fields: Sequence[str]) -> dict[str, str]:
    return {
        "startDateTime": parse.to_utc_iso(start),
        "endDateTime": parse.to_utc_iso(end),
        "$select": _select(fields),
        "$top": str(VIEW_PAGE_SIZE),
    }


def _object(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise GraphRequestRejected("Microsoft 365 sent an answer that is not a JSON object.")
    return value


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _calendar_info(item: Mapping[str, Any]) -> CalendarInfo:
    providers = item.get("allowedOnlineMeetingProviders") or ()
    return CalendarInfo(
        calendar_id=str(item.get("id") or ""),
        can_edit=item["canEdit"] if isinstance(item.get("canEdit"), bool) else None,
        allowed_online_meeting_providers=tuple(str(p) for p in providers if isinstance(p, str)),
        default_online_meeting_provider=_opt_str(item.get("defaultOnlineMeetingProvider")),
    )


def _directory_user(item: Mapping[str, Any]) -> DirectoryUser:
    return DirectoryUser(
        user_id=str(item.get("id") or ""),
        display_name=_opt_str(item.get("displayName")),
        user_principal_name=_opt_str(item.get("userPrincipalName")),
        mail=_opt_str(item.get("mail")),
        account_enabled=item.get("accountEnabled") is not False,
    )


def _outcome(outcome: BatchOutcome, parser: Any) -> Any:
    if outcome.error is not None:
        return outcome.error
    try:
        return parser(_object(outcome.body))
    except ServiceError as exc:
        return exc
