"""The clientState of change-notification subscriptions: checkable with no storage call, bound to one
subscription, under a rotatable key.

Graph echoes a subscription's ``clientState`` on every notification. Ours is

    "2~" + keyId + "~" + mailboxUserId + "~" + nonce + "~"
         + base64url(HMAC-SHA256(key[keyId], "2|" + tenantId + "|" + mailboxUserId + "|" + nonce))

- **No lookup on the hot path.** The webhook checks an item from its own content: the tenant
  comes from the item, the mailbox from the clientState (lifecycle notifications carry no
  resource) and, for change notifications, must match the mailbox in the resource. The keys
  are held in memory (``ClientStateKeyCache``); the comparison is constant-time.
- **Bound to one subscription.** ``nonce`` is fresh for every subscription and is stored on
  the service's record of it (never the clientState itself). The lifecycle worker acts on an
  item only when its subscription id *and* nonce are those of the mailbox's current record, so
  a leaked clientState stops working as soon as that subscription is replaced (and cannot
  name, let alone delete, another mailbox's subscription).
- **Rotatable key.** The secret holds a small key ring, ``{"current": "<id>", "keys": {"<id>":
  "<key>", ...}}`` (current and previous); an older value that is a bare key is the ring
  ``{"1": key}``. New subscriptions are signed with the current key; verification accepts every
  key in the ring. ``rotate()`` adds a key and keeps only the one before it; subscriptions
  signed with an older key are recreated at their next renewal (within ~5 days), so rotate at
  most once per 7 days. Processes reload the ring every ``REFRESH_SECONDS`` in the background
  and at once (also in the background) when a notification names the next key id (current +
  1: a rotation elsewhere): the webhook answers that POST 503, so Graph delivers it again
  (with back-off, for hours) once the reload has it; the secret store's own cache can delay
  that by its TTL (5 minutes for Key Vault), so items are late, never lost. Any other
  unknown key id is treated as forged.

Version ``1`` values (``"1~" + mailbox + "~" + HMAC(key "1", "1|tenant|mailbox")``, no nonce)
of subscriptions created before binding still verify while key ``1`` is in the ring; their
records have no nonce, and renewal replaces them with bound ones.

Values are <= 128 characters for object ids (GUIDs), as Graph requires. This module is pure
apart from the cache, which takes the ``SecretStore`` port.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from core.ports import SecretStore

log = logging.getLogger(__name__)

SECRET_NAME: Final = "webhook-client-state-key"  # noqa: S105 - a secret's name, not its value
VERSION: Final = "2"
LEGACY_VERSION: Final = "1"
FIRST_KEY_ID: Final = "1"  # the id of a ring's first key, and of a bare (pre-ring) key
MAX_CLIENT_STATE_CHARS: Final = 128
NONCE_BYTES: Final = 12
REFRESH_SECONDS: Final = 600.0  # reload the ring this often (in the background)
UNKNOWN_KEY_RELOAD_SECONDS: Final = 30.0  # at most one reload per this for unknown key ids
_SEP: Final = "~"
_MISSING_KEY_RETRY_SECONDS: Final = 30.0
_KEY_ID_CHARS: Final = 8


class Verdict(Enum):
    OK = "ok"
    BAD = "bad"  # forged, truncated, of another tenant or mailbox
    UNKNOWN_KEY = "unknown_key"  # well formed, but signed with a key this process does not hold (yet)


@dataclass(frozen=True, slots=True)
class Checked:
    """A clientState's verdict and, when OK, the mailbox and subscription nonce it names."""

    verdict: Verdict
    user_id: str | None = None
    nonce: str = ""  # "" for version-1 values (no binding)
    key_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.OK

    @property
    def unknown_key(self) -> bool:
        return self.verdict is Verdict.UNKNOWN_KEY


_BAD: Final = Checked(Verdict.BAD)


def new_nonce() -> str:
    """A fresh per-subscription nonce (16 URL-safe characters)."""
    return secrets.token_urlsafe(NONCE_BYTES)


@dataclass(frozen=True, slots=True)
class ClientStateSigner:
    """Signs with the current key (``key``, id ``key_id``) and checks with any key of the ring."""

    key: bytes
    key_id: str = FIRST_KEY_ID
    previous: Mapping[str, bytes] = field(default_factory=dict)

    def _key(self, key_id: str) -> bytes | None:
        return self.key if key_id == self.key_id else self.previous.get(key_id)

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset({self.key_id, *self.previous})

    def is_next_key(self, key_id: str | None) -> bool:
        """Is ``key_id`` the one a rotation elsewhere would have added (current + 1)? Values under it are
        answered 503 until this process reloads its ring; any other unknown id is simply not ours."""
        return key_id is not None and self.key_id.isdigit() and key_id == str(int(self.key_id) + 1)

    @staticmethod
    def _mac(key: bytes, message: str) -> bytes:
        return base64.urlsafe_b64encode(hmac.digest(key, message.encode(), hashlib.sha256)).rstrip(b"=")

    def sign(self, tenant_id: str, user_id: str, nonce: str | None = None) -> str:
        """The clientState for a new subscription on ``user_id``'s events in ``tenant_id`` (``nonce``: the
        subscription's own, stored on its record; a fresh one when not given)."""
        nonce = nonce or new_nonce()
        if not user_id or _SEP in user_id or _SEP in nonce:
            raise ValueError("a mailbox user id and a nonce must be non-empty and contain no '~'")
        message = f"{VERSION}|{tenant_id.lower()}|{user_id.lower()}|{nonce}"
        mac = self._mac(self.key, message).decode("ascii")
        value = _SEP.join((VERSION, self.key_id, user_id.lower(), nonce, mac))
        if len(value) > MAX_CLIENT_STATE_CHARS:
            raise ValueError("the mailbox user id is too long for a clientState")
        return value

    def check(self, client_state: str | None, tenant_id: str | None) -> Checked:
        """What a clientState says for ``tenant_id``: OK with its mailbox and nonce, BAD, or UNKNOWN_KEY."""
        if not client_state or not tenant_id or len(client_state) > MAX_CLIENT_STATE_CHARS:
            return _BAD
        version, _, rest = client_state.partition(_SEP)
        if version == VERSION:
            parts = rest.split(_SEP)
            if len(parts) != 4 or not all(parts) or len(parts[0]) > _KEY_ID_CHARS:
                return _BAD
            key_id, user_id, nonce, mac = parts
            message = f"{VERSION}|{tenant_id.lower()}|{user_id}|{nonce}"
        elif version == LEGACY_VERSION:
            user_id, sep, mac = rest.rpartition(_SEP)
            if not sep or not user_id:
                return _BAD
            key_id, nonce = FIRST_KEY_ID, ""
            message = f"{LEGACY_VERSION}|{tenant_id.lower()}|{user_id.lower()}"
        else:
            return _BAD
        key = self._key(key_id)
        if key is None:
            return Checked(Verdict.UNKNOWN_KEY, key_id=key_id)
        if not hmac.compare_digest(self._mac(key, message), mac.encode("utf-8", "replace")):
            return _BAD
        return Checked(Verdict.OK, user_id.lower(), nonce, key_id)

    def mailbox_of(self, client_state: str | None, tenant_id: str | None) -> str | None:
        """The mailbox user id a genuine clientState names for ``tenant_id``, else None."""
        checked = self.check(client_state, tenant_id)
        return checked.user_id if checked.ok else None

    def verify(self, client_state: str | None, tenant_id: str | None, user_id: str | None) -> bool:
        """Is ``client_state`` ours, for this tenant and this mailbox?"""
        found = self.mailbox_of(client_state, tenant_id)
        return found is not None and user_id is not None and found == user_id.lower()


def new_key() -> str:
    """A fresh 256-bit key, as text a secret store keeps."""
    return secrets.token_urlsafe(32)


def parse_ring(value: str) -> tuple[str, dict[str, str]]:
    """(current key id, {key id: key}) of a stored ring; a bare key is the ring ``{"1": key}``."""
    text = value.strip()
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ValueError("the clientState key ring is not valid JSON") from exc
        keys = doc.get("keys") if isinstance(doc, dict) else None
        current = doc.get("current") if isinstance(doc, dict) else None
        if not isinstance(keys, dict) or not isinstance(current, str) or current not in keys:
            raise ValueError("the clientState key ring needs 'current' naming one of its 'keys'")
        ring = {str(k): str(v) for k, v in keys.items() if isinstance(v, str) and v}
        if any(not k or len(k) > _KEY_ID_CHARS or _SEP in k for k in ring) or current not in ring:
            raise ValueError("the clientState key ring has a malformed key id")
        return current, ring
    return FIRST_KEY_ID, {FIRST_KEY_ID: text}


def ring_value(current: str, keys: Mapping[str, str]) -> str:
    return json.dumps({"current": current, "keys": dict(keys)}, separators=(",", ":"), sort_keys=True)


def signer_of(value: str) -> ClientStateSigner:
    current, ring = parse_ring(value)
    return ClientStateSigner(
        ring[current].encode("utf-8"), current,
        {k: v.encode("utf-8") for k, v in ring.items() if k != current},
    )


class ClientStateKeyCache:
    """The key ring, read from the secret store once per process and then kept in memory.

    ``signer()`` (the webhook) never creates a key and never waits on the store once the ring
    is loaded: a ring older than ``REFRESH_SECONDS`` is reloaded by a background thread while
    the cached one keeps serving. ``require()`` (subscription creation, off the hot path) makes
    the ring when there is none and reloads a stale one first. ``reload_soon()`` asks for a
    background reload (at most one per ``UNKNOWN_KEY_RELOAD_SECONDS``) when a notification names
    a key id the process does not hold; it says whether one was started. When the ring does not
    exist, ``signer()`` answers None and asks the store again only after a short pause, so a
    burst of notifications costs at most one store read.
    """

    def __init__(self, secrets_store: SecretStore, *, monotonic: Callable[[], float] = time.monotonic,
                 background: Callable[[Callable[[], None]], None] | None = None) -> None:
        self._store = secrets_store
        self._now = monotonic
        self._lock = threading.Lock()
        self._signer: ClientStateSigner | None = None
        self._loaded_at = 0.0
        self._missing_until = 0.0
        self._reload_requested_at = -UNKNOWN_KEY_RELOAD_SECONDS
        self._reloading = False
        self._background = background or _thread

    @property
    def cached(self) -> ClientStateSigner | None:
        """The signer if the ring is already in memory (no store call, ever)."""
        return self._signer

    def signer(self, *, create: bool = False) -> ClientStateSigner | None:
        """The signer; reads (or, with ``create``, makes) the ring on first use; stale rings reload behind."""
        found = self._signer
        if found is not None:
            if self._now() - self._loaded_at > REFRESH_SECONDS:
                self._start_reload()
            return found
        with self._lock:
            if self._signer is not None:
                return self._signer
            if not create and self._now() < self._missing_until:
                return None
            value = self._store.get(SECRET_NAME)
            if value is None and create:
                self._store.set(SECRET_NAME, ring_value(FIRST_KEY_ID, {FIRST_KEY_ID: new_key()}))
                value = self._store.get(SECRET_NAME)
            if value is None:
                self._missing_until = self._now() + _MISSING_KEY_RETRY_SECONDS
                return None
            self._signer, self._loaded_at = signer_of(value), self._now()
            return self._signer

    def require(self) -> ClientStateSigner:
        """The signer, creating the ring if needed and reloading a stale one first (subscription creation)."""
        if self._signer is not None and self._now() - self._loaded_at > REFRESH_SECONDS:
            self.reload()
        signer = self.signer(create=True)
        assert signer is not None
        return signer

    def reload(self) -> ClientStateSigner | None:
        """Read the ring again now (never on the webhook's path: background thread or subscription work)."""
        value = self._store.get(SECRET_NAME)
        with self._lock:
            if value is not None:
                self._signer, self._loaded_at = signer_of(value), self._now()
            return self._signer

    def reload_soon(self) -> bool:
        """A notification named an unknown key id: reload in the background unless one was asked for a moment
        ago. True when a reload was started now (the caller answers 503 so Graph delivers again)."""
        with self._lock:
            if self._now() - self._reload_requested_at < UNKNOWN_KEY_RELOAD_SECONDS:
                return False
            self._reload_requested_at = self._now()
        self._start_reload()
        return True

    def rotate(self) -> str:
        """Add a new current key, keeping only the previous one for verification; returns the new key id.

        An operator's step (see docs/architecture.md); other processes pick the ring up within
        ``REFRESH_SECONDS``, or at once when they meet the new key id.
        """
        with self._lock:
            value = self._store.get(SECRET_NAME)
            current, ring = parse_ring(value) if value is not None else (None, {})
            numeric = [int(k) for k in ring if k.isdigit()]
            new_id = str(max(numeric, default=0) + 1)
            keys = {new_id: new_key()}
            if current is not None:
                keys[current] = ring[current]
            self._store.set(SECRET_NAME, ring_value(new_id, keys))
            stored = self._store.get(SECRET_NAME)
            if stored is not None:
                self._signer, self._loaded_at = signer_of(stored), self._now()
        log.info("clientState key rotated to id %s (previous kept for verification)", new_id)
        return new_id

    def _start_reload(self) -> None:
        with self._lock:
            if self._reloading:
                return
            self._reloading = True

        def run() -> None:
            try:
                self.reload()
            except Exception as exc:  # a failed background reload keeps the ring in memory
                log.warning("clientState key ring reload failed (%s)", type(exc).__name__)
            finally:
                with self._lock:
                    self._reloading = False
                    self._loaded_at = max(self._loaded_at, self._now() - REFRESH_SECONDS / 2)

        self._background(run)


def _thread(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="client-state-reload", daemon=True).start()
