"""In-memory implementations of the storage ports (test doubles; never deployed).

They are the fakes for unit tests and follow the same contract suite as the Azure
adapters (tests/contract), including key encoding and ETag semantics, so a service
tested against them behaves the same on Azurite and in Azure. The value rules they
enforce are the Azure adapters' own (``core/adapters/rules.py``).
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from core.adapters.rules import check_secret_value, normalize_entity_data, serialize_command
from core.domain.errors import ConcurrencyConflict, Conflict, NotFound
from core.domain.keys import encode_key
from core.ports import Entity, TableOp, check_transaction


class InMemoryTableStore:
    """TableStore over dicts; thread-safe; ETags change on every write."""

    def __init__(self) -> None:
        self._tables: dict[str, dict[tuple[str, str], Entity]] = {}
        self._lock = threading.RLock()  # re-entrant: ``transact`` calls the single-row methods
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

    def transact(self, table: str, partition_key: str, operations: Sequence[TableOp]) -> list[Entity | None]:
        """All or nothing. Each operation goes through this store's own single-row method, so a
        subclass that injects faults or races into ``update`` (tests do) sees transactional writes
        too; on a failure the rows already written by this call are put back as they were."""
        check_transaction(partition_key, operations)
        for op in operations:  # the same value checks as a single write, before anything changes
            self._stamp(op.entity)
        with self._lock:
            rows = self._table(table)
            undo: list[tuple[tuple[str, str], Entity | None]] = []
            out: list[Entity | None] = []
            try:
                for op in operations:
                    e = op.entity
                    key = (e.partition_key, e.row_key)
                    before = rows.get(key)
                    if op.kind == "insert":
                        out.append(self.insert(table, e))
                    elif op.kind == "update":
                        out.append(self.update(table, e))
                    elif op.kind == "upsert":
                        out.append(self.upsert(table, e))
                    else:
                        if key not in rows:
                            raise NotFound()
                        self.delete(table, e.partition_key, e.row_key, e.etag)
                        out.append(None)
                    undo.append((key, before))  # only what this call wrote is put back
            except BaseException:
                for key, before in reversed(undo):
                    if before is None:
                        rows.pop(key, None)
                    else:
                        rows[key] = before
                raise
            return out

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
