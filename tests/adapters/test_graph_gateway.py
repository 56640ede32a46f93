"""GraphGateway operations against docs-shaped Graph payloads; every request checked against the CSDL.

The ``graph`` fixture records every HTTP call; at teardown each request body the gateway
built and each ``$select`` it asked for is validated against the official Graph v1.0
metadata, so a misspelt property or enum fails here rather than in a customer tenant.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import responses

from core.adapters.graph.client import GraphClient, RetryPolicy
from core.adapters.graph.gateway import (
    CALENDAR_SELECT,
    CALENDAR_VIEW_SELECT,
    EVENT_SELECT,
    MAILBOX_SETTINGS_SELECT,
    ROOM_LIST_SELECT,
    ROOM_SELECT,
    USER_SELECT,
    GraphGateway,
    event_body,
)
from core.adapters.http import build_session
from core.domain.calendar import (
    FreeBusyStatus,
    GraphIdentity,
    NewEvent,
    ResponseType,
    SubscriptionInfo,
    Weekday,
)
from core.domain.errors import (
    ItemNotFound,
    MailboxUnavailable,
    OutsideAppScope,
    Throttled,
    UserNotFound,
)
from core.settings import Settings, StorageSettings
from tests.support.csdl import graph_model

BASE = "https://graph.microsoft.com/v1.0"
TENANT = "11111111-2222-3333-4444-555555555555"
WHO = GraphIdentity(TENANT)
T0 = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)


class FakeTokens:
    def token(self, who: GraphIdentity) -> str:
        return "tok"

    def invalidate(self, tenant_id: str) -> None:
        return None


def _settings() -> Settings:
    return Settings(
        storage=StorageSettings("UseDevelopmentStorage=true", None, None, None),
        entra_client_id="aaaaaaaa-0000-0000-0000-000000000000",
        entra_credential="secret",
        api_audience="aaaaaaaa-0000-0000-0000-000000000000",
        api_scope="access_as_user",
        authority_host="https://login.microsoftonline.com",
        graph_base_url=BASE,
        public_base_url="https://app.example.com",
        app_url="https://spa.example.com",
    )


def graph_error(code: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": "m", "innerError": {"request-id": "r", "date": "2025-01-01T00:00:00"}}}


# --- CSDL checks of every request ------------------------------------------------------------

# (method, path pattern) -> ("type", name) | ("action", name, binding) ; $select types by GET path
_BODY_RULES: list[tuple[str, re.Pattern[str], tuple[str, ...]]] = [
    ("POST", re.compile(r"^/users/[^/]+/(calendars/[^/]+/)?events$"), ("type", "event")),
    ("PATCH", re.compile(r"^/users/[^/]+/events/[^/]+$"), ("type", "event")),
    ("POST", re.compile(r"^/users/[^/]+/calendar/getSchedule$"), ("action", "getSchedule", "calendar")),
    ("POST", re.compile(r"^/users/[^/]+/events/[^/]+/cancel$"), ("action", "cancel", "event")),
    ("POST", re.compile(r"^/subscriptions$"), ("type", "subscription")),
    ("PATCH", re.compile(r"^/subscriptions/[^/]+$"), ("type", "subscription")),
    ("POST", re.compile(r"^/subscriptions/[^/]+/reauthorize$"), ("action", "reauthorize", "subscription")),
]
_SELECT_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^/users$"), "user"),
    (re.compile(r"^/users/[^/]+$"), "user"),
    (re.compile(r"^/users/[^/]+/calendar$"), "calendar"),
    (re.compile(r"^/users/[^/]+/mailboxSettings$"), "mailboxSettings"),
    (re.compile(r"^/users/[^/]+/events/[^/]+$"), "event"),
    (re.compile(r"^/users/[^/]+/calendarView$"), "event"),
    (re.compile(r"^/places/microsoft\.graph\.room$"), "room"),
    (re.compile(r"^/places/microsoft\.graph\.roomlist$"), "roomList"),
    (re.compile(r"^/places/[^/]+/microsoft\.graph\.roomlist/rooms$"), "room"),
]


def _check_request(method: str, url: str, body: Any, problems: list[str]) -> None:
    parts = urlsplit(url)
    path = unquote(parts.path)
    path = path.removeprefix("/v1.0")
    if path == "/$batch":
        for part in body["requests"]:
            assert "Prefer" in part["headers"]
            _check_request(part["method"], "/v1.0" + part["url"], part.get("body"), problems)
        return
    model = graph_model()
    for rule_method, pattern, rule in _BODY_RULES:
        if rule_method == method and pattern.match(path):
            if rule[0] == "type":
                assert body is not None, f"{method} {path} needs a body"
                problems += model.validate(rule[1], body)
                assert "body" not in body, "event bodies (content) are never sent"
            else:
                problems += model.validate_action_body(rule[1], rule[2], body or {})
    select = parse_qs(parts.query).get("$select")
    if select:
        fields = set(select[0].split(","))
        matched = [name for pattern, name in _SELECT_RULES if pattern.match(path)]
        assert matched, f"no $select rule for {path}"
        unknown = fields - model.properties(matched[0])
        problems += [f"$select {path}: unknown {sorted(unknown)}"] if unknown else []
        if matched[0] == "event":
            assert "body" not in fields


@pytest.fixture
def graph() -> Iterator[responses.RequestsMock]:
    """A responses mock whose recorded requests are all validated against the CSDL at teardown."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps
        problems: list[str] = []
        for call in rsps.calls:
            assert call.request.headers["Prefer"].startswith('IdType="ImmutableId"')
            raw = call.request.body
            body = json.loads(raw) if raw else None
            _check_request(call.request.method or "", call.request.url or "", body, problems)
        assert problems == []


@pytest.fixture
def gateway() -> GraphGateway:
    policy = RetryPolicy(max_attempts=2, max_total_wait=5, sleep=lambda s: None, random=lambda: 0.5)
    return GraphGateway(GraphClient(BASE, build_session(_settings()), FakeTokens(), policy))


def _sent(graph: responses.RequestsMock, index: int = -1) -> dict[str, Any]:
    body = graph.calls[index].request.body
    assert body is not None
    return json.loads(body)


def _query(graph: responses.RequestsMock, index: int = -1) -> dict[str, list[str]]:
    return parse_qs(urlsplit(graph.calls[index].request.url).query)


def _fixture_valid(type_name: str, payload: dict[str, Any]) -> None:
    """A docs-shaped response fixture uses only CSDL names (so the parser reads real fields)."""
    items = payload.get("value", [payload]) if isinstance(payload.get("value"), list) else [payload]
    for item in items:
        assert graph_model().validate(type_name, item) == []


# --- fixtures shaped like the Graph docs examples ---------------------------------------------

USERS_PAGE_1 = {
    "@odata.context": f"{BASE}/$metadata#users(id,displayName,userPrincipalName,mail,accountEnabled)",
    "value": [
        {"id": "87d349ed-44d7-43e1-9a83-5f2406dee5bd", "displayName": "Adele Vance",
         "userPrincipalName": "AdeleV@contoso.com", "mail": "AdeleV@contoso.com", "accountEnabled": True},
        {"id": "5bde3e51-d13b-4db1-9948-fe4b109d11a7", "displayName": "Conf Room Service",
         "userPrincipalName": "svc@contoso.com", "mail": None, "accountEnabled": True},
    ],
    "@odata.nextLink": f"{BASE}/users?$select=id,displayName,userPrincipalName,mail,accountEnabled"
    "&$filter=accountEnabled+eq+true&$top=2&$skiptoken=RFNwdAIAAQAAAD8",
}
USERS_PAGE_2 = {
    "value": [
        {"id": "4782e723-f4f4-4af3-a76e-25e3bab0d896", "displayName": "Megan Bowen",
         "userPrincipalName": "MeganB@contoso.com", "mail": "MeganB@contoso.com", "accountEnabled": True},
    ]
}

WORKING_HOURS_WINDOWS = {
    "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
    "startTime": "08:00:00.0000000",
    "endTime": "17:00:00.0000000",
    "timeZone": {"name": "Pacific Standard Time"},
}
WORKING_HOURS_CUSTOM = {
    "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
    "startTime": "08:00:00.0000000",
    "endTime": "17:00:00.0000000",
    "timeZone": {
        "@odata.type": "#microsoft.graph.customTimeZone",
        "bias": 480,
        "name": "Customized Time Zone",
        "standardOffset": {"time": "02:00:00.0000000", "dayOccurrence": 1, "dayOfWeek": "sunday", "month": 11,
                           "year": 0},
        "daylightOffset": {"daylightBias": -60, "time": "02:00:00.0000000", "dayOccurrence": 2,
                           "dayOfWeek": "sunday", "month": 3, "year": 0},
    },
}
SCHEDULE_RESPONSE = {
    "@odata.context": f"{BASE}/$metadata#Collection(microsoft.graph.scheduleInformation)",
    "value": [
        {
            "scheduleId": "MeganB@contoso.com",
            "availabilityView": "200220010",
            "scheduleItems": [
                {"isPrivate": False, "status": "busy", "subject": "Team standup", "location": "Conf Room Rainier",
                 "start": {"dateTime": "2025-03-10T09:00:00.0000000", "timeZone": "UTC"},
                 "end": {"dateTime": "2025-03-10T09:30:00.0000000", "timeZone": "UTC"}},
                {"isPrivate": True, "status": "oof",
                 "start": {"dateTime": "2025-03-10T05:00:00.0000000", "timeZone": "Pacific Standard Time"},
                 "end": {"dateTime": "2025-03-10T06:00:00.0000000", "timeZone": "Pacific Standard Time"}},
            ],
            "workingHours": WORKING_HOURS_CUSTOM,
        },
        {
            "scheduleId": "adelev@contoso.com",
            "availabilityView": "000220000",
            "scheduleItems": [
                {"isPrivate": False, "status": "tentative", "subject": "Let's go for lunch", "location": "Harry's Bar",
                 "start": {"dateTime": "2025-03-10T12:00:00.0000000", "timeZone": "UTC"},
                 "end": {"dateTime": "2025-03-10T13:00:00.0000000", "timeZone": "UTC"}},
            ],
            "workingHours": WORKING_HOURS_WINDOWS,
        },
        {
            "scheduleId": "onprem@contoso.com",
            "availabilityView": "",
            "error": {"message": "Mailbox cannot be reached.", "responseCode": "MailboxNotEnabledForRESTAPI"},
        },
    ],
}

EVENT = {
    "@odata.context": f"{BASE}/$metadata#users('a')/events/$entity",
    "@odata.etag": 'W/"ZlnW4RIAV06KYYwlrfNZvQAALfZeRQ=="',
    "id": "AAMkAGI1AAAt9AHjAAA=",
    "changeKey": "ZlnW4RIAV06KYYwlrfNZvQAALfZeRQ==",
    "lastModifiedDateTime": "2025-03-01T08:01:00.4565234Z",
    "iCalUId": "040000008200E00074C5B7101A82E00800000000D02AC02F",
    "transactionId": "session-42",
    "type": "singleInstance",
    "isCancelled": False,
    "subject": "Mentoring session",
    "start": {"dateTime": "2025-03-10T10:00:00.0000000", "timeZone": "W. Europe Standard Time"},
    "end": {"dateTime": "2025-03-10T10:30:00.0000000", "timeZone": "W. Europe Standard Time"},
    "organizer": {"emailAddress": {"name": "Adele Vance", "address": "AdeleV@contoso.com"}},
    "attendees": [
        {"type": "required", "status": {"response": "accepted", "time": "2025-03-01T09:00:00Z"},
         "emailAddress": {"name": "Megan Bowen", "address": "MeganB@contoso.com"}},
        {"type": "resource", "status": {"response": "notResponded", "time": "0001-01-01T00:00:00Z"},
         "emailAddress": {"name": "Conf Room 100", "address": "cf100@contoso.com"}},
    ],
    "onlineMeeting": {"joinUrl": "https://teams.microsoft.com/l/meetup-join/19%3ameeting_x"},
}

SUBSCRIPTION = {
    "@odata.context": f"{BASE}/$metadata#subscriptions/$entity",
    "id": "7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
    "resource": "/users/87d349ed-44d7-43e1-9a83-5f2406dee5bd/events",
    "applicationId": "24d3b144-21ae-4080-943f-7067b395b913",
    "changeType": "created,updated,deleted",
    "clientState": "opaque",
    "notificationUrl": "https://app.example.com/api/graph/notifications?code=k",
    "lifecycleNotificationUrl": "https://app.example.com/api/graph/lifecycle?code=k",
    "expirationDateTime": "2025-03-13T09:00:00.9356913Z",
    "creatorId": "8ee44408-0679-472c-bc2a-692812af3437",
    "latestSupportedTlsVersion": "v1_2",
    "includeResourceData": False,
}

ROOMS = {
    "@odata.context": f"{BASE}/$metadata#places/microsoft.graph.room",
    "value": [
        {"id": "3162F1E1-C4C0-604B-51D8-91DA78989EB1", "emailAddress": "cf100@contoso.com",
         "displayName": "Conf Room 100", "capacity": 50, "building": "1", "floorLabel": "1",
         "isWheelChairAccessible": False, "bookingType": "standard", "tags": ["bean bags"]},
        {"id": "3162F1E1-C4C0-604B-51D8-91DA78970B97", "emailAddress": "cf200@contoso.com",
         "displayName": "Conf Room 200", "capacity": 40, "building": "2", "isWheelChairAccessible": True},
    ],
}


# --- fixtures are themselves CSDL-valid --------------------------------------------------------


def test_docs_shaped_fixtures_use_only_csdl_names() -> None:
    """The payloads the parsers are tested with are valid Graph shapes (incl. customTimeZone, attendees)."""
    _fixture_valid("user", USERS_PAGE_1)
    _fixture_valid("scheduleInformation", SCHEDULE_RESPONSE)
    _fixture_valid("event", EVENT)
    _fixture_valid("subscription", SUBSCRIPTION)
    _fixture_valid("room", ROOMS)
    _fixture_valid("mailboxSettings", {"timeZone": "W. Europe Standard Time", "workingHours": WORKING_HOURS_CUSTOM})


def test_select_constants_exist_in_csdl() -> None:
    """Every $select field is a property of its Graph type (inherited ones included); never body."""
    model = graph_model()
    checks = [
        (USER_SELECT, "user"),
        (CALENDAR_SELECT, "calendar"),
        (MAILBOX_SETTINGS_SELECT, "mailboxSettings"),
        (EVENT_SELECT, "event"),
        ((*CALENDAR_VIEW_SELECT, "subject"), "event"),
        (ROOM_SELECT, "room"),
        (ROOM_LIST_SELECT, "roomList"),
    ]
    for fields, type_name in checks:
        assert set(fields) <= model.properties(type_name), type_name
    assert "body" not in EVENT_SELECT and "subject" not in EVENT_SELECT


# --- directory ---------------------------------------------------------------------------------


def test_list_users_pages_and_skips_accounts_without_mailbox(
    graph: responses.RequestsMock, gateway: GraphGateway
) -> None:
    """Enabled users are listed across pages via nextLink; an account with no mail is skipped."""
    graph.get(f"{BASE}/users", json=USERS_PAGE_1)
    graph.get(USERS_PAGE_1["@odata.nextLink"], json=USERS_PAGE_2)  # type: ignore[arg-type]
    users = list(gateway.list_users(WHO, page_size=2))
    assert [u.mail for u in users] == ["AdeleV@contoso.com", "MeganB@contoso.com"]
    query = _query(graph, 0)
    assert query["$filter"] == ["accountEnabled eq true"]
    assert query["$top"] == ["2"]


def test_get_user_not_found(graph: responses.RequestsMock, gateway: GraphGateway) -> None:
    """A user id that does not resolve is UserNotFound."""
    graph.get(f"{BASE}/users/nobody@contoso.com", status=404, json=graph_error("Request_ResourceNotFound"))
    with pytest.raises(UserNotFound):
        gateway.get_user(WHO, "nobody@contoso.com")


# --- calendars and schedules -------------------------------------------------------------------


def test_get_calendar_reads_allowed_providers(graph: responses.RequestsMock, gateway: GraphGateway) -> None:
    """The calendar's allowedOnlineMeetingProviders tell whether a Teams link is possible."""
    graph.get(
        f"{BASE}/users/u1/calendar",
        json={"id": "AAMkCal", "canEdit": True, "allowedOnlineMeetingProviders": ["teamsForBusiness"],
              "defaultOnlineMeetingProvider": "teamsForBusiness"},
    )
    info = gateway.get_calendar(WHO, "u1")
    assert info.allows("teamsForBusiness") and not info.allows("skypeForBusiness")
    assert info.can_edit is True


def test_get_schedule_body_is_utc_and_results_follow_request_order(
    graph: responses.RequestsMock, gateway: GraphGateway
) -> None:
    """getSchedule sends UTC dateTimeTimeZone and returns schedules in request order, matched case-insensitively."""
    graph.post(f"{BASE}/users/anchor@contoso.com/calendar/getSchedule", json=SCHEDULE_RESPONSE)
    start = datetime(2025, 3, 10, 10, 0, tzinfo=UTC).astimezone()  # any aware zone is accepted
    schedules = gateway.get_schedule(
        WHO, "anchor@contoso.com", ["adelev@contoso.com", "meganb@contoso.com", "onprem@contoso.com"],
        start, start + timedelta(days=1), interval_minutes=15,
    )
    body = _sent(graph)
    assert body == {
        "schedules": ["adelev@contoso.com", "meganb@contoso.com", "onprem@contoso.com"],
        "startTime": {"dateTime": "2025-03-10T10:00:00", "timeZone": "UTC"},
        "endTime": {"dateTime": "2025-03-11T10:00:00", "timeZone": "UTC"},
        "availabilityViewInterval": 15,
    }
    assert [s.address for s in schedules] == ["adelev@contoso.com", "meganb@contoso.com", "onprem@contoso.com"]
    adele, megan, onprem = schedules
    assert adele.busy[0].status is FreeBusyStatus.TENTATIVE
    assert adele.busy[0].start == datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
    # Pacific Standard Time 05:00 on 10 March 2025 (PDT, UTC-7) is 12:00 UTC
    assert megan.busy[1].start == datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
    assert megan.busy[1].status is FreeBusyStatus.OOF
    assert onprem.error_code == "MailboxNotEnabledForRESTAPI" and not onprem.ok


def test_get_schedule_drops_subjects_and_locations(graph: responses.RequestsMock, gateway: GraphGateway) -> None:
    """Nothing but times and statuses survives parsing: no subject, location or privacy flag."""
    graph.post(f"{BASE}/users/anchor/calendar/getSchedule", json=SCHEDULE_RESPONSE)
    schedules = gateway.get_schedule(WHO, "anchor", ["adelev@contoso.com", "meganb@contoso.com"], T0,
                                     T0 + timedelta(hours=8))
    text = repr(schedules)
    for leaked in ("lunch", "Harry", "standup", "Rainier"):
        assert leaked not in text


def test_get_schedule_parses_working_hours_and_custom_zone(
    graph: responses.RequestsMock, gateway: GraphGateway
) -> None:
    """workingHours become WorkingHours; a customTimeZone keeps its bias and transition rules."""
    graph.post(f"{BASE}/users/anchor/calendar/getSchedule", json=SCHEDULE_RESPONSE)
    adele, megan = gateway.get_schedule(WHO, "anchor", ["adelev@contoso.com", "meganb@contoso.com"], T0,
                                        T0 + timedelta(hours=8))
    assert adele.working_hours is not None
    assert adele.working_hours.time_zone.name == "Pacific Standard Time"
    assert not adele.working_hours.time_zone.is_custom
    assert adele.working_hours.start == time(8, 0) and adele.working_hours.end == time(17, 0)
    assert Weekday.SATURDAY not in adele.working_hours.days and Weekday.MONDAY in adele.working_hours.days
    custom = megan.working_hours
    assert custom is not None and custom.time_zone.is_custom
    assert custom.time_zone.bias_minutes == 480
    assert custom.time_zone.daylight is not None and custom.time_zone.daylight.bias_minutes == -60
    assert custom.time_zone.daylight.month == 3 and custom.time_zone.daylight.day_occurrence == 2
    assert custom.time_zone.standard is not None and custom.time_zone.standard.month == 11


@pytest.mark.parametrize(
    ("addresses", "span"),
    [([], timedelta(hours=1)), ([f"u{i}@x.com" for i in range(21)], timedelta(hours=1)),
     (["a@x.com"], timedelta(days=62)), (["a@x.com"], timedelta(0))],
)
def test_get_schedule_rejects_invalid_requests(gateway: GraphGateway, addresses: list[str], span: timedelta) -> None:
    """0 or more than 20 addresses, or a window not under 62 days, is a ValueError before any call."""
    with pytest.raises(ValueError):
        gateway.get_schedule(WHO, "anchor", addresses, T0, T0 + span)


def test_get_schedule_rejects_naive_datetimes(gateway: GraphGateway) -> None:
    """Naive datetimes are ambiguous: refused."""
    with pytest.raises(ValueError):
        gateway.get_schedule(WHO, "anchor", ["a@x.com"], datetime(2025, 3, 10), datetime(2025, 3, 11))


def test_mailbox_settings(graph: responses.RequestsMock, gateway: GraphGateway) -> None:
    """mailboxSettings gives the Windows zone name as-is plus working hours."""
    graph.get(
        f"{BASE}/users/u1/mailboxSettings",
        json={"@odata.context": "x", "timeZone": "W. Europe Standard Time", "workingHours": WORKING_HOURS_WINDOWS},
    )
    settings = gateway.get_mailbox_settings(WHO, "u1")
    assert settings.time_zone == "W. Europe Standard Time"
    assert settings.working_hours is not None and settings.working_hours.end == time(17, 0)


def test_mailbox_on_premises_is_mailbox_unavailable(graph: responses.RequestsMock, gateway: GraphGateway) -> None:
    """MailboxNotEnabledForRESTAPI on mailboxSettings is MailboxUnavailable."""
    graph.get(f"{BASE}/users/u1/mailboxSettings", status=404, json=graph_error("MailboxNotEnabledForRESTAPI"))
    with pytest.raises(MailboxUnavailable):
        gateway.get_mailbox_settings(WHO, "u1")


# --- events ------------------------------------------------------------------------------------


NEW_EVENT = NewEvent(
    subject="Mentoring session",
    start=datetime(2025, 3, 10, 9, 0, tzinfo=UTC),
    end=datetime(2025, 3, 10, 9, 30, tzinfo=UTC),
    attendees=("MeganB@contoso.com",),
    time_zone="Europe/Berlin",
    room="cf100@contoso.com",
    room_name="Conf Room 100",
    online_meeting_provider="teamsForBusiness",
    transaction_id="session-42",
)


def test_create_event_body(graph: responses.RequestsMock, gateway: GraphGateway) -> None:
    """The event body has wall-clock times in the given zone, typed attendees, the room as resource and location,
    Teams, transactionId, and no body."""
    graph.post(f"{BASE}/users/AdeleV@contoso.com/events", status=201, json=EVENT)
    created = gateway.create_event(WHO, "AdeleV@contoso.com", NEW_EVENT)
    body = _sent(graph)
    assert body["start"] == {"dateTime": "2025-03-10T10:00:00", "timeZone": "Europe/Berlin"}
    assert body["end"] == {"dateTime": "2025-03-10T10:30:00", "timeZone": "Europe/Berlin"}
    assert body["attendees"] == [
        {"emailAddress": {"address": "MeganB@contoso.com"}, "type": "required"},
        {"emailAddress": {"address": "cf100@contoso.com", "name": "Conf Room 100"}, "type": "resource"},
    ]
    assert body["location"] == {"displayName": "Conf Room 100", "locationEmailAddress": "cf100@contoso.com",
                                "locationType": "conferenceRoom"}
    assert body["isOnlineMeeting"] is True and body["onlineMeetingProvider"] == "teamsForBusiness"
    assert body["transactionId"] == "session-42"
    assert body["responseRequested"] is True and body["allowNewTimeProposals"] is False
    assert "body" not in body
    assert created.event_id == "AAMkAGI1AAAt9AHjAAA="
    assert created.join_url == "https://teams.microsoft.com/l/meetup-join/19%3ameeting_x"
    assert created.ical_uid and created.transaction_id == "session-42"
    assert created.start == datetime(2025, 3, 10, 9, 0, tzinfo=UTC)  # W. Europe 10:00 (CET) read back as UTC


def test_create_event_minimal_body_is_csdl_valid() -> None:
    """A plain event (no room, no Teams) is a valid event with only what was asked."""
    body = event_body(NewEvent(subject="1:1", start=T0, end=T0 + timedelta(minutes=30), attendees=("a@x.com",)))
    assert graph_model().validate("event", body) == []
    assert "location" not in body and "isOnlineMeeting" not in body and "transactionId" not in body


def test_create_event_in_named_calendar(graph: responses.RequestsMock, gateway: GraphGateway) -> None:
    """With calendar_id the event goes to /calendars/{id}/events."""
    graph.post(f"{BASE}/users/u1/calendars/AAMkCal=/events", status=201, json=EVENT)
    gateway.create_event(WHO, "u1", NewEvent(subject="x", start=T0, end=T0 + timedelta(hours=1),
                                             calendar_id="AAMkCal="))
    assert len(graph.calls) == 1


def test_update_event_patches_times(graph: responses.RequestsMock, gateway: GraphGateway) -> None:
    """Rescheduling PATCHes start and end only and returns the metadata read back."""
    graph.patch(f"{BASE}/users/u1/events/AAMkAGI1AAAt9AHjAAA=", json=EVENT)
    meta = gateway.update_event(WHO, "u1", "AAMkAGI1AAAt9AHjAAA=", T0, T0 + timedelta(minutes=30))
    assert set(_sent(graph)) == {"start", "end"}
    assert meta.event_id == "AAMkAGI1AAAt9AHjAAA="


def test_cancel_event_sends_comment(graph: responses.RequestsMock, gateway: GraphGateway) -> None:
    """cancel POSTs {comment} and accepts 202 with no body."""
    graph.post(f"{BASE}/users/u1/events/e1/cancel", status=202)
    gateway.cancel_event(WHO, "u1", "e1", "Rescheduled by the programme")
    assert _sent(graph) == {"comment": "Rescheduled by the programme"}


def test_cancel_event_already_gone_is_item_not_found(graph: responses.RequestsMock, gateway: GraphGateway) -> None:
    """A 404 on cancel is ItemNotFound so the caller can treat it as done."""
    graph.post(f"{BASE}/users/u1/events/e1/cancel", status=404, json=graph_error("ErrorItemNotFound"))
    with pytest.raises(ItemNotFound):
        gateway.cancel_event(WHO, "u1", "e1")


def test_delete_event(graph: responses.RequestsMock, gateway: GraphGateway) -> None:
    """delete_event sends DELETE and accepts 204."""
    graph.delete(f"{BASE}/users/u1/events/e1", status=204)
    gateway.delete_event(WHO, "u1", "e1")
    assert graph.calls[0].request.method == "DELETE"


def test_get_event_reads_metadata_only(graph: responses.RequestsMock, gateway: GraphGateway) -> None:
    """get_event selects metadata fields; responses are parsed with rooms flagged and no subject kept."""
    graph.get(f"{BASE}/users/u1/events/e1", json=EVENT)
    meta = gateway.get_event(WHO, "u1", "e1")
    assert _query(graph)["$select"] == [",".join(EVENT_SELECT)]
    assert meta.organizer == "AdeleV@contoso.com"
    assert [(a.address, a.response, a.is_resource) for a in meta.attendees] == [
        ("MeganB@contoso.com", ResponseType.ACCEPTED, False),
        ("cf100@contoso.com", ResponseType.NOT_RESPONDED, True),
    ]
    assert meta.change_key == "ZlnW4RIAV06KYYwlrfNZvQAALfZeRQ=="
    assert meta.last_modified == datetime(2025, 3, 1, 8, 1, 0, 456523, tzinfo=UTC)
    assert "Mentoring" not in repr(meta)


def test_find_event_by_transaction_id_searches_the_view(graph: responses.RequestsMock, gateway: GraphGateway) -> None:
    """The event created with a transactionId is found in the calendar view, across pages."""
    other = {**EVENT, "id": "other", "transactionId": "session-1"}
    graph.get(f"{BASE}/users/u1/calendarView", json={"value": [other],
                                                     "@odata.nextLink": f"{BASE}/users/u1/calendarView?$skip=1"})
    graph.get(f"{BASE}/users/u1/calendarView?$skip=1", json={"value": [EVENT]})
    found = gateway.find_event_by_transaction_id(WHO, "u1", "session-42", T0, T0 + timedelta(days=1))
    assert found is not None and found.event_id == EVENT["id"]
    query = _query(graph, 0)
    assert query["startDateTime"] == ["2025-03-10T09:00:00Z"]
    assert query["endDateTime"] == ["2025-03-11T09:00:00Z"]


def test_calendar_view_subject_only_when_asked(graph: responses.RequestsMock, gateway: GraphGateway) -> None:
    """Without include_subject, subject is neither selected nor kept even if Graph sends it."""
    graph.get(f"{BASE}/users/u1/calendarView", json={"value": [{**EVENT, "showAs": "busy"}]})
    [item] = gateway.calendar_view(WHO, "u1", T0, T0 + timedelta(days=1))
    assert "subject" not in _query(graph)["$select"][0].split(",")
    assert item.subject is None and item.show_as is FreeBusyStatus.BUSY
    [mine] = gateway.calendar_view(WHO, "u1", T0, T0 + timedelta(days=1), include_subject=True)
    assert "subject" in _query(graph)["$select"][0].split(",")
    assert mine.subject == "Mentoring session"


def test_calendar_view_delta_follows_pages_to_delta_link(
    graph: responses.RequestsMock, gateway: GraphGateway
) -> None:
    """Delta follows nextLinks to the deltaLink, collects removed ids, and drops subjects and bodies."""
    page_2 = f"{BASE}/users/u1/calendarView/delta?$skiptoken=R0usmcCM996atia_s"
    delta_link = f"{BASE}/users/u1/calendarView/delta?$deltatoken=R0usmci39OQxqJrxK4"
    graph.get(
        f"{BASE}/users/u1/calendarView/delta",
        json={
            "@odata.nextLink": page_2,
            "value": [{**EVENT, "@odata.type": "#microsoft.graph.event", "body": {"contentType": "html",
                                                                                "content": "secret"}}],
        },
    )
    graph.get(
        page_2,
        json={
            "@odata.deltaLink": delta_link,
            "value": [{"@odata.type": "#microsoft.graph.event", "id": "gone-1", "@removed": {"reason": "deleted"}}],
        },
    )
    page = gateway.calendar_view_delta(WHO, "u1", T0, T0 + timedelta(days=30))
    assert [i.event_id for i in page.items] == [EVENT["id"]]
    assert page.items[0].subject is None
    assert page.removed == ("gone-1",)
    assert page.delta_link == delta_link
    assert "$select" not in _query(graph, 0)
    assert "odata.maxpagesize=100" in graph.calls[0].request.headers["Prefer"]

    graph.get(delta_link, json={"@odata.deltaLink": delta_link + "2", "value": []})
    again = gateway.calendar_view_delta(WHO, "u1", T0, T0 + timedelta(days=30), delta_link=delta_link)
    assert graph.calls[-1].request.url == delta_link
    assert again.delta_link == delta_link + "2" and again.items == ()


# --- rooms -------------------------------------------------------------------------------------


def test_list_rooms_and_room_lists(graph: responses.RequestsMock, gateway: GraphGateway) -> None:
    """Rooms come from /places/microsoft.graph.room (or a room list's rooms) with page size 100."""
    graph.get(f"{BASE}/places/microsoft.graph.room", json=ROOMS)
    graph.get(f"{BASE}/places/bldg1@contoso.com/microsoft.graph.roomlist/rooms", json=ROOMS)
    graph.get(
        f"{BASE}/places/microsoft.graph.roomlist",
        json={"value": [{"id": "x", "emailAddress": "bldg1@contoso.com", "displayName": "Building 1"}]},
    )
    rooms = gateway.list_rooms(WHO)
    assert [(r.address, r.capacity) for r in rooms] == [("cf100@contoso.com", 50), ("cf200@contoso.com", 40)]
    assert rooms[1].is_wheelchair_accessible is True
    assert _query(graph)["$top"] == ["100"]
    assert len(gateway.list_rooms(WHO, "bldg1@contoso.com")) == 2
    [room_list] = gateway.list_room_lists(WHO)
    assert room_list.address == "bldg1@contoso.com"


# --- subscriptions -----------------------------------------------------------------------------


def test_create_subscription_body_and_granted_expiry(graph: responses.RequestsMock, gateway: GraphGateway) -> None:
    """The subscription body uses CSDL names; the returned expiry is what Graph granted, not what we asked."""
    graph.post(f"{BASE}/subscriptions", status=201, json=SUBSCRIPTION)
    info = gateway.create_subscription(
        WHO,
        resource="/users/87d349ed-44d7-43e1-9a83-5f2406dee5bd/events",
        change_type="created,updated,deleted",
        notification_url="https://app.example.com/api/graph/notifications?code=k",
        lifecycle_url="https://app.example.com/api/graph/lifecycle?code=k",
        client_state="opaque",
        expiration=T0 + timedelta(days=7),
    )
    body = _sent(graph)
    assert body["expirationDateTime"] == "2025-03-17T09:00:00Z"
    assert body["lifecycleNotificationUrl"].endswith("/lifecycle?code=k")
    assert info == SubscriptionInfo(
        subscription_id="7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
        resource="/users/87d349ed-44d7-43e1-9a83-5f2406dee5bd/events",
        expiration=datetime(2025, 3, 13, 9, 0, 0, 935691, tzinfo=UTC),
        change_type="created,updated,deleted",
    )


def test_client_state_over_128_chars_is_refused(gateway: GraphGateway) -> None:
    """Graph caps clientState at 128 characters: longer is a ValueError before any call."""
    with pytest.raises(ValueError):
        gateway.create_subscription(WHO, resource="/users/u/events", change_type="updated",
                                    notification_url="https://a", lifecycle_url="https://b",
                                    client_state="x" * 129, expiration=T0)


def test_renew_delete_and_reauthorize_subscription(graph: responses.RequestsMock, gateway: GraphGateway) -> None:
    """Renew PATCHes expirationDateTime; delete treats 404 as done; reauthorize POSTs with no body."""
    graph.patch(f"{BASE}/subscriptions/s1", json=SUBSCRIPTION)
    graph.delete(f"{BASE}/subscriptions/s1", status=404, json=graph_error("ResourceNotFound"))
    graph.post(f"{BASE}/subscriptions/s1/reauthorize", status=204)
    renewed = gateway.renew_subscription(WHO, "s1", T0 + timedelta(days=3))
    assert _sent(graph) == {"expirationDateTime": "2025-03-13T09:00:00Z"}
    assert renewed.expiration.date() == datetime(2025, 3, 13, tzinfo=UTC).date()
    gateway.delete_subscription(WHO, "s1")
    gateway.reauthorize_subscription(WHO, "s1")
    assert graph.calls[-1].request.body is None


# --- batch helpers -----------------------------------------------------------------------------


def _batch_answer(parts: dict[str, tuple[int, Any]]) -> dict[str, Any]:
    return {"responses": [{"id": i, "status": s, "headers": {}, "body": b} for i, (s, b) in parts.items()]}


def test_probe_mailboxes_classifies_each_user(graph: responses.RequestsMock, gateway: GraphGateway) -> None:
    """One $batch probes every calendar; each user maps to None or the classified error."""
    graph.post(
        f"{BASE}/$batch",
        json=_batch_answer({
            "0": (200, {"id": "cal"}),
            "1": (404, graph_error("MailboxNotEnabledForRESTAPI")),
            "2": (403, graph_error("ErrorAccessDenied")),
            "3": (404, graph_error("ErrorInvalidUser")),
        }),
    )
    result = gateway.probe_mailboxes(WHO, ["ok@c.com", "onprem@c.com", "scoped@c.com", "ghost@c.com"])
    assert result["ok@c.com"] is None
    assert isinstance(result["onprem@c.com"], MailboxUnavailable)
    assert isinstance(result["scoped@c.com"], OutsideAppScope)
    assert isinstance(result["ghost@c.com"], UserNotFound)
    urls = [p["url"] for p in _sent(graph)["requests"]]
    assert urls[0] == "/users/ok@c.com/calendar?$select=id"


def test_get_events_batch_correlates_results(graph: responses.RequestsMock, gateway: GraphGateway) -> None:
    """Batch answers arrive in any order; each (user, event) gets its metadata or its error."""
    graph.post(
        f"{BASE}/$batch",
        json={"responses": [
            {"id": "1", "status": 404, "body": graph_error("ErrorItemNotFound")},
            {"id": "0", "status": 200, "body": EVENT},
        ]},
    )
    result = gateway.get_events(WHO, [("u1", "e1"), ("u2", "e2")])
    meta = result[("u1", "e1")]
    assert not isinstance(meta, Exception) and meta.transaction_id == "session-42"
    assert isinstance(result[("u2", "e2")], ItemNotFound)


def test_renew_subscriptions_batch_with_throttled_part(
    graph: responses.RequestsMock, gateway: GraphGateway
) -> None:
    """A renewal part still throttled after the budget is reported per id as Throttled; others succeed."""
    graph.post(
        f"{BASE}/$batch",
        json={"responses": [
            {"id": "0", "status": 200, "body": SUBSCRIPTION},
            {"id": "1", "status": 429, "headers": {"Retry-After": "90"}, "body": graph_error("TooManyRequests")},
        ]},
    )
    result = gateway.renew_subscriptions(WHO, [("s1", T0), ("s2", T0)])
    assert isinstance(result["s1"], SubscriptionInfo)
    assert isinstance(result["s2"], Throttled) and result["s2"].retry_after == 90.0
    parts = _sent(graph)["requests"]
    assert parts[0]["body"] == {"expirationDateTime": "2025-03-10T09:00:00Z"}
