"""Background triggers of the integration feature: access tests, owner alerts, the rerun timer.

Each queue trigger decodes the JSON command, scopes logs to its correlation id and
calls one service method. A failure raises, so the queue retries the message and,
after ``maxDequeueCount`` attempts, moves it to ``<queue>-poison``; the poison
triggers here turn that into a visible failed state and an owner alert (or, for the
owner-alert queue itself, a critical log line: email is what failed).

The service factories live here too, so the HTTP routes (functions/integration.py)
and these triggers share one instance per container.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import azure.functions as func

from core.bootstrap import Container, get_container
from core.log import message_correlation
from core.names import Queues
from core.ports import Mailer
from core.services.access_test import AccessTestCommand, AccessTestService
from core.services.alerts import OwnerAlerts
from core.services.integration import IntegrationService, SubscriptionCleanup
from core.services.owner_alert_worker import OwnerAlertWorker

log = logging.getLogger("functions.integration_jobs")

bp = func.Blueprint()

STORAGE = "AzureWebJobsStorage"


# --- wiring ----------------------------------------------------------------------------------


def mailer_for(container: Container) -> Mailer:
    """The container's mailer; until bootstrap wires one: ACS Email when configured, else the local outbox."""
    if container.mailer is not None:
        return container.mailer
    settings = container.settings
    if settings.acs_endpoint:
        from core.adapters.mailer_acs import AcsMailer

        return AcsMailer.from_settings(settings)
    from core.adapters.mailer_local import LocalOutboxMailer

    return LocalOutboxMailer(settings.local_outbox_dir)


def owner_alerts(container: Container) -> OwnerAlerts:
    return container.service("owner_alerts", lambda c: OwnerAlerts(c.tables, c.queues, c.clock))


# Container.service holds a non-reentrant lock while building: dependencies are fetched
# before, never inside, a factory.


def access_tests(container: Container) -> AccessTestService:
    alerts = owner_alerts(container)

    def build(c: Container) -> AccessTestService:
        return AccessTestService(
            tables=c.tables,
            queues=c.queues,
            clock=c.clock,
            gateway=c.graph,
            alerts=alerts,
            app_id=c.settings.entra_client_id,
            tokens=c.tokens,
        )

    return container.service("access_tests", build)


def subscription_cleanup(container: Container) -> SubscriptionCleanup:
    """Disconnect's hook: delete every Graph subscription of the tenant (the sync feature's service)."""

    def cleanup(tenant_id: str) -> object:
        from functions.sync_jobs import subscription_service

        return subscription_service(container).remove_all_for_tenant(tenant_id)

    return cleanup


def integration_service(container: Container) -> IntegrationService:
    alerts, tests = owner_alerts(container), access_tests(container)

    def build(c: Container) -> IntegrationService:
        return IntegrationService(
            tables=c.tables,
            clock=c.clock,
            settings=c.settings,
            gateway=c.graph,
            secrets_store=c.secrets,
            alerts=alerts,
            access_tests=tests,
            tokens=c.tokens,
            delete_subscriptions=subscription_cleanup(c),
        )

    return container.service("integration", build)


def owner_alert_worker(container: Container) -> OwnerAlertWorker:
    def build(c: Container) -> OwnerAlertWorker:
        mailer = mailer_for(c)  # builds an adapter, never another service
        return OwnerAlertWorker(tables=c.tables, mailer=mailer, clock=c.clock, app_url=c.settings.app_url)

    return container.service("owner_alert_worker", build)


def decode(msg: func.QueueMessage) -> dict[str, Any]:
    """The JSON object of a queue message; ValueError (-> retries -> poison) when it is not one."""
    body = json.loads(msg.get_body().decode("utf-8"))
    if not isinstance(body, dict):
        raise ValueError("a queue message must be a JSON object")
    return body


# --- triggers ----------------------------------------------------------------------------------


@bp.queue_trigger(arg_name="msg", queue_name=Queues.ACCESS_TESTS, connection=STORAGE)
def access_test_job(msg: func.QueueMessage) -> None:
    """Run one access test (idempotent per test id; a disabled tenant's test ends as failed)."""
    body = decode(msg)
    with message_correlation(body.get("correlationId"), msg.id):
        access_tests(get_container()).run(AccessTestCommand.from_message(body))


@bp.queue_trigger(arg_name="msg", queue_name=Queues.poison(Queues.ACCESS_TESTS), connection=STORAGE)
def access_test_poison(msg: func.QueueMessage) -> None:
    """An access test failed every attempt: mark it failed and alert the owner."""
    try:
        body = decode(msg)
        command = AccessTestCommand.from_message(body)
    except ValueError:
        log.critical("unreadable message in %s dropped", Queues.poison(Queues.ACCESS_TESTS))
        return
    with message_correlation(body.get("correlationId"), msg.id):
        log.error("access test moved to poison", extra={"tenant": command.tenant_id})
        access_tests(get_container()).on_poison(body)


@bp.timer_trigger(schedule="%ACCESS_TEST_SCHEDULE%", arg_name="timer", run_on_startup=False)
def access_test_rerun(timer: func.TimerRequest) -> None:
    """Rerun the access test for every enabled tenant, each at its own jittered offset."""
    with message_correlation(None):
        queued = access_tests(get_container()).schedule_reruns()
        log.info("access tests scheduled", extra={"count": queued})


@bp.queue_trigger(arg_name="msg", queue_name=Queues.OWNER_ALERTS, connection=STORAGE)
def owner_alert_job(msg: func.QueueMessage) -> None:
    """Mail one owner alert (at most once per message)."""
    body = decode(msg)
    with message_correlation(body.get("correlationId"), msg.id):
        owner_alert_worker(get_container()).handle(body)


@bp.queue_trigger(arg_name="msg", queue_name=Queues.poison(Queues.OWNER_ALERTS), connection=STORAGE)
def owner_alert_poison(msg: func.QueueMessage) -> None:
    """Email itself failed repeatedly: the operator must see it in the logs (there is no other channel)."""
    try:
        body = decode(msg)
    except ValueError:
        body = {}
    with message_correlation(None, msg.id):
        log.critical(
            "owner alert could not be mailed after every retry",
            extra={"tenant": str(body.get("tenantId", "-")), "event": str(body.get("alert", "-"))},
        )
