"""Webhook endpoints of the product, their pending deliveries and delivery log, and the event log.

Every key starts with the tenant id (PartitionKey). Secrets are never here: an endpoint
row names only the *version* of its signing secret; the value lives in the secret store
under ``core.names.webhook_secret_name(tenant, endpoint, version)``.

Table ``webhookendpoints``, RowKey = endpoint id (``ep_<ULID>``): url, event filter,
description, enabled, who created it, secret versions (current, and the rotated-out one
with the time it stops signing), and why it was disabled.

Table ``webhookdeliveries``:

    p~<endpointId>~<stream>~<seq:010d>~<eventId>   a pending delivery (one event to one endpoint):
                                                  the signed body, attempts, first attempt,
                                                  next attempt, parked (endpoint disabled)
    l~<endpointId>~<invertedMillis>~<ULID>        one attempt in the delivery log (newest first):
                                                  time, event id and type, status, latency,
                                                  attempt, outcome; never the body or a secret
    h~<endpointId>                                the endpoint's health: failing since, last success

Pending rows of one session share a ``stream`` (``s:<sessionId>``) and sort by ``seq`` (the
event version), so "is an earlier version still undelivered?" is one range read.

Table ``productevents``, RowKey ``e~<ULID of the event id>``: every event of the tenant
(type, time, stream, seq, the JSON body) for 30 days, the source of "replay".
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from core.domain.errors import Conflict
from core.domain.product_events import (
    DELIVERY_ID_PREFIX,
    EVENT_ID_PREFIX,
    EventType,
    ProductEvent,
    parse_prefixed_ulid,
    ulid,
    ulid_time,
)
from core.names import Tables
from core.ports import Entity, EntityValue, TableStore
from core.services.stores.codec import END, Versioned, as_datetime, as_int, opt_str, require_datetime

PENDING: Final = "p~"
LOG: Final = "l~"
HEALTH: Final = "h~"
EVENT: Final = "e~"
_MAX_MILLIS: Final = 9_999_999_999_999


# --- endpoints ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    tenant_id: str
    endpoint_id: str
    url: str
    events: tuple[str, ...] = ()
    description: str | None = None
    enabled: bool = True
    created_at: datetime | None = None
    updated_at: datetime | None = None
    created_by: str | None = None
    secret_version: int = 1
    previous_secret_version: int | None = None
    previous_secret_until: datetime | None = None
    disabled_reason: str | None = None
    disabled_at: datetime | None = None


class EndpointRepository:
    """Rows of ``webhookendpoints`` (PartitionKey tenant, RowKey endpoint id)."""

    def __init__(self, tables: TableStore) -> None:
        self.tables = tables

    @staticmethod
    def _to(e: WebhookEndpoint) -> dict[str, EntityValue]:
        return {
            "url": e.url,
            "events": json.dumps(list(e.events)),
            "description": e.description,
            "enabled": e.enabled,
            "createdAt": e.created_at,
            "updatedAt": e.updated_at,
            "createdBy": e.created_by,
            "secretVersion": e.secret_version,
            "previousSecretVersion": e.previous_secret_version,
            "previousSecretUntil": e.previous_secret_until,
            "disabledReason": e.disabled_reason,
            "disabledAt": e.disabled_at,
        }

    @staticmethod
    def _from(entity: Entity) -> WebhookEndpoint:
        d = entity.data
        events: Any = json.loads(str(d.get("events") or "[]"))
        previous = d.get("previousSecretVersion")
        return WebhookEndpoint(
            tenant_id=entity.partition_key,
            endpoint_id=entity.row_key,
            url=str(d.get("url") or ""),
            events=tuple(str(t) for t in events) if isinstance(events, list) else (),
            description=opt_str(d.get("description")),
            enabled=bool(d.get("enabled", True)),
            created_at=as_datetime(d.get("createdAt")),
            updated_at=as_datetime(d.get("updatedAt")),
            created_by=opt_str(d.get("createdBy")),
            secret_version=as_int(d.get("secretVersion"), 1) or 1,
            previous_secret_version=as_int(previous) if previous not in (None, "") else None,
            previous_secret_until=as_datetime(d.get("previousSecretUntil")),
            disabled_reason=opt_str(d.get("disabledReason")),
            disabled_at=as_datetime(d.get("disabledAt")),
        )

    def list(self, tenant_id: str) -> list[Versioned[WebhookEndpoint]]:
        return [Versioned(self._from(e), e.etag) for e in self.tables.query(Tables.WEBHOOK_ENDPOINTS, tenant_id)]

    def get(self, tenant_id: str, endpoint_id: str) -> Versioned[WebhookEndpoint] | None:
        e = self.tables.get(Tables.WEBHOOK_ENDPOINTS, tenant_id, endpoint_id)
        return None if e is None else Versioned(self._from(e), e.etag)

    def add(self, endpoint: WebhookEndpoint) -> Versioned[WebhookEndpoint]:
        stored = self.tables.insert(
            Tables.WEBHOOK_ENDPOINTS, Entity(endpoint.tenant_id, endpoint.endpoint_id, self._to(endpoint))
        )
        return Versioned(endpoint, stored.etag)

    def save(self, endpoint: WebhookEndpoint, etag: str | None) -> Versioned[WebhookEndpoint]:
        stored = self.tables.update(
            Tables.WEBHOOK_ENDPOINTS, Entity(endpoint.tenant_id, endpoint.endpoint_id, self._to(endpoint), etag)
        )
        return Versioned(endpoint, stored.etag)

    def delete(self, tenant_id: str, endpoint_id: str) -> None:
        self.tables.delete(Tables.WEBHOOK_ENDPOINTS, tenant_id, endpoint_id)


# --- pending deliveries, the delivery log, health ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class PendingDelivery:
    """One event waiting to reach one endpoint."""

    tenant_id: str
    endpoint_id: str
    event_id: str
    type: EventType
    stream: str
    seq: int
    body: str
    created_at: datetime
    attempts: int = 0
    first_attempt_at: datetime | None = None
    next_attempt_at: datetime | None = None
    parked: bool = False

    @property
    def row_key(self) -> str:
        return pending_key(self.endpoint_id, self.stream, self.seq, self.event_id)


def pending_key(endpoint_id: str, stream: str, seq: int, event_id: str) -> str:
    return f"{PENDING}{endpoint_id}~{stream}~{seq:010d}~{event_id}"


def _stream_prefix(endpoint_id: str, stream: str) -> str:
    return f"{PENDING}{endpoint_id}~{stream}~"


@dataclass(frozen=True, slots=True)
class DeliveryLogEntry:
    """One attempt as the delivery log shows it (metadata only)."""

    tenant_id: str
    endpoint_id: str
    delivery_id: str
    at: datetime
    event_id: str
    type: str
    attempt: int
    outcome: str  # delivered | failed | gave_up | gone | refused
    status: int | None = None
    latency_ms: int | None = None
    error: str | None = None
    replay: bool = False


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    failing_since: datetime | None = None
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    consecutive_failures: int = 0


def _log_key(endpoint_id: str, delivery_ulid: str) -> str:
    millis = int(ulid_time(delivery_ulid).timestamp() * 1000)
    return f"{LOG}{endpoint_id}~{_MAX_MILLIS - millis:013d}~{delivery_ulid}"


class DeliveryStore:
    """Rows of ``webhookdeliveries`` (module docstring)."""

    def __init__(self, tables: TableStore) -> None:
        self.tables = tables

    # pending
    @staticmethod
    def _pending_data(p: PendingDelivery) -> dict[str, EntityValue]:
        return {
            "eventId": p.event_id,
            "type": p.type.value,
            "stream": p.stream,
            "seq": p.seq,
            "body": p.body,
            "createdAt": p.created_at,
            "attempts": p.attempts,
            "firstAttemptAt": p.first_attempt_at,
            "nextAttemptAt": p.next_attempt_at,
            "parked": p.parked,
        }

    @staticmethod
    def _pending(e: Entity) -> PendingDelivery:
        d = e.data
        endpoint = e.row_key[len(PENDING):].split("~", 1)[0]
        return PendingDelivery(
            tenant_id=e.partition_key,
            endpoint_id=endpoint,
            event_id=str(d["eventId"]),
            type=EventType(str(d["type"])),
            stream=str(d.get("stream") or ""),
            seq=as_int(d.get("seq")),
            body=str(d.get("body") or ""),
            created_at=require_datetime(d.get("createdAt")),
            attempts=as_int(d.get("attempts")),
            first_attempt_at=as_datetime(d.get("firstAttemptAt")),
            next_attempt_at=as_datetime(d.get("nextAttemptAt")),
            parked=bool(d.get("parked", False)),
        )

    def add_pending(self, p: PendingDelivery) -> bool:
        """Create the pending row; False when it already exists (a re-dispatch or a replay of a pending event)."""
        try:
            self.tables.insert(Tables.WEBHOOK_DELIVERIES, Entity(p.tenant_id, p.row_key, self._pending_data(p)))
        except Conflict:
            return False
        return True

    def get_pending(self, tenant_id: str, row_key: str) -> Versioned[PendingDelivery] | None:
        if not row_key.startswith(PENDING):
            return None
        e = self.tables.get(Tables.WEBHOOK_DELIVERIES, tenant_id, row_key)
        return None if e is None else Versioned(self._pending(e), e.etag)

    def save_pending(self, p: PendingDelivery, etag: str | None) -> Versioned[PendingDelivery]:
        """Replace if unchanged since read (``ConcurrencyConflict``/``NotFound`` otherwise)."""
        stored = self.tables.update(
            Tables.WEBHOOK_DELIVERIES, Entity(p.tenant_id, p.row_key, self._pending_data(p), etag)
        )
        return Versioned(p, stored.etag)

    def delete_pending(self, tenant_id: str, row_key: str, etag: str | None = None) -> None:
        self.tables.delete(Tables.WEBHOOK_DELIVERIES, tenant_id, row_key, etag)

    def earlier_in_stream(self, p: PendingDelivery) -> Versioned[PendingDelivery] | None:
        """The first undelivered event of the same stream and endpoint with a lower seq, if any."""
        prefix = _stream_prefix(p.endpoint_id, p.stream)
        for e in self.tables.query(Tables.WEBHOOK_DELIVERIES, p.tenant_id, row_key_from=prefix,
                                   row_key_to=f"{prefix}{p.seq:010d}", limit=1):
            return Versioned(self._pending(e), e.etag)
        return None

    def next_in_stream(self, p: PendingDelivery) -> Versioned[PendingDelivery] | None:
        """The first undelivered event of the same stream and endpoint after ``p``, if any."""
        prefix = _stream_prefix(p.endpoint_id, p.stream)
        for e in self.tables.query(Tables.WEBHOOK_DELIVERIES, p.tenant_id, row_key_from=p.row_key + "~",
                                   row_key_to=prefix + END, limit=1):
            return Versioned(self._pending(e), e.etag)
        return None

    def pending_of_endpoint(self, tenant_id: str, endpoint_id: str) -> Iterator[Versioned[PendingDelivery]]:
        prefix = f"{PENDING}{endpoint_id}~"
        for e in self.tables.query(Tables.WEBHOOK_DELIVERIES, tenant_id, row_key_from=prefix,
                                   row_key_to=prefix + END):
            yield Versioned(self._pending(e), e.etag)

    def pending_of_tenant(self, tenant_id: str) -> Iterator[Versioned[PendingDelivery]]:
        for e in self.tables.query(Tables.WEBHOOK_DELIVERIES, tenant_id, row_key_from=PENDING,
                                   row_key_to=PENDING + END):
            yield Versioned(self._pending(e), e.etag)

    # the delivery log
    def log(self, entry: DeliveryLogEntry) -> None:
        body = parse_prefixed_ulid(entry.delivery_id, DELIVERY_ID_PREFIX)
        if body is None:
            raise ValueError("not a delivery id")
        data: dict[str, EntityValue] = {
            "at": entry.at,
            "eventId": entry.event_id,
            "type": entry.type,
            "attempt": entry.attempt,
            "outcome": entry.outcome,
            "status": entry.status,
            "latencyMs": entry.latency_ms,
            "error": entry.error,
            "replay": entry.replay or None,
        }
        self.tables.upsert(Tables.WEBHOOK_DELIVERIES, Entity(entry.tenant_id, _log_key(entry.endpoint_id, body), data))

    @staticmethod
    def _entry(e: Entity) -> DeliveryLogEntry:
        d = e.data
        endpoint, _, delivery = e.row_key[len(LOG):].split("~", 2)
        status = d.get("status")
        latency = d.get("latencyMs")
        return DeliveryLogEntry(
            tenant_id=e.partition_key,
            endpoint_id=endpoint,
            delivery_id=DELIVERY_ID_PREFIX + delivery,
            at=require_datetime(d.get("at")),
            event_id=str(d.get("eventId") or ""),
            type=str(d.get("type") or ""),
            attempt=as_int(d.get("attempt")),
            outcome=str(d.get("outcome") or ""),
            status=as_int(status) if status not in (None, "") else None,
            latency_ms=as_int(latency) if latency not in (None, "") else None,
            error=opt_str(d.get("error")),
            replay=bool(d.get("replay", False)),
        )

    def log_page(self, tenant_id: str, endpoint_id: str, *, limit: int, before: str | None = None
                 ) -> tuple[list[DeliveryLogEntry], str | None]:
        """Newest first; ``before`` = the last delivery id of the previous page. Returns (page, next cursor)."""
        prefix = f"{LOG}{endpoint_id}~"
        start = prefix
        if before is not None:
            body = parse_prefixed_ulid(before, DELIVERY_ID_PREFIX)
            if body is not None:
                start = _log_key(endpoint_id, body) + "~"
        rows = [self._entry(e) for e in self.tables.query(
            Tables.WEBHOOK_DELIVERIES, tenant_id, row_key_from=start, row_key_to=prefix + END, limit=limit + 1)]
        more = len(rows) > limit
        page = rows[:limit]
        return page, (page[-1].delivery_id if more and page else None)

    def log_entry(self, tenant_id: str, endpoint_id: str, delivery_id: str) -> DeliveryLogEntry | None:
        body = parse_prefixed_ulid(delivery_id, DELIVERY_ID_PREFIX)
        if body is None:
            return None
        e = self.tables.get(Tables.WEBHOOK_DELIVERIES, tenant_id, _log_key(endpoint_id, body))
        return None if e is None else self._entry(e)

    def expire_log(self, tenant_id: str, endpoint_id: str, older_than: datetime) -> int:
        """Delete log rows from before ``older_than`` (retention); returns how many."""
        prefix = f"{LOG}{endpoint_id}~"
        cut = f"{prefix}{_MAX_MILLIS - int(older_than.timestamp() * 1000):013d}"
        count = 0
        for e in list(self.tables.query(Tables.WEBHOOK_DELIVERIES, tenant_id, row_key_from=cut,
                                        row_key_to=prefix + END)):
            self.tables.delete(Tables.WEBHOOK_DELIVERIES, tenant_id, e.row_key)
            count += 1
        return count

    def delete_endpoint_rows(self, tenant_id: str, endpoint_id: str) -> int:
        """Forget everything of a deleted endpoint: pending rows, log, health."""
        count = 0
        for prefix in (f"{PENDING}{endpoint_id}~", f"{LOG}{endpoint_id}~"):
            for e in list(self.tables.query(Tables.WEBHOOK_DELIVERIES, tenant_id, row_key_from=prefix,
                                            row_key_to=prefix + END)):
                self.tables.delete(Tables.WEBHOOK_DELIVERIES, tenant_id, e.row_key)
                count += 1
        self.tables.delete(Tables.WEBHOOK_DELIVERIES, tenant_id, HEALTH + endpoint_id)
        return count

    # health
    def health(self, tenant_id: str, endpoint_id: str) -> Versioned[EndpointHealth]:
        e = self.tables.get(Tables.WEBHOOK_DELIVERIES, tenant_id, HEALTH + endpoint_id)
        if e is None:
            return Versioned(EndpointHealth(), None)
        d = e.data
        return Versioned(EndpointHealth(
            failing_since=as_datetime(d.get("failingSince")),
            last_success_at=as_datetime(d.get("lastSuccessAt")),
            last_failure_at=as_datetime(d.get("lastFailureAt")),
            consecutive_failures=as_int(d.get("consecutiveFailures")),
        ), e.etag)

    def save_health(self, tenant_id: str, endpoint_id: str, health: EndpointHealth, etag: str | None) -> None:
        """Insert (``etag`` None: ``Conflict`` if it appeared meanwhile) or replace if unchanged."""
        entity = Entity(tenant_id, HEALTH + endpoint_id, {
            "failingSince": health.failing_since,
            "lastSuccessAt": health.last_success_at,
            "lastFailureAt": health.last_failure_at,
            "consecutiveFailures": health.consecutive_failures,
        }, etag)
        if etag is None:
            self.tables.insert(Tables.WEBHOOK_DELIVERIES, entity)
        else:
            self.tables.update(Tables.WEBHOOK_DELIVERIES, entity)


def healthy_again(h: EndpointHealth, at: datetime) -> EndpointHealth:
    return replace(h, failing_since=None, last_success_at=at, consecutive_failures=0)


# --- the event log -----------------------------------------------------------------------------------


class EventLog:
    """Rows of ``productevents``: each event of a tenant for 30 days (replay reads them)."""

    def __init__(self, tables: TableStore) -> None:
        self.tables = tables

    @staticmethod
    def _key(event_id: str) -> str:
        body = parse_prefixed_ulid(event_id, EVENT_ID_PREFIX)
        if body is None:
            raise ValueError("not an event id")
        return EVENT + body

    def record(self, event: ProductEvent) -> None:
        self.tables.upsert(Tables.PRODUCT_EVENTS, Entity(event.tenant_id, self._key(event.event_id), {
            "type": event.type.value,
            "occurredAt": event.occurred_at,
            "stream": event.ordering_stream,
            "seq": event.seq,
            "body": event.body(),
        }))

    @staticmethod
    def _event(e: Entity) -> ProductEvent:
        d = e.data
        payload: Any = json.loads(str(d.get("body") or "{}"))
        data = payload.get("data") if isinstance(payload, dict) else None
        return ProductEvent(
            event_id=EVENT_ID_PREFIX + e.row_key[len(EVENT):],
            type=EventType(str(d["type"])),
            tenant_id=e.partition_key,
            occurred_at=require_datetime(d.get("occurredAt")),
            data=data if isinstance(data, dict) else {},
            stream=str(d.get("stream") or ""),
            seq=as_int(d.get("seq")),
        )

    def get(self, tenant_id: str, event_id: str) -> ProductEvent | None:
        try:
            key = self._key(event_id)
        except ValueError:
            return None
        e = self.tables.get(Tables.PRODUCT_EVENTS, tenant_id, key)
        return None if e is None else self._event(e)

    def since(self, tenant_id: str, since: datetime, *, after: str | None = None, limit: int = 200
              ) -> list[ProductEvent]:
        """Events that happened at or after ``since``, oldest first, after event id ``after`` when given."""
        start = EVENT + ulid(since, bytes(10))
        if after is not None:
            with contextlib.suppress(ValueError):
                start = max(start, self._key(after) + "~")
        return [self._event(e) for e in self.tables.query(
            Tables.PRODUCT_EVENTS, tenant_id, row_key_from=start, row_key_to=EVENT + END, limit=limit)]

    def expire(self, tenant_id: str, older_than: datetime) -> int:
        count = 0
        for e in list(self.tables.query(Tables.PRODUCT_EVENTS, tenant_id, row_key_from=EVENT,
                                        row_key_to=EVENT + ulid(older_than, bytes(10)))):
            self.tables.delete(Tables.PRODUCT_EVENTS, tenant_id, e.row_key)
            count += 1
        return count
