"""AppOnlyTokenProvider: lazy per-tenant MSAL apps, credentials by setting, MSAL errors -> typed errors."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import responses

from core.adapters.http import build_session
from core.adapters.tokens import (
    CLIENT_CERTIFICATE_NAME,
    CLIENT_SECRET_NAME,
    FEDERATION_SCOPE,
    AppOnlyTokenProvider,
    certificate_credential,
)
from core.domain.calendar import GraphIdentity
from core.domain.errors import (
    ConsentMissing,
    CredentialInvalid,
    NotImplementedYet,
    TenantNotFound,
    TransientGraphError,
)
from core.settings import Settings, StorageSettings

TENANT_A = "11111111-2222-3333-4444-555555555555"
TENANT_B = "66666666-7777-8888-9999-000000000000"
CLIENT_ID = "aaaaaaaa-0000-0000-0000-000000000000"
MI_CLIENT_ID = "bbbbbbbb-0000-0000-0000-000000000000"
LOGIN = "https://login.microsoftonline.com"


def settings(**changes: Any) -> Settings:
    base = Settings(
        storage=StorageSettings("UseDevelopmentStorage=true", None, None, None),
        entra_client_id=CLIENT_ID,
        entra_credential="secret",
        api_audience=CLIENT_ID,
        api_scope="access_as_user",
        authority_host=LOGIN,
        graph_base_url="https://graph.microsoft.com/v1.0",
        public_base_url="https://app.example.com",
        app_url="https://spa.example.com",
    )
    return replace(base, **changes)


class FakeSecrets:
    """In-memory SecretStore."""

    def __init__(self, values: dict[str, str] | None = None) -> None:
        self.values = dict(values or {})
        self.reads: list[str] = []

    def get(self, name: str) -> str | None:
        self.reads.append(name)
        return self.values.get(name)

    def set(self, name: str, value: str) -> None:
        self.values[name] = value

    def delete(self, name: str) -> None:
        self.values.pop(name, None)

    def ping(self) -> None:
        return None


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current


class FakeMsalApp:
    """Stands in for ConfidentialClientApplication: returns a scripted result, records scopes."""

    def __init__(self, result: dict[str, Any], credential: Any) -> None:
        self.result = result
        self.credential = credential
        self.scopes: list[list[str]] = []

    def acquire_token_for_client(self, scopes: list[str], **kwargs: Any) -> dict[str, Any]:
        self.scopes.append(scopes)
        if "client_assertion" in (self.credential if isinstance(self.credential, dict) else {}):
            self.credential["client_assertion"]()  # MSAL calls it when it needs the wire
        return self.result


@dataclass
class FactoryCall:
    client_id: str
    credential: Any
    authority: str
    instance_discovery: bool


class FakeFactory:
    """App factory that counts constructions per authority."""

    def __init__(self, result: dict[str, Any] | None = None) -> None:
        self.result = result or {"access_token": "at", "token_type": "Bearer", "expires_in": 3599}
        self.calls: list[FactoryCall] = []
        self.apps: list[FakeMsalApp] = []

    def __call__(
        self, client_id: str, credential: Any, authority: str, session: requests.Session, instance_discovery: bool
    ) -> FakeMsalApp:
        self.calls.append(FactoryCall(client_id, credential, authority, instance_discovery))
        app = FakeMsalApp(self.result, credential)
        self.apps.append(app)
        return app


@dataclass
class AccessToken:
    token: str
    expires_on: int


class FakeManagedIdentity:
    """ManagedIdentityCredential fake: records requested scopes, returns a short-lived token."""

    def __init__(self, clock: FixedClock) -> None:
        self.clock = clock
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(f"mi-token-{len(self.scopes)}", int(self.clock.now().timestamp()) + 3600)


# --- real MSAL against responses -------------------------------------------------------------


def _openid_config(host: str, tenant: str) -> dict[str, Any]:
    return {
        "token_endpoint": f"{host}/{tenant}/oauth2/v2.0/token",
        "authorization_endpoint": f"{host}/{tenant}/oauth2/v2.0/authorize",
        "issuer": f"{host}/{tenant}/v2.0",
        "jwks_uri": f"{host}/{tenant}/discovery/v2.0/keys",
        "response_types_supported": ["code"],
    }


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def _mock_tenant(mock: responses.RequestsMock, host: str, tenant: str, token: str) -> None:
    mock.get(f"{host}/{tenant}/v2.0/.well-known/openid-configuration", json=_openid_config(host, tenant))
    mock.post(
        f"{host}/{tenant}/oauth2/v2.0/token",
        json={"access_token": token, "token_type": "Bearer", "expires_in": 3599},
    )


def test_real_msal_token_per_tenant_is_cached_and_app_built_lazily(mock: responses.RequestsMock) -> None:
    """Construction contacts nothing; each tenant gets its own authority and token; repeats hit MSAL's cache."""
    _mock_tenant(mock, LOGIN, TENANT_A, "token-a")
    _mock_tenant(mock, LOGIN, TENANT_B, "token-b")
    provider = AppOnlyTokenProvider(settings(), build_session(settings()), FakeSecrets({CLIENT_SECRET_NAME: "s3"}))
    assert len(mock.calls) == 0  # lazy: nothing fetched at start-up
    assert provider.token(GraphIdentity(TENANT_A)) == "token-a"
    assert provider.token(GraphIdentity(TENANT_B)) == "token-b"
    assert provider.token(GraphIdentity(TENANT_A)) == "token-a"
    token_posts = [c for c in mock.calls if c.request.method == "POST"]
    discoveries = [c for c in mock.calls if c.request.method == "GET"]
    assert len(token_posts) == 2 and len(discoveries) == 2
    form = parse_qs(token_posts[0].request.body)
    assert form["grant_type"] == ["client_credentials"]
    assert form["scope"] == ["https://graph.microsoft.com/.default"]
    assert form["client_id"] == [CLIENT_ID]


def test_real_msal_error_dict_becomes_typed_error(mock: responses.RequestsMock) -> None:
    """Entra's 400 with AADSTS65001 reaches the caller as ConsentMissing with the code kept."""
    mock.get(f"{LOGIN}/{TENANT_A}/v2.0/.well-known/openid-configuration", json=_openid_config(LOGIN, TENANT_A))
    # MSAL looks up authority aliases (instance discovery) on the error path.
    mock.get(
        f"{LOGIN}/common/discovery/instance",
        json={
            "tenant_discovery_endpoint": f"{LOGIN}/common/v2.0/.well-known/openid-configuration",
            "metadata": [{"preferred_network": "login.microsoftonline.com",
                          "aliases": ["login.microsoftonline.com", "login.windows.net"]}],
        },
    )
    mock.post(
        f"{LOGIN}/{TENANT_A}/oauth2/v2.0/token",
        status=400,
        json={
            "error": "invalid_grant",
            "error_description": "AADSTS65001: The user or administrator has not consented to use the application.",
            "error_codes": [65001],
            "trace_id": "t-1",
            "correlation_id": "c-1",
        },
    )
    provider = AppOnlyTokenProvider(settings(), build_session(settings()), FakeSecrets({CLIENT_SECRET_NAME: "s3"}))
    with pytest.raises(ConsentMissing) as caught:
        provider.token(GraphIdentity(TENANT_A))
    assert caught.value.aadsts == 65001
    assert caught.value.oauth_error == "invalid_grant"


def test_unknown_tenant_at_discovery_is_tenant_not_found(mock: responses.RequestsMock) -> None:
    """OIDC discovery answering 400 AADSTS90002 becomes TenantNotFound with the code."""
    mock.get(
        f"{LOGIN}/{TENANT_A}/v2.0/.well-known/openid-configuration",
        status=400,
        json={"error": "invalid_tenant", "error_description": "AADSTS90002: Tenant not found.", "error_codes": [90002]},
    )
    provider = AppOnlyTokenProvider(settings(), build_session(settings()), FakeSecrets({CLIENT_SECRET_NAME: "s"}))
    with pytest.raises(TenantNotFound) as caught:
        provider.token(GraphIdentity(TENANT_A))
    assert caught.value.aadsts == 90002


def test_authority_unreachable_is_transient(mock: responses.RequestsMock) -> None:
    """A connection failure while talking to Entra ID is TransientGraphError, not an authorization verdict."""
    mock.get(
        f"{LOGIN}/{TENANT_A}/v2.0/.well-known/openid-configuration", body=requests.ConnectionError("down")
    )
    provider = AppOnlyTokenProvider(settings(), build_session(settings()), FakeSecrets({CLIENT_SECRET_NAME: "s"}))
    with pytest.raises(TransientGraphError):
        provider.token(GraphIdentity(TENANT_A))


def test_authority_server_error_is_transient_with_retry_after(mock: responses.RequestsMock) -> None:
    """Discovery answering 503 (MSAL raises MsalServiceError) is a transient outage with a retry hint."""
    mock.get(f"{LOGIN}/{TENANT_A}/v2.0/.well-known/openid-configuration", status=503, body="Service Unavailable")
    provider = AppOnlyTokenProvider(settings(), build_session(settings()), FakeSecrets({CLIENT_SECRET_NAME: "s"}))
    with pytest.raises(TransientGraphError) as caught:
        provider.token(GraphIdentity(TENANT_A))
    assert caught.value.retry_after is not None


def test_non_public_authority_skips_instance_discovery(mock: responses.RequestsMock) -> None:
    """A simulator/national-cloud-like host is used directly: no call to login.microsoftonline.com."""
    sim = "https://login.simulator.test"
    _mock_tenant(mock, sim, TENANT_A, "sim-token")
    s = settings(authority_host=sim)
    provider = AppOnlyTokenProvider(s, build_session(s), FakeSecrets({CLIENT_SECRET_NAME: "s"}))
    assert provider.token(GraphIdentity(TENANT_A)) == "sim-token"
    assert all(c.request.url.startswith(sim) for c in mock.calls)


# --- with a fake MSAL factory -----------------------------------------------------------------


def test_app_is_built_once_per_tenant_even_under_concurrency() -> None:
    """Many threads asking for one tenant's token build its MSAL app once."""
    factory = FakeFactory()
    provider = AppOnlyTokenProvider(
        settings(), requests.Session(), FakeSecrets({CLIENT_SECRET_NAME: "s"}), app_factory=factory
    )
    threads = [threading.Thread(target=provider.token, args=(GraphIdentity(TENANT_A),)) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    provider.token(GraphIdentity(TENANT_B.upper()))
    assert [c.authority for c in factory.calls] == [f"{LOGIN}/{TENANT_A}", f"{LOGIN}/{TENANT_B}"]
    assert factory.calls[0].instance_discovery is True


def test_invalidate_drops_the_tenant_app() -> None:
    """After invalidate(tenant) the next token builds a fresh app (and so a fresh token cache)."""
    factory = FakeFactory()
    provider = AppOnlyTokenProvider(
        settings(), requests.Session(), FakeSecrets({CLIENT_SECRET_NAME: "s"}), app_factory=factory
    )
    provider.token(GraphIdentity(TENANT_A))
    provider.invalidate(TENANT_A)
    provider.token(GraphIdentity(TENANT_A))
    assert len(factory.calls) == 2


def test_secret_credential_comes_from_the_secret_store() -> None:
    """ENTRA_CREDENTIAL=secret reads entra-client-secret; a missing one is CredentialInvalid."""
    factory = FakeFactory()
    provider = AppOnlyTokenProvider(
        settings(), requests.Session(), FakeSecrets({CLIENT_SECRET_NAME: "shh"}), app_factory=factory
    )
    provider.token(GraphIdentity(TENANT_A))
    assert factory.calls[0].credential == "shh"
    empty = AppOnlyTokenProvider(settings(), requests.Session(), FakeSecrets(), app_factory=factory)
    with pytest.raises(CredentialInvalid):
        empty.token(GraphIdentity(TENANT_A))


def test_federated_credential_uses_managed_identity_and_no_secret() -> None:
    """federated_identity passes a client-assertion callable backed by the managed identity; no secret is read."""
    clock = FixedClock(datetime(2025, 1, 2, 10, 0, tzinfo=UTC))
    mi = FakeManagedIdentity(clock)
    made_for: list[str | None] = []

    def mi_factory(client_id: str | None) -> FakeManagedIdentity:
        made_for.append(client_id)
        return mi

    secrets = FakeSecrets()
    factory = FakeFactory()
    s = settings(entra_credential="federated_identity", managed_identity_client_id=MI_CLIENT_ID)
    provider = AppOnlyTokenProvider(
        s, requests.Session(), secrets, clock, app_factory=factory, managed_identity_factory=mi_factory
    )
    provider.token(GraphIdentity(TENANT_A))
    provider.token(GraphIdentity(TENANT_B))
    credential = factory.calls[0].credential
    assert set(credential) == {"client_assertion"}
    assert credential["client_assertion"]() == "mi-token-1"  # cached: one MI call for both tenants
    assert mi.scopes == [(FEDERATION_SCOPE,)]
    assert made_for == [MI_CLIENT_ID]
    assert secrets.reads == []
    clock.current += timedelta(minutes=56)  # inside the 5-minute refresh margin
    assert credential["client_assertion"]() == "mi-token-2"


def test_federated_in_local_mode_without_identity_falls_back_to_local_secret() -> None:
    """On a developer machine with no managed identity, the local store's client secret is used."""
    factory = FakeFactory()
    s = settings(entra_credential="federated_identity", managed_identity_client_id=None, local_mode=True)
    provider = AppOnlyTokenProvider(s, requests.Session(), FakeSecrets({CLIENT_SECRET_NAME: "dev"}),
                                    app_factory=factory)
    provider.token(GraphIdentity(TENANT_A))
    assert factory.calls[0].credential == "dev"


def test_certificate_credential_builds_msal_certificate_dict() -> None:
    """A PEM with certificate and key becomes {private_key, thumbprint} with the cert's SHA-1 thumbprint."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "app")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    factory = FakeFactory()
    provider = AppOnlyTokenProvider(
        settings(entra_credential="certificate"),
        requests.Session(),
        FakeSecrets({CLIENT_CERTIFICATE_NAME: cert_pem + key_pem}),
        app_factory=factory,
    )
    provider.token(GraphIdentity(TENANT_A))
    credential = factory.calls[0].credential
    assert credential["thumbprint"] == cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - x5t is SHA-1
    assert credential["private_key"].strip() == key_pem.strip()
    with pytest.raises(CredentialInvalid):
        certificate_credential(cert_pem)  # no key


def test_delegated_identity_is_not_implemented_by_app_only_provider() -> None:
    """A GraphIdentity with a user id asks for a delegated token, which this provider does not give."""
    provider = AppOnlyTokenProvider(settings(), requests.Session(), FakeSecrets(), app_factory=FakeFactory())
    with pytest.raises(NotImplementedYet):
        provider.token(GraphIdentity(TENANT_A, user_id="u1"))


def test_non_guid_tenant_is_refused_before_any_network_call() -> None:
    """A tenant id that is not a GUID never becomes part of an authority URL."""
    factory = FakeFactory()
    provider = AppOnlyTokenProvider(settings(), requests.Session(), FakeSecrets(), app_factory=factory)
    with pytest.raises(TenantNotFound):
        provider.token(GraphIdentity("common"))
    assert factory.calls == []


def test_msal_error_result_is_typed_and_keeps_aadsts() -> None:
    """An MSAL error dict from acquire_token_for_client becomes the mapped error (secret expired)."""
    factory = FakeFactory(
        {"error": "invalid_client", "error_description": "AADSTS7000222: The provided client secret keys are expired.",
         "error_codes": [7000222]}
    )
    provider = AppOnlyTokenProvider(settings(), requests.Session(), FakeSecrets({CLIENT_SECRET_NAME: "old"}),
                                    app_factory=factory)
    with pytest.raises(CredentialInvalid) as caught:
        provider.token(GraphIdentity(TENANT_A))
    assert caught.value.aadsts == 7000222
    assert "expired" not in str(caught.value.details)
