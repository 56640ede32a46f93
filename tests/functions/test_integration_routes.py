"""The Integration routes and triggers in-process: admin set-up, consent redirect, access tests, disconnect."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest

from core.domain.calendar import GraphIdentity
from core.domain.commands import AlertKind
from core.names import Queues
from functions import integration_jobs
from tests.functions.conftest import TENANT_A, TENANT_NEW, Env, TokenFactory, bearer
from tests.support.fake_graph import NORMAL, ON_PREMISES, OUTSIDE_SCOPE, FakeCalendarGateway, FakeTokenProvider

ADMIN = ["Integration.Admin"]
NEW_ADMIN = "c0000000-0000-4000-8000-000000000001"
BODY = {"vendor": "outlook365", "method": "domainWide", "ownerEmail": "owner@new.example", "accessTestSampleSize": 10}


@dataclass
class Outbox:
    """A Mailer that keeps what it was asked to send."""

    sent: list[tuple[str, str, str]] = field(default_factory=list)

    def send(self, to: str, subject: str, text: str) -> None:
        self.sent.append((to, subject, text))


@dataclass
class Admin:
    env: Env
    token: str
    graph: FakeCalendarGateway
    tokens: FakeTokenProvider
    outbox: Outbox

    def call(self, method: str, path: str, body: Any = None) -> Any:
        return self.env.client.request(method, path, headers=bearer(self.token), json=body)

    def consent(self, **extra: str) -> Any:
        state = parse_qs(urlsplit(self.call("POST", "/api/integration/consent").json()["consentUrl"]).query)["state"][0]
        query = {"state": state, **extra} if extra else {"admin_consent": "True", "tenant": TENANT_NEW, "state": state}
        return self.env.client.get("/api/integration/consent/callback", query=query)

    def run_jobs(self) -> None:
        """Deliver queued access tests and owner alerts to their queue triggers, as the host would."""
        for queue, trigger in (
            (Queues.ACCESS_TESTS, integration_jobs.access_test_job),
            (Queues.OWNER_ALERTS, integration_jobs.owner_alert_job),
        ):
            for message in self.env.queues.take(queue):
                trigger(func.QueueMessage(id=str(message.id), body=_json(message.body)))


def _json(body: dict[str, Any]) -> bytes:
    import json

    return json.dumps(body).encode()


@pytest.fixture
def admin(env: Env, mint: TokenFactory) -> Iterator[Admin]:
    """An admin of a tenant allowed to onboard, with a seeded fake Microsoft 365 behind the container."""
    tokens = FakeTokenProvider([TENANT_NEW, TENANT_A])
    graph = FakeCalendarGateway(tokens=tokens, clock=env.container.clock)
    graph.add_user(TENANT_NEW, "admin@new.example", user_id=NEW_ADMIN)
    for name, kind in (("ann", NORMAL), ("ben", NORMAL), ("olga", ON_PREMISES), ("sam", OUTSIDE_SCOPE)):
        graph.add_user(TENANT_NEW, f"{name}@new.example", kind=kind)
    outbox = Outbox()
    env.container.graph, env.container.tokens, env.container.mailer = graph, tokens, outbox
    yield Admin(env, mint(tid=TENANT_NEW, oid=NEW_ADMIN, roles=ADMIN), graph, tokens, outbox)


def test_a_new_tenant_sees_not_configured(admin: Admin) -> None:
    """Before any set-up the integration reads as not_configured and disabled."""
    r = admin.call("GET", "/api/integration")
    assert r.status == 200
    assert r.json() == {"tenantId": TENANT_NEW, "enabled": False, "status": "not_configured",
                        "consent": {"status": "none"}}


def test_put_configures_and_waits_for_consent(admin: Admin) -> None:
    """PUT stores vendor, method, owner and sample size and moves to consent_pending."""
    r = admin.call("PUT", "/api/integration", BODY)
    assert r.status == 200, r.text
    doc = r.json()
    assert doc["status"] == "consent_pending" and doc["ownerEmail"] == "owner@new.example"
    assert (doc["method"], doc["vendor"], doc["enabled"], doc["accessTestSampleSize"]) == (
        "domainWide", "outlook365", True, 10
    )


@pytest.mark.parametrize(
    "body",
    [
        {**BODY, "ownerEmail": "not-an-email"},
        {**BODY, "method": "carrierPigeon"},
        {**BODY, "vendor": "gmail"},
        {**BODY, "accessTestSampleSize": 501},
        {**BODY, "clientSecret": "x"},
    ],
)
def test_put_rejects_invalid_values_with_422(admin: Admin, body: dict[str, Any]) -> None:
    """Validation errors are 422 validation_failed with field locations, and nothing is stored."""
    r = admin.call("PUT", "/api/integration", body)
    assert r.status == 422 and r.json()["error"]["code"] == "validation_failed"
    assert admin.call("GET", "/api/integration").json()["status"] == "not_configured"


def test_full_admin_flow_consent_then_access_test_report(admin: Admin, log_sentinel: Callable[[str], str]) -> None:
    """PUT, consent URL, Microsoft's redirect, the queued test: the report classifies every user with hints."""
    admin.call("PUT", "/api/integration", BODY)
    consent_url = admin.call("POST", "/api/integration/consent").json()["consentUrl"]
    state = log_sentinel(parse_qs(urlsplit(consent_url).query)["state"][0])
    redirect = admin.env.client.get(
        "/api/integration/consent/callback", query={"admin_consent": "True", "tenant": TENANT_NEW, "state": state}
    )
    assert redirect.status == 302 and redirect.body == b""
    assert redirect.header("Location") == "https://app.example.com/?consent=granted"
    assert admin.call("GET", "/api/integration").json()["status"] == "testing"
    running = admin.call("GET", "/api/integration/access-tests/latest").json()
    assert running["status"] == "running"

    admin.run_jobs()
    report = admin.call("GET", "/api/integration/access-tests/latest").json()
    assert report["id"] == running["id"] and report["status"] == "completed"
    assert (report["sampled"], report["accessible"], report["inaccessible"]) == (5, 3, 2)
    assert report["byReason"] == {"accessible": 3, "mailbox_on_premises_or_unlicensed": 1, "outside_app_scope": 1}
    by_upn = {u["userPrincipalName"]: u for u in report["users"]}
    assert by_upn["sam@new.example"]["reason"] == "outside_app_scope"
    assert "New-ApplicationAccessPolicy" in by_upn["sam@new.example"]["hint"]
    assert "hint" not in by_upn["ann@new.example"]
    integration = admin.call("GET", "/api/integration").json()
    assert integration["status"] == "degraded"
    assert integration["consent"]["status"] == "granted"
    assert integration["lastAccessTest"]["accessible"] == 3


def test_onboarded_tenant_users_get_in_right_after_consent(admin: Admin, mint: TokenFactory) -> None:
    """The tenant gate's cache is refreshed by the callback: the tenant's users are served at once."""
    user = mint(tid=TENANT_NEW, oid="c0000000-0000-4000-8000-000000000002")
    assert admin.env.client.get("/api/me/pairings", headers=bearer(user)).status == 403
    admin.call("PUT", "/api/integration", BODY)
    assert admin.consent().status == 302
    assert admin.env.client.get("/api/me/pairings", headers=bearer(user)).status != 403


def test_declined_consent_redirects_to_the_app_with_a_code(admin: Admin) -> None:
    """Declining at Microsoft's page lands on the app with consent=error&code=consent_declined."""
    admin.call("PUT", "/api/integration", BODY)
    r = admin.consent(error="access_denied", error_description="AADSTS65004: User declined to consent.")
    assert r.status == 302
    assert r.header("Location") == "https://app.example.com/?consent=error&code=consent_declined"
    doc = admin.call("GET", "/api/integration").json()
    assert doc["status"] == "consent_pending" and doc["consent"]["errorCode"] == "consent_declined"


def test_callback_without_state_still_redirects_with_an_error(admin: Admin) -> None:
    """A stray or forged callback never gets JSON or a stack: a redirect with consent_state_invalid."""
    r = admin.env.client.get("/api/integration/consent/callback", query={"admin_consent": "True"})
    assert r.status == 302
    assert parse_qs(urlsplit(r.header("Location") or "").query)["code"] == ["consent_state_invalid"]


def test_access_test_on_demand_is_202_and_latest_is_404_before_any(admin: Admin) -> None:
    """POST answers 202 {id, status: running}; GET latest is 404 until a test exists; 409 before consent and
    409 access_test_running while one runs."""
    assert admin.call("GET", "/api/integration/access-tests/latest").status == 404
    admin.call("PUT", "/api/integration", BODY)
    early = admin.call("POST", "/api/integration/access-tests")
    assert early.status == 409 and early.json()["error"]["code"] == "integration_not_connected"
    admin.consent()
    admin.run_jobs()
    r = admin.call("POST", "/api/integration/access-tests")
    assert r.status == 202 and r.json()["status"] == "running"
    assert admin.call("GET", "/api/integration/access-tests/latest").json()["id"] == r.json()["id"]
    again = admin.call("POST", "/api/integration/access-tests")  # while that one runs
    assert again.status == 409 and again.json()["error"]["code"] == "access_test_running"
    assert again.json()["error"]["details"] == {"id": r.json()["id"]}


def test_revoked_consent_fails_the_tenant_and_mails_the_owner_once(admin: Admin) -> None:
    """After revocation, reruns mark the tenant failed and exactly one email reaches the owner."""
    admin.call("PUT", "/api/integration", BODY)
    admin.consent()
    admin.run_jobs()
    admin.tokens.revoke_consent(TENANT_NEW)
    for _ in range(3):
        assert admin.call("POST", "/api/integration/access-tests").status == 202
        admin.run_jobs()
    doc = admin.call("GET", "/api/integration").json()
    assert doc["status"] == "failed" and doc["consent"]["status"] == "revoked"
    [(to, subject, text)] = admin.outbox.sent
    assert to == "owner@new.example" and "consent was revoked" in subject
    assert "Since:" in text and "What to do:" in text and "https://app.example.com/" in text


def test_disconnect_is_202_and_closes_the_tenant(admin: Admin, mint: TokenFactory) -> None:
    """DELETE answers 202; the status is disconnected and the tenant's users are no longer served."""
    admin.call("PUT", "/api/integration", BODY)
    admin.consent()
    r = admin.call("DELETE", "/api/integration")
    assert r.status == 202
    assert admin.call("GET", "/api/integration").json()["status"] == "disconnected"
    user = mint(tid=TENANT_NEW, oid="c0000000-0000-4000-8000-000000000002")
    assert admin.env.client.get("/api/me/pairings", headers=bearer(user)).json()["error"]["code"] == (
        "tenant_not_onboarded"
    )


def test_disconnect_deletes_the_tenants_graph_subscriptions(admin: Admin) -> None:
    """DELETE removes the tenant's change-notification subscriptions at Graph through the sync service."""

    admin.call("PUT", "/api/integration", BODY)
    admin.consent()
    ann = admin.graph.get_user(GraphIdentity(TENANT_NEW), "ann@new.example").user_id
    admin.env.container.subscriptions.ensure_for_mailbox(TENANT_NEW, ann)
    assert len(admin.graph.subscriptions_of(TENANT_NEW)) == 1
    assert admin.call("DELETE", "/api/integration").status == 202
    assert admin.graph.subscriptions_of(TENANT_NEW) == []


def test_timer_queues_reruns_for_active_tenants(admin: Admin) -> None:
    """The rerun timer enqueues one delayed access test per active tenant."""
    admin.call("PUT", "/api/integration", BODY)
    admin.consent()
    admin.env.queues.take(Queues.ACCESS_TESTS)
    integration_jobs.access_test_rerun(TimerRequest())
    queued = admin.env.queues.take(Queues.ACCESS_TESTS, include_delayed=True)
    assert TENANT_NEW in {m.body["tenantId"] for m in queued}


def test_owner_alert_job_mails_once_per_message(admin: Admin) -> None:
    """The owner-alert trigger renders and mails; a redelivered message is not mailed twice."""
    admin.call("PUT", "/api/integration", BODY)
    admin.env.container.owner_alerts.notify(TENANT_NEW, AlertKind.SUBSCRIPTION_FAILURE, detail="2 of 5 failed")
    [message] = admin.env.queues.take(Queues.OWNER_ALERTS)
    for _ in range(2):
        integration_jobs.owner_alert_job(func.QueueMessage(id="1", body=_json(message.body)))
    [(to, _subject, text)] = admin.outbox.sent
    assert to == "owner@new.example" and "Details: 2 of 5 failed" in text
