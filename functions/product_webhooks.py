"""Events to the product: webhook endpoint routes, the delivery queue worker and the timers.

Routes (``/api/webhooks/endpoints``) are for the tenant's admins or the product's server
(app-only token with ``Webhooks.ReadWrite.All``): ``Auth.WEBHOOK_MANAGER``. Everything is
scoped to the caller's tenant; another tenant's endpoint id is simply not found (404).
Handlers parse, call ``WebhookEndpointService`` once and map the result.

Queue ``product-events``: ``WebhookDeliveryWorker`` (one delivery, or one replay page).
Timers: the outbox sweep every minute (events a crash left undispatched, deliveries
whose message was lost) and the daily retention run (30 days of events and delivery log).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import azure.functions as func

from core.bootstrap import Container
from core.names import Queues
from functions.auth import Auth
from functions.endpoint import Models, Reply, RequestContext, endpoint
from functions.jobs import Job, queue_job, timer_job

if TYPE_CHECKING:  # services and schemas load on first use, not at import (cold start)
    from core.services.product_events.endpoints import EndpointState
    from core.services.stores.webhooks import DeliveryLogEntry
    from functions.schemas.common import NoQuery
    from functions.schemas.product_webhooks import (
        CreateEndpointBody,
        DeliveriesQuery,
        DeliveryPath,
        DeliveryView,
        EndpointPath,
        EndpointView,
        ReplaySinceBody,
        UpdateEndpointBody,
    )

log = logging.getLogger("functions.product_webhooks")

bp = func.Blueprint()
M = Models("functions.schemas.product_webhooks")
TAGS = ("webhooks",)
SWEEP_SCHEDULE = "0 * * * * *"  # the outbox sweep: every minute
RETENTION_SCHEDULE = "0 40 3 * * *"  # retention: daily at 03:40 UTC


def endpoint_view(state: EndpointState, model: type[EndpointView] | None = None, **extra: Any) -> EndpointView:
    from functions.schemas.product_webhooks import EndpointView

    e, h = state.endpoint, state.health
    build = model or EndpointView
    return build(
        id=e.endpoint_id, url=e.url, events=list(e.events), description=e.description, enabled=e.enabled,
        disabled_reason=e.disabled_reason if not e.enabled else None,
        disabled_at=e.disabled_at if not e.enabled else None,
        failing_since=h.failing_since, last_success_at=h.last_success_at,
        previous_secret_valid_until=e.previous_secret_until,
        created_at=e.created_at or e.updated_at, updated_at=e.updated_at or e.created_at, **extra,
    )


def _log_location(endpoint_id: str) -> dict[str, str]:
    """202 answers point at the delivery log, where the outcome shows."""
    return {"Location": f"/api/webhooks/endpoints/{endpoint_id}/deliveries"}


def delivery_view(entry: DeliveryLogEntry) -> DeliveryView:
    from functions.schemas.product_webhooks import DeliveryView

    return DeliveryView(id=entry.delivery_id, at=entry.at, event_id=entry.event_id, type=entry.type,
                        attempt=entry.attempt, outcome=entry.outcome, status_code=entry.status,
                        latency_ms=entry.latency_ms, error=entry.error)


@endpoint(bp, "POST", "webhooks/endpoints", auth=Auth.WEBHOOK_MANAGER, body=M.CreateEndpointBody,
          response=M.EndpointCreated, status=201, summary="Register a webhook endpoint (its secret is shown once)",
          tags=TAGS)
def webhook_endpoint_create(ctx: RequestContext[CreateEndpointBody]) -> Any:
    """https only; the host must resolve to public addresses; at most 20 endpoints per organisation."""
    from core.services.product_events.endpoints import EndpointInput
    from functions.schemas.product_webhooks import EndpointCreated

    b = ctx.body
    state, secret = ctx.container.webhook_endpoints.create(
        ctx.caller.tenant_id, ctx.caller.object_id,
        EndpointInput(url=b.url, events=b.events or (), description=b.description, enabled=b.enabled),
    )
    created = endpoint_view(state, EndpointCreated, secret=secret)
    return Reply(201, created, {"Location": f"/api/webhooks/endpoints/{state.endpoint.endpoint_id}"})


@endpoint(bp, "GET", "webhooks/endpoints", auth=Auth.WEBHOOK_MANAGER, response=M.EndpointView.many,
          summary="List the organisation's webhook endpoints", tags=TAGS)
def webhook_endpoint_list(ctx: RequestContext[None]) -> Any:
    """Oldest first; secrets are never shown again."""
    return [endpoint_view(s) for s in ctx.container.webhook_endpoints.all(ctx.caller.tenant_id)]


@endpoint(bp, "GET", "webhooks/endpoints/{endpointId}", auth=Auth.WEBHOOK_MANAGER, path=M.EndpointPath,
          response=M.EndpointView, summary="Read one webhook endpoint", tags=TAGS)
def webhook_endpoint_get(ctx: RequestContext[None, NoQuery, EndpointPath]) -> Any:
    """404 webhook_endpoint_not_found for an unknown id (or another organisation's)."""
    return endpoint_view(ctx.container.webhook_endpoints.get(ctx.caller.tenant_id, ctx.path.endpointId))


@endpoint(bp, "PATCH", "webhooks/endpoints/{endpointId}", auth=Auth.WEBHOOK_MANAGER, path=M.EndpointPath,
          body=M.UpdateEndpointBody, response=M.EndpointView, summary="Change a webhook endpoint", tags=TAGS,
          extra_statuses=(409,))
def webhook_endpoint_update(ctx: RequestContext[UpdateEndpointBody, NoQuery, EndpointPath]) -> Any:
    """Enabling a disabled endpoint sends the deliveries that waited, in order."""
    from core.services.product_events.endpoints import EndpointChanges

    b = ctx.body
    changes = EndpointChanges(url=b.url, events=b.events, description=b.description,
                              description_set="description" in b.model_fields_set, enabled=b.enabled)
    state = ctx.container.webhook_endpoints.update(ctx.caller.tenant_id, ctx.caller.object_id, ctx.path.endpointId,
                                                   changes)
    return endpoint_view(state)


@endpoint(bp, "DELETE", "webhooks/endpoints/{endpointId}", auth=Auth.WEBHOOK_MANAGER, path=M.EndpointPath,
          status=204, summary="Delete a webhook endpoint (it receives nothing more)", tags=TAGS)
def webhook_endpoint_delete(ctx: RequestContext[None, NoQuery, EndpointPath]) -> Any:
    """Its secrets, pending deliveries and delivery log go with it."""
    ctx.container.webhook_endpoints.delete(ctx.caller.tenant_id, ctx.caller.object_id, ctx.path.endpointId)


@endpoint(bp, "POST", "webhooks/endpoints/{endpointId}/rotate-secret", auth=Auth.WEBHOOK_MANAGER,
          path=M.EndpointPath, response=M.SecretRotated, summary="Rotate the signing secret (shown once)",
          tags=TAGS, extra_statuses=(409,))
def webhook_endpoint_rotate(ctx: RequestContext[None, NoQuery, EndpointPath]) -> Any:
    """For 24 h every delivery carries two signatures, the new secret's and the old one's."""
    from functions.schemas.product_webhooks import SecretRotated

    state, secret = ctx.container.webhook_endpoints.rotate_secret(ctx.caller.tenant_id, ctx.caller.object_id,
                                                                  ctx.path.endpointId)
    until = state.endpoint.previous_secret_until
    assert until is not None
    return SecretRotated(id=state.endpoint.endpoint_id, secret=secret, previous_secret_valid_until=until)


@endpoint(bp, "POST", "webhooks/endpoints/{endpointId}/ping", auth=Auth.WEBHOOK_MANAGER, path=M.EndpointPath,
          response=M.EventQueued, status=202, summary="Send a ping event to the endpoint", tags=TAGS,
          rate_limit="webhook_sends")
def webhook_endpoint_ping(ctx: RequestContext[None, NoQuery, EndpointPath]) -> Any:
    """Queued like any event (also to a disabled endpoint, once); the delivery log shows the outcome."""
    from functions.schemas.product_webhooks import EventQueued

    event_id = ctx.container.webhook_endpoints.ping(ctx.caller.tenant_id, ctx.caller.object_id, ctx.path.endpointId)
    return Reply(202, EventQueued(event_id=event_id), _log_location(ctx.path.endpointId))


@endpoint(bp, "GET", "webhooks/endpoints/{endpointId}/deliveries", auth=Auth.WEBHOOK_MANAGER,
          path=M.EndpointPath, query=M.DeliveriesQuery, response=M.DeliveryPage,
          summary="The endpoint's delivery log (newest first, 30 days)", tags=TAGS)
def webhook_endpoint_deliveries(ctx: RequestContext[None, DeliveriesQuery, EndpointPath]) -> Any:
    """Time, event id and type, status code, latency and attempt of each attempt; never payloads or secrets."""
    from functions.schemas.product_webhooks import DeliveryPage

    entries, following = ctx.container.webhook_endpoints.deliveries_page(
        ctx.caller.tenant_id, ctx.path.endpointId, limit=ctx.query.limit, before=ctx.query.before)
    return DeliveryPage(deliveries=[delivery_view(e) for e in entries], next=following)


@endpoint(bp, "POST", "webhooks/endpoints/{endpointId}/deliveries/{deliveryId}/replay", auth=Auth.WEBHOOK_MANAGER,
          path=M.DeliveryPath, response=M.EventQueued, status=202, summary="Send one logged event again",
          tags=TAGS, rate_limit="webhook_sends")
def webhook_delivery_replay(ctx: RequestContext[None, NoQuery, DeliveryPath]) -> Any:
    """Same webhook-id as the original; 404 event_expired after 30 days."""
    from functions.schemas.product_webhooks import EventQueued

    event_id = ctx.container.webhook_endpoints.replay_delivery(
        ctx.caller.tenant_id, ctx.caller.object_id, ctx.path.endpointId, ctx.path.deliveryId)
    return Reply(202, EventQueued(event_id=event_id), _log_location(ctx.path.endpointId))


@endpoint(bp, "POST", "webhooks/endpoints/{endpointId}/replay", auth=Auth.WEBHOOK_MANAGER, path=M.EndpointPath,
          body=M.ReplaySinceBody, response=M.ReplayQueued, status=202,
          summary="Send every event since a time again (at most 30 days back)", tags=TAGS,
          rate_limit="webhook_sends")
def webhook_endpoint_replay_since(ctx: RequestContext[ReplaySinceBody, NoQuery, EndpointPath]) -> Any:
    """Events the endpoint's filter wants, in order per session, each with its original webhook-id."""
    from functions.schemas.product_webhooks import ReplayQueued

    since = ctx.container.webhook_endpoints.replay_since(
        ctx.caller.tenant_id, ctx.caller.object_id, ctx.path.endpointId, ctx.body.since)
    return Reply(202, ReplayQueued(since=since), _log_location(ctx.path.endpointId))


@queue_job(bp, Queues.PRODUCT_EVENTS)
def product_event_job(job: Job) -> None:
    """Deliver one event to one endpoint (or queue one page of a replay)."""
    job.container.webhook_delivery.handle(job.body, dequeue_count=job.dequeue_count)


@queue_job(bp, Queues.poison(Queues.PRODUCT_EVENTS), poison=True)
def product_event_poison(job: Job) -> None:
    """A delivery message failed every attempt (storage down, a bug): the sweep re-queues its pending row,
    so nothing is lost; the operator sees it here."""
    log.error("product-event message moved to poison; the sweep re-queues its delivery",
              extra={"tenant": str(job.body.get("tenantId", "-")), "event": str(job.body.get("kind", "-"))})


@timer_job(bp, SWEEP_SCHEDULE)
def product_event_sweep(container: Container) -> None:
    """Dispatch outbox rows a crash left behind and re-queue deliveries whose message was lost."""
    counts = container.product_events.sweep()
    log.info("product-event sweep", extra={"count": counts["dispatched"] + counts["requeued"]})


@timer_job(bp, RETENTION_SCHEDULE)
def product_event_retention(container: Container) -> None:
    """Delete events and delivery-log rows older than 30 days and rotated-out secrets past their overlap."""
    counts = container.webhook_endpoints.retention()
    log.info("webhook retention", extra={"count": sum(counts.values())})
