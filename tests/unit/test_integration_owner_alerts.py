"""The owner-alert worker: what broke, since when, what to do, to the owner, once per message."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from core.domain.commands import AlertCommand, AlertKind
from core.domain.errors import DependencyError
from core.domain.integration import Integration
from core.services.owner_alert_worker import TEXTS, OwnerAlertWorker, render
from core.services.stores.integrations import IntegrationRepository
from tests.support.memory import FixedClock, InMemoryTableStore

TENANT = "11111111-1111-4111-8111-111111111111"
SINCE = datetime(2026, 3, 2, 7, 30, tzinfo=UTC)


@dataclass
class Outbox:
    fail: bool = False
    sent: list[tuple[str, str, str]] = field(default_factory=list)

    def send(self, to: str, subject: str, text: str) -> None:
        if self.fail:
            raise DependencyError(code="mailer_unavailable")
        self.sent.append((to, subject, text))


def worker(owner: str = "owner@contoso.test", fail: bool = False) -> tuple[OwnerAlertWorker, Outbox]:
    tables = InMemoryTableStore()
    IntegrationRepository(tables).save(Integration(tenant_id=TENANT, owner_email=owner), None)
    outbox = Outbox(fail=fail)
    return OwnerAlertWorker(tables=tables, mailer=outbox, clock=FixedClock(SINCE), app_url="https://app.test/"), outbox


def message(kind: AlertKind = AlertKind.CONSENT_REVOKED) -> dict[str, str]:
    return AlertCommand(TENANT, kind, "app_not_in_tenant, AADSTS700016", SINCE).to_message()


@pytest.mark.parametrize("kind", list(AlertKind))
def test_every_alert_kind_says_what_broke_since_when_and_what_to_do(kind: AlertKind) -> None:
    """Each kind renders a subject and the four parts of the body, linking to the app."""
    subject, text = render(AlertCommand(TENANT, kind, "detail 1", SINCE), "https://app.test")
    assert subject == f"Calendar integration: {TEXTS[kind].title}"
    assert f"What broke: {TEXTS[kind].what}" in text
    assert "Since: 2026-03-02 07:30 UTC" in text
    assert f"What to do: {TEXTS[kind].todo}" in text
    assert "https://app.test/" in text and "Details: detail 1" in text


def test_alert_goes_to_the_integration_owner() -> None:
    """The recipient is the owner email of the tenant's integration."""
    w, outbox = worker()
    assert w.handle(message())
    [(to, subject, text)] = outbox.sent
    assert to == "owner@contoso.test" and "consent was revoked" in subject and "AADSTS700016" in text


def test_a_redelivered_alert_is_mailed_once() -> None:
    """At-least-once delivery does not mean two emails."""
    w, outbox = worker()
    assert w.handle(message())
    assert not w.handle(message())
    assert len(outbox.sent) == 1


def test_without_an_owner_nothing_is_sent() -> None:
    """No owner email configured: the alert is skipped (and logged), not an error loop."""
    w, outbox = worker(owner="")
    assert not w.handle(message())
    assert outbox.sent == []


def test_mail_outage_raises_so_the_queue_retries_and_a_later_try_still_sends() -> None:
    """A failing mailer raises DependencyError (retry); the message is not marked as sent."""
    w, outbox = worker(fail=True)
    with pytest.raises(DependencyError):
        w.handle(message())
    outbox.fail = False
    assert w.handle(message())
    assert len(outbox.sent) == 1
