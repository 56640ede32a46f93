"""The transactional outbox: product events written in the same transaction as the state they describe.

A repository that owns state the product hears about (sessions, integrations,
connections, access tests) derives the events of a change with a pure function
(``core/domain/product_events.py``) and writes them as outbox rows **in the same
entity-group transaction** as the state row (``TableStore.transact``: same table, same
partition = the tenant). So a change is never saved without its events, and an event
is never queued for a change that was not saved. Nothing is lost to a crash between
"saved" and "queued": the rows stay until they are dispatched.

Outbox rows live beside the state, under RowKey ``x~<stream>~<seq>~<eventId>`` in the
tenant's partition of that table (``x~`` sorts after every other prefix used there and
no other reader scans it). Properties: ``eventId``, ``type``, ``occurredAt``, ``stream``,
``seq`` and ``data`` (the event's metadata as JSON).

Right after a commit the repository tells the table store's **relay** (the dispatcher,
``core/services/product_events/dispatcher.py``, attached once by the composition root)
which table, tenant and streams (a session's events are one stream) have new rows; the
relay moves them to the product-events queue and deletes them. A dispatcher first
*claims* a row (an ETag-guarded ``claimedUntil``), so two dispatchers never publish the
same row, and a row is never published again once it is gone; a claim of a dispatcher
that died expires after a minute. A relay failure never fails the save (the state is
committed): the sweep timer dispatches whatever a crash or an outage left behind.

Why a relay attached to the ``TableStore`` rather than a constructor argument: every
service builds its repositories from the container's ``TableStore`` (about fifteen call
sites across features); attaching the relay to that store gives each of them the
immediate dispatch without changing how any of them builds a repository. A store
without a relay (a unit test's fake) still writes the outbox; the sweep dispatches it.
"""

from __future__ import annotations

import json
import logging
import secrets
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from core.domain.errors import ConcurrencyConflict, NotFound
from core.domain.product_events import EVENT_ID_PREFIX, EventDraft, EventType, ProductEvent, ulid
from core.ports import Entity, EntityValue, TableOp, TableStore
from core.services.stores.codec import END, as_int, require_datetime

log = logging.getLogger(__name__)

OUTBOX_PREFIX: Final = "x~"
OUTBOX_END: Final = OUTBOX_PREFIX + END


def new_event_id(at: datetime) -> str:
    """``evt_<ULID>``: unique, and ordered by the time the event happened."""
    return EVENT_ID_PREFIX + ulid(at, secrets.token_bytes(10))


def make_events(tenant_id: str, drafts: Sequence[EventDraft], at: datetime | None) -> list[ProductEvent]:
    """Give drafts their ids and time (the change's own time; the wall clock when it has none)."""
    when = (at or datetime.now(UTC)).astimezone(UTC)
    return [
        ProductEvent(new_event_id(when), d.type, tenant_id, when, dict(d.data), d.stream, d.seq) for d in drafts
    ]


def outbox_row_key(event: ProductEvent) -> str:
    return f"{stream_prefix(event.ordering_stream)}{event.seq:010d}~{event.event_id}"


def stream_prefix(stream: str) -> str:
    """The row-key prefix of one stream's outbox rows (they sort by seq under it)."""
    return f"{OUTBOX_PREFIX}{stream}~"


def event_to_data(event: ProductEvent) -> dict[str, EntityValue]:
    return {
        "eventId": event.event_id,
        "type": event.type.value,
        "occurredAt": event.occurred_at,
        "stream": event.ordering_stream,
        "seq": event.seq,
        "data": json.dumps(event.data, separators=(",", ":"), ensure_ascii=False),
    }


def event_from_data(tenant_id: str, d: dict[str, EntityValue]) -> ProductEvent:
    raw: Any = json.loads(str(d.get("data") or "{}"))
    return ProductEvent(
        event_id=str(d["eventId"]),
        type=EventType(str(d["type"])),
        tenant_id=tenant_id,
        occurred_at=require_datetime(d.get("occurredAt")),
        data=raw if isinstance(raw, dict) else {},
        stream=str(d.get("stream") or ""),
        seq=as_int(d.get("seq")),
    )


def outbox_ops(tenant_id: str, events: Sequence[ProductEvent]) -> list[TableOp]:
    return [TableOp("insert", Entity(tenant_id, outbox_row_key(e), event_to_data(e))) for e in events]


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One undispatched event, where it waits (with the ETag it was read with, and its claim)."""

    table: str
    row_key: str
    event: ProductEvent
    etag: str | None = None
    claimed_until: datetime | None = None
    data: dict[str, EntityValue] | None = None


class OutboxRelay(Protocol):
    """Told right after a commit that ``table`` has new outbox rows for ``tenant_id`` in ``streams``."""

    def committed(self, table: str, tenant_id: str, streams: Sequence[str]) -> None:
        ...


_relays: weakref.WeakKeyDictionary[Any, OutboxRelay] = weakref.WeakKeyDictionary()


def attach_relay(tables: TableStore, relay: OutboxRelay | None) -> None:
    """Make ``relay`` hear about every outbox commit through ``tables`` (None detaches)."""
    if relay is None:
        _relays.pop(tables, None)
    else:
        _relays[tables] = relay


def relay_of(tables: TableStore) -> OutboxRelay | None:
    return _relays.get(tables)


class Outbox:
    """Writes a state row with its events atomically, and reads and clears undispatched rows."""

    def __init__(self, tables: TableStore) -> None:
        self.tables = tables

    def commit(self, table: str, state: TableOp, events: Sequence[ProductEvent], *, notify: bool = True,
               extra: Sequence[TableOp] = ()) -> Entity | None:
        """Apply ``state`` (one row of the tenant's partition) and insert the events' outbox rows in
        one transaction (with ``extra`` rows of the same partition the repository keeps in step);
        without events or extra rows, the single write. Returns what ``state`` stored.

        ``notify=False`` leaves telling the relay to the caller (``committed``), for a repository
        that has more rows to write after the state (indexes): the dispatch's storage calls then
        come after them, so a crash right after the commit finds the indexes written.
        """
        tenant_id = state.entity.partition_key
        if not events and not extra:
            return self._single(table, state)
        stored = self.tables.transact(table, tenant_id, [state, *extra, *outbox_ops(tenant_id, events)])[0]
        if notify and events:
            self.committed(table, tenant_id, events)
        return stored

    def replace(
        self,
        table: str,
        tenant_id: str,
        row_key: str,
        etag: str | None,
        build: Callable[[Entity], tuple[dict[str, EntityValue], list[ProductEvent], list[TableOp]]],
        *,
        attempts: int = 5,
    ) -> tuple[Entity, Entity | None, list[ProductEvent]]:
        """Replace a state row with the events of the change (and ``extra`` rows ``build`` names) in one
        transaction, without telling the relay (``committed`` once the caller's later rows are written).

        ``build`` derives the new row, its events and extra rows from the row as read. With ``etag`` only
        that version is replaced (``ConcurrencyConflict`` otherwise); without, whatever is stored, read
        again when someone wrote between our read and our write. ``NotFound`` when there is no row.
        Returns the row read, what was stored and the events."""
        for _ in range(attempts):
            current = self.tables.get(table, tenant_id, row_key)
            if current is None:
                raise NotFound()
            if etag is not None and current.etag != etag:
                raise ConcurrencyConflict()
            data, events, extra = build(current)
            state = TableOp("update", Entity(tenant_id, row_key, data, current.etag))
            try:
                stored = self.commit(table, state, events, notify=False, extra=extra)
            except ConcurrencyConflict:
                if etag is not None:
                    raise
                continue  # an unconditional replace lost a race between our read and write: read again
            return current, stored, events
        raise ConcurrencyConflict()

    def add(self, table: str, tenant_id: str, events: Sequence[ProductEvent]) -> None:
        """Events with no state row of their own in this call (one transaction, then the relay)."""
        if events:
            self.tables.transact(table, tenant_id, outbox_ops(tenant_id, events))
            self.committed(table, tenant_id, events)

    def committed(self, table: str, tenant_id: str, events: Sequence[ProductEvent]) -> None:
        relay = relay_of(self.tables)
        if relay is None or not events:
            return
        streams = list(dict.fromkeys(e.ordering_stream for e in events))
        try:
            relay.committed(table, tenant_id, streams)
        except Exception as exc:  # the change is saved; the sweep dispatches what is left
            log.warning("product events not dispatched right away (%s); the sweep will", type(exc).__name__,
                        extra={"tenant": tenant_id})

    def _single(self, table: str, op: TableOp) -> Entity | None:
        if op.kind == "insert":
            return self.tables.insert(table, op.entity)
        if op.kind == "update":
            return self.tables.update(table, op.entity)
        if op.kind == "upsert":
            return self.tables.upsert(table, op.entity)
        self.tables.delete(table, op.entity.partition_key, op.entity.row_key, op.entity.etag)
        return None

    def pending(self, table: str, tenant_id: str, *, stream: str | None = None) -> Iterator[OutboxRow]:
        """Undispatched events of a tenant in one table (or one stream of it), in (stream, seq) order."""
        start = OUTBOX_PREFIX if stream is None else stream_prefix(stream)
        for e in self.tables.query(table, tenant_id, row_key_from=start, row_key_to=start + END):
            try:
                event = event_from_data(tenant_id, dict(e.data))
            except (KeyError, ValueError, TypeError) as exc:
                log.error("unreadable outbox row left in place (%s)", type(exc).__name__, extra={"tenant": tenant_id})
                continue
            claimed = e.data.get("claimedUntil")
            yield OutboxRow(table, e.row_key, event, e.etag, claimed if isinstance(claimed, datetime) else None,
                            dict(e.data))

    def claim(self, row: OutboxRow, until: datetime) -> OutboxRow | None:
        """Take ``row`` for dispatching until ``until`` (ETag-guarded); None when someone else took it or it is gone."""
        data = {**(row.data or event_to_data(row.event)), "claimedUntil": until}
        try:
            stored = self.tables.update(row.table, Entity(row.event.tenant_id, row.row_key, data, row.etag))
        except (ConcurrencyConflict, NotFound):
            return None
        return OutboxRow(row.table, row.row_key, row.event, stored.etag, until, data)

    def remove(self, row: OutboxRow) -> None:
        self.tables.delete(row.table, row.event.tenant_id, row.row_key)


def is_outbox_row(row_key: str) -> bool:
    """Readers that scan a whole tenant partition skip outbox rows with this."""
    return row_key.startswith(OUTBOX_PREFIX)
