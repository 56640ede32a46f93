"""In-memory implementations of the storage ports, and the rules every implementation shares.

They are the fakes for unit tests and follow the same contract suite as the Azure
adapters (tests/contract), including key encoding and ETag semantics, so a service
tested against them behaves the same on Azurite and in Azure.

The value rules (what an entity property, a queue message and a secret may hold)
live here, next to the fakes, because the fakes are the executable statement of the
contract; the Azure adapters call the same functions before sending, so both reject
the same input with the same ``ValueError``/``TypeError`` instead of the fake
accepting what Azure would refuse.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from core.domain.errors import ConcurrencyConflict, Conflict, NotFound
from core.domain.keys import encode_key
from core.ports import Entity, EntityValue

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


class InMemoryTableStore:
    """TableStore over dicts; thread-safe; ETags change on every write."""

    def __init__(self) -> None:
        self._tables: dict[str, dict[tuple[str, str], Entity]] = {}
        self._lock = threading.Lock()
        self._etags = itertools.count(1)

    def _table(self, name: str) -> dict[tuple[str, str], Entity]:
        return self._tables.setdefault(name, {})

    def _stamp(self, entity: Entity) -> Entity:
        encode_key(entity.partition_key)  # same validation as the real adapter
        encode_key(entity.row_key)
        data = normalize_entity_data(entity.data)
        return Entity(entity.partition_key, entity.row_key, data, f'W/"{next(self._etags)}"')

    def get(self, table: str, partition_key: str, row_key: str) -> Entity | None:
        with self._lock:
            return self._table(table).get((partition_key, row_key))

    def insert(self, table: str, entity: Entity) -> Entity:
        with self._lock:
            rows = self._table(table)
            key = (entity.partition_key, entity.row_key)
            if key in rows:
                raise Conflict("The item already exists.", code="already_exists")
            stored = rows[key] = self._stamp(entity)
            return stored

    def update(self, table: str, entity: Entity) -> Entity:
        with self._lock:
            rows = self._table(table)
            key = (entity.partition_key, entity.row_key)
            current = rows.get(key)
            if current is None:
                raise NotFound()
            if entity.etag is not None and entity.etag != current.etag:
                raise ConcurrencyConflict()
            stored = rows[key] = self._stamp(entity)
            return stored

    def upsert(self, table: str, entity: Entity) -> Entity:
        with self._lock:
            stored = self._table(table)[(entity.partition_key, entity.row_key)] = self._stamp(entity)
            return stored

    def delete(self, table: str, partition_key: str, row_key: str, etag: str | None = None) -> None:
        with self._lock:
            rows = self._table(table)
            current = rows.get((partition_key, row_key))
            if current is None:
                return
            if etag is not None and etag != current.etag:
                raise ConcurrencyConflict()
            del rows[(partition_key, row_key)]

    def query(
        self,
        table: str,
        partition_key: str,
        *,
        row_key_from: str | None = None,
        row_key_to: str | None = None,
        limit: int | None = None,
    ) -> Iterator[Entity]:
        with self._lock:
            rows = sorted(
                (e for (pk, _), e in self._table(table).items() if pk == partition_key),
                key=lambda e: encode_key(e.row_key),
            )
        count = 0
        for entity in rows:
            rk = encode_key(entity.row_key)
            if row_key_from is not None and rk < encode_key(row_key_from):
                continue
            if row_key_to is not None and rk >= encode_key(row_key_to):
                continue
            if limit is not None and count >= limit:
                return
            count += 1
            yield entity

    def ping(self) -> None:
        return None

    def all(self, table: str) -> list[Entity]:
        """Every entity of a table (tests only)."""
        with self._lock:
            return list(self._table(table).values())


@dataclass(slots=True)
class QueuedMessage:
    body: dict[str, Any]
    visible_at: datetime
    dequeue_count: int = 0
    id: int = 0


@dataclass
class InMemoryCommandQueue:
    """CommandQueue that keeps messages in lists; tests pop them with ``take``."""

    now: Any = field(default=lambda: datetime.now(UTC))
    queues: dict[str, list[QueuedMessage]] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    fail_sends: bool = False

    def send(self, queue: str, message: Mapping[str, Any], *, delay_seconds: float = 0) -> None:
        from core.domain.errors import StorageUnavailable

        if self.fail_sends:
            raise StorageUnavailable()
        body = json.loads(serialize_command(message, delay_seconds))  # same limits as the real queue
        with self._lock:
            self.queues.setdefault(queue, []).append(
                QueuedMessage(body, self.now() + timedelta(seconds=delay_seconds), 0, next(self._ids))
            )

    def ping(self) -> None:
        return None

    def take(self, queue: str, *, include_delayed: bool = False) -> list[QueuedMessage]:
        """Remove and return the visible messages of ``queue`` (tests only)."""
        with self._lock:
            items = self.queues.get(queue, [])
            now = self.now()
            ready = [m for m in items if include_delayed or m.visible_at <= now]
            self.queues[queue] = [m for m in items if m not in ready]
            return [replace(m) for m in ready]

    def pending(self, queue: str) -> list[QueuedMessage]:
        with self._lock:
            return list(self.queues.get(queue, []))


class InMemorySecretStore:
    def __init__(self, initial: Mapping[str, str] | None = None) -> None:
        self._values: dict[str, str] = dict(initial or {})
        self._lock = threading.Lock()
        self.reads = 0

    def get(self, name: str) -> str | None:
        with self._lock:
            self.reads += 1
            return self._values.get(name)

    def set(self, name: str, value: str) -> None:
        check_secret_value(value)
        with self._lock:
            self._values[name] = value

    def delete(self, name: str) -> None:
        with self._lock:
            self._values.pop(name, None)

    def ping(self) -> None:
        return None

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._values)


class FixedClock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now

    def advance(self, **delta: float) -> None:
        self._now += timedelta(**delta)

    def set(self, now: datetime) -> None:
        self._now = now
