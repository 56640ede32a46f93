"""Reconciliation and lifecycle events: what a lost notification missed is healed within one cycle."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from core.domain.calendar import ResponseType
from core.domain.commands import LifecycleItem, lifecycle_message
from core.domain.errors import GraphRequestRejected, ItemNotFound, Throttled, TransientGraphError
from core.domain.integration import Integration, IntegrationStatus
from core.domain.sessions import ChangeSource, Session, SessionStatus
from core.names import Queues, Tables
from core.services.stores.integrations import IntegrationRepository
from core.services.stores.sessions import SessionRepository
from tests.unit.test_notifications import PARTNER, T, World


def genuine(w: World, record: object, event: str) -> LifecycleItem:
    """The lifecycle item Graph sends for the mailbox's current subscription (its clientState's nonce)."""
    from core.services.stores.subscriptions import SubscriptionRecord

    assert isinstance(record, SubscriptionRecord)
    return LifecycleItem(T, w.organizer, record.subscription_id, event, nonce=record.nonce)


def test_reconciliation_heals_a_move_no_notification_reported() -> None:
    """A move made while notifications were lost is applied by the next reconciliation, source 'outlook'."""
    w = World.make()
    s = w.book()
    assert s.event_id is not None
    new_start = s.start + timedelta(hours=2)
    w.graph.move_event_as_organizer(T, w.organizer, s.event_id, new_start, new_start + timedelta(minutes=30))
    report = w.reconciler.run()
    stored = w.stored(s)
    assert stored.start == new_start and stored.source == ChangeSource.OUTLOOK
    assert report.sync.changed == 1 and report.tenants == 1


def test_reconciliation_heals_cancellations_and_answers() -> None:
    """A cancellation and an RSVP that were never notified both end up on their sessions."""
    w = World.make()
    cancelled, answered = w.book(hours=30), w.book(hours=50)
    assert cancelled.event_id is not None and answered.ical_uid is not None
    w.graph.cancel_event_as_organizer(T, w.organizer, cancelled.event_id)
    copy = w.graph.copy_of(T, PARTNER, answered.ical_uid)
    assert copy is not None
    w.graph.respond_as_attendee(T, PARTNER, copy, ResponseType.TENTATIVELY_ACCEPTED)
    w.reconciler.run()
    assert w.stored(cancelled).status == SessionStatus.CANCELLED
    assert w.stored(answered).attendees[0].response == ResponseType.TENTATIVELY_ACCEPTED


def test_reconciliation_reads_only_the_window_in_batches_of_twenty() -> None:
    """45 sessions in the next 14 days are read in 3 $batch calls; a session beyond the window is not read."""
    w = World.make()
    for i in range(45):
        w.book(hours=2 + i)
    far = w.book(hours=24 * 20)
    assert far.event_id is not None
    w.graph.move_event_as_organizer(T, w.organizer, far.event_id, far.start + timedelta(hours=1),
                                    far.end + timedelta(hours=1))
    w.subs.ensure_for_mailbox(T, w.organizer)
    w.graph.reset_calls()
    report = w.reconciler.run()
    assert w.graph.call_count("get_events") == 3
    assert report.sync.read == 45
    assert w.stored(far).start == far.start  # healed by a later cycle, once inside the window


def test_second_reconciliation_changes_nothing() -> None:
    """Reconciliation is idempotent: run twice, the second pass reads and changes nothing new."""
    w = World.make()
    s = w.book()
    w.reconciler.run()
    first = w.stored(s)
    report = w.reconciler.run()
    assert report.sync.changed == 0
    assert w.stored(s) == first


def test_housekeeping_ensures_needed_subscriptions_and_removes_unneeded_ones() -> None:
    """An organizer of upcoming sessions gets a subscription; a mailbox with none left loses its own."""
    w = World.make()
    w.book()
    w.subs.ensure_for_mailbox(T, w.partner)  # the partner organizes nothing
    report = w.reconciler.run()
    assert report.subscriptions_ensured == 1 and report.subscriptions_removed == 1
    assert [r.user_id for r in w.subs.mailboxes(T)] == [w.organizer]
    assert len(w.graph.subscriptions_of(T)) == 1


def test_housekeeping_drops_the_subscription_once_the_last_session_is_over() -> None:
    """When the organizer's sessions are all in the past, the next reconciliation deletes the subscription."""
    w = World.make()
    w.book(hours=3)
    w.reconciler.run()
    assert w.subs.get(T, w.organizer) is not None
    w.clock.advance(hours=5)
    w.reconciler.run()
    assert w.subs.get(T, w.organizer) is None
    assert w.graph.subscriptions_of(T) == []


def test_disabled_tenant_is_not_reconciled() -> None:
    """A disabled integration costs no Graph call in reconciliation."""
    w = World.make()
    w.book()
    repo = IntegrationRepository(w.tables)
    found = repo.get(T)
    assert found is not None
    repo.save(Integration(tenant_id=T, enabled=False, status=IntegrationStatus.CONNECTED), found.etag)
    w.graph.reset_calls()
    assert w.reconciler.run().tenants == 0
    assert w.graph.call_count() == 0


def test_throttled_reconciliation_stops_and_keeps_going_next_cycle() -> None:
    """Throttling stops this tenant's pass (reported), nothing is lost: the next cycle heals."""
    w = World.make()
    s = w.book()
    assert s.event_id is not None
    w.move(s, timedelta(hours=1))
    w.graph.throttle(10)
    report = w.reconciler.run()
    assert report.sync.throttled is not None
    w.graph.stop_throttling()
    w.reconciler.run()
    assert w.stored(s).start == s.start + timedelta(hours=1)


# --- lifecycle ------------------------------------------------------------------------------


def test_subscription_removed_recreates_then_resyncs() -> None:
    """subscriptionRemoved -> a new subscription for the mailbox, then the mailbox's sessions are re-read."""
    w = World.make()
    s = w.book()
    old = w.subs.ensure_for_mailbox(T, w.organizer)
    w.graph.remove_subscription(T, old.subscription_id)
    assert s.event_id is not None
    w.move(s, timedelta(hours=4))
    outcome = w.lifecycle.handle([genuine(w, old, "subscriptionRemoved")])
    assert (outcome.recreated, outcome.resynced) == (1, 1)
    new = w.subs.get(T, w.organizer)
    assert new is not None and new.subscription_id != old.subscription_id
    assert w.stored(s).start == s.start + timedelta(hours=4)


def test_missed_resyncs_the_mailbox() -> None:
    """missed -> the mailbox's tracked upcoming sessions are re-read and healed."""
    w = World.make()
    s = w.book()
    record = w.subs.ensure_for_mailbox(T, w.organizer)
    assert s.event_id is not None
    w.graph.cancel_event_as_organizer(T, w.organizer, s.event_id)
    outcome = w.lifecycle.handle([genuine(w, record, "missed")])
    assert outcome.resynced == 1
    assert w.stored(s).status == SessionStatus.CANCELLED


def test_reauthorization_required_reauthorizes_the_subscription() -> None:
    """reauthorizationRequired -> POST reauthorize on the current subscription."""
    w = World.make()
    record = w.subs.ensure_for_mailbox(T, w.organizer)
    w.graph.reset_calls()
    outcome = w.lifecycle.handle([genuine(w, record, "reauthorizationRequired")])
    assert outcome.reauthorized == 1
    assert w.graph.call_count("reauthorize_subscription") == 1


def test_reauthorize_refused_falls_back_to_renewal_and_gone_to_recreation() -> None:
    """A refused reauthorize renews instead; a subscription Graph no longer has is recreated."""
    w = World.make()
    record = w.subs.ensure_for_mailbox(T, w.organizer)
    w.graph.fail_next("reauthorize_subscription", GraphRequestRejected(status=400))
    outcome = w.lifecycle.handle([genuine(w, record, "reauthorizationRequired")])
    assert outcome.renewed == 1
    w.clock.advance(minutes=11)  # past the dedup window: a new reauthorizationRequired, not a duplicate
    w.graph.fail_next("reauthorize_subscription", ItemNotFound(status=404))
    outcome = w.lifecycle.handle([genuine(w, record, "reauthorizationRequired")])
    assert outcome.recreated == 1


def test_events_of_an_old_subscription_are_ignored() -> None:
    """A lifecycle event naming a subscription the mailbox no longer uses changes nothing."""
    w = World.make()
    record = w.subs.ensure_for_mailbox(T, w.organizer)
    w.graph.reset_calls()
    outcome = w.lifecycle.handle([LifecycleItem(T, w.organizer, "superseded-id", "subscriptionRemoved")])
    assert outcome.ignored == 1
    assert w.subs.get(T, w.organizer) == record
    assert w.graph.call_count("create_subscription") == 0


def test_throttled_lifecycle_work_is_requeued_after_retry_after() -> None:
    """Throttling during a resync puts the lifecycle item back on the queue for retry_after."""
    w = World.make()
    w.book()
    record = w.subs.ensure_for_mailbox(T, w.organizer)
    w.graph.fail_next("get_event", Throttled(retry_after=25))  # one session: one GET, not a $batch
    outcome = w.lifecycle.handle_message(lifecycle_message(
        [LifecycleItem(T, w.organizer, record.subscription_id, "missed", nonce=record.nonce)]))
    assert outcome.retried == 1
    w.clock.advance(seconds=25)
    (again,) = w.queues.take(Queues.LIFECYCLE)
    assert again.body["items"][0]["lifecycleEvent"] == "missed"


def test_resync_failing_after_recreation_is_retried_as_missed_for_the_new_subscription() -> None:
    """A resync failing after a recreation is retried as 'missed' of the new subscription, not recreated again."""
    w = World.make()
    w.book()
    old = w.subs.ensure_for_mailbox(T, w.organizer)
    w.graph.fail_next("get_event", TransientGraphError())  # one session: one GET
    w.lifecycle.handle([genuine(w, old, "subscriptionRemoved")])
    new = w.subs.get(T, w.organizer)
    assert new is not None and new.subscription_id != old.subscription_id
    (again,) = w.queues.take(Queues.LIFECYCLE, include_delayed=True)
    assert again.body["items"][0] == {"tenantId": T, "userId": w.organizer, "subscriptionId": new.subscription_id,
                                      "lifecycleEvent": "missed", "nonce": new.nonce}
    assert w.lifecycle.handle_message(again.body).resynced == 1
    assert w.graph.call_count("create_subscription") == 2


# --- fan-out ----------------------------------------------------------------------------------


class _NoScan(SessionRepository):
    """A repository that fails the test if anything scans the whole sessions partition."""

    def list_tenant(self, tenant_id: str) -> Iterator[Session]:
        raise AssertionError("list_tenant scanned the partition")


def test_planning_uses_the_start_index_and_never_scans_the_partition() -> None:
    """With the index present the timer finds upcoming sessions by range query, not a list_tenant scan."""
    w = World.make()
    for i in range(3):
        w.book(hours=2 + i)
    w.reconciler.sessions = _NoScan(w.tables)
    report = w.reconciler.plan()
    assert report.queued == 1 and report.tenants == 1


def test_timer_sends_one_message_per_twenty_sessions_and_makes_no_graph_read() -> None:
    """45 upcoming sessions -> 3 reconcile messages on the lifecycle queue; the timer itself reads no event."""
    w = World.make()
    for i in range(45):
        w.book(hours=2 + i)
    w.book(hours=24 * 20)  # beyond the window
    w.graph.reset_calls()
    report = w.reconciler.plan()
    messages = w.queues.take(Queues.LIFECYCLE)
    assert report.queued == 3 and len(messages) == 3
    assert [len(m.body["sessionIds"]) for m in messages] == [20, 20, 5]
    assert all(m.body["kind"] == "reconcile" and m.body["tenantId"] == T for m in messages)
    assert w.graph.call_count("get_events") == 0


def test_each_reconcile_message_costs_one_batch_and_heals() -> None:
    """The worker re-reads a message's sessions with exactly one $batch and applies the change."""
    w = World.make()
    booked = [w.book(hours=2 + i) for i in range(20)]
    assert booked[7].event_id is not None
    w.move(booked[7], timedelta(hours=1))
    w.reconciler.plan()
    (message,) = w.queues.take(Queues.LIFECYCLE)
    w.graph.reset_calls()
    outcome = w.lifecycle.handle_message(message.body)
    assert w.graph.call_count("get_events") == 1 and outcome.reconciled == 20
    assert w.stored(booked[7]).start == booked[7].start + timedelta(hours=1)
    again = w.lifecycle.handle_message(message.body)  # idempotent: a redelivery changes nothing
    assert again.reconciled == 20 and w.stored(booked[7]).start == booked[7].start + timedelta(hours=1)


def test_throttled_reconcile_message_is_requeued_after_retry_after() -> None:
    """A 429 on a group's $batch puts the same session ids back on the queue for Retry-After."""
    w = World.make()
    w.book()
    w.reconciler.plan()
    (message,) = w.queues.take(Queues.LIFECYCLE)
    w.graph.fail_next("get_event", Throttled(retry_after=25))  # one session: one GET, not a $batch
    w.lifecycle.handle_message(message.body)
    assert w.queues.take(Queues.LIFECYCLE) == []
    w.clock.advance(seconds=25)
    (again,) = w.queues.take(Queues.LIFECYCLE)
    assert again.body["sessionIds"] == message.body["sessionIds"] and again.body["kind"] == "reconcile"


def test_planning_does_subscription_housekeeping() -> None:
    """The timer still ensures the organizer's subscription and removes a mailbox's unneeded one."""
    w = World.make()
    w.book()
    w.subs.ensure_for_mailbox(T, w.partner)
    report = w.reconciler.plan()
    assert report.subscriptions_ensured == 1 and report.subscriptions_removed == 1
    assert [r.user_id for r in w.subs.mailboxes(T)] == [w.organizer]


def test_sessions_stored_before_the_index_are_backfilled_once() -> None:
    """A tenant with no t~ rows is indexed from one scan; the next plan uses the index only."""
    w = World.make()
    s = w.book()
    for row in list(w.tables.query(Tables.SESSIONS, T, row_key_from="t~", row_key_to="t~\U0010ffff")):
        w.tables.delete(Tables.SESSIONS, T, row.row_key)
    assert w.reconciler.plan().queued == 1
    w.queues.take(Queues.LIFECYCLE)
    w.reconciler.sessions = _NoScan(w.tables)
    assert w.reconciler.plan().queued == 1
    assert [x.session_id for x in w.reconciler.sessions.upcoming(T, s.start, s.end)] == [s.session_id]


# --- lifecycle items bound to the subscription, deduplicated and cooled down ---------------------


def _second_worker(w: World) -> object:
    """Another instance's lifecycle worker over the same storage and Graph."""
    from core.services.alerts import OwnerAlerts
    from core.services.reconcile import LifecycleWorker, Reconciler

    alerts = OwnerAlerts(w.tables, w.queues, w.clock)
    return LifecycleWorker(w.queues, w.graph, w.subs, Reconciler(w.tables, w.graph, w.clock, w.subs), alerts)


def test_a_forged_item_naming_another_mailboxs_subscription_changes_nothing() -> None:
    """With organizer A's leaked clientState, an attacker sends reauthorizationRequired and subscriptionRemoved
    naming B's subscription: ignored, no Graph call at all, B's subscription untouched (it was deleted before)."""
    w = World.make()
    a = w.subs.ensure_for_mailbox(T, w.organizer)
    b = w.subs.ensure_for_mailbox(T, w.partner)
    assert a is not None and b is not None
    w.graph.reset_calls()
    forged = [LifecycleItem(T, w.organizer, b.subscription_id, event, nonce=a.nonce)
              for event in ("reauthorizationRequired", "subscriptionRemoved", "missed")]
    outcome = w.lifecycle.handle(forged)
    assert outcome.ignored == 3
    assert w.graph.calls == []
    assert {s.subscription_id for s in w.graph.subscriptions_of(T)} == {a.subscription_id, b.subscription_id}


def test_a_leaked_client_state_dies_with_its_subscription() -> None:
    """Once the mailbox's subscription is replaced, items carrying the old subscription's nonce are ignored."""
    w = World.make()
    old = w.subs.ensure_for_mailbox(T, w.organizer)
    assert old is not None
    new = w.subs.recreate(T, w.organizer)
    assert new.nonce != old.nonce
    w.graph.reset_calls()
    replay = LifecycleItem(T, w.organizer, new.subscription_id, "subscriptionRemoved", nonce=old.nonce)
    assert w.lifecycle.handle([replay]).ignored == 1
    assert w.graph.calls == [] and w.subs.get(T, w.organizer) == new


def test_the_same_lifecycle_work_is_done_once_across_instances() -> None:
    """reauthorizationRequired delivered to two instances (Graph's duplicates, or a replay): one reauthorize."""
    w = World.make()
    record = w.subs.ensure_for_mailbox(T, w.organizer)
    assert record is not None
    item = LifecycleItem(T, w.organizer, record.subscription_id, "reauthorizationRequired", nonce=record.nonce)
    other = _second_worker(w)
    first = w.lifecycle.handle([item])
    second = other.handle([item])  # type: ignore[attr-defined]
    assert (first.reauthorized, second.duplicates) == (1, 1)
    assert w.graph.call_count("reauthorize_subscription") == 1


def test_a_flood_of_missed_gives_one_resync_now_and_one_when_the_cooldown_ends() -> None:
    """Fifty 'missed' items over two instances: one resync at once, one booked for the end of the 5-minute cooldown,
    the rest dropped; the booked one resyncs when it comes due."""
    w = World.make()
    w.book()
    record = w.subs.ensure_for_mailbox(T, w.organizer)
    assert record is not None
    item = LifecycleItem(T, w.organizer, record.subscription_id, "missed", nonce=record.nonce)
    other = _second_worker(w)
    outcomes = [(w.lifecycle if i % 2 else other).handle([item]) for i in range(50)]  # type: ignore[attr-defined]
    assert sum(o.resynced for o in outcomes) == 1
    assert sum(o.deferred for o in outcomes) == 1
    assert sum(o.duplicates for o in outcomes) == 48
    [booked] = w.queues.pending(Queues.LIFECYCLE)
    assert (booked.visible_at - w.clock.now()) == timedelta(minutes=5)
    w.clock.advance(minutes=5)
    (due,) = w.queues.take(Queues.LIFECYCLE)
    assert w.lifecycle.handle_message(due.body).resynced == 1


def test_renewal_replaces_subscriptions_signed_before_binding_or_under_an_old_key() -> None:
    """After a key rotation (or for a record without a nonce) the renewal re-creates the subscription, bound and
    under the current key, instead of renewing it."""
    from core.services.stores.subscriptions import SubscriptionRecord

    w = World.make()
    record = w.subs.ensure_for_mailbox(T, w.organizer)
    assert record is not None and record.key_id == "1" and record.nonce
    w.keys.rotate()
    w.clock.advance(hours=113)
    w.subs.plan_renewals()
    (message,) = w.queues.take(Queues.RENEWALS)
    assert w.subs.renew_message(message.body).recreated == 1
    fresh = w.subs.get(T, w.organizer)
    assert isinstance(fresh, SubscriptionRecord)
    assert fresh.key_id == "2" and fresh.subscription_id != record.subscription_id and fresh.nonce != record.nonce
    assert [s.subscription_id for s in w.graph.subscriptions_of(T)] == [fresh.subscription_id]


# --- the freshness bound: near sessions every 15 minutes, far ones every 2 hours -------------------


def _planned_ids(w: World) -> set[str]:
    return {sid for m in w.queues.take(Queues.LIFECYCLE) for sid in m.body["sessionIds"]}


def test_near_plan_covers_the_next_24_hours_and_nothing_later() -> None:
    """The 15-minute timer plans sessions from an hour ago to 24 h ahead: not the ones after, no housekeeping."""
    w = World.make()
    near = [w.book(hours=h) for h in (0.5, 6, 23.5)]
    far = [w.book(hours=h) for h in (24.5, 100)]
    w.subs.ensure_for_mailbox(T, w.partner)  # unneeded: only housekeeping would remove it
    report = w.reconciler.plan_near()
    assert _planned_ids(w) == {s.session_id for s in near}
    assert report.subscriptions_removed == 0 and w.subs.get(T, w.partner) is not None
    assert {s.session_id for s in far}.isdisjoint(_planned_ids(w))


def test_far_plan_covers_the_rest_of_the_window_with_housekeeping() -> None:
    """The 2-hour timer plans sessions from 24 h to 14 days ahead (not the near ones) and keeps subscriptions."""
    from core.services.reconcile import Span

    w = World.make()
    near = [w.book(hours=h) for h in (0.5, 23.5)]
    far = [w.book(hours=h) for h in (24.5, 24 * 13)]
    beyond = w.book(hours=24 * 15)
    w.subs.ensure_for_mailbox(T, w.partner)
    report = w.reconciler.plan(span=Span.FAR)
    planned = _planned_ids(w)
    assert planned == {s.session_id for s in far}
    assert planned.isdisjoint({s.session_id for s in near} | {beyond.session_id})
    assert report.subscriptions_removed == 1


def test_near_and_far_plans_together_cover_every_session_of_the_window_once() -> None:
    """No session of the 14-day window falls between the two timers, and none is planned by both."""
    from core.services.reconcile import Span

    w = World.make()
    booked = [w.book(hours=0.25 + 7 * i) for i in range(48)]  # 0.25 h to 14 days, across the 24 h edge
    w.reconciler.plan_near()
    near = _planned_ids(w)
    w.reconciler.plan(span=Span.FAR)
    far = _planned_ids(w)
    in_window = {s.session_id for s in booked if s.start < w.clock.now() + timedelta(days=14)}
    assert near | far == in_window and not near & far


def test_near_plan_leaves_service_account_tenants_to_their_own_poll() -> None:
    """Service-account tenants are re-read over the whole window every few minutes already: the near plan skips them."""
    from core.domain.integration import ConnectionMethod
    from core.services.reconcile import NOTIFIED_METHODS

    assert ConnectionMethod.SERVICE_ACCOUNT not in NOTIFIED_METHODS
    w = World.make()
    w.book(hours=2)
    repo = IntegrationRepository(w.tables)
    found = repo.get(T)
    assert found is not None
    repo.save(Integration(tenant_id=T, status=IntegrationStatus.CONNECTED,
                          method=ConnectionMethod.SERVICE_ACCOUNT), found.etag)
    assert w.reconciler.plan_near().tenants == 0


def test_near_plan_cost_is_one_batch_message_per_twenty_sessions() -> None:
    """1,000 sessions in the next 24 h of one identity: 50 reconcile messages, each one $batch of 20."""
    w = World.make()
    for i in range(1000):
        w.book(hours=0.5 + i * 0.023)  # all within 24 h
    w.graph.reset_calls()
    report = w.reconciler.plan_near()
    messages = w.queues.take(Queues.LIFECYCLE)
    assert report.queued == len(messages) == 50
    assert {len(m.body["sessionIds"]) for m in messages} == {20}
    assert w.graph.call_count() == 0  # planning itself reads nothing from Graph
