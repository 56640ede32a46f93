"""Subscriptions: one per organizer mailbox, granted lifetime read back, renewals by expiry bucket in groups of 20."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest

from core.domain.commands import RenewalItem, renewal_message
from core.domain.errors import GraphRequestRejected, TransientGraphError
from core.names import Queues, Tables
from core.ports import Entity
from core.services.client_state import ClientStateKeyCache
from core.services.stores.subscriptions import OUTLOOK_MAX_MINUTES, SubscriptionRecord, bucket_of
from core.services.subscriptions import LEGACY_MAX_MINUTES, MAX_ATTEMPTS, SubscriptionService, renew_at
from tests.unit.test_notifications import NOW, T, World


def test_first_need_creates_one_subscription_with_checkable_client_state() -> None:
    """ensure_for_mailbox subscribes to the organizer's events with both URLs and our clientState, once."""
    w = World.make()
    record = w.subs.ensure_for_mailbox(T, w.organizer)
    (sub,) = w.graph.subscriptions_of(T)
    assert sub.subscription_id == record.subscription_id
    assert sub.resource == f"/users/{w.organizer}/events"
    assert sub.change_type == "created,updated,deleted"
    signer = w.keys.cached
    assert signer is not None and signer.verify(w.graph.client_state_of(T, sub.subscription_id), T, w.organizer)
    assert w.subs.notification_url == "https://func.example.com/api/graph/notifications"
    assert w.subs.lifecycle_url == "https://func.example.com/api/graph/lifecycle"
    w.graph.reset_calls()
    assert w.subs.ensure_for_mailbox(T, w.organizer) == record
    assert w.graph.call_count() == 0
    assert w.subs.store.user_of(T, record.subscription_id) == w.organizer


def test_function_key_rides_on_both_urls() -> None:
    """With a webhook function key configured, Graph gets it as ?code= on both URLs."""
    w = World.make()
    from core.services.subscriptions import SubscriptionService

    svc = SubscriptionService(w.tables, w.queues, w.graph, w.clock, w.keys, public_base_url="https://f.example.com/",
                              url_code="abc")
    assert svc.notification_url == "https://f.example.com/api/graph/notifications?code=abc"
    assert svc.lifecycle_url == "https://f.example.com/api/graph/lifecycle?code=abc"


def test_documented_maximum_is_asked_and_granted_expiry_stored() -> None:
    """Where Graph allows 10,080 minutes the service gets (about) 7 days and renews 56 h before expiry."""
    w = World.make()
    record = w.subs.ensure_for_mailbox(T, w.organizer)
    lifetime = record.expires_at - NOW
    assert timedelta(minutes=OUTLOOK_MAX_MINUTES - 2) < lifetime <= timedelta(minutes=OUTLOOK_MAX_MINUTES)
    assert record.renew_at == record.expires_at - (record.expires_at - NOW) / 3
    assert record.lifetime_minutes == OUTLOOK_MAX_MINUTES


def test_refused_maximum_falls_back_to_4230_minutes_and_is_remembered() -> None:
    """Graph refusing 10,080 (400) -> one retry with 4,230; later creations ask 4,230 straight away."""
    w = World.make(max_minutes=LEGACY_MAX_MINUTES)
    first = w.subs.ensure_for_mailbox(T, w.organizer)
    assert w.graph.call_count("create_subscription") == 2
    assert first.lifetime_minutes == LEGACY_MAX_MINUTES
    assert first.expires_at - NOW <= timedelta(minutes=LEGACY_MAX_MINUTES)
    assert first.expires_at - first.renew_at == timedelta(minutes=LEGACY_MAX_MINUTES - 1) / 3
    w.subs.ensure_for_mailbox(T, w.partner)
    assert w.graph.call_count("create_subscription") == 3


def _another_instance(w: World) -> SubscriptionService:
    """A second process (another Flex instance, or this one restarted) over the same storage and Graph."""
    return SubscriptionService(w.tables, w.queues, w.graph, w.clock, ClientStateKeyCache(w.secrets),
                               public_base_url="https://func.example.com")


def test_learned_lifetime_is_shared_by_every_instance_and_survives_a_restart() -> None:
    """What Graph refused is kept per tenant in storage: another instance asks 4,230 minutes at once (one call)."""
    w = World.make(max_minutes=LEGACY_MAX_MINUTES)
    w.subs.ensure_for_mailbox(T, w.organizer)
    w.graph.reset_calls()
    other = _another_instance(w)
    record = other.ensure_for_mailbox(T, w.partner)
    assert record is not None and record.lifetime_minutes == LEGACY_MAX_MINUTES
    assert w.graph.call_count("create_subscription") == 1


def test_learned_lifetime_is_asked_again_at_the_documented_maximum_after_a_week() -> None:
    """A learned limit older than 7 days is retried at 10,080 minutes, in case Graph raised it."""
    w = World.make(max_minutes=LEGACY_MAX_MINUTES)
    w.subs.ensure_for_mailbox(T, w.organizer)
    w.graph.max_subscription_minutes = OUTLOOK_MAX_MINUTES
    w.clock.advance(days=8)
    record = _another_instance(w).ensure_for_mailbox(T, w.partner)
    assert record is not None and record.lifetime_minutes == OUTLOOK_MAX_MINUTES


@pytest.mark.parametrize("code", [
    "InvalidRequest",  # a malformed request is not about the lifetime
    "ValidationError",  # the notification URL's handshake failed
    "ExtensionError",  # without the documented text: ExtensionError also names mailbox problems
])
def test_only_the_documented_lifetime_refusal_is_retried_shorter(code: str) -> None:
    """A 400 that is not Graph's "Subscription expiration can only be N minutes" is raised, never retried shorter."""
    w = World.make()
    w.graph.fail_next("create_subscription", GraphRequestRejected(status=400, graph_code=code,
                                                                  details={"status": 400, "graph_code": code}))
    with pytest.raises(GraphRequestRejected):
        w.subs.ensure_for_mailbox(T, w.organizer)
    assert w.graph.call_count("create_subscription") == 1
    assert w.subs.store.lifetime(T) is None


def test_documented_refusal_in_any_case_retries_with_the_minutes_graph_names() -> None:
    """"extensionError" (concepts/errors.md spelling) naming 5,000 minutes -> one retry with exactly 5,000."""
    w = World.make(max_minutes=5000)
    refusal = GraphRequestRejected(status=400, graph_code="extensionError",
                                   details={"status": 400, "max_lifetime_minutes": 5000})
    w.graph.fail_next("create_subscription", refusal)
    record = w.subs.ensure_for_mailbox(T, w.organizer)
    assert record is not None and record.lifetime_minutes == 5000
    learned = w.subs.store.lifetime(T)
    assert learned is not None and learned.minutes == 5000


def test_renew_at_is_well_before_expiry() -> None:
    """Renew-at leaves a third of the lifetime, and never less than 6 hours."""
    assert NOW + timedelta(days=7) - renew_at(NOW + timedelta(days=7), NOW) == timedelta(hours=56)
    assert NOW + timedelta(hours=12) - renew_at(NOW + timedelta(hours=12), NOW) == timedelta(hours=6)
    assert renew_at(NOW + timedelta(hours=2), NOW) == NOW


def test_lapsing_subscription_is_replaced_on_ensure() -> None:
    """A mailbox whose subscription is within an hour of expiry gets a new one; the old one is deleted."""
    w = World.make()
    old = w.subs.ensure_for_mailbox(T, w.organizer)
    w.clock.advance(minutes=OUTLOOK_MAX_MINUTES - 30)
    new = w.subs.ensure_for_mailbox(T, w.organizer)
    assert new.subscription_id != old.subscription_id
    assert [s.subscription_id for s in w.graph.subscriptions_of(T)] == [new.subscription_id]
    assert w.subs.store.user_of(T, old.subscription_id) is None


def test_failed_creation_alerts_the_owner_and_raises() -> None:
    """When Graph refuses the subscription (endpoint validation failed) the owner is alerted and the caller told."""
    w = World.make()
    w.graph.reject_notification_url("https://func.example.com/api/graph/notifications")
    with pytest.raises(GraphRequestRejected):
        w.subs.ensure_for_mailbox(T, w.organizer)
    assert w.graph.call_count("create_subscription") == 1  # a validation failure is not retried as a lifetime problem
    assert [m.body["alert"] for m in w.queues.take(Queues.OWNER_ALERTS)] == ["subscription_failure"]
    assert w.subs.get(T, w.organizer) is None


def test_concurrent_creation_keeps_one_subscription() -> None:
    """Two workers setting up the same mailbox at once end with one stored subscription and no orphan at Graph."""
    w = World.make()
    original_insert = w.tables.insert
    raced: list[bool] = []

    def racing_insert(table: str, entity: Entity) -> Entity:
        if table == Tables.SUBSCRIPTIONS and entity.row_key.startswith("m~") and not raced:
            raced.append(True)
            w.subs.ensure_for_mailbox(T, w.organizer)  # the other worker wins meanwhile
        return original_insert(table, entity)

    w.tables.insert = racing_insert  # type: ignore[method-assign]
    record = w.subs.ensure_for_mailbox(T, w.organizer)
    assert [s.subscription_id for s in w.graph.subscriptions_of(T)] == [record.subscription_id]


def test_remove_for_mailbox_deletes_at_graph_and_forgets_every_row() -> None:
    """Removing a mailbox's subscription deletes it at Graph and leaves no row in either table."""
    w = World.make()
    record = w.subs.ensure_for_mailbox(T, w.organizer)
    assert w.subs.remove_for_mailbox(T, w.organizer)
    assert w.graph.subscriptions_of(T) == []
    assert w.tables.all(Tables.SUBSCRIPTIONS) == [] and w.tables.all(Tables.SUBSCRIPTION_EXPIRY) == []
    assert not w.subs.remove_for_mailbox(T, w.organizer)
    assert w.subs.store.user_of(T, record.subscription_id) is None


def test_remove_all_for_tenant_survives_graph_failures() -> None:
    """Disconnect removes every subscription of the tenant; a Graph failure on one still forgets its rows."""
    w = World.make()
    w.subs.ensure_for_mailbox(T, w.organizer)
    w.subs.ensure_for_mailbox(T, w.partner)
    w.graph.fail_next("delete_subscription", TransientGraphError())
    assert w.subs.remove_all_for_tenant(T) == 2
    assert w.subs.mailboxes(T) == []
    assert len(w.graph.subscriptions_of(T)) == 1  # the one Graph could not delete lapses on its own


class CountingQueries:
    """Counts which partitions the renewal timer reads."""

    def __init__(self, w: World) -> None:
        self.partitions: Counter[tuple[str, str]] = Counter()
        original = w.tables.query

        def query(table: str, partition_key: str, **kw: object) -> Iterator[Entity]:
            self.partitions[(table, partition_key)] += 1
            return original(table, partition_key, **kw)  # type: ignore[arg-type]

        w.tables.query = query  # type: ignore[method-assign]


def seed(w: World, tenant: str, user: str, sub_id: str, when_due: timedelta) -> SubscriptionRecord:
    record = SubscriptionRecord(
        tenant_id=tenant, user_id=user, subscription_id=sub_id, expires_at=NOW + when_due + timedelta(hours=56),
        renew_at=NOW + when_due, created_at=NOW, lifetime_minutes=OUTLOOK_MAX_MINUTES,
    )
    return w.subs.store.save(record, None)


def test_renewal_timer_reads_only_due_buckets_and_groups_by_tenant_in_twenties() -> None:
    """Due subscriptions go out in groups of 20 per tenant; buckets beyond the horizon are never read."""
    w = World.make()
    other = "bbbbbbbb-0000-4000-8000-00000000000b"
    for i in range(45):
        seed(w, T, f"user-{i:03d}", f"sub-{i:03d}", timedelta(minutes=20))
    for i in range(3):
        seed(w, other, f"user-{i:03d}", f"osub-{i:03d}", timedelta(hours=-5))
    for i in range(5):
        seed(w, T, f"later-{i}", f"later-{i}", timedelta(days=2))
    counter = CountingQueries(w)
    assert w.subs.plan_renewals() == 4
    messages = [m.body for m in w.queues.take(Queues.RENEWALS)]
    sizes = sorted((m["tenantId"], len(m["items"])) for m in messages)
    assert sizes == [(T, 5), (T, 20), (T, 20), (other, 3)]
    assert not any(i["subscriptionId"].startswith("later") for m in messages for i in m["items"])
    read = {p for (table, p) in counter.partitions if table == Tables.SUBSCRIPTION_EXPIRY}
    assert bucket_of(NOW + timedelta(days=2)) not in read
    assert len(read) == 72 + 2  # lookback + now + horizon hours, whatever the number of rows


def test_renewal_worker_renews_a_group_with_one_batch_and_moves_the_index() -> None:
    """One renew_subscriptions call per group; each row gets the granted expiry and a new bucket."""
    w = World.make()
    records = [w.subs.ensure_for_mailbox(T, u) for u in (w.organizer, w.partner)]
    w.clock.advance(hours=113)  # past renew-at (expiry - 56 h)
    w.graph.reset_calls()
    assert w.subs.plan_renewals() == 1
    (message,) = w.queues.take(Queues.RENEWALS)
    outcome = w.subs.renew_message(message.body)
    assert outcome.renewed == 2
    assert w.graph.call_count() == 1 and w.graph.call_count("renew_subscriptions") == 1
    for old in records:
        new = w.subs.get(T, old.user_id)
        assert new is not None and new.expires_at > old.expires_at and new.bucket != old.bucket
    buckets = {e.partition_key for e in w.tables.all(Tables.SUBSCRIPTION_EXPIRY)}
    assert buckets == {new.bucket}
    assert w.subs.plan_renewals() == 0


def test_renewal_refused_for_lifetime_retries_with_4230_once() -> None:
    """Graph refusing the 10,080-minute renewal (400) -> the same group renewed again with 4,230 minutes."""
    w = World.make()
    w.subs.ensure_for_mailbox(T, w.organizer)
    w.graph.max_subscription_minutes = LEGACY_MAX_MINUTES
    w.clock.advance(hours=113)
    w.graph.reset_calls()
    w.subs.plan_renewals()
    (message,) = w.queues.take(Queues.RENEWALS)
    assert w.subs.renew_message(message.body).renewed == 1
    assert w.graph.call_count("renew_subscriptions") == 2
    record = w.subs.get(T, w.organizer)
    assert record is not None and record.lifetime_minutes == LEGACY_MAX_MINUTES


def test_renewal_answered_404_recreates_and_resyncs_through_the_lifecycle_queue() -> None:
    """A subscription Graph removed: the worker hands it to the lifecycle worker, which recreates it and resyncs."""
    w = World.make()
    s = w.book(hours=150)
    old = w.subs.ensure_for_mailbox(T, w.organizer)
    w.graph.remove_subscription(T, old.subscription_id)
    assert s.event_id is not None
    w.move(s, timedelta(hours=1))
    w.clock.advance(hours=113)
    w.subs.plan_renewals()
    (message,) = w.queues.take(Queues.RENEWALS)
    assert w.subs.renew_message(message.body).recreated == 1
    (lifecycle,) = w.queues.take(Queues.LIFECYCLE)
    outcome = w.lifecycle.handle_message(lifecycle.body)
    assert outcome.recreated == 1 and outcome.resynced == 1
    new = w.subs.get(T, w.organizer)
    assert new is not None and new.subscription_id != old.subscription_id
    assert [x.subscription_id for x in w.graph.subscriptions_of(T)] == [new.subscription_id]
    assert w.stored(s).start == s.start + timedelta(hours=1)


def test_throttled_renewal_is_requeued_after_retry_after() -> None:
    """Throttled renewals return to the queue hidden for retry_after, with the same attempt number."""
    w = World.make()
    w.subs.ensure_for_mailbox(T, w.organizer)
    w.clock.advance(hours=113)
    w.subs.plan_renewals()
    (message,) = w.queues.take(Queues.RENEWALS)
    w.graph.throttle(120)
    assert w.subs.renew_message(message.body).retried == 1
    assert w.queues.take(Queues.RENEWALS) == []
    w.clock.advance(seconds=120)
    (again,) = w.queues.take(Queues.RENEWALS)
    assert again.body["attempt"] == 0


def test_repeated_renewal_failure_alerts_the_owner() -> None:
    """Failures retry with back-off; after the last attempt the owner is alerted and the row records the failure."""
    w = World.make()
    record = w.subs.ensure_for_mailbox(T, w.organizer)
    w.graph.fail_always("renew_subscriptions", TransientGraphError)
    message = renewal_message(T, [RenewalItem(w.organizer, record.subscription_id, record.bucket)])
    for attempt in range(MAX_ATTEMPTS):
        outcome = w.subs.renew_message({**message, "attempt": attempt})
        queued = w.queues.take(Queues.RENEWALS, include_delayed=True)
        if attempt + 1 < MAX_ATTEMPTS:
            assert outcome.retried == 1 and queued[0].body["attempt"] == attempt + 1
        else:
            assert outcome.failed == 1 and queued == []
    assert [m.body["alert"] for m in w.queues.take(Queues.OWNER_ALERTS)] == ["subscription_failure"]
    stored = w.subs.get(T, w.organizer)
    assert stored is not None and stored.failures == 1 and stored.last_error == "graph_unavailable"


def test_stale_renewal_item_costs_no_graph_call() -> None:
    """A queued renewal for a subscription the mailbox no longer has is dropped without calling Graph."""
    w = World.make()
    w.subs.ensure_for_mailbox(T, w.organizer)
    w.graph.reset_calls()
    outcome = w.subs.renew_group(T, [RenewalItem(w.organizer, "an-old-subscription-id", "2026112300")])
    assert outcome.stale == 1 and w.graph.call_count() == 0


def test_disabled_tenant_is_not_renewed() -> None:
    """A tenant whose integration is off gets no renewals (its subscriptions lapse)."""
    from core.domain.integration import Integration, IntegrationStatus
    from core.services.stores.integrations import IntegrationRepository

    w = World.make()
    record = w.subs.ensure_for_mailbox(T, w.organizer)
    repo = IntegrationRepository(w.tables)
    found = repo.get(T)
    assert found is not None
    repo.save(Integration(tenant_id=T, status=IntegrationStatus.DISCONNECTED), found.etag)
    w.graph.reset_calls()
    outcome = w.subs.renew_group(T, [RenewalItem(w.organizer, record.subscription_id, record.bucket)])
    assert outcome.skipped == 1 and w.graph.call_count() == 0


def test_per_user_tenant_works_with_the_organizers_own_token() -> None:
    """In a per-user tenant (no app consent) the subscription, its renewal and the reads use the organizer's token."""
    from core.domain.integration import ConnectionMethod
    from tests.support.fake_graph import FakeTokenProvider

    tokens = FakeTokenProvider()  # no tenant-wide consent: app-only calls would fail
    w = World.make(tokens=tokens, method=ConnectionMethod.PER_USER)
    tokens.connect_user(T, w.organizer)
    s = w.book()
    record = w.subs.ensure_for_mailbox(T, w.organizer)
    w.move(s, timedelta(hours=1))
    assert w.worker.handle([w.item(s)]).changed == 1
    assert w.reconciler.run().errors == 0
    w.clock.advance(hours=113)
    assert w.subs.renew_group(T, [RenewalItem(w.organizer, record.subscription_id, record.bucket)]).renewed == 1


# --- audit against GET /subscriptions -------------------------------------------------------


def _audit(w: World) -> list[dict[str, object]]:
    """Run the audit timer and its worker; returns the lifecycle items it queued."""
    for message in w.queues.take(Queues.RENEWALS):
        w.subs.renew_message(message.body)
    assert w.subs.plan_audits() >= 0
    for message in w.queues.take(Queues.RENEWALS):
        w.subs.renew_message(message.body)
    return [item for m in w.queues.pending(Queues.LIFECYCLE) for item in m.body["items"]]


def test_a_subscription_graph_dropped_silently_is_recreated_and_the_mailbox_resynced() -> None:
    """Graph lost the subscription without a lifecycle event: the audit (one GET /subscriptions for the tenant)
    hands it to the lifecycle worker, which recreates it and re-reads the mailbox's sessions."""
    w = World.make()
    s = w.book(hours=150)
    old = w.subs.ensure_for_mailbox(T, w.organizer)
    assert old is not None
    w.graph.remove_subscription(T, old.subscription_id)
    assert s.event_id is not None
    w.move(s, timedelta(hours=1))  # the change nobody told us about
    w.clock.advance(minutes=15)
    w.graph.reset_calls()
    items = _audit(w)
    assert [(i["userId"], i["subscriptionId"], i["lifecycleEvent"]) for i in items] == [
        (w.organizer, old.subscription_id, "subscriptionRemoved")]
    assert w.graph.call_count("list_subscriptions") == 1
    for message in w.queues.take(Queues.LIFECYCLE):
        outcome = w.lifecycle.handle_message(message.body)
        assert (outcome.recreated, outcome.resynced) == (1, 1)
    new = w.subs.get(T, w.organizer)
    assert new is not None and new.subscription_id != old.subscription_id
    assert [x.subscription_id for x in w.graph.subscriptions_of(T)] == [new.subscription_id]
    assert w.repo.require(T, s.session_id).value.start == s.start + timedelta(hours=1)


def test_healthy_and_brand_new_subscriptions_are_left_alone() -> None:
    """Subscriptions Graph lists are fine; one created under two minutes ago is not judged yet (listing lag)."""
    w = World.make()
    w.subs.ensure_for_mailbox(T, w.organizer)
    w.clock.advance(minutes=15)
    young = w.subs.ensure_for_mailbox(T, w.partner)
    assert young is not None
    w.graph.remove_subscription(T, young.subscription_id)
    assert _audit(w) == []
    w.clock.advance(minutes=3)
    assert [i["subscriptionId"] for i in _audit(w)] == [young.subscription_id]


def test_per_user_tenants_are_listed_with_each_organizers_own_token() -> None:
    """Delegated GET /subscriptions shows only the signed-in user's: one listing per connected organizer."""
    from core.domain.integration import ConnectionMethod
    from tests.support.fake_graph import FakeTokenProvider

    tokens = FakeTokenProvider()
    w = World.make(tokens=tokens, method=ConnectionMethod.PER_USER)
    for user in (w.organizer, w.partner):
        tokens.connect_user(T, user)
        w.subs.ensure_for_mailbox(T, user)
    w.clock.advance(minutes=15)
    lost = w.subs.get(T, w.partner)
    assert lost is not None
    w.graph.remove_subscription(T, lost.subscription_id)
    w.graph.reset_calls()
    assert [i["userId"] for i in _audit(w)] == [w.partner]
    listings = [c for c in w.graph.calls if c.method == "list_subscriptions"]
    assert len(listings) == 2


def test_the_audit_timer_runs_every_fifteen_minutes() -> None:
    """The schedule the staleness bound rests on: consecutive firings are 15 minutes apart."""
    from datetime import UTC, datetime

    from core.services.subscriptions import AUDIT_MINUTES
    from functions.sync_jobs import SUBSCRIPTION_AUDIT_SCHEDULE
    from local.ncrontab import parse

    schedule = parse(SUBSCRIPTION_AUDIT_SCHEDULE)
    moment = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
    fires = []
    for _ in range(8):
        moment = schedule.next_after(moment)
        fires.append(moment)
    assert {(b - a) for a, b in itertools.pairwise(fires)} == {timedelta(minutes=AUDIT_MINUTES)}
