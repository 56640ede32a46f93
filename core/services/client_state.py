"""The clientState of change-notification subscriptions: checkable with no storage call.

Graph echoes a subscription's ``clientState`` on every notification. Ours is

    "1~" + mailboxUserId + "~" + base64url(HMAC-SHA256(key, "1|" + tenantId + "|" + mailboxUserId))

so the webhook can check an item from its own content alone: the tenant comes from the
item, the mailbox from the clientState (lifecycle notifications carry no resource) and,
for change notifications, must also match the mailbox named in the resource. The HMAC
key is a secret read once per process (see ``ClientStateKeyCache``); the comparison is
constant-time. Values are <= 128 characters for object ids (GUIDs), as Graph requires.

This module is pure: the key is injected, and the cache takes the ``SecretStore`` port.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from core.ports import SecretStore

SECRET_NAME: Final = "webhook-client-state-key"  # noqa: S105 - a secret's name, not its value
VERSION: Final = "1"
MAX_CLIENT_STATE_CHARS: Final = 128
_SEP: Final = "~"
_MISSING_KEY_RETRY_SECONDS: Final = 30.0


@dataclass(frozen=True, slots=True)
class ClientStateSigner:
    """Signs and checks clientState values with one in-memory key."""

    key: bytes

    def _mac(self, tenant_id: str, user_id: str) -> bytes:
        message = f"{VERSION}|{tenant_id.lower()}|{user_id.lower()}".encode()
        return base64.urlsafe_b64encode(hmac.digest(self.key, message, hashlib.sha256)).rstrip(b"=")

    def sign(self, tenant_id: str, user_id: str) -> str:
        """The clientState for the subscription on ``user_id``'s events in ``tenant_id``."""
        if not user_id or _SEP in user_id:
            raise ValueError("a mailbox user id must be non-empty and contain no '~'")
        value = f"{VERSION}{_SEP}{user_id.lower()}{_SEP}{self._mac(tenant_id, user_id).decode('ascii')}"
        if len(value) > MAX_CLIENT_STATE_CHARS:
            raise ValueError("the mailbox user id is too long for a clientState")
        return value

    def mailbox_of(self, client_state: str | None, tenant_id: str | None) -> str | None:
        """The mailbox user id a genuine clientState names for ``tenant_id``, else None.

        None for anything forged, truncated, of another tenant or of an unknown version.
        """
        if not client_state or not tenant_id or len(client_state) > MAX_CLIENT_STATE_CHARS:
            return None
        version, sep, rest = client_state.partition(_SEP)
        user_id, sep2, mac = rest.rpartition(_SEP)
        if version != VERSION or not sep or not sep2 or not user_id:
            return None
        if not hmac.compare_digest(self._mac(tenant_id, user_id), mac.encode("utf-8", "replace")):
            return None
        return user_id

    def verify(self, client_state: str | None, tenant_id: str | None, user_id: str | None) -> bool:
        """Is ``client_state`` ours, for this tenant and this mailbox?"""
        found = self.mailbox_of(client_state, tenant_id)
        return found is not None and user_id is not None and found == user_id.lower()


def new_key() -> str:
    """A fresh 256-bit key, as text a secret store keeps."""
    return secrets.token_urlsafe(32)


class ClientStateKeyCache:
    """The signing key, read from the secret store once per process and then kept in memory.

    ``signer(create=True)`` (subscription creation) makes the key when there is none yet;
    ``signer()`` (the webhook) never creates and, when the key does not exist, answers
    None and asks the store again only after a short pause, so a burst of notifications
    costs at most one store read. Concurrent creators in different processes could each
    write a key; reading back after writing keeps the window to one write.
    """

    def __init__(self, secrets_store: SecretStore, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._store = secrets_store
        self._now = monotonic
        self._lock = threading.Lock()
        self._signer: ClientStateSigner | None = None
        self._missing_until = 0.0

    @property
    def cached(self) -> ClientStateSigner | None:
        """The signer if the key is already in memory (no store call, ever)."""
        return self._signer

    def signer(self, *, create: bool = False) -> ClientStateSigner | None:
        """The signer; reads (or, with ``create``, makes) the key on first use."""
        found = self._signer
        if found is not None:
            return found
        with self._lock:
            if self._signer is not None:
                return self._signer
            if not create and self._now() < self._missing_until:
                return None
            value = self._store.get(SECRET_NAME)
            if value is None and create:
                self._store.set(SECRET_NAME, new_key())
                value = self._store.get(SECRET_NAME)
            if value is None:
                self._missing_until = self._now() + _MISSING_KEY_RETRY_SECONDS
                return None
            self._signer = ClientStateSigner(value.encode("utf-8"))
            return self._signer

    def require(self) -> ClientStateSigner:
        """The signer, creating the key if needed (subscription creation)."""
        signer = self.signer(create=True)
        assert signer is not None
        return signer
