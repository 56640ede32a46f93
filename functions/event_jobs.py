"""Queue triggers of the event-write worker: ``event-writes`` and its poison queue.

Each message is one ``EventWriteCommand`` (a session) or ``SeriesWriteCommand`` (a series'
master, ``kind`` ``series_write``: ``core/domain/commands.py``); its worker applies it once
per delivery. Raising asks the host to retry (``maxDequeueCount`` 5),
after which the message lands in ``event-writes-poison``, whose trigger marks the session
failed and alerts the integration owner, so nothing is dropped silently.
"""

from __future__ import annotations

import logging

import azure.functions as func

from core.names import Queues
from functions.jobs import Job, queue_job

log = logging.getLogger(__name__)

bp = func.Blueprint()


SERIES_WRITE = "series_write"  # core.domain.commands.SERIES_WRITE (not imported: cold start)


@queue_job(bp, Queues.EVENT_WRITES)
def event_write(job: Job) -> None:
    """Apply one session or series change to Outlook (create, reschedule, cancel)."""
    if job.body.get("kind") == SERIES_WRITE:
        outcome = job.container.series_writer.handle(job.body, dequeue_count=job.dequeue_count)
    else:
        outcome = job.container.event_writer.handle(job.body, dequeue_count=job.dequeue_count)
    log.info("event-writes: %s", outcome.value, extra={"queue": Queues.EVENT_WRITES})


@queue_job(bp, Queues.poison(Queues.EVENT_WRITES), poison=True)
def event_write_poison(job: Job) -> None:
    """A change that exhausted its attempts: the session (or series) ends failed, the owner is alerted."""
    if job.body.get("kind") == SERIES_WRITE:
        job.container.series_writer.handle_poison(job.body)
    else:
        job.container.event_writer.handle_poison(job.body)
