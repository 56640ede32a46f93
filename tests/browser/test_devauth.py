"""The local-only sign-in helpers (local/devauth.py) the console's user picker relies on.

The simulator is faked at the HTTP boundary with ``responses``: what matters here is
what the helpers forward, what they refuse, and that everything else falls through to
the static files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
import responses

from local.devauth import DevAuth
from local.host.web import Response

SIM = "https://127.0.0.1:7443"
CLIENT = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
LOCAL = {"host": "127.0.0.1:7071"}
JSON_LOCAL = {**LOCAL, "content-type": "application/json"}


@pytest.fixture
def auth(tmp_path: Path) -> DevAuth:
    ca = tmp_path / "ca.pem"
    ca.write_text("not used: responses answers before TLS")
    return DevAuth(simulator_url=SIM, ca_path=ca, client_id=CLIENT)


def _json(response: Response | None) -> object:
    assert response is not None
    return json.loads(response.body)


def test_other_paths_fall_through_to_static_files(auth: DevAuth) -> None:
    """Paths that are not the helpers' answer None, so index.html and assets are served as before."""
    assert auth("GET", "/", LOCAL, b"") is None
    assert auth("GET", "/assets/main.js", LOCAL, b"") is None
    assert auth("GET", "/_devil", LOCAL, b"") is None


def test_runtime_config_is_local_mode_for_the_host_it_is_served_from(auth: DevAuth) -> None:
    """/config.json tells the console to use the user picker and the same-origin API."""
    config = _json(auth("GET", "/config.json", LOCAL, b""))
    assert config == {
        "apiBaseUrl": "/api",
        "mode": "local",
        "clientId": CLIENT,
        "authority": SIM,
        "apiScope": f"api://{CLIENT}/access_as_user",
        "redirectUri": "http://127.0.0.1:7071/",
        "simulatorUrl": SIM,
    }


def test_a_non_loopback_host_name_gets_nothing(auth: DevAuth) -> None:
    """A page reaching the host under another name (DNS rebinding) cannot mint tokens or read users."""
    answer = auth("POST", "/_dev/token", {"host": "evil.example:7071", "content-type": "application/json"}, b"{}")
    assert answer is not None and answer.status == 403


@responses.activate
def test_users_lists_tenants_and_people_without_anything_else(auth: DevAuth) -> None:
    """/_dev/users keeps ids, UPNs, names and kinds; consent flags and rooms stay in the simulator."""
    responses.get(f"{SIM}/_sandbox/tenants", json=[{
        "id": "t1", "domain": "contoso.test", "consentGranted": False,
        "users": [{"id": "u1", "userPrincipalName": "alice@contoso.test", "displayName": "Alice",
                   "kind": "normal", "timeZone": "Pacific Standard Time"}],
        "rooms": [{"email": "room@contoso.test"}],
    }])
    assert _json(auth("GET", "/_dev/users", LOCAL, b"")) == [{
        "id": "t1", "domain": "contoso.test",
        "users": [{"id": "u1", "userPrincipalName": "alice@contoso.test", "displayName": "Alice", "kind": "normal"}],
    }]


@responses.activate
def test_token_forwards_the_user_and_the_admin_role_only(auth: DevAuth) -> None:
    """/_dev/token asks the simulator for that user with Integration.Admin and returns the token."""
    mint = responses.post(f"{SIM}/_sandbox/token", json={"access_token": "eyJ.test.token"})
    body = json.dumps({"user": "admin@contoso.test", "roles": ["Integration.Admin"]}).encode()
    assert _json(auth("POST", "/_dev/token", JSON_LOCAL, body)) == {"access_token": "eyJ.test.token"}
    assert json.loads(mint.calls[0].request.body) == {"user": "admin@contoso.test", "roles": ["Integration.Admin"]}


@responses.activate
def test_token_refuses_other_roles_and_non_json_bodies(auth: DevAuth) -> None:
    """App roles for servers are never minted for a browser, and a text/plain POST (no preflight) is refused."""
    mint = responses.post(f"{SIM}/_sandbox/token", json={"access_token": "x"})
    wide = json.dumps({"user": "a@contoso.test", "roles": ["Pairings.ReadWrite.All"]}).encode()
    refused = auth("POST", "/_dev/token", JSON_LOCAL, wide)
    assert refused is not None and refused.status == 422
    plain = auth("POST", "/_dev/token", {**LOCAL, "content-type": "text/plain"}, b'{"user": "a@contoso.test"}')
    assert plain is not None and plain.status == 415
    assert not mint.calls


@responses.activate
def test_consent_page_is_proxied_as_its_redirect_back_to_the_api(auth: DevAuth) -> None:
    """/_dev/sim/{tenant}/v2.0/adminconsent returns the simulator's 302 to the API callback, query kept."""
    callback = "http://127.0.0.1:7071/api/integration/consent/callback?admin_consent=True&state=s"
    page = responses.get(f"{SIM}/organizations/v2.0/adminconsent", status=302, headers={"Location": callback})
    answer = auth("GET", "/_dev/sim/organizations/v2.0/adminconsent?client_id=c&state=s", LOCAL, b"")
    assert answer is not None and answer.status == 302
    assert dict(answer.headers)["Location"] == callback
    assert page.calls[0].request.url.endswith("/organizations/v2.0/adminconsent?client_id=c&state=s")


@responses.activate
def test_only_the_sign_in_pages_are_proxied_and_only_back_to_loopback(auth: DevAuth) -> None:
    """The control API is not reachable through /_dev/sim, and a redirect elsewhere is not followed."""
    blocked = auth("GET", "/_dev/sim/_sandbox/tenants", LOCAL, b"")
    assert blocked is not None and blocked.status == 404
    responses.get(f"{SIM}/t1/oauth2/v2.0/authorize", status=302, headers={"Location": "https://evil.example/x"})
    away = auth("GET", "/_dev/sim/t1/oauth2/v2.0/authorize?x=1", LOCAL, b"")
    assert away is not None and away.status == 502


def test_an_unreachable_simulator_is_a_clear_503(auth: DevAuth) -> None:
    """When the simulator is down the picker says so instead of failing obscurely."""
    with responses.RequestsMock() as mock:
        mock.get(f"{SIM}/_sandbox/tenants", body=requests.ConnectionError("refused"))
        answer = auth("GET", "/_dev/users", LOCAL, b"")
    assert answer is not None and answer.status == 503
    assert b"simulator" in answer.body
