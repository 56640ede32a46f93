"""Owner alerts go out once per tenant and kind within the period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.domain.commands import AlertCommand, AlertKind
from core.names import Queues
from core.services.alerts import OwnerAlerts
from tests.support.memory import FixedClock, InMemoryCommandQueue, InMemoryTableStore

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def setup() -> tuple[OwnerAlerts, InMemoryCommandQueue, FixedClock]:
    clock = FixedClock(NOW)
    queue = InMemoryCommandQueue(now=clock.now)
    return OwnerAlerts(InMemoryTableStore(), queue, clock, period=timedelta(hours=1)), queue, clock


def test_repeated_failures_send_one_alert_per_period() -> None:
    """A hundred failures of one kind within the period queue exactly one alert."""
    alerts, queue, _ = setup()
    results = [alerts.notify("t1", AlertKind.CONSENT_REVOKED, detail="AADSTS700016") for _ in range(100)]
    assert results.count(True) == 1
    sent = queue.take(Queues.OWNER_ALERTS)
    assert len(sent) == 1
    command = AlertCommand.from_message(sent[0].body)
    assert command.kind == AlertKind.CONSENT_REVOKED and command.tenant_id == "t1"


def test_other_tenants_and_kinds_are_independent_and_period_expires() -> None:
    """Another tenant or kind alerts separately; after the period the same kind alerts again."""
    alerts, queue, clock = setup()
    assert alerts.notify("t1", AlertKind.POISON_MESSAGE, detail="x")
    assert alerts.notify("t2", AlertKind.POISON_MESSAGE, detail="x")
    assert alerts.notify("t1", AlertKind.SUBSCRIPTION_FAILURE, detail="x")
    clock.advance(hours=2)
    assert alerts.notify("t1", AlertKind.POISON_MESSAGE, detail="x")
    assert len(queue.take(Queues.OWNER_ALERTS)) == 4


def test_resolved_condition_alerts_again_immediately() -> None:
    """After resolve(), the next failure alerts without waiting for the period."""
    alerts, _, _ = setup()
    assert alerts.notify("t1", AlertKind.TOKEN_FAILURE, detail="x")
    alerts.resolve("t1", AlertKind.TOKEN_FAILURE)
    assert alerts.notify("t1", AlertKind.TOKEN_FAILURE, detail="x")
