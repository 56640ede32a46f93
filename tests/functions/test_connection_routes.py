"""The /api/me/connection routes through the function app, with a fake delegated sign-in."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from core.domain.integration import ConnectionMethod, Integration, IntegrationStatus
from core.names import Tables, user_token_secret_name
from core.ports import SignedInUser
from core.services.stores.connections import ConnectionRepository
from core.services.stores.integrations import IntegrationRepository
from tests import log_guard
from tests.functions.conftest import TENANT_A, TENANT_B, USER_A, USER_A2, Env, TokenFactory, bearer
from tests.support.auth_flow import FakeAuthFlow
from tests.support.memory import InMemorySecretStore

ADMIN = ["Integration.Admin"]
MAILBOX_ID = "a0000000-0000-4000-8000-00000000005a"


@pytest.fixture
def flow(env: Env) -> FakeAuthFlow:
    """Tenant A uses the per-user method; sign-ins go through a fake flow that signs in USER_A."""
    secrets = env.container.secrets
    assert isinstance(secrets, InMemorySecretStore)
    fake = FakeAuthFlow(secrets)
    fake.signed_in = SignedInUser(TENANT_A, USER_A, None, '{"cache": "opaque"}')
    _set_method(env, TENANT_A, ConnectionMethod.PER_USER)
    env.container.auth_flow = fake
    return fake


def _set_method(env: Env, tenant: str, method: ConnectionMethod) -> None:
    repo = IntegrationRepository(env.tables)
    found = repo.get(tenant)
    repo.save(Integration(tenant, method=method, status=IntegrationStatus.CONNECTED), found.etag if found else None)


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _connect(env: Env, token: str) -> str:
    """POST, then the browser's return to the callback with a made-up code; returns the app URL it lands on."""
    r = env.client.post("/api/me/connection", headers=bearer(token))
    assert r.status == 200, r.text
    state = _query(r.json()["authorizeUrl"])["state"]
    code = log_guard.sentinel("auth-code-route-test-0123456789")
    back = env.client.get(f"/api/me/connection/callback?code={code}&state={state}&session_state=s")
    assert back.status == 302, back.text
    return back.header("Location") or ""


def test_post_returns_an_authorize_url_bound_to_the_caller(env: Env, mint: TokenFactory, flow: FakeAuthFlow) -> None:
    """POST /api/me/connection answers {authorizeUrl}; the flow waits server-side for the callback."""
    r = env.client.post("/api/me/connection", headers=bearer(mint()))
    assert r.status == 200, r.text
    assert set(r.json()) == {"authorizeUrl"}
    rows = list(env.tables.query(Tables.OAUTH_STATES, TENANT_A))
    assert len(rows) == 1 and rows[0].data["userOid"] == USER_A


def test_full_sign_in_then_get_then_delete(env: Env, mint: TokenFactory, flow: FakeAuthFlow) -> None:
    """Callback 302s to the app with connection=connected; GET says connected; DELETE forgets and answers 204."""
    token = mint()
    landed = _connect(env, token)
    assert landed.startswith("https://app.example.com/") and _query(landed) == {"connection": "connected"}
    assert env.client.get("/api/me/connection", headers=bearer(token)).json() == {
        "connected": True, "method": "perUser", "needsReconnect": False}
    assert env.container.secrets.get(user_token_secret_name(TENANT_A, USER_A)) is not None
    r = env.client.delete("/api/me/connection", headers=bearer(token))
    assert r.status == 204 and r.body == b""
    assert env.container.secrets.get(user_token_secret_name(TENANT_A, USER_A)) is None
    assert env.client.get("/api/me/connection", headers=bearer(token)).json()["connected"] is False


def test_get_shows_needs_reconnect_and_the_reason(env: Env, mint: TokenFactory, flow: FakeAuthFlow) -> None:
    """A connection the token provider flagged reads needsReconnect with its reason."""
    _connect(env, mint())
    ConnectionRepository(env.tables).mark_needs_reconnect(TENANT_A, USER_A, "700082", env.container.clock.now())
    assert env.client.get("/api/me/connection", headers=bearer(mint())).json() == {
        "connected": False, "method": "perUser", "needsReconnect": True, "reason": "700082"}


def test_another_user_signing_in_is_refused_at_the_callback(env: Env, mint: TokenFactory, flow: FakeAuthFlow) -> None:
    """USER_A2 starts, USER_A signs in at Microsoft: the callback lands on an error and stores nothing."""
    landed = _connect(env, mint(oid=USER_A2))
    assert _query(landed) == {"connection": "error", "code": "connection_wrong_user"}
    assert env.container.secrets.get(user_token_secret_name(TENANT_A, USER_A)) is None


def test_consent_blocked_callback_carries_the_admin_consent_link(
    env: Env, mint: TokenFactory, flow: FakeAuthFlow
) -> None:
    """Microsoft's 90094 redirect becomes ?connection=error&code=admin_consent_required&adminConsentUrl=..."""
    r = env.client.post("/api/me/connection", headers=bearer(mint()))
    state = _query(r.json()["authorizeUrl"])["state"]
    back = env.client.get("/api/me/connection/callback", query={
        "state": state, "error": "access_denied",
        "error_description": "AADSTS90094: Admin consent is required for the permissions requested."})
    landed = _query(back.header("Location") or "")
    assert back.status == 302 and landed["code"] == "admin_consent_required"
    assert landed["adminConsentUrl"].startswith(f"https://login.microsoftonline.com/{TENANT_A}/v2.0/adminconsent?")
    assert "AADSTS" not in (back.header("Location") or "")


def test_callback_without_a_valid_state_still_redirects(env: Env, flow: FakeAuthFlow) -> None:
    """The anonymous callback never answers an error page: 302 to the app with connection_state_invalid."""
    back = env.client.get("/api/me/connection/callback?code=x&state=nonsense")
    assert back.status == 302
    assert _query(back.header("Location") or "") == {"connection": "error", "code": "connection_state_invalid"}


def test_domain_wide_tenant_users_have_nothing_to_connect(env: Env, mint: TokenFactory, flow: FakeAuthFlow) -> None:
    """POST in a domain-wide tenant is 409 connection_method_mismatch; GET says connected by the tenant's method."""
    _set_method(env, TENANT_B, ConnectionMethod.DOMAIN_WIDE)
    token = mint(tid=TENANT_B, oid="b0000000-0000-4000-8000-000000000001")
    r = env.client.post("/api/me/connection", headers=bearer(token))
    assert r.status == 409 and r.json()["error"]["code"] == "connection_method_mismatch"
    assert env.client.get("/api/me/connection", headers=bearer(token)).json() == {
        "connected": True, "method": "domainWide", "needsReconnect": False}


def test_service_account_connect_is_an_admin_body_option(env: Env, mint: TokenFactory, flow: FakeAuthFlow) -> None:
    """{"purpose": "serviceAccount", "mailbox"}: 403 for users, 200 for admins, the mailbox becomes the login hint."""
    _set_method(env, TENANT_A, ConnectionMethod.SERVICE_ACCOUNT)
    body = {"purpose": "serviceAccount", "mailbox": "scheduling@contoso.example"}
    r = env.client.post("/api/me/connection", headers=bearer(mint()), json=body)
    assert r.status == 403 and r.json()["error"]["code"] == "admin_role_required"
    flow.signed_in = SignedInUser(TENANT_A, MAILBOX_ID, "scheduling@contoso.example", "{}")
    admin = mint(oid=USER_A2, roles=ADMIN)
    r = env.client.post("/api/me/connection", headers=bearer(admin), json=body)
    assert r.status == 200, r.text
    assert flow.begun[-1]["login_hint"] == "scheduling@contoso.example"
    state = _query(r.json()["authorizeUrl"])["state"]
    back = env.client.get(f"/api/me/connection/callback?code=c&state={state}")
    assert _query(back.header("Location") or "") == {"connection": "connected"}
    assert env.client.get("/api/me/connection", headers=bearer(mint())).json()["connected"] is True


def test_post_body_is_validated(env: Env, mint: TokenFactory, flow: FakeAuthFlow) -> None:
    """Unknown fields or purposes are 422; a malformed mailbox is 422 without echoing it."""
    for body in ({"purpose": "everything"}, {"extra": 1}, {"purpose": "serviceAccount", "mailbox": "not an email"}):
        r = env.client.post("/api/me/connection", headers=bearer(mint(roles=ADMIN)), json=body)
        assert r.status == 422, (body, r.text)
        assert "not an email" not in r.text
