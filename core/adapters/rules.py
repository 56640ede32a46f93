"""Value rules every storage implementation shares: what an entity property, a queue message
and a secret may hold (Table Storage, Queue Storage and Key Vault limits; docs/graph-notes.md
"Storage limits").

The Azure adapters call these before sending, and the in-memory fakes of the test suite
(``tests/support/memory.py``) call the same functions, so both reject the same input with
the same ``ValueError``/``TypeError`` instead of a fake accepting what Azure would refuse.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from core.ports import EntityValue

# --- Table entity rules (Table Storage limits, docs/graph-notes.md "Storage limits") ---

# Properties the adapters use themselves: PartitionKey/RowKey/Timestamp are system
# properties; the two raw-key properties keep the original of a hashed key.
RAW_PARTITION_KEY = "_rawPartitionKey"
RAW_ROW_KEY = "_rawRowKey"
RESERVED_PROPERTIES = frozenset({"PartitionKey", "RowKey", "Timestamp", RAW_PARTITION_KEY, RAW_ROW_KEY})
MAX_PROPERTIES = 250  # 255 per entity, minus the 3 system properties and the 2 raw keys
MAX_STRING_UTF16_UNITS = 32 * 1024  # a string property holds at most 64 KiB of UTF-16
_PROPERTY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def normalize_entity_data(data: Mapping[str, EntityValue]) -> dict[str, EntityValue]:
    """The data as Table Storage will give it back; raise for what it cannot store.

    ``None`` values are dropped (Table Storage has no null property: the property is
    simply absent on read). Datetimes must be timezone-aware and come back in UTC; a
    naive datetime is refused rather than silently read as local time by the SDK.
    """
    if len(data) > MAX_PROPERTIES:
        raise ValueError(f"an entity holds at most {MAX_PROPERTIES} properties")
    out: dict[str, EntityValue] = {}
    for name, value in data.items():
        if name in RESERVED_PROPERTIES or not _PROPERTY_NAME.fullmatch(name):
            raise ValueError(f"invalid or reserved entity property name {name[:40]!r}")
        if value is None:
            continue
        if isinstance(value, bool | float):
            out[name] = value
        elif isinstance(value, int):
            if not _INT64_MIN <= value <= _INT64_MAX:
                raise ValueError(f"property {name!r} does not fit a 64-bit integer")
            out[name] = value
        elif isinstance(value, str):
            if len(value.encode("utf-16-le")) // 2 > MAX_STRING_UTF16_UNITS:
                raise ValueError(f"property {name!r} is longer than Table Storage allows (64 KiB)")
            out[name] = value
        elif isinstance(value, datetime):
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError(f"property {name!r} is a naive datetime; store timezone-aware UTC")
            out[name] = value.astimezone(UTC)
        else:
            raise TypeError(f"property {name!r} has unsupported type {type(value).__name__}")
    return out


# --- Queue message rules ---

# A queue message is at most 64 KiB after base64 encoding: 48 KiB of UTF-8 JSON.
MAX_MESSAGE_BYTES = 48 * 1024
MAX_DELAY_SECONDS = 7 * 24 * 3600  # the longest visibility timeout the queue service accepts


def serialize_command(message: Mapping[str, Any], delay_seconds: float = 0) -> str:
    """Compact UTF-8 JSON of a command; ``ValueError`` when it or the delay breaks queue limits."""
    if not isinstance(message, Mapping):
        raise TypeError("a command is a JSON object (a mapping)")
    if not (math.isfinite(delay_seconds) and 0 <= delay_seconds <= MAX_DELAY_SECONDS):
        raise ValueError(f"delay_seconds must be between 0 and {MAX_DELAY_SECONDS}")
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    size = len(text.encode("utf-8"))
    if size > MAX_MESSAGE_BYTES:
        raise ValueError(
            f"command is {size} bytes of JSON; a queue message holds at most {MAX_MESSAGE_BYTES} "
            "(64 KiB once base64-encoded): store the payload in a table and enqueue its key"
        )
    return text


# --- Secret rules ---

MAX_SECRET_BYTES = 25 * 1024  # Key Vault's secret value limit


def check_secret_value(value: str) -> None:
    """Raise ``ValueError`` for a value no vault would keep (not text, or over 25 KiB)."""
    if not isinstance(value, str):
        raise TypeError("secret values are strings")
    if len(value.encode("utf-8")) > MAX_SECRET_BYTES:
        raise ValueError(f"a secret value holds at most {MAX_SECRET_BYTES} bytes")
