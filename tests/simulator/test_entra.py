"""Entra endpoints: discovery, keys, client credentials and consent, delegated sign-in, service tokens."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import msal
import pytest
import requests

from local.simulator.seed import ALICE, ALICE_ID, CONTOSO, FABRIKAM
from local.simulator.state import DEFAULT_CLIENT_ID, PRODUCT_SERVER_CLIENT_ID
from tests.simulator.conftest import Sim

REDIRECT = "http://127.0.0.1:7071/api/integration/consent/callback"


def _jwks_key(sim: Sim, token: str) -> Any:
    keys = sim.get("/common/discovery/v2.0/keys").json()["keys"]
    kid = jwt.get_unverified_header(token)["kid"]
    return jwt.PyJWK(next(k for k in keys if k["kid"] == kid)).key


def _consent_redirect(sim: Sim, tenant: str = CONTOSO) -> dict[str, list[str]]:
    resp = sim.get(
        f"/{tenant}/v2.0/adminconsent",
        allow_redirects=False,
        params={
            "client_id": DEFAULT_CLIENT_ID,
            "scope": f"{sim.url}/.default",
            "redirect_uri": REDIRECT,
            "state": "st-1",
        },
    )
    assert resp.status_code == 302
    location = resp.headers["Location"]
    assert location.startswith(REDIRECT)
    return parse_qs(urlsplit(location).query)


def test_openid_configuration_names_issuer_and_endpoints_per_tenant(sim: Sim) -> None:
    """Discovery gives the v2 issuer for the tenant and token/authorize endpoints on the simulator."""
    config = sim.get(f"/{CONTOSO}/v2.0/.well-known/openid-configuration").json()
    assert config["issuer"] == f"{sim.url}/{CONTOSO}/v2.0"
    assert config["token_endpoint"] == f"{sim.url}/{CONTOSO}/oauth2/v2.0/token"
    assert config["authorization_endpoint"] == f"{sim.url}/{CONTOSO}/oauth2/v2.0/authorize"
    keys = sim.get(config["jwks_uri"]).json()["keys"]
    assert keys and keys[0]["kty"] == "RSA" and keys[0]["kid"]
    assert sim.get(f"/{CONTOSO}/discovery/v2.0/keys").json() == sim.get("/common/discovery/v2.0/keys").json()


def test_unknown_tenant_gets_aadsts90002(sim: Sim) -> None:
    """An unknown tenant id answers like Entra: invalid_request with AADSTS90002."""
    resp = sim.get("/99999999-9999-4999-8999-999999999999/v2.0/.well-known/openid-configuration")
    assert resp.status_code == 400
    assert resp.json()["error_codes"] == [90002]
    token = sim.client_credentials("99999999-9999-4999-8999-999999999999")
    assert token.json()["error_codes"] == [90002]


def test_client_credentials_without_consent_fail_with_700016(sim: Sim) -> None:
    """Contoso starts without admin consent: app-only tokens are refused with AADSTS700016."""
    resp = sim.client_credentials(CONTOSO)
    assert resp.status_code == 400
    body = resp.json()
    assert body["error"] == "unauthorized_client"
    assert body["error_codes"] == [700016]
    assert body["error_description"].startswith("AADSTS700016: Application with identifier")


def test_fabrikam_is_consented_from_the_start(sim: Sim) -> None:
    """Fabrikam is seeded as already onboarded, so client credentials work at once."""
    resp = sim.client_credentials(FABRIKAM)
    assert resp.status_code == 200
    assert resp.json()["token_type"] == "Bearer"


def test_admin_consent_page_grants_and_then_tokens_work(sim: Sim) -> None:
    """The consent page redirects with admin_consent=True, tenant and state, and records the consent."""
    query = _consent_redirect(sim)
    assert query["admin_consent"] == ["True"]
    assert query["tenant"] == [CONTOSO]
    assert query["state"] == ["st-1"]
    resp = sim.client_credentials(CONTOSO)
    assert resp.status_code == 200
    claims = jwt.decode(
        resp.json()["access_token"], _jwks_key(sim, resp.json()["access_token"]), algorithms=["RS256"], audience=sim.url
    )
    assert claims["tid"] == CONTOSO
    assert claims["idtyp"] == "app"
    assert set(claims["roles"]) == {"Calendars.ReadWrite", "User.Read.All", "MailboxSettings.Read", "Place.Read.All"}


def test_declined_consent_redirects_as_documented_with_aadsts65004(sim: Sim) -> None:
    """Switched to decline, the page redirects like v2-admin-consent.md's error example: admin_consent=True,
    error=consent_required, AADSTS65004 in error_description, state kept; no token afterwards."""
    sim.consent(CONTOSO, grant=False)
    query = _consent_redirect(sim)
    assert query["admin_consent"] == ["True"]
    assert query["error"] == ["consent_required"]
    assert query["error_description"][0].startswith("AADSTS65004: ")
    assert "Trace ID: " in query["error_description"][0]
    assert query["state"] == ["st-1"]
    assert "tenant" not in query
    assert sim.client_credentials(CONTOSO).status_code == 400


@pytest.mark.parametrize(
    ("error", "code"),
    [("access_denied", 65004), ("access_denied", 90094), ("invalid_request", 50020), ("unauthorized_client", 700016)],
)
def test_consent_page_can_refuse_with_each_documented_error(sim: Sim, error: str, code: int) -> None:
    """The decline switch picks the OAuth error and AADSTS code the redirect carries."""
    sim.consent(CONTOSO, grant=False, declineError=error, declineAadsts=code)
    query = _consent_redirect(sim)
    assert (query["error"], query["error_description"][0].split(":")[0]) == ([error], f"AADSTS{code}")


def test_consent_decline_switch_refuses_codes_that_do_not_go_with_the_error(sim: Sim) -> None:
    """An AADSTS code Microsoft does not send with that error is a 400 of the control API."""
    resp = sim.post("/_sandbox/consent", json={"tenant": CONTOSO, "declineError": "access_denied",
                                               "declineAadsts": 700016})
    assert resp.status_code == 400


def test_consent_propagation_delay_refuses_app_tokens_for_a_while(sim: Sim) -> None:
    """With consentPropagationSeconds set, app-only tokens fail with AADSTS700016 (or 65001) right after consent,
    then work once the delay has passed; off by default."""
    sim.consent(CONTOSO, grant=True)
    _consent_redirect(sim)
    assert sim.client_credentials(CONTOSO).status_code == 200  # default: no delay
    sim.post("/_sandbox/faults", json={"consentPropagationSeconds": 0.6})
    _consent_redirect(sim)
    refused = sim.client_credentials(CONTOSO)
    assert (refused.status_code, refused.json()["error"], refused.json()["error_codes"]) == (
        400, "unauthorized_client", [700016])
    sim.post("/_sandbox/faults", json={"consentPropagationSeconds": 0.6, "consentPropagationAadsts": 65001})
    _consent_redirect(sim)
    assert sim.client_credentials(CONTOSO).json()["error_codes"] == [65001]
    time.sleep(0.7)
    assert sim.client_credentials(CONTOSO).status_code == 200


def test_revoked_consent_refuses_new_tokens_and_rejects_issued_ones(sim: Sim) -> None:
    """Revoking consent makes token requests fail with 700016 and Graph reject tokens already issued."""
    token = sim.app_token(CONTOSO)
    assert sim.graph("GET", "/users?$top=1", token).status_code == 200
    sim.consent(CONTOSO, revoke=True)
    assert sim.client_credentials(CONTOSO).json()["error_codes"] == [700016]
    resp = sim.graph("GET", "/users?$top=1", token)
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_client_credentials_need_a_default_scope_and_a_credential(sim: Sim) -> None:
    """Scopes must be <resource>/.default; a request without secret or assertion is invalid_client."""
    sim.consent(CONTOSO, granted=True)
    bad_scope = sim.client_credentials(CONTOSO, scope=f"{sim.url}/Calendars.Read")
    assert bad_scope.json()["error"] == "invalid_scope"
    no_secret = sim.post(
        f"/{CONTOSO}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "client_id": DEFAULT_CLIENT_ID, "scope": f"{sim.url}/.default"},
    )
    assert no_secret.status_code == 401
    assert no_secret.json()["error"] == "invalid_client"


def test_client_assertion_is_accepted_with_the_jwt_bearer_type(sim: Sim) -> None:
    """A federated-credential client assertion (any JWT, jwt-bearer type) gets a token."""
    sim.consent(CONTOSO, granted=True)
    assertion = jwt.encode({"aud": "api://AzureADTokenExchange", "sub": "mi"}, "k" * 32, algorithm="HS256")
    form = {
        "grant_type": "client_credentials",
        "client_id": DEFAULT_CLIENT_ID,
        "scope": f"{sim.url}/.default",
        "client_assertion": assertion,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    }
    assert sim.post(f"/{CONTOSO}/oauth2/v2.0/token", data=form).status_code == 200
    form["client_assertion_type"] = "wrong"
    assert sim.post(f"/{CONTOSO}/oauth2/v2.0/token", data=form).status_code == 400


def test_sandbox_user_token_verifies_against_jwks_as_a_v2_api_token(sim: Sim) -> None:
    """/_sandbox/token mints a token for the service: v2 issuer, aud = client id, tid, oid, scp."""
    token = sim.post("/_sandbox/token", json={"user": ALICE, "roles": ["Integration.Admin"]}).json()["access_token"]
    claims = jwt.decode(
        token,
        _jwks_key(sim, token),
        algorithms=["RS256"],
        audience=DEFAULT_CLIENT_ID,
        issuer=f"{sim.url}/{CONTOSO}/v2.0",
    )
    assert claims["tid"] == CONTOSO
    assert claims["oid"] == ALICE_ID
    assert claims["scp"] == "access_as_user"
    assert claims["roles"] == ["Integration.Admin"]
    assert claims["ver"] == "2.0"
    assert claims["preferred_username"] == ALICE
    assert claims["exp"] - claims["iat"] > 3000


def test_sandbox_app_token_is_app_only_for_the_product_server(sim: Sim) -> None:
    """{app: true} gives an app-only token: idtyp app, roles, azp of the product server, no scp."""
    resp = sim.post("/_sandbox/token", json={"app": True, "tenant": FABRIKAM, "roles": ["Pairings.ReadWrite.All"]})
    token = resp.json()["access_token"]
    claims = jwt.decode(token, _jwks_key(sim, token), algorithms=["RS256"], audience=DEFAULT_CLIENT_ID)
    assert claims["idtyp"] == "app"
    assert claims["azp"] == PRODUCT_SERVER_CLIENT_ID
    assert claims["roles"] == ["Pairings.ReadWrite.All"]
    assert "scp" not in claims
    assert claims["iss"] == f"{sim.url}/{FABRIKAM}/v2.0"


def test_sandbox_token_for_unknown_user_is_404(sim: Sim) -> None:
    """Minting for a user nobody seeded is a clear 404."""
    assert sim.post("/_sandbox/token", json={"user": "ghost@contoso.test"}).status_code == 404


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def _authorize(sim: Sim, challenge: str, **extra: str) -> dict[str, list[str]]:
    params = {
        "client_id": DEFAULT_CLIENT_ID,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": f"{sim.url}/Calendars.ReadWrite offline_access openid",
        "state": "s-9",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "login_hint": "bob@contoso.test",
        **extra,
    }
    resp = sim.get(f"/{CONTOSO}/oauth2/v2.0/authorize", params=params, allow_redirects=False)
    assert resp.status_code == 302
    return parse_qs(urlsplit(resp.headers["Location"]).query)


def _redeem(sim: Sim, code: str, verifier: str) -> requests.Response:
    return sim.post(
        f"/{CONTOSO}/oauth2/v2.0/token",
        data={
            "grant_type": "authorization_code",
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": "x",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
    )


def test_auth_code_with_pkce_signs_in_the_login_hint_user_and_code_is_single_use(sim: Sim) -> None:
    """authorize -> code (login_hint picks the user) -> token with refresh; the code cannot be reused."""
    verifier, challenge = _pkce()
    query = _authorize(sim, challenge)
    assert query["state"] == ["s-9"]
    code = query["code"][0]
    assert _redeem(sim, code, "wrong-verifier").json()["error_codes"] == [501481]
    tokens = _redeem(sim, code, verifier).json()
    assert {"access_token", "refresh_token", "id_token"} <= set(tokens)
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["preferred_username"] == "bob@contoso.test"
    assert "Calendars.ReadWrite" in claims["scp"].split()
    assert _redeem(sim, code, verifier).json()["error_codes"] == [54005]
    me = sim.graph("GET", "/me/mailboxSettings", tokens["access_token"])
    assert me.status_code == 200
    assert me.json()["timeZone"] == "W. Europe Standard Time"
    other = sim.graph("GET", f"/users/{ALICE}/calendar", tokens["access_token"])
    assert other.status_code == 403


def test_authorize_requires_pkce_s256(sim: Sim) -> None:
    """Without a code challenge the sign-in redirects back with invalid_request."""
    query = _authorize(sim, "", code_challenge_method="plain")
    assert query["error"] == ["invalid_request"]


def test_refresh_tokens_rotate_and_revocation_gives_50173_or_700082(sim: Sim) -> None:
    """Each refresh returns a new refresh token and kills the old one; revoked users get invalid_grant."""
    verifier, challenge = _pkce()
    tokens = _redeem(sim, _authorize(sim, challenge)["code"][0], verifier).json()

    def refresh(rt: str) -> requests.Response:
        return sim.post(
            f"/{CONTOSO}/oauth2/v2.0/token",
            data={
                "grant_type": "refresh_token",
                "client_id": DEFAULT_CLIENT_ID,
                "client_secret": "x",
                "refresh_token": rt,
            },
        )

    second = refresh(tokens["refresh_token"]).json()
    assert second["refresh_token"] != tokens["refresh_token"]
    assert refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert sim.post("/_sandbox/users/bob@contoso.test/revoke", json={}).json()["revoked"] == 1
    assert refresh(second["refresh_token"]).json()["error_codes"] == [50173]
    third = _redeem(sim, _authorize(sim, challenge)["code"][0], verifier).json()
    sim.post("/_sandbox/users/bob@contoso.test/revoke", json={"reason": "inactivity"})
    assert refresh(third["refresh_token"]).json()["error_codes"] == [700082]


def test_blocked_user_consent_redirects_with_consent_errors(sim: Sim) -> None:
    """When users may not consent and no admin has, sign-in fails with 90094 (or 65001 for prompt=none)."""
    sim.consent(CONTOSO, userConsent=False)
    _, challenge = _pkce()
    query = _authorize(sim, challenge)
    assert query["error"] == ["access_denied"]
    assert query["error_description"][0].startswith("AADSTS90094")
    silent = _authorize(sim, challenge, prompt="none")
    assert silent["error"] == ["consent_required"]
    assert silent["error_description"][0].startswith("AADSTS65001")


def test_msal_confidential_client_gets_tokens_from_the_simulator(sim: Sim) -> None:
    """MSAL Python (instance discovery off, CA-trusting session) acquires an app-only token here."""
    sim.consent(CONTOSO, granted=True)
    session = requests.Session()
    session.trust_env = False
    session.verify = sim.ca
    app = msal.ConfidentialClientApplication(
        DEFAULT_CLIENT_ID,
        client_credential="s3cret-value",
        authority=f"{sim.url}/{CONTOSO}",
        http_client=session,
        instance_discovery=False,
    )
    result = app.acquire_token_for_client(scopes=[f"{sim.url}/.default"])
    assert "access_token" in result, result
    assert sim.graph("GET", "/users?$top=1", result["access_token"]).status_code == 200


@pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended:UserWarning")
def test_msal_auth_code_flow_round_trips_with_nonce_and_pkce(sim: Sim) -> None:
    """MSAL's initiate/acquire auth-code flow works against the simulator (nonce echoed, client_info)."""
    session = requests.Session()
    session.trust_env = False
    session.verify = sim.ca
    app = msal.ConfidentialClientApplication(
        DEFAULT_CLIENT_ID,
        client_credential="s3cret-value",
        authority=f"{sim.url}/{CONTOSO}",
        http_client=session,
        instance_discovery=False,
    )
    flow = app.initiate_auth_code_flow([f"{sim.url}/Calendars.ReadWrite"], redirect_uri=REDIRECT, login_hint=ALICE)
    resp = sim.get(flow["auth_uri"].removeprefix(sim.url), allow_redirects=False)
    auth_response = {k: v[0] for k, v in parse_qs(urlsplit(resp.headers["Location"]).query).items()}
    result = app.acquire_token_by_auth_code_flow(flow, auth_response)
    assert "access_token" in result, result
    assert result["id_token_claims"]["oid"] == ALICE_ID
    assert "refresh_token" in result
