"""Background triggers of the sync-back feature: notifications, lifecycle events, renewals, reconciliation.

Queue triggers decode the JSON command, scope logs to its correlation id and call one
service method; the services check that each item's tenant is still enabled. Retries
the services schedule themselves (throttling, back-off) are new messages, so the host's
own retry (raise -> ``maxDequeueCount`` -> ``<queue>-poison``) is left for the
unexpected; the poison triggers here make that visible with an owner alert.

Timers: ``%RENEWAL_SCHEDULE%`` plans renewals (due buckets only, groups of 20 per
message); ``SUBSCRIPTION_AUDIT_SCHEDULE`` (every 15 minutes) checks the subscriptions against
Graph's ``GET /subscriptions`` (one message per tenant on the renewals queue);
``%RECONCILE_NEAR_SCHEDULE%`` (every 15 minutes) plans the re-read of sessions
starting within 24 hours and ``%RECONCILE_SCHEDULE%`` (every 2 hours) of the later ones
(one ``reconcile`` message per group of 20 on the lifecycle queue, handled by
``lifecycle_job``) and keeps subscriptions in step with need: the freshness bound of
docs/scaling.md. ``REQUEST_CLEANUP_SCHEDULE`` (hourly) deletes expired idempotency keys
and past slot claims. Service-account tenants get no change notifications,
so ``SERVICE_ACCOUNT_RECONCILE_SCHEDULE`` (every ``SERVICE_ACCOUNT_SYNC_MINUTES``)
plans those tenants only; for every other tenant it reads one row and moves on.
"""

from __future__ import annotations

import logging
from typing import Any

import azure.functions as func

from core.bootstrap import Container
from core.domain.integration import SERVICE_ACCOUNT_SYNC_MINUTES, ConnectionMethod
from core.names import Queues
from functions.jobs import Job, queue_job, timer_job

log = logging.getLogger(__name__)

bp = func.Blueprint()

# A constant rather than an app setting: the period is what GET /api/integration promises
# (``syncIntervalMinutes``), so it is not something to tune per deployment.
SERVICE_ACCOUNT_RECONCILE_SCHEDULE = f"0 */{SERVICE_ACCOUNT_SYNC_MINUTES} * * * *"
# Every 15 minutes (core/services/subscriptions.py AUDIT_MINUTES): the staleness bound docs/scaling.md states.
SUBSCRIPTION_AUDIT_SCHEDULE = "0 7,22,37,52 * * * *"
# Keys live 24 h and claims until their day is over; an hourly sweep keeps the tables small.
REQUEST_CLEANUP_SCHEDULE = "0 40 * * * *"


def _tenants_of(body: dict[str, Any]) -> set[str]:
    tenants = {str(i.get("tenantId")) for i in body.get("items") or [] if isinstance(i, dict) and i.get("tenantId")}
    if body.get("tenantId"):
        tenants.add(str(body["tenantId"]))
    return tenants


# --- queue triggers ------------------------------------------------------------------------------


@queue_job(bp, Queues.NOTIFICATIONS)
def notification_job(job: Job) -> None:
    """Apply the Outlook changes of one webhook POST to the tracked sessions."""
    job.container.notifications.handle_message(job.body)


@queue_job(bp, Queues.LIFECYCLE)
def lifecycle_job(job: Job) -> None:
    """Reauthorize, recreate or resync after a Graph lifecycle event; or re-read one planned reconcile group."""
    job.container.lifecycle.handle_message(job.body)


@queue_job(bp, Queues.RENEWALS)
def renewal_job(job: Job) -> None:
    """Renew one tenant's group of up to 20 subscriptions with one $batch."""
    outcome = job.container.subscriptions.renew_message(job.body)
    log.info("renewals: %d renewed, %d recreated, %d retried, %d failed, %d stale",
             outcome.renewed, outcome.recreated, outcome.retried, outcome.failed, outcome.stale)


def _poisoned(job: Job) -> None:
    from core.domain.commands import AlertKind

    queue = job.queue.removesuffix("-poison")
    log.error("%s: a message failed every attempt", queue)
    for tenant_id in sorted(_tenants_of(job.body)):
        job.container.owner_alerts.notify(
            tenant_id, AlertKind.SUBSCRIPTION_FAILURE,
            detail=f"Sync from Outlook failed repeatedly ({queue}); the periodic reconciliation will catch up.")


@queue_job(bp, Queues.poison(Queues.NOTIFICATIONS), poison=True)
def notification_poison(job: Job) -> None:
    """Notifications that failed every attempt: alert the owner (reconciliation heals the sessions)."""
    _poisoned(job)


@queue_job(bp, Queues.poison(Queues.LIFECYCLE), poison=True)
def lifecycle_poison(job: Job) -> None:
    """A lifecycle event that failed every attempt: alert the owner."""
    _poisoned(job)


@queue_job(bp, Queues.poison(Queues.RENEWALS), poison=True)
def renewal_poison(job: Job) -> None:
    """A renewal group that failed every attempt: alert the owner (the next timer run tries again)."""
    _poisoned(job)


# --- timers ------------------------------------------------------------------------------------


@timer_job(bp, "%RENEWAL_SCHEDULE%")
def renewal_timer(container: Container) -> None:
    """Fan the renewals of subscriptions due within the horizon out through the queue."""
    container.subscriptions.plan_renewals()


@timer_job(bp, "%RECONCILE_SCHEDULE%")
def reconcile_timer(container: Container) -> None:
    """Fan the re-read of sessions starting after the next 24 h out through the queue; subscription housekeeping."""
    from core.services.reconcile import Span

    container.reconciler.plan(span=Span.FAR)


@timer_job(bp, "%RECONCILE_NEAR_SCHEDULE%")
def reconcile_near_timer(container: Container) -> None:
    """Fan the re-read of sessions starting within 24 h out through the queue (the freshness bound)."""
    container.reconciler.plan_near()


@timer_job(bp, REQUEST_CLEANUP_SCHEDULE)
def request_cleanup_timer(container: Container) -> None:
    """Delete expired idempotency keys and past days' slot claims."""
    container.request_cleanup.run()


@timer_job(bp, SUBSCRIPTION_AUDIT_SCHEDULE)
def subscription_audit_timer(container: Container) -> None:
    """Check every tenant's subscriptions against Graph's GET /subscriptions; recreate what Graph lost."""
    container.subscriptions.plan_audits()


@timer_job(bp, SERVICE_ACCOUNT_RECONCILE_SCHEDULE)
def service_account_reconcile_timer(container: Container) -> None:
    """Poll service-account tenants (no change notifications for shared calendars) every few minutes."""
    container.reconciler.plan(methods={ConnectionMethod.SERVICE_ACCOUNT})
