"""AES-GCM ``Sealer`` with its key in the secret store (``queue-sealing-key``).

The key is 256 random bits, created on first use and cached in memory, so a process
reads the vault once, not once per message. Tokens are ``v1.<base64url(nonce || ciphertext)>``
with a fresh 96-bit nonce per seal; the context (tenant and session id) is the
associated data, so a token copied into another session's message does not open.

If two processes create the key at the same moment, the last write wins and the
loser's tokens stop opening once it re-reads: the worker then uses the subject
template (see ``core/services/sealing.py``); bookings never fail over a subject.
"""

from __future__ import annotations

import base64
import binascii
import os
import threading
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.domain.errors import UnsealFailed
from core.ports import SecretStore

SEALING_KEY_NAME: Final = "queue-sealing-key"

_VERSION: Final = "v1."
_NONCE_BYTES: Final = 12
_KEY_BYTES: Final = 32


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _decode_key(stored: str | None) -> bytes | None:
    if not stored:
        return None
    try:
        key = _b64d(stored)
    except (binascii.Error, ValueError):
        return None
    return key if len(key) == _KEY_BYTES else None


class AesGcmSealer:
    """Seals with AES-256-GCM under the key named ``key_name`` in ``secrets``."""

    def __init__(self, secrets: SecretStore, key_name: str = SEALING_KEY_NAME) -> None:
        self._secrets = secrets
        self._key_name = key_name
        self._aead: AESGCM | None = None
        self._lock = threading.Lock()

    def _cipher(self) -> AESGCM:
        with self._lock:
            if self._aead is None:
                key = _decode_key(self._secrets.get(self._key_name))
                if key is None:
                    key = AESGCM.generate_key(bit_length=_KEY_BYTES * 8)
                    self._secrets.set(self._key_name, _b64e(key))
                self._aead = AESGCM(key)
            return self._aead

    def seal(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._cipher().encrypt(nonce, plaintext.encode("utf-8"), context.encode("utf-8"))
        return _VERSION + _b64e(nonce + sealed)

    def unseal(self, token: str, context: str) -> str:
        if not isinstance(token, str) or not token.startswith(_VERSION):
            raise UnsealFailed("not a sealed value")
        try:
            raw = _b64d(token[len(_VERSION) :])
        except (binascii.Error, ValueError) as exc:
            raise UnsealFailed("not a sealed value") from exc
        if len(raw) <= _NONCE_BYTES:
            raise UnsealFailed("not a sealed value")
        try:
            plain = self._cipher().decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode("utf-8"))
            return plain.decode("utf-8")
        except (InvalidTag, UnicodeDecodeError) as exc:
            raise UnsealFailed("the sealed value does not open with this key and context") from exc
