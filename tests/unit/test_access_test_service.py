"""The access-test job on the fake gateway: sampling, batching, classification, status, alerts, reruns."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from core.domain.access_test import AccessReason, RunStatus
from core.domain.commands import AccessTestCommand, AlertCommand, AlertKind
from core.domain.errors import TransientGraphError
from core.domain.integration import Integration, IntegrationStatus
from core.names import Queues, Tables
from core.services.access_test import JITTER_SECONDS, AccessTestService, jitter_seconds
from core.services.alerts import OwnerAlerts
from core.services.integration import IntegrationService
from core.services.stores.integrations import IntegrationRepository
from core.settings import Settings
from tests.support.fake_graph import (
    HYBRID,
    NORMAL,
    ON_PREMISES,
    OUTSIDE_SCOPE,
    UNLICENSED,
    FakeCalendarGateway,
    FakeTokenProvider,
)
from tests.support.memory import FixedClock, InMemoryCommandQueue, InMemorySecretStore, InMemoryTableStore

TENANT = "11111111-1111-4111-8111-111111111111"
OTHER_TENANT = "22222222-2222-4222-8222-222222222222"
ADMIN_OID = "10000000-0000-4000-8000-000000000001"
APP_ID = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ENV = {
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "ENTRA_CLIENT_ID": APP_ID,
    "ENTRA_CREDENTIAL": "secret",
    "PUBLIC_BASE_URL": "https://func.example.com",
    "APP_URL": "https://app.example.com",
    "KEY_VAULT_URI": "https://kv-test.vault.azure.net/",
    "ACS_ENDPOINT": "https://acs-test.communication.azure.com",
    "ALERT_SENDER_ADDRESS": "DoNotReply@alerts.example.com",
}
# The seeded tenant: 6 reachable users (admin included) and one of every unreachable kind.
SEED = {
    "admin": NORMAL, "alice": NORMAL, "bob": NORMAL, "carol": NORMAL, "dave": NORMAL, "erin": NORMAL,
    "onprem1": ON_PREMISES, "nolicense1": UNLICENSED, "scoped1": OUTSIDE_SCOPE, "scoped2": OUTSIDE_SCOPE,
    "hybrid1": HYBRID,
}


@dataclass
class World:
    """Every port of the access test and the integration services, in memory."""

    clock: FixedClock = field(default_factory=lambda: FixedClock(NOW))
    tables: InMemoryTableStore = field(default_factory=InMemoryTableStore)
    tokens: FakeTokenProvider = field(default_factory=lambda: FakeTokenProvider([TENANT, OTHER_TENANT]))
    secrets: InMemorySecretStore = field(default_factory=InMemorySecretStore)
    settings: Settings = field(default_factory=lambda: Settings.from_env(ENV))
    deleted_subscriptions: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.queues = InMemoryCommandQueue(now=self.clock.now)
        self.graph = FakeCalendarGateway(tokens=self.tokens, clock=self.clock)
        self.alerts = OwnerAlerts(self.tables, self.queues, self.clock)
        counter = iter(range(1, 10_000))
        self.tests = AccessTestService(
            tables=self.tables, queues=self.queues, clock=self.clock, gateway=self.graph, alerts=self.alerts,
            app_id=APP_ID, tokens=self.tokens, new_id=lambda: f"test{next(counter):04d}",
        )
        self.integration = IntegrationService(
            tables=self.tables, clock=self.clock, settings=self.settings, gateway=self.graph,
            secrets_store=self.secrets, alerts=self.alerts, access_tests=self.tests, tokens=self.tokens,
            delete_subscriptions=self._delete_subscriptions,
        )
        self.repo = IntegrationRepository(self.tables)

    def _delete_subscriptions(self, tenant_id: str) -> int:
        self.deleted_subscriptions.append(tenant_id)
        return 0

    def seed(self, tenant: str = TENANT, users: dict[str, str] | None = None, domain: str = "contoso.test") -> None:
        for local, kind in (users or SEED).items():
            uid = ADMIN_OID if local == "admin" and tenant == TENANT else None
            self.graph.add_user(tenant, f"{local}@{domain}", kind=kind, user_id=uid)

    def onboard(
        self, tenant: str = TENANT, status: IntegrationStatus = IntegrationStatus.CONNECTED, **kw: object
    ) -> None:
        integration = replace(
            Integration(tenant_id=tenant, owner_email="owner@contoso.test", status=status, status_since=NOW), **kw
        )
        self.repo.save(integration, None)

    def run_queued(self) -> list[object]:
        """Run every visible access-test message, as the queue trigger would."""
        return [self.tests.run(AccessTestCommand.from_message(m.body)) for m in self.queues.take(Queues.ACCESS_TESTS)]

    def alerts_sent(self) -> list[AlertCommand]:
        return [AlertCommand.from_message(m.body) for m in self.queues.take(Queues.OWNER_ALERTS)]

    def status(self, tenant: str = TENANT) -> IntegrationStatus:
        found = self.repo.get(tenant)
        assert found is not None
        return found.value.status


def test_seeded_tenant_is_classified_user_by_user_and_counts_add_up() -> None:
    """Every unreachable kind gets its reason, reachable users are accessible, and the numbers add up."""
    w = World()
    w.seed()
    w.onboard(status=IntegrationStatus.TESTING)
    started = w.tests.start(TENANT, ADMIN_OID)
    [report] = w.run_queued()
    assert report is not None and report == w.tests.latest(TENANT)
    assert report.test_id == started.test_id and report.status is RunStatus.COMPLETED
    by_upn = {u.user_principal_name: u.reason for u in report.users}
    assert by_upn["onprem1@contoso.test"] is AccessReason.MAILBOX_ON_PREMISES_OR_UNLICENSED
    assert by_upn["nolicense1@contoso.test"] is AccessReason.MAILBOX_ON_PREMISES_OR_UNLICENSED
    assert by_upn["scoped1@contoso.test"] is AccessReason.OUTSIDE_APP_SCOPE
    assert by_upn["scoped2@contoso.test"] is AccessReason.OUTSIDE_APP_SCOPE
    # Hybrid: getSchedule answers (hybrid free/busy) but event reads fail, so not accessible.
    assert by_upn["hybrid1@contoso.test"] is AccessReason.MAILBOX_ON_PREMISES_OR_UNLICENSED
    assert {u for u, r in by_upn.items() if r is AccessReason.ACCESSIBLE} == {
        f"{n}@contoso.test" for n in ("admin", "alice", "bob", "carol", "dave", "erin")
    }
    assert (report.sampled, report.accessible, report.inaccessible) == (11, 6, 5)
    assert sum(report.by_reason.values()) == report.sampled
    assert w.status() is IntegrationStatus.DEGRADED
    # Booking refuses the mailboxes found on premises/hybrid/unlicensed (and only those) at request time.
    from core.services.stores.access_tests import UnreachableMailboxes

    unreachable = UnreachableMailboxes(w.tables)
    blocked = {u.user_principal_name for u in report.users if unreachable.reason_of(TENANT, u.user_id)}
    assert blocked == {"onprem1@contoso.test", "nolicense1@contoso.test", "hybrid1@contoso.test"}


def test_graph_calls_are_the_floor_one_listing_and_per_20_one_schedule_and_one_probe() -> None:
    """45 users cost 1 list + 3 getSchedule + 3 probe batches (every calendar is read): 1 + 2 * ceil(45/20)."""
    w = World()
    w.seed(users={"admin": NORMAL} | {f"user{i:02d}": NORMAL for i in range(40)}
           | {"onprem1": ON_PREMISES, "scoped1": OUTSIDE_SCOPE, "nolicense1": UNLICENSED, "hybrid1": HYBRID})
    w.onboard(access_test_sample_size=45)
    w.tests.start(TENANT, ADMIN_OID)
    [report] = w.run_queued()
    assert report is not None and report.sampled == 45
    assert w.graph.call_count("list_users") == 1
    assert w.graph.call_count("get_schedule") == 3
    assert [c.args for c in w.graph.calls if c.method == "probe_mailboxes"] == ["n=45"]
    assert report.graph_calls == 1 + 3 + 3


def test_healthy_tenant_is_connected_after_one_probe_batch() -> None:
    """A healthy tenant's calendars are all read in one $batch and it becomes connected."""
    w = World()
    w.seed(users={"admin": NORMAL, "alice": NORMAL, "bob": NORMAL})
    w.onboard(status=IntegrationStatus.TESTING)
    w.tests.start(TENANT, ADMIN_OID)
    w.run_queued()
    assert w.graph.call_count("probe_mailboxes") == 1
    assert w.status() is IntegrationStatus.CONNECTED


def test_sample_size_is_honoured_and_deterministic_per_test() -> None:
    """Only N users are tested, drawn the same way when the same test id runs again."""
    w = World()
    w.seed(users={f"user{i:02d}": NORMAL for i in range(40)})
    w.onboard(access_test_sample_size=7)
    w.tests.start(TENANT, None)
    [report] = w.run_queued()
    assert report is not None and report.sampled == 7
    again = World()
    again.seed(users={f"user{i:02d}": NORMAL for i in range(40)})
    again.onboard(access_test_sample_size=7)
    again.tests.start(TENANT, None)
    [other] = again.run_queued()
    assert other is not None
    assert [u.user_principal_name for u in other.users] == [u.user_principal_name for u in report.users]


def test_unreachable_anchor_falls_back_and_is_itself_classified() -> None:
    """When the admin's own mailbox is on-premises, getSchedule moves to another anchor and the admin is reported."""
    w = World()
    w.seed(users={"admin": ON_PREMISES, "alice": NORMAL, "bob": NORMAL})
    w.onboard()
    w.tests.start(TENANT, ADMIN_OID)
    [report] = w.run_queued()
    assert report is not None
    reasons = {u.user_principal_name: u.reason for u in report.users}
    assert reasons == {
        "admin@contoso.test": AccessReason.MAILBOX_ON_PREMISES_OR_UNLICENSED,
        "alice@contoso.test": AccessReason.ACCESSIBLE,
        "bob@contoso.test": AccessReason.ACCESSIBLE,
    }
    assert w.graph.call_count("get_schedule") == 2


def test_timer_rerun_anchors_on_a_user_the_previous_report_reached() -> None:
    """Without an admin to anchor on, a rerun starts from a known-reachable mailbox: no wasted getSchedule call."""
    w = World()
    w.seed(users={"aaa-onprem": ON_PREMISES, "aab-scoped": OUTSIDE_SCOPE, "zed": NORMAL, "zoe": NORMAL})
    w.onboard()
    w.tests.start(TENANT, None)
    w.run_queued()
    assert w.graph.call_count("get_schedule") == 3  # two unreachable anchors tried first, then zed
    w.graph.reset_calls()
    w.tests.schedule_reruns()
    for message in w.queues.take(Queues.ACCESS_TESTS, include_delayed=True):
        w.tests.run(AccessTestCommand.from_message(message.body))
    assert w.graph.call_count("get_schedule") == 1


def test_redelivered_message_for_a_finished_test_does_nothing() -> None:
    """At-least-once delivery: the second run of a finished test makes no Graph call and changes nothing."""
    w = World()
    w.seed()
    w.onboard()
    report = w.tests.start(TENANT, None)
    message = w.queues.take(Queues.ACCESS_TESTS)[0].body
    first = w.tests.run(AccessTestCommand.from_message(message))
    calls = len(w.graph.calls)
    second = w.tests.run(AccessTestCommand.from_message(message))
    assert second == first and len(w.graph.calls) == calls
    assert first is not None and first.test_id == report.test_id


def test_throttled_test_is_requeued_after_retry_after_and_stays_running() -> None:
    """Graph throttling re-enqueues the same message with delay = Retry-After instead of failing."""
    w = World()
    w.seed()
    w.onboard()
    started = w.tests.start(TENANT, None)
    w.graph.throttle(retry_after=42)
    assert w.run_queued() == [None]
    [requeued] = w.queues.take(Queues.ACCESS_TESTS, include_delayed=True)
    assert requeued.body["testId"] == started.test_id
    assert (requeued.visible_at - NOW).total_seconds() == 42
    assert w.tests.latest(TENANT).status is RunStatus.RUNNING


def test_transient_probe_failure_is_reported_as_transient_not_fatal() -> None:
    """A $batch that keeps failing leaves those users as transient_error; the test still completes."""
    w = World()
    w.seed()
    w.onboard()
    w.graph.fail_next("probe_mailboxes", TransientGraphError())
    w.tests.start(TENANT, None)
    [report] = w.run_queued()
    assert report is not None and report.status is RunStatus.COMPLETED
    assert report.by_reason[AccessReason.TRANSIENT_ERROR] == 4  # the four getSchedule failures
    # Free/busy answered for the other 7 (hybrid1 too): a calendar read that got no answer does not overrule it.
    assert report.by_reason[AccessReason.ACCESSIBLE] == 7


def test_revoked_consent_fails_the_tenant_and_alerts_once_across_reruns() -> None:
    """Consent revoked: report failed, tenant failed, one consent_revoked alert however often it reruns."""
    w = World()
    w.seed()
    w.onboard()
    w.tokens.revoke_consent(TENANT)
    for _ in range(3):
        w.tests.start(TENANT, None)
        [report] = w.run_queued()
        assert report is not None and report.status is RunStatus.FAILED
        assert report.error_code == "app_not_in_tenant"
    assert w.status() is IntegrationStatus.FAILED
    alerts = w.alerts_sent()
    assert [a.kind for a in alerts] == [AlertKind.CONSENT_REVOKED]
    assert "AADSTS700016" in alerts[0].detail
    assert TENANT in w.tokens.invalidated


def test_recovery_after_reconsent_clears_the_failure_alert() -> None:
    """Once tokens work again a healthy report resolves the consent alert, so the next failure alerts at once."""
    w = World()
    w.seed(users={"admin": NORMAL, "alice": NORMAL})
    w.onboard()
    w.tokens.revoke_consent(TENANT)
    w.tests.start(TENANT, None)
    w.run_queued()
    w.tokens.grant_consent(TENANT)
    w.tests.start(TENANT, None)
    w.run_queued()
    assert w.status() is IntegrationStatus.CONNECTED
    w.tokens.revoke_consent(TENANT)
    w.tests.start(TENANT, None)
    w.run_queued()
    assert [a.kind for a in w.alerts_sent()] == [AlertKind.CONSENT_REVOKED, AlertKind.CONSENT_REVOKED]


def test_a_worse_result_alerts_the_owner_once() -> None:
    """connected -> degraded sends access_test_regressed; a first degraded result does not."""
    w = World()
    w.seed(users={"admin": NORMAL, "alice": NORMAL})
    w.onboard(status=IntegrationStatus.TESTING)
    w.tests.start(TENANT, None)
    w.run_queued()
    assert w.status() is IntegrationStatus.CONNECTED
    w.graph.add_user(TENANT, "scoped9@contoso.test", kind=OUTSIDE_SCOPE)
    for _ in range(2):
        w.tests.start(TENANT, None)
        w.run_queued()
    assert w.status() is IntegrationStatus.DEGRADED
    [alert] = w.alerts_sent()
    assert alert.kind is AlertKind.ACCESS_TEST_REGRESSED
    assert "2 of 3" in alert.detail and "outside_app_scope 1" in alert.detail


def test_disabled_tenant_test_ends_without_touching_graph() -> None:
    """enabled=false: the job records the test as failed (integration_disabled) and makes no Graph call."""
    w = World()
    w.seed()
    w.onboard(enabled=False)
    w.queues.send(Queues.ACCESS_TESTS, AccessTestCommand(TENANT, "t-disabled").to_message())
    [report] = w.run_queued()
    assert report is not None and report.error_code == "integration_disabled"
    assert w.graph.calls == []


def test_timer_queues_one_jittered_test_per_enabled_onboarded_tenant() -> None:
    """Reruns go to active tenants only, each delayed by its own stable offset under an hour."""
    w = World()
    w.onboard(TENANT)
    w.onboard(OTHER_TENANT)
    w.onboard("33333333-3333-4333-8333-333333333333", enabled=False)
    w.onboard("44444444-4444-4444-8444-444444444444", status=IntegrationStatus.CONSENT_PENDING)
    assert w.tests.schedule_reruns() == 2
    queued = w.queues.take(Queues.ACCESS_TESTS, include_delayed=True)
    delays = {m.body["tenantId"]: (m.visible_at - NOW).total_seconds() for m in queued}
    assert delays == {TENANT: jitter_seconds(TENANT), OTHER_TENANT: jitter_seconds(OTHER_TENANT)}
    assert all(0 <= d < JITTER_SECONDS for d in delays.values())
    assert jitter_seconds(TENANT) != jitter_seconds(OTHER_TENANT)


def test_poisoned_test_is_marked_failed_and_alerts() -> None:
    """A test that failed every attempt is shown failed and the owner hears about it."""
    w = World()
    w.onboard()
    w.tests.start(TENANT, None)
    [message] = w.queues.take(Queues.ACCESS_TESTS)
    w.tests.on_poison(message.body)
    assert w.tests.latest(TENANT).status is RunStatus.FAILED
    assert [a.kind for a in w.alerts_sent()] == [AlertKind.POISON_MESSAGE]


def test_report_with_hundreds_of_users_round_trips_through_storage() -> None:
    """500 users exceed one Table property; the report is split and read back intact."""
    w = World()
    w.seed(users={f"a-rather-long-user-name-{i:03d}": NORMAL for i in range(500)})
    w.onboard(access_test_sample_size=500)
    w.tests.start(TENANT, None)
    [report] = w.run_queued()
    stored = w.tests.latest(TENANT)
    assert report is not None and stored.users == report.users and stored.sampled == 500
    row = w.tables.get(Tables.ACCESS_TESTS, TENANT, report.test_id)
    assert row is not None and int(row.data["userChunks"]) > 1  # type: ignore[arg-type]


def test_a_second_test_while_one_runs_is_refused_with_409() -> None:
    """Access tests cannot be queued without end: while one runs, another start is 409 access_test_running naming it;
    a test stuck "running" for 30 minutes no longer blocks, and a finished one never does."""
    from core.domain.errors import Conflict

    w = World()
    w.seed()
    w.onboard()
    running = w.tests.start(TENANT, ADMIN_OID)
    try:
        w.tests.start(TENANT, ADMIN_OID)
        raise AssertionError("a second test was queued while one ran")
    except Conflict as exc:
        assert (exc.code, exc.details) == ("access_test_running", {"id": running.test_id})
    assert len(w.queues.pending(Queues.ACCESS_TESTS)) == 1
    w.clock.advance(minutes=31)
    stuck_replaced = w.tests.start(TENANT, ADMIN_OID)
    w.run_queued()
    assert w.tests.latest(TENANT).test_id == stuck_replaced.test_id and w.tests.latest(TENANT).finished
    assert w.tests.start(TENANT, ADMIN_OID).status is RunStatus.RUNNING
