"""App-only Microsoft Graph tokens per customer tenant (client credentials via MSAL).

One ``msal.ConfidentialClientApplication`` per tenant, authority
``{AUTHORITY_HOST}/{tenant id}`` (app-only tokens through ``common``/``organizations`` are
unreliable), built lazily under a per-tenant lock because MSAL fetches the authority's
OpenID configuration when constructed. MSAL's in-memory cache keeps each tenant's token
until near expiry, so most calls cost no network round trip.

The app's own credential is chosen by ``ENTRA_CREDENTIAL``:

- ``federated_identity`` (recommended, no secret anywhere): a token of the user-assigned
  managed identity (``AZURE_CLIENT_ID``) for audience ``api://AzureADTokenExchange`` is
  the client assertion. In local mode without ``AZURE_CLIENT_ID`` there is no managed
  identity, so the provider falls back to the ``entra-client-secret`` of the local secret
  store (the simulator accepts it); this fallback never happens outside local mode.
- ``secret``: secret ``entra-client-secret`` of the secret store.
- ``certificate``: secret ``entra-client-certificate``, a PEM holding the certificate and
  its unencrypted private key; the SHA-1 thumbprint is computed here.

The credential (``AppCredential``), the lazy MSAL construction with its error
translation (``construct_msal_app``) and ``entra_call`` are shared with the delegated
provider (``core/adapters/delegated_tokens.py``), so both use one federation token.

Errors: MSAL error dicts -> ``core.adapters.aadsts``; an unknown tenant at discovery ->
``TenantNotFound``; network failures -> ``TransientGraphError``; a credential that is
missing or unreadable -> ``CredentialInvalid``. Tokens, secrets and assertions are never
logged.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import urlparse

import requests

from core.adapters.aadsts import aadsts_in_text, error_from_msal
from core.domain.calendar import GraphIdentity
from core.domain.errors import (
    AuthorizationError,
    CredentialInvalid,
    NotImplementedYet,
    ServiceError,
    TenantNotFound,
    TransientGraphError,
)
from core.ports import Clock, SecretStore
from core.settings import Settings

log = logging.getLogger("core.adapters.tokens")
T = TypeVar("T")

CLIENT_SECRET_NAME = "entra-client-secret"  # noqa: S105 - the name of a secret, not a secret
CLIENT_CERTIFICATE_NAME = "entra-client-certificate"
FEDERATION_SCOPE = "api://AzureADTokenExchange/.default"
ASSERTION_REFRESH_MARGIN_SECONDS = 300.0

# Hosts MSAL knows (public and national clouds) need instance discovery; any other
# authority (the local simulator, a test double) must skip it.
_KNOWN_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "login.microsoftonline.us",
        "login.usgovcloudapi.net",
        "login-us.microsoftonline.com",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
    }
)
_TENANT_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_PRIVATE_KEY_PEM = re.compile(
    r"-----BEGIN (?:RSA |EC )?PRIVATE KEY-----.+?-----END (?:RSA |EC )?PRIVATE KEY-----", re.S
)
_CERTIFICATE_PEM = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


class MsalApp(Protocol):
    """The part of ``msal.ConfidentialClientApplication`` the provider uses."""

    def acquire_token_for_client(self, scopes: list[str], **kwargs: Any) -> dict[str, Any]: ...


class AccessTokenLike(Protocol):
    token: str
    expires_on: int


class TokenCredentialLike(Protocol):
    """The part of an azure-identity credential the federated assertion uses."""

    def get_token(self, *scopes: str) -> AccessTokenLike: ...


# (client_id, client_credential, authority, http_client, instance_discovery) -> app
AppFactory = Callable[[str, Any, str, requests.Session, bool], MsalApp]
ManagedIdentityFactory = Callable[[str | None], TokenCredentialLike]


class _SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def _msal_app_factory(
    client_id: str, credential: Any, authority: str, session: requests.Session, instance_discovery: bool
) -> MsalApp:
    import msal

    app: MsalApp = msal.ConfidentialClientApplication(
        client_id,
        client_credential=credential,
        authority=authority,
        http_client=session,
        instance_discovery=None if instance_discovery else False,
    )
    return app


def _managed_identity_factory(client_id: str | None) -> TokenCredentialLike:
    from azure.identity import ManagedIdentityCredential

    credential: TokenCredentialLike = ManagedIdentityCredential(client_id=client_id)
    return credential


class FederatedAssertion:
    """A client-assertion callable for MSAL: the managed identity's token for the
    ``api://AzureADTokenExchange`` audience, reused until five minutes before it expires."""

    def __init__(self, credential: TokenCredentialLike, clock: Clock) -> None:
        self._credential = credential
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_on = 0.0

    def __call__(self) -> str:
        with self._lock:
            now = self._clock.now().timestamp()
            if self._token is None or now >= self._expires_on - ASSERTION_REFRESH_MARGIN_SECONDS:
                try:
                    access = self._credential.get_token(FEDERATION_SCOPE)
                except Exception as exc:  # azure-identity raises its own tree; keep vendor types out
                    raise CredentialInvalid(
                        "The managed identity could not get a federation token for the app credential.",
                        details={"cause": type(exc).__name__},
                    ) from exc
                self._token = access.token
                self._expires_on = float(access.expires_on)
            return self._token


class AppCredential:
    """The app registration's own credential in the form MSAL takes, chosen by ``ENTRA_CREDENTIAL``.

    Shared by every MSAL app the process builds (app-only and delegated), so the managed
    identity's federation token is fetched once and reused across tenants and users.
    """

    def __init__(
        self,
        settings: Settings,
        secrets: SecretStore,
        clock: Clock | None = None,
        managed_identity_factory: ManagedIdentityFactory | None = None,
    ) -> None:
        self._settings = settings
        self._secrets = secrets
        self._clock: Clock = clock or _SystemClock()
        self._mi_factory = managed_identity_factory or _managed_identity_factory
        self._lock = threading.Lock()
        self._assertion: FederatedAssertion | None = None

    def __call__(self) -> Any:
        kind = self._settings.entra_credential
        if kind == "federated_identity":
            if self._settings.managed_identity_client_id is None and self._settings.local_mode:
                log.warning("local mode without AZURE_CLIENT_ID: using the local secret store's client secret")
                return self._client_secret()
            return {"client_assertion": self._federated_assertion()}
        if kind == "certificate":
            return self._certificate()
        return self._client_secret()

    def _federated_assertion(self) -> FederatedAssertion:
        with self._lock:
            if self._assertion is None:
                credential = self._mi_factory(self._settings.managed_identity_client_id)
                self._assertion = FederatedAssertion(credential, self._clock)
            return self._assertion

    def _client_secret(self) -> str:
        secret = self._secrets.get(CLIENT_SECRET_NAME)
        if not secret:
            raise CredentialInvalid(f"The app credential secret '{CLIENT_SECRET_NAME}' is not in the secret store.")
        return secret

    def _certificate(self) -> dict[str, str]:
        pem = self._secrets.get(CLIENT_CERTIFICATE_NAME)
        if not pem:
            raise CredentialInvalid(
                f"The app credential certificate '{CLIENT_CERTIFICATE_NAME}' is not in the secret store."
            )
        return certificate_credential(pem)


def uses_instance_discovery(authority_host: str) -> bool:
    """Whether MSAL may ask login.microsoftonline.com about the authority (public and national clouds only)."""
    return (urlparse(authority_host).hostname or "").lower() in _KNOWN_AUTHORITY_HOSTS


def checked_tenant(tenant_id: str) -> str:
    """The lower-cased tenant id; ``TenantNotFound`` before any network call when it is not a GUID."""
    tenant = tenant_id.lower()
    if not _TENANT_ID.match(tenant):
        raise TenantNotFound("The tenant id is not a GUID.")
    return tenant


# How long a worker should wait before asking Entra ID again after it failed to answer.
ENTRA_RETRY_AFTER_SECONDS = 5.0


@contextmanager
def entra_call(*, discovery: bool = False) -> Iterator[None]:
    """The one translation of what MSAL raises while it talks to Entra ID (discovery or token endpoint).

    Network failures and ``MsalServiceError`` (an authority answering with a server error) are
    outages, not an authorization verdict: ``TransientGraphError`` with a retry hint. During
    ``discovery`` (building an MSAL app), MSAL's ``ValueError`` means OIDC discovery answered
    4xx, a tenant Entra ID does not know (``TenantNotFound``); elsewhere ``ValueError`` is the
    caller's to interpret (a sign-in response that does not match its flow). Errors MSAL
    *returns* (dicts) are ``error_from_msal``'s.
    """
    try:
        yield
    except ServiceError:
        raise
    except requests.RequestException as exc:
        raise TransientGraphError(
            "Microsoft Entra ID is not answering; try again shortly.",
            details={"cause": type(exc).__name__},
            retry_after=ENTRA_RETRY_AFTER_SECONDS,
        ) from exc
    except ValueError as exc:
        if not discovery:
            raise
        code = _aadsts_in_chain(exc)
        raise TenantNotFound(aadsts=code, details={"aadsts": code} if code else None) from exc
    except RuntimeError as exc:
        if not discovery:
            raise
        raise TransientGraphError(details={"cause": type(exc).__name__}) from exc
    except Exception as exc:
        if type(exc).__name__ == "MsalServiceError":
            raise TransientGraphError(
                "Microsoft Entra ID is not answering; try again shortly.",
                details={"cause": "authority_discovery" if discovery else "token_endpoint"},
                retry_after=ENTRA_RETRY_AFTER_SECONDS,
            ) from exc
        raise


def construct_msal_app(build: Callable[[], T], tenant: str) -> T:
    """Run an MSAL app constructor (which fetches the authority's OpenID configuration), errors translated."""
    started = time.monotonic()
    with entra_call(discovery=True):
        app = build()
    log.info("msal app built tenant=%s in %.0f ms", tenant, (time.monotonic() - started) * 1000)
    return app


class AppOnlyTokenProvider:
    """``TokenProvider`` for domain-wide (app-only) connections: one MSAL app per tenant."""

    def __init__(
        self,
        settings: Settings,
        session: requests.Session,
        secrets: SecretStore,
        clock: Clock | None = None,
        *,
        app_factory: AppFactory | None = None,
        managed_identity_factory: ManagedIdentityFactory | None = None,
        credential: AppCredential | None = None,
    ) -> None:
        self._settings = settings
        self._session = session
        self._app_factory = app_factory or _msal_app_factory
        self._credential = credential or AppCredential(settings, secrets, clock, managed_identity_factory)
        self._apps: dict[str, MsalApp] = {}
        self._tenant_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._instance_discovery = uses_instance_discovery(settings.authority_host)

    def token(self, who: GraphIdentity) -> str:
        """An app-only Graph token for ``who.tenant_id`` (MSAL serves it from cache when valid)."""
        if who.user_id is not None:
            raise NotImplementedYet(
                "Delegated tokens come from the DelegatedTokenProvider (core/adapters/delegated_tokens.py)."
            )
        tenant = who.tenant_id.lower()
        app = self._app(tenant)
        with entra_call():
            result = app.acquire_token_for_client(scopes=[self._settings.graph_scope])
        if not isinstance(result, dict):
            raise AuthorizationError(details={"cause": "no token result"})
        access_token = result.get("access_token")
        if isinstance(access_token, str) and access_token:
            return access_token
        error = error_from_msal(result)
        log.warning(
            "app-only token failed tenant=%s error=%s aadsts=%s",
            tenant,
            error.code,
            error.details.get("aadsts"),
        )
        raise error

    def invalidate(self, tenant_id: str) -> None:
        """Drop the tenant's MSAL app and with it the cached token (next call rebuilds lazily)."""
        with self._lock:
            self._apps.pop(tenant_id.lower(), None)

    # --- internals -------------------------------------------------------------------

    def _app(self, tenant: str) -> MsalApp:
        tenant = checked_tenant(tenant)
        app = self._apps.get(tenant)
        if app is not None:
            return app
        with self._lock:
            tenant_lock = self._tenant_locks.setdefault(tenant, threading.Lock())
        with tenant_lock:
            app = self._apps.get(tenant)
            if app is None:
                app = self._build(tenant)
                with self._lock:
                    self._apps[tenant] = app
            return app

    def _build(self, tenant: str) -> MsalApp:
        authority = f"{self._settings.authority_host}/{tenant}"
        credential = self._credential()
        return construct_msal_app(
            lambda: self._app_factory(
                self._settings.entra_client_id, credential, authority, self._session, self._instance_discovery
            ),
            tenant,
        )


def _aadsts_in_chain(exc: BaseException) -> int | None:
    """The AADSTS number quoted by MSAL's discovery error or the error it replaced."""
    seen: BaseException | None = exc
    while seen is not None:
        code = aadsts_in_text(str(seen))
        if code is not None:
            return code
        seen = seen.__cause__ or seen.__context__
    return None


def certificate_credential(pem: str) -> dict[str, str]:
    """MSAL's certificate dict from one PEM holding the certificate and its private key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    key = _PRIVATE_KEY_PEM.search(pem)
    cert = _CERTIFICATE_PEM.search(pem)
    if key is None or cert is None:
        raise CredentialInvalid(
            "The app credential certificate must be a PEM with the certificate and an unencrypted private key."
        )
    try:
        parsed = x509.load_pem_x509_certificate(cert.group(0).encode("ascii"))
    except ValueError as exc:
        raise CredentialInvalid("The app credential certificate cannot be read.") from exc
    thumbprint = parsed.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - Entra's x5t is SHA-1 by definition
    return {"private_key": key.group(0), "thumbprint": thumbprint}
