"""Table key encoding: any string (user id, email, Graph id) -> a valid PartitionKey/RowKey.

Table Storage forbids ``/ \\ # ?`` and control characters in keys and caps them at
1 KiB. We percent-encode those characters (and ``%`` itself) as ``%XX`` of their
UTF-8 bytes, which keeps the order of keys made of ordinary characters, so range
queries over such keys still work. A key still too long after encoding is replaced by
a hash (marked with a ``~h~`` prefix); it cannot be decoded, so adapters keep the
original beside it.
"""

from __future__ import annotations

import hashlib

MAX_KEY_CHARS = 512
HASH_PREFIX = "~h~"


def _needs_escape(ch: str) -> bool:
    code = ord(ch)
    return ch in "/\\#?%" or code < 0x20 or 0x7F <= code <= 0x9F


def encode_key(raw: str) -> str:
    """Encode ``raw`` into a key Table Storage accepts; the identity for ordinary keys."""
    if not isinstance(raw, str):
        raise TypeError("table keys are strings")
    if not any(_needs_escape(ch) for ch in raw) and len(raw) <= MAX_KEY_CHARS and not raw.startswith(HASH_PREFIX):
        return raw
    out: list[str] = []
    for ch in raw:
        if _needs_escape(ch):
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
        else:
            out.append(ch)
    encoded = "".join(out)
    if len(encoded) > MAX_KEY_CHARS or raw.startswith(HASH_PREFIX):
        return HASH_PREFIX + hashlib.sha256(raw.encode("utf-8")).hexdigest()
    return encoded


def is_hashed(key: str) -> bool:
    return key.startswith(HASH_PREFIX)


def decode_key(encoded: str) -> str:
    """Invert ``encode_key`` (not for hashed keys: keep the raw key beside those)."""
    if is_hashed(encoded):
        raise ValueError("a hashed key cannot be decoded")
    if "%" not in encoded:
        return encoded
    data = bytearray()
    i = 0
    while i < len(encoded):
        ch = encoded[i]
        if ch == "%" and i + 2 < len(encoded) + 0 and _is_hex(encoded[i + 1 : i + 3]):
            data.append(int(encoded[i + 1 : i + 3], 16))
            i += 3
        else:
            data.extend(ch.encode("utf-8"))
            i += 1
    return data.decode("utf-8")


def _is_hex(text: str) -> bool:
    return len(text) == 2 and all(c in "0123456789ABCDEFabcdef" for c in text)
