"""Who gets in where: onboarded tenants, admins, the product's server, set-up routes."""

from __future__ import annotations

import pytest

from core.services.tenancy import TenantGate
from tests.functions.conftest import (
    TENANT_A,
    TENANT_NEW,
    TENANT_STRANGER,
    USER_A,
    Env,
    TokenFactory,
    admitted,
    bearer,
    error_code,
    onboard,
)
from tests.support.memory import InMemoryTableStore

ADMIN = ["Integration.Admin"]
PAIRING = {"mentor": USER_A, "mentee": "mentee@contoso.example", "active": True}
INTEGRATION = {"vendor": "outlook365", "method": "domainWide", "ownerEmail": "owner@contoso.example"}

ADMIN_ROUTES = [
    ("GET", "/api/integration", None),
    ("PUT", "/api/integration", INTEGRATION),
    ("DELETE", "/api/integration", None),
    ("POST", "/api/integration/consent", None),
    ("POST", "/api/integration/access-tests", None),
    ("GET", "/api/integration/access-tests/latest", None),
]


def _call(env: Env, method: str, path: str, token: str, body: object = None) -> tuple[int, str | None]:
    r = env.client.request(method, path, headers=bearer(token), json=body)
    return r.status, error_code(r)


def _admitted(env: Env, method: str, path: str, token: str, body: object = None) -> bool:
    return admitted(env.client.request(method, path, headers=bearer(token), json=body))


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
def test_non_admin_is_refused_on_admin_routes(
    env: Env, mint: TokenFactory, method: str, path: str, body: object
) -> None:
    """A signed-in user without Integration.Admin gets 403 on every admin route."""
    assert _call(env, method, path, mint(), body) == (403, "admin_role_required")


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
def test_admin_of_onboarded_tenant_gets_in(
    env: Env, mint: TokenFactory, method: str, path: str, body: object
) -> None:
    """An admin of an onboarded tenant passes authentication and authorization."""
    assert _admitted(env, method, path, mint(roles=ADMIN), body)


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
def test_admin_of_allowed_tenant_may_onboard(
    env: Env, mint: TokenFactory, method: str, path: str, body: object
) -> None:
    """Set-up routes let an admin of a tenant listed in ALLOWED_TENANTS in before onboarding."""
    assert _admitted(env, method, path, mint(tid=TENANT_NEW, roles=ADMIN), body)


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
def test_admin_of_disallowed_tenant_cannot_onboard(
    env: Env, mint: TokenFactory, method: str, path: str, body: object
) -> None:
    """A tenant the deployment does not serve is 403 even for its admins."""
    assert _call(env, method, path, mint(tid=TENANT_STRANGER, roles=ADMIN), body) == (403, "tenant_not_allowed")


def test_any_tenant_may_onboard_when_allowed_tenants_is_star(env: Env, mint: TokenFactory) -> None:
    """ALLOWED_TENANTS=* opens set-up to every tenant, but not the other routes."""
    from dataclasses import replace

    env.container.settings = replace(env.settings, allowed_tenants=None)
    assert _admitted(env, "GET", "/api/integration", mint(tid=TENANT_STRANGER, roles=ADMIN))
    assert _call(env, "GET", "/api/me/connection", mint(tid=TENANT_STRANGER)) == (403, "tenant_not_onboarded")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/me/connection", None),
        ("GET", "/api/me/pairings", None),
        ("GET", "/api/sessions/abc", None),
        ("POST", "/api/me/connection", None),
    ],
)
def test_tenant_not_onboarded_is_403(env: Env, mint: TokenFactory, method: str, path: str, body: object) -> None:
    """Valid tokens of a tenant that has not onboarded (allowed or not) get 403 tenant_not_onboarded."""
    for tid in (TENANT_NEW, TENANT_STRANGER):
        assert _call(env, method, path, mint(tid=tid), body) == (403, "tenant_not_onboarded")


@pytest.mark.parametrize("status", ["not_configured", "consent_pending", "disconnected", ""])
def test_only_onboarded_statuses_let_a_tenant_in(env: Env, mint: TokenFactory, status: str) -> None:
    """An integration record that is not (or no longer) onboarded keeps users out."""
    onboard(env.tables, TENANT_NEW, status)
    assert _call(env, "GET", "/api/me/connection", mint(tid=TENANT_NEW)) == (403, "tenant_not_onboarded")


def test_failed_integration_still_lets_users_in(env: Env, mint: TokenFactory) -> None:
    """A tenant whose integration failed stays onboarded so users can see their sessions and the error."""
    onboard(env.tables, TENANT_NEW, "failed")
    assert _admitted(env, "GET", "/api/me/connection", mint(tid=TENANT_NEW))


def test_product_server_app_token_may_write_pairings(env: Env, mint: TokenFactory) -> None:
    """An app-only token with Pairings.ReadWrite.All of an onboarded tenant passes on pairing writes."""
    token = mint(app=True, roles=["Pairings.ReadWrite.All"])
    assert _admitted(env, "PUT", "/api/pairings/p-1", token, PAIRING)
    assert _admitted(env, "DELETE", "/api/pairings/p-1", token)


def test_app_token_without_the_role_cannot_write_pairings(env: Env, mint: TokenFactory) -> None:
    """App-only tokens need the Pairings.ReadWrite.All role."""
    for roles in (None, ["Integration.Admin"], ["Pairings.Read.All"]):
        token = mint(app=True, roles=roles)
        assert _call(env, "PUT", "/api/pairings/p-1", token, PAIRING) == (403, "pairing_writer_required")


def test_app_token_of_a_tenant_not_onboarded_cannot_write_pairings(env: Env, mint: TokenFactory) -> None:
    """The product's server is held to the onboarded-tenant rule too."""
    token = mint(app=True, tid=TENANT_NEW, roles=["Pairings.ReadWrite.All"])
    assert _call(env, "PUT", "/api/pairings/p-1", token, PAIRING) == (403, "tenant_not_onboarded")


def test_pairing_writes_need_admin_for_users(env: Env, mint: TokenFactory) -> None:
    """A normal user cannot write pairings; an admin can; a user holding only the app role cannot."""
    assert _call(env, "PUT", "/api/pairings/p-1", mint(), PAIRING) == (403, "pairing_writer_required")
    assert _call(env, "PUT", "/api/pairings/p-1", mint(roles=["Pairings.ReadWrite.All"]), PAIRING)[0] == 403
    assert _admitted(env, "PUT", "/api/pairings/p-1", mint(roles=ADMIN), PAIRING)


def test_anonymous_routes_need_no_token(env: Env) -> None:
    """Health, the OpenAPI document and the permission list answer without a token."""
    assert env.client.get("/api/health").status == 200
    assert env.client.get("/api/openapi.json").status == 200
    assert env.client.get("/api/integration/permissions").status == 200


def test_tenant_gate_caches_answers_briefly() -> None:
    """Positive answers are cached ~30 s and negative ones ~5 s, so onboarding shows up quickly."""
    tables = InMemoryTableStore()
    clock = [0.0]
    gate = TenantGate(tables, monotonic=lambda: clock[0])
    assert not gate.is_onboarded(TENANT_A)
    onboard(tables, TENANT_A)
    assert not gate.is_onboarded(TENANT_A)  # negative answer still cached
    clock[0] += 5.1
    assert gate.is_onboarded(TENANT_A)
    tables.delete("integrations", TENANT_A, "integration")
    clock[0] += 29
    assert gate.is_onboarded(TENANT_A)  # positive answer still cached
    clock[0] += 2
    assert not gate.is_onboarded(TENANT_A)


def test_tenant_gate_forget_takes_effect_immediately() -> None:
    """After the integration feature changes a tenant's status it can drop the cached answer."""
    tables = InMemoryTableStore()
    gate = TenantGate(tables, monotonic=lambda: 0.0)
    assert not gate.is_onboarded(TENANT_A.upper())
    onboard(tables, TENANT_A, "testing")
    gate.forget(TENANT_A)
    assert gate.is_onboarded(TENANT_A.upper())


def test_the_product_server_reaches_exactly_the_routes_that_name_an_app_role() -> None:
    """App-only tokens get past authentication only on pairing writes, the acting session/availability routes and
    the webhook endpoint routes."""
    from functions.auth import ACTING_KINDS, APP_KINDS, Auth
    from functions.endpoint import registered_routes

    reachable = {(s.method, s.route) for s in registered_routes() if s.auth in APP_KINDS}
    assert reachable == {
        ("PUT", "pairings/{pairingId}"), ("DELETE", "pairings/{pairingId}"),
        ("POST", "availability"), ("GET", "rooms"), ("POST", "rooms/availability"),
        ("POST", "sessions"), ("GET", "sessions"), ("GET", "sessions/{id}"),
        ("PATCH", "sessions/{id}"), ("DELETE", "sessions/{id}"),
        ("POST", "availability/series"), ("GET", "series"), ("GET", "series/{id}"), ("PATCH", "series/{id}"),
        ("DELETE", "series/{id}"),
        ("GET", "me/availability-rules"), ("PUT", "me/availability-rules"), ("DELETE", "me/availability-rules"),
        ("GET", "me/availability-rules/preview"),
        ("POST", "webhooks/endpoints"), ("GET", "webhooks/endpoints"), ("GET", "webhooks/endpoints/{endpointId}"),
        ("PATCH", "webhooks/endpoints/{endpointId}"), ("DELETE", "webhooks/endpoints/{endpointId}"),
        ("POST", "webhooks/endpoints/{endpointId}/rotate-secret"), ("POST", "webhooks/endpoints/{endpointId}/ping"),
        ("GET", "webhooks/endpoints/{endpointId}/deliveries"),
        ("POST", "webhooks/endpoints/{endpointId}/deliveries/{deliveryId}/replay"),
        ("POST", "webhooks/endpoints/{endpointId}/replay"),
    }
    readers = {(s.method, s.route) for s in registered_routes() if s.auth is Auth.SESSION_READER}
    assert readers == {("GET", "sessions"), ("GET", "sessions/{id}"), ("GET", "series/{id}")}
    assert ACTING_KINDS <= APP_KINDS


def test_an_app_acting_for_a_user_of_another_tenant_finds_nothing(env: Env, mint: TokenFactory) -> None:
    """Naming another tenant's user by object id acts inside the token's tenant only: nothing of theirs is seen."""
    from tests.functions.conftest import TENANT_B, USER_B

    onboard(env.tables, TENANT_B)
    token = mint(app=True, roles=["Sessions.ReadWrite.All"], tid=TENANT_A)
    r = env.client.get("/api/sessions", headers={**bearer(token), "X-On-Behalf-Of": USER_B})
    assert r.status == 200 and r.json() == []
