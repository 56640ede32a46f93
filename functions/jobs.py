"""Queue and timer triggers declared once, like routes (``functions/endpoint.py``).

    @queue_job(bp, Queues.EVENT_WRITES)
    def event_write(job: Job) -> None:
        job.container.event_writer.handle(job.body, dequeue_count=job.dequeue_count)

Per message, ``queue_job``:

1. decodes the body: a UTF-8 JSON object, as every producer here writes it
   (``core/domain/commands.py``, base64 on the wire as host.json says);
2. scopes logs to the correlation id the message carries (else the queue message id);
3. calls the handler with a ``Job`` (body, dequeue count, the process's container).

The poison policy is one decision, made here: a message that can never be valid
(not a JSON object, or a command its parser rejects with ``InvalidMessage``) is logged
and raised, so the host retries it up to ``maxDequeueCount`` and then moves it to
``<queue>-poison``; it is never dropped silently. Any other exception also raises (the
host retries; the poison trigger turns the last failure into a visible failed state and
an owner alert). On a poison queue (``poison=True``) an unreadable message is logged at
critical level and consumed: nothing else can act on it.

``timer_job`` gives timers the same correlation scope and container.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import azure.functions as func

from core.bootstrap import Container, get_container
from core.domain.errors import InvalidMessage
from core.log import message_correlation

log = logging.getLogger(__name__)

STORAGE = "AzureWebJobsStorage"  # the app setting (prefix) of the queues' storage connection


@dataclass(frozen=True, slots=True)
class Job:
    """One queue message as a handler sees it."""

    queue: str
    body: dict[str, Any]
    dequeue_count: int
    message_id: str | None
    container: Container


def decode(msg: func.QueueMessage) -> dict[str, Any]:
    """The JSON object of a queue message; ``InvalidMessage`` when it is not one."""
    try:
        body = json.loads(msg.get_body().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidMessage("the message is not UTF-8 JSON") from exc
    if not isinstance(body, dict):
        raise InvalidMessage("the message is not a JSON object")
    return body


def _carried(body: dict[str, Any] | None) -> str | None:
    value = body.get("correlationId") if body else None
    return value if isinstance(value, str) else None


def queue_job(
    bp: func.Blueprint, queue: str, *, poison: bool = False
) -> Callable[[Callable[[Job], None]], Callable[[func.QueueMessage], None]]:
    """Declare the trigger of ``queue`` (see the module docstring for the poison policy)."""

    def decorate(handler: Callable[[Job], None]) -> Callable[[func.QueueMessage], None]:
        def entry(msg: func.QueueMessage) -> None:
            try:
                body: dict[str, Any] | None = decode(msg)
            except InvalidMessage:
                body = None
            with message_correlation(_carried(body), msg.id):
                try:
                    if body is None:
                        raise InvalidMessage("the message is not a JSON object")
                    handler(Job(queue, body, int(msg.dequeue_count or 1), msg.id, get_container()))
                except InvalidMessage as exc:
                    if poison:
                        log.critical("%s: a message that can never be valid was consumed (%s)", queue, exc)
                        return
                    log.error("%s: a message that can never be valid goes to the poison queue (%s)", queue, exc)
                    raise

        entry.__name__ = handler.__name__
        entry.__qualname__ = handler.__qualname__
        entry.__doc__ = handler.__doc__
        bp.queue_trigger(arg_name="msg", queue_name=queue, connection=STORAGE)(entry)
        return entry

    return decorate


def timer_job(
    bp: func.Blueprint, schedule: str
) -> Callable[[Callable[[Container], None]], Callable[[func.TimerRequest], None]]:
    """Declare a timer (six-field NCRONTAB or ``%SETTING%``); the handler gets the container."""

    def decorate(handler: Callable[[Container], None]) -> Callable[[func.TimerRequest], None]:
        def entry(timer: func.TimerRequest) -> None:
            with message_correlation(None):
                handler(get_container())

        entry.__name__ = handler.__name__
        entry.__qualname__ = handler.__qualname__
        entry.__doc__ = handler.__doc__
        bp.timer_trigger(schedule=schedule, arg_name="timer", run_on_startup=False)(entry)
        return entry

    return decorate
