"""Webhook endpoints per tenant: create, list, update, delete, rotate the secret, ping, log, replay.

Called by the tenant's admins (Integration.Admin) or the product's server (an app-only
token with Webhooks.ReadWrite.All); ``functions/product_webhooks.py`` checks who. Every
change is audited (who, what; never a secret).

Secrets: ``whsec_`` + base64 of 32 random bytes, shown once (on create and on rotate),
kept only in the secret store, one secret per version (``webhook_secret_name``), so a
process that caches secret values can never sign with a stale one: the endpoint row names
the versions in use. Rotation keeps the old version signing for 24 h (both signatures in
``webhook-signature``), then retention deletes it.

URLs are vetted twice: here at registration (the shape, then the sender resolves the host
and refuses private and metadata addresses) and by the sender again at every attempt.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import secrets as entropy
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from core.domain.commands import WebhookReplayCommand
from core.domain.errors import ConcurrencyConflict, NotFound, ValidationFailed
from core.domain.product_events import (
    ENDPOINT_ID_PREFIX,
    EVENT_RETENTION,
    MAX_ENDPOINTS_PER_TENANT,
    SECRET_OVERLAP,
    check_description,
    check_event_filter,
    check_url_shape,
    ping_draft,
    ulid,
)
from core.names import Queues, webhook_secret_name
from core.ports import Clock, CommandQueue, SecretStore, TableStore, WebhookSender
from core.services.product_events.dispatcher import ProductEventDispatcher
from core.services.stores.audit import AuditTrail
from core.services.stores.codec import Versioned
from core.services.stores.integrations import IntegrationRepository
from core.services.stores.outbox import make_events
from core.services.stores.webhooks import (
    DeliveryLogEntry,
    DeliveryStore,
    EndpointHealth,
    EndpointRepository,
    EventLog,
    WebhookEndpoint,
)

log = logging.getLogger(__name__)

_SAVE_ATTEMPTS = 3
MAX_LOG_PAGE = 100


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(entropy.token_bytes(32)).decode("ascii")


@dataclass(frozen=True, slots=True)
class EndpointInput:
    url: str
    events: Sequence[str] = ()
    description: str | None = None
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class EndpointChanges:
    """PATCH: only the fields given change (``description_set`` tells an explicit null from absent)."""

    url: str | None = None
    events: Sequence[str] | None = None
    description: str | None = None
    description_set: bool = False
    enabled: bool | None = None


@dataclass(frozen=True, slots=True)
class EndpointState:
    """An endpoint as callers see it, with its health."""

    endpoint: WebhookEndpoint
    health: EndpointHealth


class WebhookEndpointService:
    def __init__(
        self,
        *,
        tables: TableStore,
        queues: CommandQueue,
        clock: Clock,
        secrets: SecretStore,
        sender: WebhookSender,
        dispatcher: ProductEventDispatcher,
        local_mode: bool,
    ) -> None:
        self.endpoints = EndpointRepository(tables)
        self.deliveries = DeliveryStore(tables)
        self.events = EventLog(tables)
        self.integrations = IntegrationRepository(tables)
        self.audit = AuditTrail(tables, clock)
        self.queues = queues
        self.clock = clock
        self.secrets = secrets
        self.sender = sender
        self.dispatcher = dispatcher
        self.local_mode = local_mode

    # --- reads ---------------------------------------------------------------------------------

    def all(self, tenant_id: str) -> list[EndpointState]:
        found = sorted((f.value for f in self.endpoints.list(tenant_id)),
                       key=lambda e: (e.created_at is None, e.created_at, e.endpoint_id))
        return [EndpointState(e, self.deliveries.health(tenant_id, e.endpoint_id).value) for e in found]

    def get(self, tenant_id: str, endpoint_id: str) -> EndpointState:
        found = self._require(tenant_id, endpoint_id)
        return EndpointState(found.value, self.deliveries.health(tenant_id, endpoint_id).value)

    def _require(self, tenant_id: str, endpoint_id: str) -> Versioned[WebhookEndpoint]:
        found = self.endpoints.get(tenant_id, endpoint_id) if endpoint_id.startswith(ENDPOINT_ID_PREFIX) else None
        if found is None:
            raise NotFound("No such webhook endpoint.", code="webhook_endpoint_not_found")
        return found

    # --- writes --------------------------------------------------------------------------------

    def _check_url(self, url: str) -> str:
        check_url_shape(url, local_mode=self.local_mode)
        self.sender.check_url(url)
        return url

    def create(self, tenant_id: str, actor: str, data: EndpointInput) -> tuple[EndpointState, str]:
        """A new endpoint and its secret (shown this once)."""
        events = check_event_filter(data.events)
        description = check_description(data.description)
        if len(self.endpoints.list(tenant_id)) >= MAX_ENDPOINTS_PER_TENANT:
            raise ValidationFailed(
                f"An organisation may register at most {MAX_ENDPOINTS_PER_TENANT} webhook endpoints.",
                code="too_many_endpoints", details={"max": MAX_ENDPOINTS_PER_TENANT},
            )
        url = self._check_url(data.url)
        now = self.clock.now()
        endpoint = WebhookEndpoint(
            tenant_id=tenant_id, endpoint_id=ENDPOINT_ID_PREFIX + ulid(now, entropy.token_bytes(10)), url=url,
            events=tuple(events), description=description, enabled=data.enabled, created_at=now, updated_at=now,
            created_by=actor, secret_version=1,
            disabled_reason=None if data.enabled else "by_request", disabled_at=None if data.enabled else now,
        )
        secret = new_secret()
        self.secrets.set(webhook_secret_name(tenant_id, endpoint.endpoint_id, 1), secret)
        self.endpoints.add(endpoint)
        self.audit.record(tenant_id, actor, "webhook_endpoint.created",
                          {"endpointId": [None, endpoint.endpoint_id], "url": [None, url],
                           "events": [None, events], "enabled": [None, data.enabled]})
        log.info("webhook endpoint created", extra={"tenant": tenant_id})
        return EndpointState(endpoint, EndpointHealth()), secret

    def update(self, tenant_id: str, actor: str, endpoint_id: str, changes: EndpointChanges) -> EndpointState:
        events = check_event_filter(changes.events) if changes.events is not None else None
        if changes.description_set:
            check_description(changes.description)
        url = self._check_url(changes.url) if changes.url is not None else None
        for _ in range(_SAVE_ATTEMPTS):
            found = self._require(tenant_id, endpoint_id)
            current = found.value
            now = self.clock.now()
            updated = replace(
                current,
                url=url if url is not None else current.url,
                events=tuple(events) if events is not None else current.events,
                description=changes.description if changes.description_set else current.description,
                updated_at=now,
            )
            enabling = changes.enabled is True and not current.enabled
            if changes.enabled is not None:
                reason = None if changes.enabled else (current.disabled_reason or "by_request")
                updated = replace(updated, enabled=changes.enabled, disabled_reason=reason,
                                  disabled_at=None if changes.enabled else (current.disabled_at or now))
            try:
                self.endpoints.save(updated, found.etag)
            except ConcurrencyConflict:
                continue
            diff = {name: [before, after] for name, before, after in (
                ("url", current.url, updated.url), ("events", list(current.events), list(updated.events)),
                ("description", current.description, updated.description),
                ("enabled", current.enabled, updated.enabled)) if before != after}
            self.audit.record(tenant_id, actor, "webhook_endpoint.updated", {"endpointId": [endpoint_id, endpoint_id],
                                                                             **diff})
            if enabling:
                self._resume(tenant_id, endpoint_id)
            return EndpointState(updated, self.deliveries.health(tenant_id, endpoint_id).value)
        raise ConcurrencyConflict()

    def _resume(self, tenant_id: str, endpoint_id: str) -> None:
        """Enabled again: a fresh failure window, and the deliveries parked while disabled go out (in order)."""
        health = self.deliveries.health(tenant_id, endpoint_id)
        if health.etag is not None:
            with contextlib.suppress(ConcurrencyConflict, NotFound):
                self.deliveries.save_health(tenant_id, endpoint_id, EndpointHealth(), health.etag)
        for found in self.deliveries.pending_of_endpoint(tenant_id, endpoint_id):
            if found.value.parked:
                self.dispatcher.kick(found)

    def delete(self, tenant_id: str, actor: str, endpoint_id: str) -> None:
        """Forget the endpoint: it receives nothing more (the worker checks at every attempt)."""
        found = self._require(tenant_id, endpoint_id)
        endpoint = found.value
        self.endpoints.delete(tenant_id, endpoint_id)
        for version in {endpoint.secret_version, endpoint.previous_secret_version}:
            if version is not None:
                self.secrets.delete(webhook_secret_name(tenant_id, endpoint_id, version))
        self.deliveries.delete_endpoint_rows(tenant_id, endpoint_id)
        self.audit.record(tenant_id, actor, "webhook_endpoint.deleted", {"endpointId": [endpoint_id, None]})

    def rotate_secret(self, tenant_id: str, actor: str, endpoint_id: str) -> tuple[EndpointState, str]:
        """A new secret (shown once); the previous one keeps signing for 24 h."""
        for _ in range(_SAVE_ATTEMPTS):
            found = self._require(tenant_id, endpoint_id)
            current = found.value
            now = self.clock.now()
            version = current.secret_version + 1
            secret = new_secret()
            self.secrets.set(webhook_secret_name(tenant_id, endpoint_id, version), secret)
            updated = replace(current, secret_version=version, previous_secret_version=current.secret_version,
                              previous_secret_until=now + SECRET_OVERLAP, updated_at=now)
            try:
                self.endpoints.save(updated, found.etag)
            except ConcurrencyConflict:
                self.secrets.delete(webhook_secret_name(tenant_id, endpoint_id, version))
                continue
            dropped = current.previous_secret_version
            if dropped is not None and dropped != current.secret_version:
                self.secrets.delete(webhook_secret_name(tenant_id, endpoint_id, dropped))
            self.audit.record(tenant_id, actor, "webhook_endpoint.secret_rotated",
                              {"endpointId": [endpoint_id, endpoint_id],
                               "secretVersion": [current.secret_version, version]})
            return EndpointState(updated, self.deliveries.health(tenant_id, endpoint_id).value), secret
        raise ConcurrencyConflict()

    # --- deliveries ----------------------------------------------------------------------------

    def ping(self, tenant_id: str, actor: str, endpoint_id: str) -> str:
        """Queue a ``ping`` event to this endpoint (also when disabled: one attempt); its event id."""
        self._require(tenant_id, endpoint_id)
        [event] = make_events(tenant_id, [ping_draft(tenant_id, endpoint_id)], self.clock.now())
        self.events.record(event)
        self.dispatcher.enqueue(event, endpoint_id)
        return event.event_id

    def deliveries_page(self, tenant_id: str, endpoint_id: str, *, limit: int, before: str | None
                        ) -> tuple[list[DeliveryLogEntry], str | None]:
        self._require(tenant_id, endpoint_id)
        return self.deliveries.log_page(tenant_id, endpoint_id, limit=max(1, min(limit, MAX_LOG_PAGE)),
                                        before=before)

    def replay_delivery(self, tenant_id: str, actor: str, endpoint_id: str, delivery_id: str) -> str:
        """Send the event of one logged delivery again (same ``webhook-id``); its event id."""
        found = self._require(tenant_id, endpoint_id)
        entry = self.deliveries.log_entry(tenant_id, endpoint_id, delivery_id)
        if entry is None:
            raise NotFound("No such delivery in this endpoint's log.", code="delivery_not_found")
        event = self.events.get(tenant_id, entry.event_id)
        if event is None:
            raise NotFound("This event is older than the 30-day event log.", code="event_expired")
        if not found.value.enabled and event.type.value != "ping":
            raise ValidationFailed("Enable the endpoint before replaying to it.", code="endpoint_disabled")
        self.dispatcher.enqueue(event, endpoint_id, kick=True)
        self.audit.record(tenant_id, actor, "webhook_endpoint.replayed",
                          {"endpointId": [endpoint_id, endpoint_id], "eventId": [None, event.event_id]})
        return event.event_id

    def replay_since(self, tenant_id: str, actor: str, endpoint_id: str, since: datetime) -> datetime:
        """Queue every event since ``since`` (at most 30 days back) that the endpoint's filter wants."""
        found = self._require(tenant_id, endpoint_id)
        now = self.clock.now()
        if since > now:
            raise ValidationFailed("since is in the future.", code="since_in_future")
        if since < now - EVENT_RETENTION:
            raise ValidationFailed("Events are kept for 30 days; since may be at most 30 days ago.",
                                   code="since_too_old", details={"maxDays": EVENT_RETENTION.days})
        if not found.value.enabled:
            raise ValidationFailed("Enable the endpoint before replaying to it.", code="endpoint_disabled")
        self.queues.send(Queues.PRODUCT_EVENTS, WebhookReplayCommand(tenant_id, endpoint_id, since).to_message())
        self.audit.record(tenant_id, actor, "webhook_endpoint.replayed",
                          {"endpointId": [endpoint_id, endpoint_id], "since": [None, since.isoformat()]})
        return since

    # --- retention (daily timer) -------------------------------------------------------------------

    def retention(self) -> dict[str, Any]:
        """Delete events and delivery-log rows older than 30 days, deliveries still pending after 30 days
        (their endpoint stayed disabled), and rotated-out secrets past their 24 h overlap."""
        now = self.clock.now()
        cut = now - EVENT_RETENTION
        counts = {"events": 0, "log": 0, "pending": 0, "secrets": 0}
        for tenant_id in self.integrations.tenants():
            try:
                counts["events"] += self.events.expire(tenant_id, cut)
                for found in self.endpoints.list(tenant_id):
                    counts["log"] += self.deliveries.expire_log(tenant_id, found.value.endpoint_id, cut)
                    counts["secrets"] += self._drop_old_secret(found, now)
                for pending in self.deliveries.pending_of_tenant(tenant_id):
                    if pending.value.created_at < cut:
                        self.deliveries.delete_pending(tenant_id, pending.value.row_key)
                        counts["pending"] += 1
            except Exception as exc:  # one tenant's failure must not stop the others
                log.error("webhook retention failed for a tenant (%s)", type(exc).__name__,
                          extra={"tenant": tenant_id})
        return counts

    def _drop_old_secret(self, found: Versioned[WebhookEndpoint], now: datetime) -> int:
        e = found.value
        if e.previous_secret_version is None or e.previous_secret_until is None or now < e.previous_secret_until:
            return 0
        try:
            self.endpoints.save(replace(e, previous_secret_version=None, previous_secret_until=None), found.etag)
        except (ConcurrencyConflict, NotFound):
            return 0
        self.secrets.delete(webhook_secret_name(e.tenant_id, e.endpoint_id, e.previous_secret_version))
        return 1
