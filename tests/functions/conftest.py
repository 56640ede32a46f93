"""Fixtures for route tests: a test signing key, token minting, in-memory adapters, an in-process client."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

import function_app
from core.adapters.jwt_validator import JwtValidator
from core.bootstrap import Container, set_container
from core.names import Tables
from core.ports import Entity
from core.settings import Settings
from tests.support.app_client import AppClient
from tests.support.auth_flow import FakeAuthFlow
from tests.support.memory import FixedClock, InMemoryCommandQueue, InMemorySecretStore, InMemoryTableStore

CLIENT_ID = "11111111-2222-3333-4444-555555555555"
TENANT_A = "aaaaaaaa-0000-4000-8000-00000000000a"  # onboarded
TENANT_B = "bbbbbbbb-0000-4000-8000-00000000000b"  # onboarded
TENANT_NEW = "cccccccc-0000-4000-8000-00000000000c"  # allowed to onboard, not onboarded yet
TENANT_STRANGER = "dddddddd-0000-4000-8000-00000000000d"  # neither
USER_A = "a0000000-0000-4000-8000-000000000001"
USER_A2 = "a0000000-0000-4000-8000-000000000002"
USER_B = "b0000000-0000-4000-8000-000000000001"
KID = "test-key-1"
PRODUCT_SERVER = "e0000000-0000-4000-8000-00000000000e"  # the product server's client id (allow-listed)
SPA_CLIENT = "f0000000-0000-4000-8000-00000000000f"  # the SPA's client id (user tokens' azp)
AUTHORITY = "https://login.microsoftonline.com"

BASE_ENV = {
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "ENTRA_CLIENT_ID": CLIENT_ID,
    "ENTRA_CREDENTIAL": "secret",
    "PUBLIC_BASE_URL": "https://func.example.com",
    "APP_URL": "https://app.example.com",
    "KEY_VAULT_URI": "https://kv-test.vault.azure.net/",
    "ACS_ENDPOINT": "https://acs-test.communication.azure.com",
    "ALERT_SENDER_ADDRESS": "DoNotReply@alerts.example.com",
    "ALLOWED_TENANTS": f"{TENANT_A},{TENANT_B},{TENANT_NEW}",
    "PRODUCT_SERVER_CLIENT_IDS": PRODUCT_SERVER,
}


def make_settings(**overrides: str) -> Settings:
    return Settings.from_env({**BASE_ENV, **overrides})


def _b64(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwk_of(key: rsa.RSAPrivateKey, kid: str) -> dict[str, str]:
    numbers = key.public_key().public_numbers()
    return {"kty": "RSA", "use": "sig", "kid": kid, "n": _b64(numbers.n), "e": _b64(numbers.e)}


@pytest.fixture(scope="session")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def other_key() -> rsa.RSAPrivateKey:
    """A key that is not in the JWKS (forged signatures)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class KeySource:
    """The JWKS the validator sees; counts fetches so refresh behaviour can be asserted."""

    keys: list[dict[str, str]]
    fetches: int = 0

    def __call__(self) -> dict[str, Any]:
        self.fetches += 1
        return {"keys": list(self.keys)}


@pytest.fixture
def jwks(signing_key: rsa.RSAPrivateKey) -> KeySource:
    return KeySource([jwk_of(signing_key, KID)])


def claims_for(
    *,
    tid: str = TENANT_A,
    oid: str = USER_A,
    scp: str | None = "access_as_user",
    roles: list[str] | None = None,
    app: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "aud": CLIENT_ID,
        "iss": f"{AUTHORITY}/{tid}/v2.0",
        "iat": now - 10,
        "nbf": now - 10,
        "exp": now + 3600,
        "tid": tid,
        "oid": oid,
        "sub": uuid.uuid4().hex,
        "ver": "2.0",
        "name": "Test User",
        "preferred_username": "test.user@contoso.example",
    }
    if app:
        claims["idtyp"] = "app"
        claims["azp"] = PRODUCT_SERVER
        claims.pop("name")
        claims.pop("preferred_username")
    else:
        claims["azp"] = SPA_CLIENT
        if scp is not None:
            claims["scp"] = scp
    if roles:
        claims["roles"] = roles
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


TokenFactory = Callable[..., str]


@pytest.fixture
def mint(signing_key: rsa.RSAPrivateKey) -> TokenFactory:
    """Sign test tokens with the JWKS key (``key=``/``headers=`` to forge)."""

    def make(
        *, key: Any = None, algorithm: str = "RS256", headers: dict[str, Any] | None = None, **claims: Any
    ) -> str:
        hdrs = {"kid": KID, **(headers or {})}
        return jwt.encode(claims_for(**claims), key if key is not None else signing_key, algorithm=algorithm,
                          headers=hdrs)

    return make


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def onboard(tables: InMemoryTableStore, tenant_id: str, status: str = "connected") -> None:
    tables.upsert(Tables.INTEGRATIONS, Entity(tenant_id, "integration", {"status": status}))


@dataclass
class Env:
    settings: Settings
    tables: InMemoryTableStore
    queues: InMemoryCommandQueue
    container: Container
    jwks: KeySource
    client: AppClient


@pytest.fixture
def env(jwks: KeySource) -> Iterator[Env]:
    """The function app over in-memory adapters; tenants A and B onboarded; tokens checked against ``jwks``."""
    settings = make_settings()
    tables = InMemoryTableStore()
    queues = InMemoryCommandQueue()
    secrets = InMemorySecretStore()
    container = Container(
        settings=settings,
        tables=tables,
        queues=queues,
        secrets=secrets,
        auth_flow=FakeAuthFlow(secrets),
        clock=FixedClock(datetime(2025, 3, 3, 9, 0, tzinfo=UTC)),
        validator=JwtValidator(settings, jwks),
    )
    onboard(tables, TENANT_A)
    onboard(tables, TENANT_B, "degraded")
    set_container(container)
    try:
        yield Env(settings, tables, queues, container, jwks, AppClient(function_app.app))
    finally:
        set_container(None)


def reset_rate_limits(env: Env) -> None:
    """Empty every rate-limit bucket (the shared table rows and the instance's leases)."""
    for row in list(env.tables.all(Tables.RATE_LIMITS)):
        env.tables.delete(Tables.RATE_LIMITS, row.partition_key, row.row_key)
    env.container.rate_limiter.reset()


# Error codes of the authentication/authorization layer (functions/auth.py, core/services/authz.py).
AUTH_REFUSAL_CODES = frozenset({
    "unauthenticated", "invalid_token", "token_expired", "insufficient_scope", "user_token_required",
    "tenant_not_onboarded", "tenant_not_allowed", "admin_role_required", "pairing_writer_required",
    "app_not_allowed", "sessions_role_required", "on_behalf_of_not_allowed", "webhook_manager_required",
})


def error_code(response: Any) -> str | None:
    """The envelope's error code, or None for a success / empty body."""
    if response.status < 400 or not response.body:
        return None
    code = response.json()["error"]["code"]
    return str(code)


def admitted(response: Any) -> bool:
    """The request got past authentication and authorization, whatever the feature answered next
    (501 while a feature is a stub; its own 2xx/4xx once it lands)."""
    return not (response.status in (401, 403) and error_code(response) in AUTH_REFUSAL_CODES)


def validated(response: Any) -> bool:
    """The request got past body/query/path validation (and auth)."""
    return admitted(response) and response.status not in (400, 413, 422)
