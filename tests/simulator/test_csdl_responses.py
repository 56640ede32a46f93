"""Every kind of resource the simulator returns uses only properties and enum values of the Graph v1.0 CSDL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from local.simulator.seed import ALICE, BOB
from tests.simulator.conftest import Receiver, Sim, attendee, dttz, event_body, next_weekday, subscribe
from tests.support.csdl import graph_model


def _ok(type_name: str, payload: Any) -> None:
    problems = graph_model().validate(type_name, payload)
    assert problems == [], problems


def test_user_responses_match_the_csdl(sim: Sim, contoso_token: str) -> None:
    """Users (default properties and every $select-able one) are valid microsoft.graph.user values."""
    _ok("user", sim.graph("GET", f"/users/{ALICE}", contoso_token).json())
    select = (
        "id,displayName,mail,accountEnabled,department,usageLocation,userType,mailNickname,"
        "onPremisesSyncEnabled,assignedLicenses,isResourceAccount,createdDateTime"
    )
    for user in sim.graph("GET", f"/users?$select={select}&$top=999", contoso_token).json()["value"]:
        _ok("user", user)


def test_mailbox_settings_and_calendar_match_the_csdl(sim: Sim, contoso_token: str) -> None:
    """mailboxSettings (including a custom working-hours zone) and calendar resources are valid."""
    for user in (ALICE, "peggy@contoso.test", "oscar@contoso.test"):
        _ok("mailboxSettings", sim.graph("GET", f"/users/{user}/mailboxSettings", contoso_token).json())
    _ok("calendar", sim.graph("GET", f"/users/{ALICE}/calendar", contoso_token).json())
    _ok("calendar", sim.graph("GET", "/users/xavier@contoso.test/calendar", contoso_token).json())


def test_schedule_information_matches_the_csdl(sim: Sim, contoso_token: str) -> None:
    """scheduleInformation values, with items, working hours and per-schedule errors, are valid."""
    start = next_weekday(hour=0)
    body = {
        "schedules": [ALICE, BOB, "peggy@contoso.test", "onprem1@contoso.test", "ghost@contoso.test"],
        "startTime": dttz(start),
        "endTime": dttz(start + timedelta(days=5)),
        "availabilityViewInterval": 60,
    }
    assert graph_model().validate_action_body("getSchedule", "calendar", body) == []
    values = sim.graph("POST", f"/users/{ALICE}/calendar/getSchedule", contoso_token, json=body).json()["value"]
    assert any(v.get("scheduleItems") for v in values)
    for value in values:
        _ok("scheduleInformation", value)


def test_event_responses_match_the_csdl(sim: Sim, contoso_token: str) -> None:
    """Organizer events, attendee copies (rooms, Teams) and cancelled copies are valid events."""
    ev = sim.graph(
        "POST",
        f"/users/{ALICE}/events",
        contoso_token,
        json=event_body(
            next_weekday(days_ahead=62),
            attendees=[attendee(BOB), attendee("room-orca@contoso.test", "resource")],
            isOnlineMeeting=True,
            onlineMeetingProvider="teamsForBusiness",
            transactionId="csdl-1",
        ),
    ).json()
    _ok("event", ev)
    _ok("event", sim.graph("GET", f"/users/{ALICE}/events/{ev['id']}", contoso_token).json())
    sim.graph("POST", f"/users/{ALICE}/events/{ev['id']}/cancel", contoso_token, json={})
    for user in (BOB, "carol@contoso.test"):
        for item in sim.events_of(user)[:30]:
            _ok("event", item)


def test_subscription_and_notifications_match_the_csdl(
    sim: Sim, contoso_token: str, receiver_factory: Callable[..., Receiver]
) -> None:
    """Subscriptions and change/lifecycle notification items are valid subscription/changeNotification."""
    changes, lifecycle = receiver_factory(), receiver_factory()
    sub = subscribe(sim, contoso_token, ALICE, changes, lifecycle=lifecycle).json()
    _ok("subscription", sub)
    sim.graph("POST", f"/users/{ALICE}/events", contoso_token, json=event_body(next_weekday()))
    item = changes.items(1)[0]
    # resourceData is an open type whose "@odata.type" names the changed resource, spelt as Graph really sends
    # it ("#Microsoft.Graph.Event", per the change-notification docs), so it is checked by hand.
    resource_data = item.pop("resourceData")
    assert set(resource_data) == {"@odata.type", "@odata.id", "@odata.etag", "id"}
    assert resource_data["@odata.type"] == "#Microsoft.Graph.Event"
    _ok("changeNotification", item)
    sim.post("/_sandbox/subscriptions/lifecycle", json={"subscriptionId": sub["id"], "event": "missed"})
    _ok("changeNotification", lifecycle.items(1)[0])


@pytest.mark.parametrize(
    ("path", "type_name"),
    [
        ("/places/microsoft.graph.room", "room"),
        ("/places/microsoft.graph.roomlist", "roomList"),
        ("/places/rooms-b1@contoso.test/microsoft.graph.roomlist/rooms", "room"),
    ],
)
def test_places_match_the_csdl(sim: Sim, contoso_token: str, path: str, type_name: str) -> None:
    """Rooms and room lists are valid microsoft.graph.room / roomList values."""
    values = sim.graph("GET", path, contoso_token).json()["value"]
    assert values
    for value in values:
        _ok(type_name, value)
