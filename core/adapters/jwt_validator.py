"""Validates Entra ID v2 access tokens issued for this API (PyJWT; no hand-rolled crypto).

Rules (see docs/graph-notes.md, "Tokens from the SPA"):

* ``alg`` must be RS256. ``none``, ``HS*`` and anything else is refused before a key is
  even looked up, and PyJWT is called with ``algorithms=["RS256"]`` and an RSA key
  object, so an HMAC-with-the-public-key ("algorithm confusion") token cannot verify.
* The signing key is chosen by ``kid`` from the configured JWKS
  (``{AUTHORITY_HOST}/common/discovery/v2.0/keys``). Keys are cached for a day; an
  unknown ``kid`` triggers one refresh, at most once per ``UNKNOWN_KID_REFRESH_SECONDS``
  so a stream of junk tokens cannot turn into a stream of JWKS fetches.
* ``iss`` must equal ``{AUTHORITY_HOST}/{tid}/v2.0`` exactly, built from the token's own
  ``tid`` (a GUID). ``aud`` must equal the API's client id. We do not also accept
  ``api://<client id>``: v2 tokens (the API registration is set to v2) always carry
  the client id, and the App ID URI form only appears in v1 tokens, which we refuse.
* ``exp``, ``nbf``, ``iat`` are required and checked with a 60 s leeway; ``ver`` is "2.0".
* The token's kind is explicit. A delegated (user) token carries ``scp``; an app-only
  token carries ``idtyp: "app"`` (the optional claim the app registration emits,
  docs/app-registration.md) and no ``scp``. A token with neither is refused: an ID
  token issued to this app has the same ``aud``, ``iss`` and ``tid`` as an access token
  and, before this rule, passed as app-only. ``idtyp: "app"`` together with ``scp`` is
  contradictory and refused too. Which clients may use app tokens (``azp``) is the
  caller's decision (``functions/auth.py``, ``PRODUCT_SERVER_CLIENT_IDS``); the
  validator only reports ``azp`` (``appid`` in v1 shape) as ``TokenClaims.app_id``.

Which AUTHORITY_HOST is trusted is a setting; a loopback authority (the local
simulator) is only ever trusted with ``LOCAL_MODE=true``, and only then is the
local CA bundle used to fetch its keys.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import urlparse

import jwt
import requests

from core.domain.errors import DependencyError, InvalidToken
from core.ports import TokenClaims
from core.settings import Settings, SettingsError

log = logging.getLogger(__name__)

ALGORITHM: Final = "RS256"
LEEWAY_SECONDS: Final = 60
KEYS_TTL_SECONDS: Final = 24 * 3600.0
UNKNOWN_KID_REFRESH_SECONDS: Final = 60.0
FETCH_TIMEOUT_SECONDS: Final = 5.0
MAX_TOKEN_CHARS: Final = 16 * 1024
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_REQUIRED: Final = ["exp", "nbf", "iat", "iss", "aud"]

JwksFetcher = Callable[[], Mapping[str, Any]]


def requests_jwks_fetcher(url: str, *, verify: bool | str = True) -> JwksFetcher:
    """A JWKS fetcher over HTTPS; ``verify`` is a CA bundle path only in local mode."""

    def fetch() -> Mapping[str, Any]:
        try:
            response = requests.get(url, timeout=FETCH_TIMEOUT_SECONDS, verify=verify)
            response.raise_for_status()
            doc = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise DependencyError(
                "The sign-in keys could not be loaded; try again shortly.",
                code="token_keys_unavailable",
                retry_after=10,
            ) from exc
        if not isinstance(doc, Mapping):
            raise DependencyError("The sign-in keys could not be read.", code="token_keys_unavailable", retry_after=10)
        return doc

    return fetch


def _is_loopback(host: str) -> bool:
    if host in ("localhost",) or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class JwtValidator:
    """Checks bearer tokens against the settings' authority, audience and JWKS."""

    def __init__(
        self,
        settings: Settings,
        fetch_jwks: JwksFetcher | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        host = urlparse(settings.authority_host).hostname or ""
        if _is_loopback(host) and not settings.local_mode:
            raise SettingsError(
                ["AUTHORITY_HOST: expected a real Entra authority (a loopback host needs LOCAL_MODE=true)"]
            )
        if not settings.api_audience:
            raise SettingsError(["API_AUDIENCE: expected the API's client id (missing)"])
        self._authority = settings.authority_host.rstrip("/")
        self._audience = settings.api_audience
        if fetch_jwks is None:
            verify: bool | str = True
            if settings.local_mode and settings.local_ca_bundle:
                verify = settings.local_ca_bundle
            fetch_jwks = requests_jwks_fetcher(settings.jwks_url, verify=verify)
        self._fetch = fetch_jwks
        self._now = monotonic
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None

    # --- keys ---

    def _load(self) -> None:
        doc = self._fetch()
        raw_keys = doc.get("keys")
        keys: dict[str, jwt.PyJWK] = {}
        if isinstance(raw_keys, list):
            for raw in raw_keys:
                if not isinstance(raw, Mapping) or raw.get("kty") != "RSA" or raw.get("use", "sig") != "sig":
                    continue
                kid = raw.get("kid")
                if not isinstance(kid, str) or not kid:
                    continue
                try:
                    keys[kid] = jwt.PyJWK(dict(raw), algorithm=ALGORITHM)
                except jwt.PyJWTError:
                    log.warning("skipped an unusable signing key in the JWKS")
        if not keys:
            raise DependencyError("The sign-in keys could not be read.", code="token_keys_unavailable", retry_after=10)
        self._keys = keys
        self._fetched_at = self._now()

    def _key_for(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            now = self._now()
            stale = self._fetched_at is None or now - self._fetched_at > KEYS_TTL_SECONDS
            if stale:
                try:
                    self._load()
                except DependencyError:
                    if not self._keys:
                        raise
                    log.warning("JWKS refresh failed; keeping the cached signing keys")
            key = self._keys.get(kid)
            if key is None and self._fetched_at is not None and now - self._fetched_at >= UNKNOWN_KID_REFRESH_SECONDS:
                self._load()
                key = self._keys.get(kid)
            if key is None:
                raise InvalidToken("The token was signed with an unknown key.")
            return key

    # --- tokens ---

    def validate(self, token: str) -> TokenClaims:
        """The token's claims when every rule holds; ``InvalidToken`` (401) otherwise."""
        if not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
            raise InvalidToken()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken() from exc
        if header.get("alg") != ALGORITHM:
            raise InvalidToken("The token's signing algorithm is not accepted.")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > 256:
            raise InvalidToken()
        key = self._key_for(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                leeway=LEEWAY_SECONDS,
                options={"require": _REQUIRED, "verify_signature": True},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("The token has expired.", code="token_expired") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken() from exc
        return self._claims(claims)

    def _claims(self, claims: Mapping[str, Any]) -> TokenClaims:
        tid = claims.get("tid")
        oid = claims.get("oid")
        if not isinstance(tid, str) or not _GUID.match(tid.lower()):
            raise InvalidToken()
        if not isinstance(oid, str) or not _GUID.match(oid.lower()):
            raise InvalidToken()
        if claims.get("iss") != f"{self._authority}/{tid}/v2.0":
            raise InvalidToken("The token was not issued by the expected authority.")
        if claims.get("ver") != "2.0":
            raise InvalidToken("Only v2.0 access tokens are accepted.")
        scp = claims.get("scp")
        roles = claims.get("roles")
        if scp is not None and not isinstance(scp, str):
            raise InvalidToken()
        if roles is not None and not (isinstance(roles, list) and all(isinstance(r, str) for r in roles)):
            raise InvalidToken()
        idtyp = claims.get("idtyp")
        if idtyp is not None and not isinstance(idtyp, str):
            raise InvalidToken()
        is_app = idtyp == "app"
        if is_app and scp is not None:
            raise InvalidToken("An app-only token cannot carry delegated scopes.")
        if not is_app and not scp:
            # Neither a delegated token (scp) nor an app token (idtyp=app): e.g. an ID token.
            raise InvalidToken("The token is neither a user's access token nor an app-only access token.")
        app_id = claims.get("azp", claims.get("appid"))
        if app_id is not None and (not isinstance(app_id, str) or not _GUID.match(app_id.lower())):
            raise InvalidToken()
        name = claims.get("name")
        username = claims.get("preferred_username")
        return TokenClaims(
            tenant_id=tid.lower(),
            object_id=oid.lower(),
            scopes=frozenset(scp.split()) if scp else frozenset(),
            roles=frozenset(roles or ()),
            is_app=is_app,
            name=name if isinstance(name, str) else None,
            username=username if isinstance(username, str) else None,
            app_id=app_id.lower() if app_id else None,
        )
