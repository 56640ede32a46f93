"""SecretStore on Azure Key Vault (azure-keyvault-secrets), with an in-memory TTL cache.

Why a cache: a Graph change notification must never cost a Key Vault call
(docs/architecture.md), and Key Vault throttles at 4,000 reads per 10 s per vault.
Reads are cached for ``cache_ttl`` seconds (default 5 minutes), hits and misses alike;
``set`` and ``delete`` update this process's cache at once. Another instance may see
the old value until its entry expires, which is fine for what we keep (a rotated
refresh token's predecessor stays usable for a while).

Names: Key Vault accepts 1-127 characters of ``[0-9a-zA-Z-]`` starting with a letter,
and compares them case-insensitively. ``encode_secret_name`` keeps a name that is
already valid and lower-case (our own ``user-token-<tid>-<oid>``) unchanged, so it
stays readable in the portal. Any other name is lower-cased, its invalid runs become
``-``, and ``-<12 hex of SHA-256 of the original>`` is appended, so two different
names meet only on a 48-bit hash collision or if someone picks an encoded form as a
raw name. Upper-case names are hashed too, because ``A`` and ``a`` are one secret to
Key Vault.

Soft delete: setting a name that was deleted but not purged fails with 409
``ObjectIsDeletedButRecoverable``. We *recover* it and then set the new value
(requires the ``recover`` permission, which Key Vault Secrets Officer has) rather
than purge it: purge needs an extra permission, is impossible with purge protection
on, and destroys the version history. Recovery and deletion take a few seconds, so
409s on the way (``ObjectIsBeingRecovered``/``ObjectIsBeingDeleted``) are retried
with a short backoff.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.keyvault.secrets import SecretClient

from core.adapters.azure_errors import status_of
from core.adapters.rules import check_secret_value
from core.domain.errors import SecretStoreUnavailable
from core.settings import Settings

log = logging.getLogger(__name__)

MAX_NAME_CHARS = 127
_HASH_CHARS = 12
_VALID_UNCHANGED = re.compile(r"[a-z][a-z0-9-]{0,126}")
_INVALID_RUN = re.compile(r"[^a-z0-9-]+")

DEFAULT_CACHE_TTL = 300.0
DEFAULT_CLIENT_OPTIONS: dict[str, Any] = {
    "connection_timeout": 5,
    "read_timeout": 10,
    "retry_total": 3,
    "retry_backoff_factor": 0.4,
    "retry_backoff_max": 4,
}
PING_OPTIONS: dict[str, Any] = {"connection_timeout": 2, "read_timeout": 3, "retry_total": 0}
_PROBE_NAME = "health-probe"  # read, never written: a 404 proves the vault answers and accepts us
# Waits between attempts while a secret is being deleted or recovered (about 10 s in all).
CONFLICT_BACKOFF = (0.5, 1.0, 1.5, 2.0, 2.0, 3.0)


def encode_secret_name(name: str) -> str:
    """A Key Vault secret name for ``name``: unchanged when already valid and lower-case."""
    if _VALID_UNCHANGED.fullmatch(name):
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:_HASH_CHARS]
    readable = _INVALID_RUN.sub("-", name.lower()).strip("-")
    if not readable[:1].isalpha():
        readable = ("s-" + readable).rstrip("-")
    readable = readable[: MAX_NAME_CHARS - _HASH_CHARS - 1].rstrip("-")
    return f"{readable}-{digest}"


class KeyVaultSecretStore:
    """The SecretStore port over one Key Vault; thread-safe, one per process."""

    def __init__(
        self,
        vault_url: str,
        credential: Any,
        *,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        transport: Any = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        **client_options: Any,
    ) -> None:
        options = {**DEFAULT_CLIENT_OPTIONS, **client_options}
        if transport is not None:
            options["transport"] = transport
        self._client = SecretClient(vault_url=vault_url, credential=credential, **options)
        self._ttl = cache_ttl
        self._clock = clock
        self._sleep = sleep
        self._cache: dict[str, tuple[str | None, float]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> KeyVaultSecretStore:
        """The app's user-assigned identity when configured, else DefaultAzureCredential (developer runs)."""
        if not settings.key_vault_uri:
            raise ValueError("KEY_VAULT_URI is not set")
        credential: Any
        if settings.managed_identity_client_id:
            from azure.identity import ManagedIdentityCredential

            credential = ManagedIdentityCredential(client_id=settings.managed_identity_client_id)
        else:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        return cls(settings.key_vault_uri, credential, **kwargs)

    # --- the port ---

    def get(self, name: str) -> str | None:
        cached = self._cached(name)
        if cached is not None:
            return cached[0]
        try:
            secret = self._client.get_secret(encode_secret_name(name))
            value: str | None = secret.value if secret.value is not None else ""
        except ResourceNotFoundError:
            value = None
        except AzureError as exc:
            raise _unavailable(exc, "get") from exc
        self._remember(name, value)
        return value

    def set(self, name: str, value: str) -> None:
        check_secret_value(value)
        encoded = encode_secret_name(name)
        recovered = False
        for attempt in range(len(CONFLICT_BACKOFF) + 1):
            try:
                self._client.set_secret(encoded, value)
                break
            except HttpResponseError as exc:
                if status_of(exc) != 409 or attempt == len(CONFLICT_BACKOFF):
                    raise _unavailable(exc, "set") from exc
                if "ObjectIsDeletedButRecoverable" in _kv_codes(exc) and not recovered:
                    self._recover(encoded)
                    recovered = True
                self._sleep(CONFLICT_BACKOFF[attempt])
            except AzureError as exc:
                raise _unavailable(exc, "set") from exc
        self._remember(name, value)

    def delete(self, name: str) -> None:
        try:
            # Starts the deletion; we do not wait for the poller (only a later set of the
            # same name cares, and it handles the in-between states).
            self._client.begin_delete_secret(encode_secret_name(name))
        except ResourceNotFoundError:
            pass
        except HttpResponseError as exc:
            if status_of(exc) != 409:  # 409: already being deleted
                raise _unavailable(exc, "delete") from exc
        except AzureError as exc:
            raise _unavailable(exc, "delete") from exc
        self._remember(name, None)

    def ping(self) -> None:
        try:
            self._client.get_secret(_PROBE_NAME, **PING_OPTIONS)
        except ResourceNotFoundError:
            return
        except AzureError as exc:
            raise _unavailable(exc, "ping") from exc

    # --- internals ---

    def _recover(self, encoded: str) -> None:
        try:
            self._client.begin_recover_deleted_secret(encoded)  # set is retried until recovery is done
        except HttpResponseError as exc:
            if status_of(exc) not in (404, 409):  # purged meanwhile, or already recovering
                raise _unavailable(exc, "recover") from exc
        except AzureError as exc:
            raise _unavailable(exc, "recover") from exc
        log.info("recovering a soft-deleted secret before setting it")

    def _cached(self, name: str) -> tuple[str | None] | None:
        with self._lock:
            entry = self._cache.get(name)
            if entry is None:
                return None
            if entry[1] <= self._clock():
                del self._cache[name]
                return None
            return (entry[0],)

    def _remember(self, name: str, value: str | None) -> None:
        if self._ttl <= 0:
            return
        with self._lock:
            self._cache[name] = (value, self._clock() + self._ttl)


def _kv_codes(exc: HttpResponseError) -> set[str]:
    """The error code and inner error codes of a Key Vault error body."""
    codes: set[str] = set()
    try:
        body = json.loads(exc.response.text()) if exc.response is not None else None
    except (ValueError, AttributeError):
        body = None
    node = body.get("error") if isinstance(body, dict) else None
    while isinstance(node, dict):
        if isinstance(node.get("code"), str):
            codes.add(node["code"])
        node = node.get("innererror")
    return codes


def _unavailable(exc: AzureError, what: str) -> SecretStoreUnavailable:
    status = status_of(exc)
    log.warning("key vault %s failed: %s status=%s", what, type(exc).__name__, status)
    if status in (401, 403):
        return SecretStoreUnavailable("Key Vault refused our identity; the deployment owner must check access.")
    return SecretStoreUnavailable()
