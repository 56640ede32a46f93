"""Per-user connection end to end: a seeded user connects through the real HTTP sign-in on the simulator,
a delegated Graph call works through the method-aware provider, and a revoked refresh token ends in
needsReconnect with one owner alert.

Northwind is used because the test switches the tenant to the per-user method (Contoso and Fabrikam
stay domain-wide for the other end-to-end tests).
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from core.adapters.mailer_local import LocalOutboxMailer
from core.bootstrap import build_container
from core.domain.calendar import GraphIdentity
from core.domain.errors import ReconnectRequired
from core.names import user_token_secret_name
from core.settings import Settings
from local.simulator import seed
from tests.e2e.conftest import Stack

TENANT = seed.NORTHWIND
USER = "janet@northwind.test"
OWNER = "owner@northwind.test"


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _user_id(stack: Stack, upn: str) -> str:
    for tenant in stack.control("GET", "/_sandbox/tenants"):
        for user in tenant["users"]:
            if user["userPrincipalName"] == upn:
                return str(user["id"])
    raise KeyError(upn)


def _reconnect_alerts(stack: Stack) -> list[dict[str, str]]:
    return [m for m in LocalOutboxMailer(stack.outbox).messages()
            if "reconnect" in m["subject"].lower() and m["to"] == OWNER]


@pytest.fixture(scope="module")
def per_user_tenant(stack: Stack) -> str:
    """Northwind onboarded by its admin, then switched to the per-user method."""
    stack.onboard(TENANT, seed.NORTHWIND_ADMIN, owner_email=OWNER)
    admin = stack.token(seed.NORTHWIND_ADMIN, roles=["Integration.Admin"])
    put = stack.call("PUT", "/integration", admin, {"vendor": "outlook365", "method": "perUser",
                                                     "ownerEmail": OWNER})
    assert put.status_code == 200, put.text
    assert put.json()["method"] == "perUser"

    # The method switch reruns the access test in the background; it uses connected users'
    # delegated tokens, so let it finish before this module's provider shares one with the host.
    def finished() -> bool:
        latest = stack.call("GET", "/integration/access-tests/latest", admin)
        return latest.status_code == 200 and latest.json()["status"] != "running"

    stack.wait_for(finished, timeout=60)
    return TENANT


def test_user_connects_calls_graph_delegated_and_a_revoked_token_needs_reconnect(
    stack: Stack, per_user_tenant: str
) -> None:
    """POST -> simulator sign-in (login_hint) -> callback -> app URL; delegated Graph works; revoke ->
    needsReconnect and exactly one owner alert."""
    user_id = _user_id(stack, USER)
    token = stack.token(USER)
    assert stack.call("GET", "/me/connection", token).json() == {
        "connected": False, "method": "perUser", "needsReconnect": False}

    start = stack.call("POST", "/me/connection", token)
    assert start.status_code == 200, start.text
    authorize_url = start.json()["authorizeUrl"]
    assert authorize_url.startswith(f"{stack.sim.url}/{TENANT}/oauth2/v2.0/authorize?")
    authorize = _query(authorize_url)
    assert authorize["login_hint"] == USER and authorize["code_challenge_method"] == "S256"
    assert "offline_access" in authorize["scope"].split()

    browser = requests.Session()
    browser.trust_env = False
    page = browser.get(authorize_url, allow_redirects=False, timeout=15, verify=str(stack.sim.ca_path))
    assert page.status_code == 302, page.text
    callback = page.headers["Location"]
    assert callback.startswith(f"{stack.api_url}/me/connection/callback?")
    done = stack.http.get(callback, allow_redirects=False, timeout=30)
    assert done.status_code == 302, done.text
    assert _query(done.headers["Location"]) == {"connection": "connected"}
    replay = stack.http.get(callback, allow_redirects=False, timeout=30)
    assert _query(replay.headers["Location"])["code"] == "connection_state_invalid"

    assert stack.call("GET", "/me/connection", token).json() == {
        "connected": True, "method": "perUser", "needsReconnect": False}

    # Another worker process, wired by the composition root, reads the stored tokens.
    other = build_container(Settings.from_env(stack.env))
    secrets, tokens, gateway = other.secrets, other.tokens, other.gateway
    assert tokens is not None
    stored_before = secrets.get(user_token_secret_name(TENANT, user_id))
    calendar = gateway.get_calendar(GraphIdentity(TENANT, user_id), user_id)
    assert calendar.calendar_id and calendar.allows("teamsForBusiness")
    assert secrets.get(user_token_secret_name(TENANT, user_id)) != stored_before  # the refresh token rotated

    stack.control("POST", f"/_sandbox/users/{user_id}/revoke", {})
    tokens.invalidate(TENANT)  # drop the cached access token: the next call must refresh
    for _ in range(3):
        with pytest.raises(ReconnectRequired):
            gateway.get_calendar(GraphIdentity(TENANT, user_id), user_id)

    status = stack.call("GET", "/me/connection", token).json()
    assert status == {"connected": False, "method": "perUser", "needsReconnect": True, "reason": "50173"}
    alerts = stack.wait_for(lambda: _reconnect_alerts(stack), timeout=30)
    assert len(alerts) == 1
    assert stored_before is not None and stored_before not in alerts[0]["text"]

    gone = stack.call("DELETE", "/me/connection", token)
    assert gone.status_code == 204
    assert secrets.get(user_token_secret_name(TENANT, user_id)) is None
    assert stack.call("GET", "/me/connection", token).json()["connected"] is False
