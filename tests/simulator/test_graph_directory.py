"""Graph users, mailbox settings, calendars, places, and the error codes of unreachable mailboxes."""

from __future__ import annotations

import pytest

from local.simulator.seed import ALICE, ALICE_ID, BOB, CONTOSO, FABRIKAM_ADMIN
from tests.simulator.conftest import Sim


def test_users_are_paged_with_next_links_and_honour_top(sim: Sim, contoso_token: str) -> None:
    """GET /users pages with @odata.nextLink; following it yields every user exactly once."""
    seen: list[str] = []
    url = f"{sim.url}/v1.0/users?$top=7"
    pages = 0
    while url:
        body = sim.request("GET", url, headers={"Authorization": f"Bearer {contoso_token}"}).json()
        assert len(body["value"]) <= 7
        seen += [u["id"] for u in body["value"]]
        url = body.get("@odata.nextLink", "")
        pages += 1
    tenants = sim.get("/_sandbox/tenants").json()
    contoso = next(t for t in tenants if t["id"] == CONTOSO)
    assert len(seen) == len(set(seen)) == len(contoso["users"]) + len(contoso["rooms"])
    assert pages > 1


def test_users_default_shape_select_and_enabled_filter(sim: Sim, contoso_token: str) -> None:
    """Default properties exclude accountEnabled; $select returns it; $filter keeps enabled users only."""
    default = sim.graph("GET", "/users?$top=1", contoso_token).json()["value"][0]
    assert "userPrincipalName" in default and "accountEnabled" not in default
    body = sim.graph(
        "GET", "/users?$filter=accountEnabled eq true&$select=id,mail,accountEnabled&$top=999", contoso_token
    ).json()
    assert body["value"] and all(u["accountEnabled"] is True for u in body["value"])
    assert set(body["value"][0]) == {"id", "mail", "accountEnabled"}
    mails = {u["mail"] for u in body["value"]}
    assert "trent@contoso.test" not in mails and "room-orca@contoso.test" not in mails
    assert sim.graph("GET", "/users?$filter=startswith(mail,'a')", contoso_token).status_code == 400
    assert sim.graph("GET", "/users?$top=1000", contoso_token).status_code == 400


def test_user_by_upn_or_id_and_unknown_user_is_request_resource_not_found(sim: Sim, contoso_token: str) -> None:
    """Users resolve by UPN or id; an unknown one is 404 Request_ResourceNotFound."""
    by_upn = sim.graph("GET", f"/users/{ALICE}", contoso_token).json()
    by_id = sim.graph("GET", f"/users/{ALICE_ID}", contoso_token).json()
    assert by_upn["id"] == by_id["id"] == ALICE_ID
    missing = sim.graph("GET", "/users/ghost@contoso.test", contoso_token)
    assert missing.status_code == 404
    err = missing.json()["error"]
    assert err["code"] == "Request_ResourceNotFound"
    assert {"request-id", "date"} <= set(err["innerError"])


def test_tenants_are_isolated(sim: Sim, contoso_token: str) -> None:
    """A Contoso token cannot see a Fabrikam user or mailbox."""
    assert sim.graph("GET", f"/users/{FABRIKAM_ADMIN}", contoso_token).status_code == 404
    resp = sim.graph("GET", f"/users/{FABRIKAM_ADMIN}/calendar", contoso_token)
    assert resp.json()["error"]["code"] == "ErrorInvalidUser"


@pytest.mark.parametrize(
    ("user", "status", "code"),
    [
        ("onprem1@contoso.test", 404, "MailboxNotEnabledForRESTAPI"),
        ("nolicense2@contoso.test", 404, "MailboxNotEnabledForRESTAPI"),
        ("scoped3@contoso.test", 403, "ErrorAccessDenied"),
        ("ghost@contoso.test", 404, "ErrorInvalidUser"),
    ],
)
def test_unreachable_mailboxes_answer_with_real_error_codes(
    sim: Sim, contoso_token: str, user: str, status: int, code: str
) -> None:
    """Every mailbox endpoint of an unreachable user gives Graph's status and error code."""
    for path in (f"/users/{user}/calendar", f"/users/{user}/mailboxSettings", f"/users/{user}/events"):
        resp = sim.graph("GET", path, contoso_token)
        assert resp.status_code == status, path
        assert resp.json()["error"]["code"] == code
    if code == "ErrorAccessDenied":
        assert resp.json()["error"]["message"] == "Access to OData is disabled."


def test_unreachable_users_still_exist_in_the_directory(sim: Sim, contoso_token: str) -> None:
    """On-premises and out-of-scope users are directory users (GET /users/{id} works)."""
    assert sim.graph("GET", "/users/onprem1@contoso.test", contoso_token).status_code == 200
    assert sim.graph("GET", "/users/scoped1@contoso.test", contoso_token).status_code == 200


def test_mailbox_settings_have_zone_and_working_hours(sim: Sim, contoso_token: str) -> None:
    """mailboxSettings gives a Windows zone and working hours; one user has a custom working-hours zone."""
    bob = sim.graph("GET", f"/users/{BOB}/mailboxSettings", contoso_token).json()
    assert bob["timeZone"] == "W. Europe Standard Time"
    assert bob["workingHours"]["startTime"] == "09:00:00.0000000"
    assert bob["workingHours"]["daysOfWeek"] == ["monday", "tuesday", "wednesday", "thursday", "friday"]
    peggy = sim.graph("GET", "/users/peggy@contoso.test/mailboxSettings", contoso_token).json()
    assert peggy["workingHours"]["timeZone"]["name"] == "Customized Time Zone"
    assert peggy["workingHours"]["timeZone"]["bias"] == -60
    oscar = sim.graph("GET", "/users/oscar@contoso.test/mailboxSettings?$select=timeZone", contoso_token).json()
    assert oscar["timeZone"] == "Asia/Singapore"
    assert "workingHours" not in oscar
    mallory = sim.graph("GET", "/users/mallory@contoso.test/mailboxSettings", contoso_token).json()
    assert mallory["workingHours"]["daysOfWeek"][0] == "sunday"


def test_calendar_reports_online_meeting_providers(sim: Sim, contoso_token: str) -> None:
    """Calendars list allowed providers: Teams by default, Skype-only and none for some users."""
    alice = sim.graph("GET", f"/users/{ALICE}/calendar", contoso_token).json()
    assert alice["allowedOnlineMeetingProviders"] == ["teamsForBusiness"]
    assert alice["owner"]["address"] == ALICE
    victor = sim.graph("GET", "/users/victor@contoso.test/calendar", contoso_token).json()
    assert victor["defaultOnlineMeetingProvider"] == "skypeForBusiness"
    xavier = sim.graph("GET", "/users/xavier@contoso.test/calendar", contoso_token).json()
    assert xavier["allowedOnlineMeetingProviders"] == []


def test_rooms_and_room_lists(sim: Sim, contoso_token: str) -> None:
    """Places lists rooms, room lists, and the rooms of one list with capacity/building/floor."""
    rooms = sim.graph("GET", "/places/microsoft.graph.room", contoso_token).json()["value"]
    assert len(rooms) == 6
    lists = sim.graph("GET", "/places/microsoft.graph.roomlist", contoso_token).json()["value"]
    assert [rl["emailAddress"] for rl in lists] == ["rooms-b1@contoso.test", "rooms-b2@contoso.test"]
    in_b2 = sim.graph("GET", "/places/rooms-b2@contoso.test/microsoft.graph.roomlist/rooms", contoso_token).json()
    assert {r["building"] for r in in_b2["value"]} == {"Building 2"}
    assert all(isinstance(r["capacity"], int) and isinstance(r["floorNumber"], int) for r in in_b2["value"])
    assert (
        sim.graph("GET", "/places/nope@contoso.test/microsoft.graph.roomlist/rooms", contoso_token).status_code == 404
    )


def test_graph_rejects_missing_bad_and_expired_tokens(sim: Sim) -> None:
    """No token, a garbage token and a token for the service (wrong audience) all get 401."""
    assert sim.get("/v1.0/users").json()["error"]["code"] == "InvalidAuthenticationToken"
    assert sim.graph("GET", "/users", "not-a-jwt").status_code == 401
    service_token = sim.post("/_sandbox/token", json={"user": ALICE}).json()["access_token"]
    assert sim.graph("GET", "/users", service_token).status_code == 401


def test_me_needs_a_delegated_token(sim: Sim, contoso_token: str) -> None:
    """/me with an app-only token is a 400, as in Graph."""
    assert sim.graph("GET", "/me/calendar", contoso_token).status_code == 400
