"""Background triggers of the integration feature: access tests, owner alerts, the rerun timer.

A failure raises, so the queue retries the message and, after ``maxDequeueCount``
attempts, moves it to ``<queue>-poison``; the poison triggers here turn that into a
visible failed state and an owner alert (or, for the owner-alert queue itself, a
critical log line: email is what failed). Decoding, correlation and the poison policy
are ``functions/jobs.py``'s.
"""

from __future__ import annotations

import logging

import azure.functions as func

from core.bootstrap import Container
from core.names import Queues
from functions.jobs import Job, queue_job, timer_job

log = logging.getLogger("functions.integration_jobs")

bp = func.Blueprint()


@queue_job(bp, Queues.ACCESS_TESTS)
def access_test_job(job: Job) -> None:
    """Run one access test (idempotent per test id; a disabled tenant's test ends as failed), or one
    re-proof of a fresh admin consent (``verify_consent``)."""
    from core.domain.commands import VERIFY_CONSENT, AccessTestCommand, ConsentVerifyCommand

    if job.body.get("kind") == VERIFY_CONSENT:
        job.container.integration.verify_consent(ConsentVerifyCommand.from_message(job.body))
        return
    job.container.access_tests.run(AccessTestCommand.from_message(job.body))


@queue_job(bp, Queues.poison(Queues.ACCESS_TESTS), poison=True)
def access_test_poison(job: Job) -> None:
    """An access test (or a consent re-proof) failed every attempt: show it failed and alert the owner."""
    from core.domain.commands import VERIFY_CONSENT, AccessTestCommand, ConsentVerifyCommand

    if job.body.get("kind") == VERIFY_CONSENT:
        verify = ConsentVerifyCommand.from_message(job.body)
        log.error("consent re-proof moved to poison", extra={"tenant": verify.tenant_id})
        job.container.integration.on_verify_poison(verify)
        return
    command = AccessTestCommand.from_message(job.body)
    log.error("access test moved to poison", extra={"tenant": command.tenant_id})
    job.container.access_tests.on_poison(job.body)


@timer_job(bp, "%ACCESS_TEST_SCHEDULE%")
def access_test_rerun(container: Container) -> None:
    """Rerun the access test for every enabled tenant, each at its own jittered offset."""
    queued = container.access_tests.schedule_reruns()
    log.info("access tests scheduled", extra={"count": queued})


@queue_job(bp, Queues.OWNER_ALERTS)
def owner_alert_job(job: Job) -> None:
    """Mail one owner alert (at most once per message)."""
    job.container.owner_alert_worker.handle(job.body)


@queue_job(bp, Queues.poison(Queues.OWNER_ALERTS), poison=True)
def owner_alert_poison(job: Job) -> None:
    """Email itself failed repeatedly: the operator must see it in the logs (there is no other channel)."""
    log.critical(
        "owner alert could not be mailed after every retry",
        extra={"tenant": str(job.body.get("tenantId", "-")), "event": str(job.body.get("alert", "-"))},
    )
