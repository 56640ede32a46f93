"""Queue triggers of the event-write worker: ``event-writes`` and its poison queue.

Each message is one ``EventWriteCommand`` (JSON, base64 on the wire as host.json says).
The trigger decodes it, restores the correlation id of the request that queued it, and
calls the worker once; raising asks the host to retry (``maxDequeueCount`` 5), after
which the message lands in ``event-writes-poison``, whose trigger marks the session
failed and alerts the integration owner, so nothing is dropped silently.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import azure.functions as func

from core.bootstrap import Container, get_container
from core.log import message_correlation
from core.names import Queues
from core.ports import Sealer
from core.services.alerts import OwnerAlerts
from core.services.event_writer import EventWriter
from functions import sync_jobs
from functions.sessions import sealer_of

log = logging.getLogger(__name__)

bp = func.Blueprint()

SERVICE_NAME = "event_writer"
CONNECTION = "AzureWebJobsStorage"


def _first_booking_hook(container: Container) -> Callable[[str, str], None]:
    """After an organizer's first booking, ensure a change-notification subscription on their mailbox."""

    def ensure(tenant_id: str, user_id: str) -> None:
        sync_jobs.subscription_service(container).ensure_for_mailbox(tenant_id, user_id)

    return ensure


def _build(container: Container, sealer: Sealer, hook: Callable[[str, str], None]) -> EventWriter:
    return EventWriter(
        container.gateway,
        container.tables,
        container.queues,
        container.clock,
        sealer,
        alerts=OwnerAlerts(container.tables, container.queues, container.clock),
        on_first_booking=hook,
    )


def event_writer(container: Container) -> EventWriter:
    """The process-wide worker of this container."""
    sealer = sealer_of(container)  # outside the factory: the container's service lock is not re-entrant
    hook = _first_booking_hook(container)
    return container.service(SERVICE_NAME, lambda c: _build(c, sealer, hook))


def _decode(msg: func.QueueMessage) -> dict[str, Any] | None:
    try:
        body = json.loads(msg.get_body().decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return body if isinstance(body, dict) else None


@bp.queue_trigger(arg_name="msg", queue_name=Queues.EVENT_WRITES, connection=CONNECTION)
def event_write(msg: func.QueueMessage) -> None:
    """Apply one session change to Outlook (create, reschedule, cancel)."""
    body = _decode(msg)
    carried = body.get("correlationId") if body else None
    with message_correlation(carried if isinstance(carried, str) else None, msg.id):
        if body is None:
            log.error("event-writes: a message that is not a JSON object was dropped")
            return
        outcome = event_writer(get_container()).handle(body, dequeue_count=int(msg.dequeue_count or 1))
        log.info("event-writes: %s", outcome.value, extra={"queue": Queues.EVENT_WRITES})


@bp.queue_trigger(arg_name="msg", queue_name=Queues.poison(Queues.EVENT_WRITES), connection=CONNECTION)
def event_write_poison(msg: func.QueueMessage) -> None:
    """A change that exhausted its attempts: the session ends failed, the owner is alerted."""
    body = _decode(msg)
    carried = body.get("correlationId") if body else None
    with message_correlation(carried if isinstance(carried, str) else None, msg.id):
        if body is None:
            log.error("event-writes-poison: a message that is not a JSON object was dropped")
            return
        event_writer(get_container()).handle_poison(body)
