"""Delegated Microsoft Graph tokens: one user's token cache, refreshed and rotated through MSAL.

Per-user and service-account connections act with a user's delegated token. This
adapter is both the ``TokenProvider`` for ``GraphIdentity(tid, user_id)`` and the
``DelegatedAuthFlow`` the connection service signs users in through
(``core/services/connections.py``).

Storage: one secret per user, ``user-token-{tid}-{oid}`` (valid for Key Vault as is),
holding ``{"v": 1, "scopes": [...], "cache": <MSAL cache subset>}``. Only what a
refresh needs is kept: the ``Account`` and ``RefreshToken`` sections (plus
``AppMetadata``); access tokens and id tokens (names, UPN) never reach the vault. A
value over Key Vault's 25 KB is refused before it is written.

Per call: the user's MSAL ``SerializableTokenCache`` lives in memory, so a valid access
token costs no network call; otherwise ``acquire_token_silent_with_error`` redeems the
refresh token, Entra returns a new one (rotation), and the new subset replaces the
stored one, so the old refresh token is forgotten. A per-user lock keeps two threads
from redeeming one refresh token twice; when another instance rotated first, the
stored value differs from the one that failed and the call is retried once with it.

Failure: ``invalid_grant``, AADSTS 700082 (inactivity), 70043 (sign-in frequency),
50173 (revoked), ``interaction_required`` and revoked consent (65001...) mean the user
must sign in again: the connection is marked ``needsReconnect`` with the reason, the
integration owner gets a (rate-limited) ``USER_RECONNECT_REQUIRED`` alert, and
``ReconnectRequired`` is raised. Later calls with the same dead cache fail at once,
without asking Entra again. Tokens, refresh tokens and caches are never logged.

MSAL apps are built per user (their cache is a constructor argument) from a shared
``http_cache``, so the authority's OpenID discovery is fetched once per tenant and day.
"""

from __future__ import annotations

import json
import logging
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import requests

from core.adapters.aadsts import error_from_msal
from core.adapters.tokens import (
    AppCredential,
    ManagedIdentityFactory,
    checked_tenant,
    construct_msal_app,
    entra_call,
    uses_instance_discovery,
)
from core.domain.calendar import GraphIdentity
from core.domain.errors import (
    AuthorizationError,
    ConsentMissing,
    Forbidden,
    ReconnectRequired,
    ServiceError,
)
from core.names import user_token_secret_name
from core.ports import AuthStart, Clock, ReconnectNotifier, SecretStore, SignedInUser
from core.settings import Settings

log = logging.getLogger("core.adapters.delegated_tokens")

MAX_SECRET_BYTES: Final = 25 * 1024  # Key Vault's limit for one secret value
CACHE_FORMAT: Final = 1
_KEPT_SECTIONS: Final = ("Account", "RefreshToken", "AppMetadata")
_OIDC_SCOPES: Final = frozenset({"openid", "profile", "offline_access", "email"})


class TokenCacheLike(Protocol):
    """The part of ``msal.SerializableTokenCache`` used here."""

    def serialize(self) -> str: ...

    def deserialize(self, state: str | None) -> None: ...


class DelegatedMsalApp(Protocol):
    """The part of ``msal.ConfidentialClientApplication`` used for delegated tokens."""

    def initiate_auth_code_flow(self, scopes: list[str], **kwargs: Any) -> dict[str, Any]: ...

    def acquire_token_by_auth_code_flow(
        self, auth_code_flow: dict[str, Any], auth_response: dict[str, str], **kwargs: Any
    ) -> dict[str, Any]: ...

    def get_accounts(self, username: str | None = None) -> list[dict[str, Any]]: ...

    def acquire_token_silent_with_error(
        self, scopes: list[str], account: dict[str, Any] | None, **kwargs: Any
    ) -> dict[str, Any] | None: ...


@dataclass(frozen=True, slots=True)
class AppSpec:
    """Everything an MSAL app for one tenant and one user's cache is built from."""

    client_id: str
    credential: Any = field(repr=False)
    authority: str
    session: requests.Session
    instance_discovery: bool
    token_cache: TokenCacheLike = field(repr=False)
    http_cache: dict[str, Any] = field(repr=False)


DelegatedAppFactory = Callable[[AppSpec], DelegatedMsalApp]
CacheFactory = Callable[[], TokenCacheLike]


def _msal_app_factory(spec: AppSpec) -> DelegatedMsalApp:
    import msal

    app: DelegatedMsalApp = msal.ConfidentialClientApplication(
        spec.client_id,
        client_credential=spec.credential,
        authority=spec.authority,
        http_client=spec.session,
        instance_discovery=None if spec.instance_discovery else False,
        token_cache=spec.token_cache,
        http_cache=spec.http_cache,
    )
    return app


def _msal_cache() -> TokenCacheLike:
    import msal

    cache: TokenCacheLike = msal.SerializableTokenCache()
    return cache


def persistable(cache_json: str) -> str:
    """The refresh-relevant subset of a serialized MSAL cache (no access or id tokens)."""
    full = json.loads(cache_json) if cache_json else {}
    return json.dumps({k: full[k] for k in _KEPT_SECTIONS if full.get(k)}, sort_keys=True, separators=(",", ":"))


@dataclass
class _UserTokens:
    """One user's live MSAL app and cache in this process, and what the vault holds for them."""

    app: DelegatedMsalApp
    cache: TokenCacheLike
    scopes: list[str]
    stored: str  # the secret value this cache was loaded from or last written as


class DelegatedTokenProvider:
    """``TokenProvider`` for ``GraphIdentity(tid, user_id)`` and ``DelegatedAuthFlow`` (module docstring)."""

    def __init__(
        self,
        settings: Settings,
        session: requests.Session,
        secrets: SecretStore,
        clock: Clock,
        *,
        on_reconnect: ReconnectNotifier | None = None,
        app_factory: DelegatedAppFactory | None = None,
        cache_factory: CacheFactory | None = None,
        credential: AppCredential | None = None,
        managed_identity_factory: ManagedIdentityFactory | None = None,
    ) -> None:
        self._settings = settings
        self._session = session
        self._secrets = secrets
        self._clock = clock
        self.on_reconnect = on_reconnect
        self._app_factory = app_factory or _msal_app_factory
        self._cache_factory = cache_factory or _msal_cache
        self._credential = credential or AppCredential(settings, secrets, clock, managed_identity_factory)
        self._instance_discovery = uses_instance_discovery(settings.authority_host)
        self._http_cache: dict[str, Any] = {}  # MSAL's: discovery documents, no tokens
        self._users: dict[tuple[str, str], _UserTokens] = {}
        self._dead: dict[tuple[str, str], str] = {}  # stored values Entra refused for good
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()

    # -- TokenProvider -----------------------------------------------------------------------

    def token(self, who: GraphIdentity) -> str:
        """The user's delegated Graph token; ``ReconnectRequired`` when they must sign in again."""
        if who.user_id is None:
            raise ValueError("the delegated provider needs a user; app-only tokens come from AppOnlyTokenProvider")
        key = (checked_tenant(who.tenant_id), who.user_id.lower())
        with self._user_lock(key):
            return self._token(key, retried=False)

    def invalidate(self, tenant_id: str) -> None:
        """Forget this process's caches for the tenant (stored tokens stay: they are reloaded)."""
        tenant = tenant_id.lower()
        with self._lock:
            for key in [k for k in self._users if k[0] == tenant]:
                del self._users[key]
            for key in [k for k in self._dead if k[0] == tenant]:
                del self._dead[key]

    # -- DelegatedAuthFlow ----------------------------------------------------------------------

    def begin(
        self, tenant_id: str, scopes: Sequence[str], redirect_uri: str, state: str, login_hint: str | None
    ) -> AuthStart:
        """MSAL's auth code flow (PKCE S256, nonce) carrying our ``state``."""
        tenant = checked_tenant(tenant_id)
        app = self._build(tenant, self._cache_factory())
        kwargs: dict[str, Any] = {"redirect_uri": redirect_uri, "state": state}
        if login_hint:
            kwargs["login_hint"] = login_hint
        with warnings.catch_warnings():
            # MSAL recommends response_mode=form_post; the HTTP contract's callback is a GET
            # (PKCE, the nonce and a single-use state protect the code in the query string).
            warnings.filterwarnings("ignore", message="response_mode='form_post' is recommended")
            flow = app.initiate_auth_code_flow(list(scopes), **kwargs)
        return AuthStart(str(flow["auth_uri"]), flow)

    def redeem(self, tenant_id: str, flow: Mapping[str, Any], response: Mapping[str, str]) -> SignedInUser:
        """Redeem the code; the signed-in account comes from the id token MSAL checked (nonce)."""
        tenant = checked_tenant(tenant_id)
        cache = self._cache_factory()
        app = self._build(tenant, cache)
        try:
            with entra_call():
                result = app.acquire_token_by_auth_code_flow(dict(flow), dict(response))
        except (ValueError, RuntimeError) as exc:
            # State mismatch, missing code, or a nonce that does not match: never say which values.
            raise Forbidden("The sign-in response does not belong to this sign-in.",
                            code="connection_state_invalid") from exc
        if not isinstance(result, dict) or not result.get("access_token"):
            error = error_from_msal(result if isinstance(result, dict) else {})
            log.warning("sign-in redemption failed tenant=%s error=%s aadsts=%s",
                        tenant, error.code, error.details.get("aadsts"))
            raise error
        claims = result.get("id_token_claims") or {}
        tid, oid = claims.get("tid"), claims.get("oid")
        if not isinstance(tid, str) or not isinstance(oid, str):
            raise AuthorizationError("Microsoft did not say who signed in.", code="sign_in_incomplete")
        if not result.get("refresh_token"):
            raise AuthorizationError("Microsoft did not grant offline access.", code="offline_access_missing")
        username = claims.get("preferred_username")
        scopes = [s for s in flow.get("scope") or () if s not in _OIDC_SCOPES]
        value = self._secret_value(scopes, cache.serialize())
        return SignedInUser(tid.lower(), oid.lower(), username if isinstance(username, str) else None, value)

    def keep(self, tenant_id: str, user_id: str, signed_in: SignedInUser) -> None:
        """Store the user's cache; this process starts from it on the next token call."""
        key = (tenant_id.lower(), user_id.lower())
        self._check_size(signed_in.token_cache)
        with self._user_lock(key):
            self._secrets.set(user_token_secret_name(*key), signed_in.token_cache)
            with self._lock:
                self._users.pop(key, None)
                self._dead.pop(key, None)

    def forget(self, tenant_id: str, user_id: str) -> None:
        """Delete the user's stored tokens and this process's copy."""
        key = (tenant_id.lower(), user_id.lower())
        with self._user_lock(key):
            self._secrets.delete(user_token_secret_name(*key))
            with self._lock:
                self._users.pop(key, None)
                self._dead.pop(key, None)

    # -- internals ---------------------------------------------------------------------------

    def _user_lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())

    def _token(self, key: tuple[str, str], *, retried: bool) -> str:
        tenant, user = key
        entry = self._users.get(key) if not retried else None
        if entry is None:
            entry = self._load(key)
        accounts = entry.app.get_accounts()
        if not accounts:
            raise self._reconnect(key, entry.stored, "no_account")
        with entra_call():
            result = entry.app.acquire_token_silent_with_error(entry.scopes, account=accounts[0])
        if result is None:
            raise self._reconnect(key, entry.stored, "no_refresh_token")
        access_token = result.get("access_token")
        if isinstance(access_token, str) and access_token:
            self._persist_rotation(key, entry)
            return access_token
        error = error_from_msal(result)
        if isinstance(error, (ReconnectRequired, ConsentMissing)):
            current = self._secrets.get(user_token_secret_name(tenant, user))
            if not retried and current and current != entry.stored:
                return self._token(key, retried=True)  # another instance rotated the token first
            reason = str(error.details.get("aadsts") or error.oauth_error or error.code)
            raise self._reconnect(key, entry.stored, reason, cause=error)
        log.warning("delegated token failed tenant=%s error=%s aadsts=%s", tenant, error.code,
                    error.details.get("aadsts"))
        raise error

    def _load(self, key: tuple[str, str]) -> _UserTokens:
        tenant, user = key
        stored = self._secrets.get(user_token_secret_name(tenant, user))
        if not stored:
            raise ReconnectRequired("This person has not connected their Microsoft 365 calendar.",
                                    code="calendar_not_connected")
        if self._dead.get(key) == stored:
            raise ReconnectRequired(details={"reason": "refresh_token_refused"})
        try:
            doc = json.loads(stored)
            scopes = [str(s) for s in doc["scopes"]]
            cache_json = str(doc["cache"])
        except (ValueError, KeyError, TypeError) as exc:
            raise self._reconnect(key, stored, "unreadable_cache") from exc
        cache = self._cache_factory()
        cache.deserialize(cache_json)
        entry = _UserTokens(self._build(tenant, cache), cache, scopes, stored)
        with self._lock:
            self._users[key] = entry
        return entry

    def _persist_rotation(self, key: tuple[str, str], entry: _UserTokens) -> None:
        value = self._secret_value(entry.scopes, entry.cache.serialize())
        if value == entry.stored:
            return  # served from the access-token cache: nothing the vault needs changed
        self._check_size(value)
        self._secrets.set(user_token_secret_name(*key), value)
        entry.stored = value

    def _secret_value(self, scopes: Sequence[str], cache_json: str) -> str:
        value = json.dumps({"v": CACHE_FORMAT, "scopes": list(scopes), "cache": persistable(cache_json)},
                           separators=(",", ":"))
        self._check_size(value)
        return value

    @staticmethod
    def _check_size(value: str) -> None:
        if len(value.encode("utf-8")) >= MAX_SECRET_BYTES:
            raise ServiceError("A user's token cache outgrew the secret store's 25 KB limit.",
                               code="token_cache_too_large")

    def _reconnect(self, key: tuple[str, str], stored: str, reason: str,
                   cause: AuthorizationError | None = None) -> ReconnectRequired:
        """Mark the connection, alert the owner once, and return the error to raise."""
        tenant, user = key
        with self._lock:
            self._users.pop(key, None)
            self._dead[key] = stored
        log.warning("delegated connection needs reconnect tenant=%s reason=%s", tenant, reason)
        if self.on_reconnect is not None:
            try:
                self.on_reconnect.needs_reconnect(tenant, user, reason)
            except ServiceError as exc:
                log.error("reconnect not recorded tenant=%s status=%s", tenant, exc.code)
        details: dict[str, Any] = {"reason": reason}
        if cause is not None:
            details.update({k: v for k, v in cause.details.items() if k in ("aadsts", "oauth_error", "trace_id")})
        return ReconnectRequired(
            aadsts=cause.aadsts if cause is not None else None,
            oauth_error=cause.oauth_error if cause is not None else None,
            details=details,
        )

    def _build(self, tenant: str, cache: TokenCacheLike) -> DelegatedMsalApp:
        authority = f"{self._settings.authority_host}/{tenant}"
        credential = self._credential()
        return construct_msal_app(
            lambda: self._app_factory(
                AppSpec(self._settings.entra_client_id, credential, authority, self._session,
                        self._instance_discovery, cache, self._http_cache)
            ),
            tenant,
        )
