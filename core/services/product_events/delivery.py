"""The product-events queue worker: deliver one pending event to one endpoint, in order, with retries.

Per ``webhook_delivery`` message (``WebhookDeliveryCommand``), the pending row is the
single source of truth, re-read every time:

1. no pending row: already delivered (or given up, or the endpoint deleted): done;
2. the endpoint is gone: the row is dropped; disabled: the row is *parked* (kept, no
   message) until the endpoint is enabled again (a ping is still attempted once);
3. not due yet: a message carrying the row's own schedule (``due``), or one the queue
   delivers again because its handler died (say, holding the claim of step 5), is put back
   for the remaining time (the queue hides a message at most 7 days); any other is a stale
   duplicate and is dropped;
4. an earlier version of the same session is still pending for this endpoint: wait until
   shortly after that one's next attempt (its success also wakes this one at once);
5. claim the attempt with an ETag-guarded write (attempts + 1, next attempt pushed past the
   request's time limit), so two copies of a message never POST twice at once;
6. POST through the ``WebhookSender`` port: ``webhook-id`` = the event id (the same for
   every retry and replay), ``webhook-timestamp`` = now, one signature per live secret;
7. write the delivery log row; then
   - 2xx: delete the pending row, mark the endpoint healthy, wake the next version;
   - 410 Gone: disable the endpoint (``gone``), park the row, alert the owner once;
   - other failure: the endpoint is failing since its first failure; after 24 h of failing
     without a success it is disabled (``failing``) and the owner alerted once; otherwise
     the row is rescheduled by ``retry_delay`` (5 s x 3^n, at most 3 h, +/- 20 % jitter),
     until it has been failing ``RETRY_FOR`` (24 h): then it is given up (logged) and the
     next version is woken.

Delivery is at least once; a duplicate is only ever the same ``webhook-id`` again.
"""

from __future__ import annotations

import logging
import random
import secrets as entropy
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Final

from core.domain.commands import (
    WEBHOOK_DELIVERY,
    WEBHOOK_REPLAY,
    AlertKind,
    WebhookDeliveryCommand,
    WebhookReplayCommand,
)
from core.domain.errors import ConcurrencyConflict, Conflict, InvalidMessage, NotFound
from core.domain.product_events import (
    DELIVERY_ID_PREFIX,
    DISABLE_AFTER,
    EventType,
    gives_up,
    retry_delay,
    ulid,
    wants,
)
from core.names import Queues, webhook_secret_name
from core.ports import Clock, CommandQueue, SecretStore, TableStore, WebhookAttempt, WebhookSender
from core.services.alerts import OwnerAlerts
from core.services.product_events.dispatcher import ProductEventDispatcher
from core.services.stores.codec import Versioned
from core.services.stores.webhooks import (
    DeliveryLogEntry,
    DeliveryStore,
    EndpointHealth,
    EndpointRepository,
    EventLog,
    PendingDelivery,
    WebhookEndpoint,
    healthy_again,
)

log = logging.getLogger(__name__)

CLAIM_FOR: Final = timedelta(seconds=30)  # longer than one attempt can take (10 s) plus slack
WAIT_SLACK: Final = timedelta(seconds=2)
EARLY_TOLERANCE: Final = timedelta(milliseconds=500)
REPLAY_PAGE: Final = 200


class WebhookDeliveryWorker:
    """Handles ``product-events`` messages (module docstring)."""

    def __init__(
        self,
        *,
        tables: TableStore,
        queues: CommandQueue,
        clock: Clock,
        secrets: SecretStore,
        sender: WebhookSender,
        alerts: OwnerAlerts,
        dispatcher: ProductEventDispatcher,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.deliveries = DeliveryStore(tables)
        self.endpoints = EndpointRepository(tables)
        self.events = EventLog(tables)
        self.queues = queues
        self.clock = clock
        self.secrets = secrets
        self.sender = sender
        self.alerts = alerts
        self.dispatcher = dispatcher
        self.jitter = jitter

    def handle(self, message: Mapping[str, Any], *, dequeue_count: int = 1) -> str:
        """One queue message; returns what happened (for logs and tests). A message seen before
        (``dequeue_count`` > 1: its last handler crashed or failed) keeps its row's chain alive."""
        kind = message.get("kind")
        if kind == WEBHOOK_DELIVERY:
            return self.deliver(WebhookDeliveryCommand.from_message(message), redelivered=dequeue_count > 1)
        if kind == WEBHOOK_REPLAY:
            return self.replay_page(WebhookReplayCommand.from_message(message))
        raise InvalidMessage("not a product-events message")

    # --- one delivery ----------------------------------------------------------------------------

    def deliver(self, cmd: WebhookDeliveryCommand, *, redelivered: bool = False) -> str:
        found = self.deliveries.get_pending(cmd.tenant_id, cmd.row)
        if found is None:
            return "done"
        pending = found.value
        endpoint = self.endpoints.get(cmd.tenant_id, pending.endpoint_id)
        if endpoint is None:
            self.deliveries.delete_pending(cmd.tenant_id, cmd.row)
            return "endpoint_deleted"
        ping = pending.type is EventType.PING
        if not endpoint.value.enabled and not ping:
            return self._park(found)
        if pending.parked:
            return "parked"
        now = self.clock.now()
        due_at = pending.next_attempt_at or now
        if due_at > now + EARLY_TOLERANCE:
            if redelivered or (cmd.due is not None and abs((cmd.due - due_at).total_seconds()) < 0.001):
                # Ours, only early (the 7-day hop limit), or a handler died holding the claim: come back then.
                self.dispatcher.send(pending, due_at)
                return "not_due"
            return "stale"
        earlier = self.deliveries.earlier_in_stream(pending)
        if earlier is not None:
            return self._wait_behind(found, earlier.value, now)
        claimed = self._claim(found, now)
        if claimed is None:
            return "claimed_elsewhere"
        return self._attempt(claimed, endpoint.value, now)

    def _park(self, found: Versioned[PendingDelivery]) -> str:
        if not found.value.parked:
            try:
                self.deliveries.save_pending(replace(found.value, parked=True), found.etag)
            except (ConcurrencyConflict, NotFound):
                return "raced"
        return "parked"

    def _wait_behind(self, found: Versioned[PendingDelivery], earlier: PendingDelivery, now: datetime) -> str:
        if earlier.parked:
            return self._park(found)
        until = max(earlier.next_attempt_at or now, now) + WAIT_SLACK
        waiting = replace(found.value, next_attempt_at=until)
        try:
            self.deliveries.save_pending(waiting, found.etag)
        except (ConcurrencyConflict, NotFound):
            return "raced"
        self.dispatcher.send(waiting, until)
        return "waiting"

    def _claim(self, found: Versioned[PendingDelivery], now: datetime) -> Versioned[PendingDelivery] | None:
        p = found.value
        claimed = replace(p, attempts=p.attempts + 1, first_attempt_at=p.first_attempt_at or now,
                          next_attempt_at=now + CLAIM_FOR)
        try:
            return self.deliveries.save_pending(claimed, found.etag)
        except (ConcurrencyConflict, NotFound):
            return None

    def secrets_for(self, endpoint: WebhookEndpoint, now: datetime) -> list[str]:
        """The live signing secrets: the current one, and the rotated-out one for its 24 h overlap."""
        versions = [endpoint.secret_version]
        if (endpoint.previous_secret_version is not None and endpoint.previous_secret_until is not None
                and now < endpoint.previous_secret_until):
            versions.append(endpoint.previous_secret_version)
        out = []
        for version in versions:
            value = self.secrets.get(webhook_secret_name(endpoint.tenant_id, endpoint.endpoint_id, version))
            if value:
                out.append(value)
        return out

    def _attempt(self, claimed: Versioned[PendingDelivery], endpoint: WebhookEndpoint, now: datetime) -> str:
        p = claimed.value
        secrets = self.secrets_for(endpoint, now)
        if not secrets:
            attempt = WebhookAttempt(None, 0, "secret_missing")
        else:
            attempt = self.sender.deliver(endpoint.url, message_id=p.event_id, timestamp=now, body=p.body,
                                          secrets=secrets)
        finished = self.clock.now()
        ping_on_disabled = p.type is EventType.PING and not endpoint.enabled
        if attempt.delivered:
            self._log(p, finished, "delivered", attempt)
            self.deliveries.delete_pending(p.tenant_id, p.row_key)
            self._healthy(endpoint, finished)
            self._wake_next(p, endpoint)
            log.info("webhook delivered", extra={"tenant": p.tenant_id, "status": attempt.status,
                                                 "durationMs": attempt.latency_ms, "event": p.type.value})
            return "delivered"
        log.info("webhook attempt failed", extra={"tenant": p.tenant_id, "status": attempt.status or attempt.error,
                                                  "durationMs": attempt.latency_ms, "event": p.type.value})
        if ping_on_disabled:
            self._log(p, finished, "failed", attempt)
            self.deliveries.delete_pending(p.tenant_id, p.row_key)
            return "failed"
        if attempt.status == 410:
            self._log(p, finished, "gone", attempt)
            self._disable(endpoint, "gone", finished)
            self._park(self.deliveries.get_pending(p.tenant_id, p.row_key) or claimed)
            return "gone"
        failing_since = self._failing(endpoint, finished)
        if finished - failing_since >= DISABLE_AFTER:
            self._log(p, finished, "failed", attempt)
            self._disable(endpoint, "failing", finished)
            self._park(self.deliveries.get_pending(p.tenant_id, p.row_key) or claimed)
            return "endpoint_disabled"
        if gives_up(p.first_attempt_at or now, finished):
            self._log(p, finished, "gave_up", attempt)
            self.deliveries.delete_pending(p.tenant_id, p.row_key)
            self._wake_next(p, endpoint)
            return "gave_up"
        self._log(p, finished, "failed", attempt)
        retry_at = finished + retry_delay(p.attempts, self.jitter())
        try:
            saved = self.deliveries.save_pending(replace(p, next_attempt_at=retry_at), claimed.etag)
        except (ConcurrencyConflict, NotFound):
            return "raced"
        self.dispatcher.send(saved.value, retry_at)
        return "retrying"

    def _log(self, p: PendingDelivery, at: datetime, outcome: str, attempt: WebhookAttempt) -> None:
        self.deliveries.log(DeliveryLogEntry(
            tenant_id=p.tenant_id, endpoint_id=p.endpoint_id,
            delivery_id=DELIVERY_ID_PREFIX + ulid(at, entropy.token_bytes(10)), at=at, event_id=p.event_id,
            type=p.type.value, attempt=p.attempts, outcome=outcome, status=attempt.status,
            latency_ms=attempt.latency_ms, error=attempt.error,
        ))

    def _wake_next(self, p: PendingDelivery, endpoint: WebhookEndpoint) -> None:
        """The next version of the stream may go now (also one that parked itself behind ``p`` while the
        endpoint was being enabled again)."""
        following = self.deliveries.next_in_stream(p)
        if following is not None and (endpoint.enabled or not following.value.parked):
            self.dispatcher.kick(following)

    # --- endpoint health -----------------------------------------------------------------------------

    def _healthy(self, endpoint: WebhookEndpoint, at: datetime) -> None:
        for _ in range(3):
            found = self.deliveries.health(endpoint.tenant_id, endpoint.endpoint_id)
            if found.value.failing_since is None and found.etag is not None:
                return  # nothing to clear: no write on the common path
            try:
                self.deliveries.save_health(endpoint.tenant_id, endpoint.endpoint_id,
                                            healthy_again(found.value, at), found.etag)
                return
            except (ConcurrencyConflict, Conflict, NotFound):
                continue

    def _failing(self, endpoint: WebhookEndpoint, at: datetime) -> datetime:
        """Record a failure; returns since when the endpoint has been failing without a success."""
        for _ in range(3):
            found = self.deliveries.health(endpoint.tenant_id, endpoint.endpoint_id)
            h = found.value
            since = h.failing_since or at
            updated = EndpointHealth(failing_since=since, last_success_at=h.last_success_at, last_failure_at=at,
                                     consecutive_failures=h.consecutive_failures + 1)
            try:
                self.deliveries.save_health(endpoint.tenant_id, endpoint.endpoint_id, updated, found.etag)
                return since
            except (ConcurrencyConflict, Conflict, NotFound):
                continue
        return at

    def _disable(self, endpoint: WebhookEndpoint, reason: str, at: datetime) -> None:
        for _ in range(3):
            found = self.endpoints.get(endpoint.tenant_id, endpoint.endpoint_id)
            if found is None or not found.value.enabled:
                return
            try:
                self.endpoints.save(replace(found.value, enabled=False, disabled_reason=reason, disabled_at=at,
                                            updated_at=at), found.etag)
            except (ConcurrencyConflict, NotFound):
                continue
            why = "it answered 410 Gone" if reason == "gone" else "it failed for 24 hours without a success"
            self.alerts.notify(endpoint.tenant_id, AlertKind.WEBHOOK_ENDPOINT_DISABLED,
                               detail=f"Endpoint {endpoint.endpoint_id} was disabled because {why}.", since=at)
            log.warning("webhook endpoint disabled", extra={"tenant": endpoint.tenant_id, "status": reason})
            return

    # --- replay since ----------------------------------------------------------------------------------

    def replay_page(self, cmd: WebhookReplayCommand) -> str:
        """Queue one page of the tenant's events since ``cmd.since`` to the endpoint; chain the next page."""
        endpoint = self.endpoints.get(cmd.tenant_id, cmd.endpoint_id)
        if endpoint is None:
            return "endpoint_deleted"
        page = self.events.since(cmd.tenant_id, cmd.since, after=cmd.after, limit=REPLAY_PAGE)
        for event in page:
            if wants(endpoint.value.events, event.type):
                self.dispatcher.enqueue(event, cmd.endpoint_id, kick=True)
        if len(page) == REPLAY_PAGE:
            following = replace(cmd, after=page[-1].event_id)
            self.queues.send(Queues.PRODUCT_EVENTS, following.to_message())
            return "replaying"
        return "replayed"
