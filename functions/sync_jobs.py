"""Background triggers of the sync-back feature: notifications, lifecycle events, renewals, reconciliation.

Queue triggers decode the JSON command, scope logs to its correlation id and call one
service method; the services check that each item's tenant is still enabled. Retries
the services schedule themselves (throttling, back-off) are new messages, so the host's
own retry (raise -> ``maxDequeueCount`` -> ``<queue>-poison``) is left for the
unexpected; the poison triggers here make that visible with an owner alert.

Timers: ``%RENEWAL_SCHEDULE%`` plans renewals (due buckets only, groups of 20 per
message) and ``%RECONCILE_SCHEDULE%`` plans the re-read of upcoming sessions (one
``reconcile`` message per group of 20 on the lifecycle queue, handled by ``lifecycle_job``)
and keeps subscriptions in step with need. Service-account tenants get no change notifications,
so ``SERVICE_ACCOUNT_RECONCILE_SCHEDULE`` (every ``SERVICE_ACCOUNT_SYNC_MINUTES``)
plans those tenants only; for every other tenant it reads one row and moves on.

The service factories live here so the webhooks, these triggers and other features
(booking: ``ensure_for_mailbox``; disconnect: ``remove_all_for_tenant``) share one
instance per container.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import azure.functions as func

from core.bootstrap import Container, get_container
from core.domain.integration import ConnectionMethod
from core.log import message_correlation
from core.names import Queues
from core.services.alerts import AlertKind, OwnerAlerts
from core.services.graph_identity import SERVICE_ACCOUNT_SYNC_MINUTES
from core.services.notifications import NotificationWorker
from core.services.reconcile import LifecycleWorker, Reconciler
from core.services.subscriptions import SubscriptionService
from functions.webhooks import client_state_keys

log = logging.getLogger(__name__)

bp = func.Blueprint()

STORAGE = "AzureWebJobsStorage"
# A constant rather than an app setting: the period is what GET /api/integration promises
# (``syncIntervalMinutes``), so it is not something to tune per deployment.
SERVICE_ACCOUNT_RECONCILE_SCHEDULE = f"0 */{SERVICE_ACCOUNT_SYNC_MINUTES} * * * *"


# --- wiring ------------------------------------------------------------------------------------


def _alerts(container: Container) -> OwnerAlerts:
    return container.service("owner_alerts", lambda c: OwnerAlerts(c.tables, c.queues, c.clock))


def subscription_service(container: Container) -> SubscriptionService:
    """The process-wide subscription service (``ensure_for_mailbox``, ``remove_all_for_tenant``...)."""
    # Dependencies are resolved before ``container.service``: its lock is not re-entrant.
    keys, alerts = client_state_keys(container), _alerts(container)
    return container.service("sync.subscriptions", lambda c: SubscriptionService(
        c.tables, c.queues, c.gateway, c.clock, keys,
        public_base_url=c.settings.public_base_url, url_code=c.settings.webhook_url_code, alerts=alerts,
    ))


def notification_worker(container: Container) -> NotificationWorker:
    alerts = _alerts(container)
    return container.service(
        "sync.notifications", lambda c: NotificationWorker(c.tables, c.queues, c.gateway, c.clock, alerts=alerts)
    )


def reconciler(container: Container) -> Reconciler:
    subscriptions = subscription_service(container)
    return container.service("sync.reconciler", lambda c: Reconciler(c.tables, c.gateway, c.clock, subscriptions,
                                                                        queues=c.queues))


def lifecycle_worker(container: Container) -> LifecycleWorker:
    subscriptions, sync, alerts = subscription_service(container), reconciler(container), _alerts(container)
    return container.service(
        "sync.lifecycle", lambda c: LifecycleWorker(c.queues, c.gateway, subscriptions, sync, alerts)
    )


def decode(msg: func.QueueMessage) -> dict[str, Any] | None:
    """The JSON object of a queue message, or None when it is not one."""
    try:
        body = json.loads(msg.get_body().decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def _carried(body: dict[str, Any] | None) -> str | None:
    value = body.get("correlationId") if body else None
    return value if isinstance(value, str) else None


def _tenants_of(body: dict[str, Any]) -> set[str]:
    tenants = {str(i.get("tenantId")) for i in body.get("items") or [] if isinstance(i, dict) and i.get("tenantId")}
    if body.get("tenantId"):
        tenants.add(str(body["tenantId"]))
    return tenants


# --- queue triggers ------------------------------------------------------------------------------


@bp.queue_trigger(arg_name="msg", queue_name=Queues.NOTIFICATIONS, connection=STORAGE)
def notification_job(msg: func.QueueMessage) -> None:
    """Apply the Outlook changes of one webhook POST to the tracked sessions."""
    body = decode(msg)
    with message_correlation(_carried(body), msg.id):
        if body is None:
            log.error("notifications: a message that is not a JSON object was dropped")
            return
        notification_worker(get_container()).handle_message(body)


@bp.queue_trigger(arg_name="msg", queue_name=Queues.LIFECYCLE, connection=STORAGE)
def lifecycle_job(msg: func.QueueMessage) -> None:
    """Reauthorize, recreate or resync after a Graph lifecycle event; or re-read one planned reconcile group."""
    body = decode(msg)
    with message_correlation(_carried(body), msg.id):
        if body is None:
            log.error("lifecycle: a message that is not a JSON object was dropped")
            return
        lifecycle_worker(get_container()).handle_message(body)


@bp.queue_trigger(arg_name="msg", queue_name=Queues.RENEWALS, connection=STORAGE)
def renewal_job(msg: func.QueueMessage) -> None:
    """Renew one tenant's group of up to 20 subscriptions with one $batch."""
    body = decode(msg)
    with message_correlation(_carried(body), msg.id):
        if body is None or not body.get("tenantId"):
            log.error("renewals: an unreadable message was dropped")
            return
        outcome = subscription_service(get_container()).renew_message(body)
        log.info("renewals: %d renewed, %d recreated, %d retried, %d failed, %d stale",
                 outcome.renewed, outcome.recreated, outcome.retried, outcome.failed, outcome.stale)


def _poisoned(queue: str, msg: func.QueueMessage) -> None:
    body = decode(msg)
    with message_correlation(_carried(body), msg.id):
        log.error("%s: a message failed every attempt", queue)
        if body is None:
            return
        alerts = _alerts(get_container())
        for tenant_id in sorted(_tenants_of(body)):
            alerts.notify(tenant_id, AlertKind.SUBSCRIPTION_FAILURE,
                          detail=f"Sync from Outlook failed repeatedly ({queue}); the periodic reconciliation "
                          "will catch up.")


@bp.queue_trigger(arg_name="msg", queue_name=Queues.poison(Queues.NOTIFICATIONS), connection=STORAGE)
def notification_poison(msg: func.QueueMessage) -> None:
    """Notifications that failed every attempt: alert the owner (reconciliation heals the sessions)."""
    _poisoned(Queues.NOTIFICATIONS, msg)


@bp.queue_trigger(arg_name="msg", queue_name=Queues.poison(Queues.LIFECYCLE), connection=STORAGE)
def lifecycle_poison(msg: func.QueueMessage) -> None:
    """A lifecycle event that failed every attempt: alert the owner."""
    _poisoned(Queues.LIFECYCLE, msg)


@bp.queue_trigger(arg_name="msg", queue_name=Queues.poison(Queues.RENEWALS), connection=STORAGE)
def renewal_poison(msg: func.QueueMessage) -> None:
    """A renewal group that failed every attempt: alert the owner (the next timer run tries again)."""
    _poisoned(Queues.RENEWALS, msg)


# --- timers ------------------------------------------------------------------------------------


@bp.timer_trigger(schedule="%RENEWAL_SCHEDULE%", arg_name="timer", run_on_startup=False)
def renewal_timer(timer: func.TimerRequest) -> None:
    """Fan the renewals of subscriptions due within the horizon out through the queue."""
    with message_correlation(None):
        subscription_service(get_container()).plan_renewals()


@bp.timer_trigger(schedule="%RECONCILE_SCHEDULE%", arg_name="timer", run_on_startup=False)
def reconcile_timer(timer: func.TimerRequest) -> None:
    """Fan the re-read of sessions starting soon out through the queue; subscription housekeeping."""
    with message_correlation(None):
        reconciler(get_container()).plan()


@bp.timer_trigger(schedule=SERVICE_ACCOUNT_RECONCILE_SCHEDULE, arg_name="timer", run_on_startup=False)
def service_account_reconcile_timer(timer: func.TimerRequest) -> None:
    """Poll service-account tenants (no change notifications for shared calendars) every few minutes."""
    with message_correlation(None):
        reconciler(get_container()).plan(methods={ConnectionMethod.SERVICE_ACCOUNT})
