"""Moves outbox rows to the product-events queue: one pending delivery per matching endpoint.

``committed`` is the outbox relay (core/services/stores/outbox.py): a repository calls it
right after a state change and its events were committed together. For each undispatched
event of the streams it names (a session's events are one stream), in seq order, the
dispatcher claims the outbox row (ETag) and

1. records the event in the event log (``productevents``, 30 days, the source of replay);
2. creates one pending delivery row per enabled endpoint whose filter wants the type
   (``webhookdeliveries`` ``p~...``, the signed body and retry state) and queues one
   ``webhook_delivery`` message for it;
3. deletes the outbox row.

Every step is idempotent (the event log row and pending rows have fixed keys; an existing
pending row only gets another message, which the worker recognises), so a crash anywhere
is repaired by running the same steps again: ``sweep`` (a timer) does that for outbox rows
older than a few seconds (and claims older than a minute), and re-queues pending
deliveries whose message was lost. The claim keeps concurrent dispatchers of one stream
from publishing a row twice (which, after its delivery, would send it again). Dispatching
a stream in seq order, and stopping at a row someone else holds, means a later version of
a session never has a pending row while an earlier committed one has not: the worker's
order check (an earlier pending row of the same session and endpoint) covers every version.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Final

from core.domain.commands import WebhookDeliveryCommand
from core.domain.errors import ConcurrencyConflict, NotFound
from core.domain.product_events import ProductEvent, delay_seconds, wants
from core.names import Queues, Tables
from core.ports import Clock, CommandQueue, TableStore
from core.services.stores.codec import Versioned
from core.services.stores.integrations import IntegrationRepository
from core.services.stores.outbox import Outbox
from core.services.stores.webhooks import DeliveryStore, EndpointRepository, EventLog, PendingDelivery, WebhookEndpoint

log = logging.getLogger(__name__)

# The tables whose repositories write outbox rows (the sweep reads these).
OUTBOX_TABLES: Final = (Tables.SESSIONS, Tables.INTEGRATIONS, Tables.CONNECTIONS, Tables.ACCESS_TESTS,
                        Tables.AVAILABILITY_RULES)
SWEEP_MIN_AGE: Final = timedelta(seconds=20)  # younger rows are being dispatched right after their commit
CLAIM_FOR: Final = timedelta(minutes=1)  # a dispatcher that died holding a row: the sweep retakes it after this
MAX_ROUNDS: Final = 20  # re-reads of a stream for rows committed while it was being dispatched
STRANDED_AFTER: Final = timedelta(minutes=2)  # a pending delivery this overdue lost its message


class ProductEventDispatcher:
    """The outbox relay and the sweep (module docstring)."""

    def __init__(self, tables: TableStore, queues: CommandQueue, clock: Clock) -> None:
        self.outbox = Outbox(tables)
        self.endpoints = EndpointRepository(tables)
        self.deliveries = DeliveryStore(tables)
        self.events = EventLog(tables)
        self.integrations = IntegrationRepository(tables)
        self.queues = queues
        self.clock = clock

    # --- the relay ---------------------------------------------------------------------------

    def committed(self, table: str, tenant_id: str, streams: Sequence[str]) -> None:
        for stream in streams:
            self.dispatch_stream(table, tenant_id, stream)

    def dispatch_stream(self, table: str, tenant_id: str, stream: str, *, min_age: timedelta | None = None) -> int:
        """Dispatch one stream's undispatched events in seq order; how many this call dispatched.

        Each row is claimed first (ETag). A row someone else holds stops this call: that dispatcher
        goes on with the rest of the stream (it reads the stream again when done), so a later
        version is never published before an earlier one. ``min_age`` (the sweep) leaves rows
        younger than that to the dispatch right after their commit.
        """
        done = 0
        endpoints: list[WebhookEndpoint] | None = None
        for _ in range(MAX_ROUNDS):
            rows = list(self.outbox.pending(table, tenant_id, stream=stream))
            if not rows:
                break
            now = self.clock.now()
            for row in rows:
                if row.claimed_until is not None and row.claimed_until > now:
                    return done  # another dispatcher is on this stream
                if min_age is not None and row.event.occurred_at > now - min_age:
                    return done
                claimed = self.outbox.claim(row, now + CLAIM_FOR)
                if claimed is None:
                    return done
                if endpoints is None:
                    endpoints = self.enabled_endpoints(tenant_id)
                self.publish(row.event, endpoints)
                self.outbox.remove(claimed)
                done += 1
        if done:
            log.info("product events dispatched", extra={"tenant": tenant_id, "count": done})
        return done

    def dispatch(self, table: str, tenant_id: str, *, min_age: timedelta | None = None) -> int:
        """Dispatch every stream with undispatched events in one table and tenant (the sweep)."""
        streams = list(dict.fromkeys(row.event.ordering_stream for row in self.outbox.pending(table, tenant_id)))
        return sum(self.dispatch_stream(table, tenant_id, stream, min_age=min_age) for stream in streams)

    def enabled_endpoints(self, tenant_id: str) -> list[WebhookEndpoint]:
        return [found.value for found in self.endpoints.list(tenant_id) if found.value.enabled]

    def publish(self, event: ProductEvent, endpoints: Sequence[WebhookEndpoint]) -> int:
        """Log the event and queue it to every endpoint whose filter wants it; how many endpoints."""
        self.events.record(event)
        count = 0
        for endpoint in endpoints:
            if wants(endpoint.events, event.type):
                self.enqueue(event, endpoint.endpoint_id)
                count += 1
        return count

    def enqueue(self, event: ProductEvent, endpoint_id: str, *, kick: bool = False) -> PendingDelivery:
        """Create the pending delivery of ``event`` to one endpoint and queue its message.

        When it already exists (a re-dispatch after a crash, or a replay of an event that is
        still pending), it is left as it is and gets another message, unless ``kick`` (a
        replay) makes it due now (and unparks it).
        """
        now = self.clock.now()
        pending = PendingDelivery(
            tenant_id=event.tenant_id, endpoint_id=endpoint_id, event_id=event.event_id, type=event.type,
            stream=event.ordering_stream, seq=event.seq, body=event.body(), created_at=now, next_attempt_at=now,
        )
        if self.deliveries.add_pending(pending):
            self.send(pending, now)
            return pending
        found = self.deliveries.get_pending(event.tenant_id, pending.row_key)
        if found is None:  # delivered between our insert and read: nothing left to do
            return pending
        if kick:
            return self.kick(found) or found.value
        self.send(found.value, found.value.next_attempt_at or now)
        return found.value

    def kick(self, found: Versioned[PendingDelivery]) -> PendingDelivery | None:
        """Make a waiting or parked delivery due now and queue it (None when it changed meanwhile)."""
        now = self.clock.now()
        due = replace(found.value, next_attempt_at=now, parked=False)
        try:
            self.deliveries.save_pending(due, found.etag)
        except (ConcurrencyConflict, NotFound):
            return None
        self.send(due, now)
        return due

    def send(self, pending: PendingDelivery, due: datetime) -> None:
        now = self.clock.now()
        command = WebhookDeliveryCommand(pending.tenant_id, pending.endpoint_id, pending.row_key, pending.event_id, due)
        self.queues.send(Queues.PRODUCT_EVENTS, command.to_message(), delay_seconds=delay_seconds(due, now))

    # --- the sweep timer -----------------------------------------------------------------------

    def sweep(self) -> dict[str, int]:
        """Dispatch outbox rows a crash left behind, re-queue stranded deliveries, unpark deliveries
        of endpoints enabled again. Returns counts (for the log)."""
        counts = {"dispatched": 0, "requeued": 0}
        for tenant_id in self.integrations.tenants():
            try:
                for table in OUTBOX_TABLES:
                    counts["dispatched"] += self.dispatch(table, tenant_id, min_age=SWEEP_MIN_AGE)
                counts["requeued"] += self._requeue_stranded(tenant_id)
            except Exception as exc:  # one tenant's failure must not stop the others
                log.error("product-event sweep failed for a tenant (%s)", type(exc).__name__,
                          extra={"tenant": tenant_id})
        return counts

    def _requeue_stranded(self, tenant_id: str) -> int:
        now = self.clock.now()
        enabled: set[str] | None = None
        count = 0
        for found in self.deliveries.pending_of_tenant(tenant_id):
            p = found.value
            if p.parked:
                if enabled is None:
                    enabled = {e.endpoint_id for e in self.enabled_endpoints(tenant_id)}
                if p.endpoint_id in enabled and self.kick(found) is not None:
                    count += 1
                continue
            if p.next_attempt_at is None or p.next_attempt_at < now - STRANDED_AFTER:
                self.send(p, p.next_attempt_at or now)
                count += 1
        return count
