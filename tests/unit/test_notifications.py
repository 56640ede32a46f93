"""The notification worker: every Outlook change kind, duplicates, order, untracked events, failures."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from core.domain.calendar import GraphIdentity, NewEvent, ResponseType
from core.domain.commands import ChangeItem, notifications_message
from core.domain.errors import ConcurrencyConflict, MailboxUnavailable, TransientGraphError
from core.domain.integration import ConnectionMethod, Integration, IntegrationStatus
from core.domain.sessions import AttendeeState, ChangeSource, Session, SessionStatus
from core.names import Queues, Tables
from core.ports import Entity
from core.services.alerts import OwnerAlerts
from core.services.client_state import ClientStateKeyCache
from core.services.notifications import MAX_ATTEMPTS, NotificationWorker
from core.services.reconcile import LifecycleWorker, Reconciler
from core.services.stores.integrations import IntegrationRepository
from core.services.stores.sessions import SessionRepository
from core.services.subscriptions import SubscriptionService
from tests.support.fake_graph import FakeCalendarGateway, FakeTokenProvider
from tests.support.memory import FixedClock, InMemoryCommandQueue, InMemorySecretStore, InMemoryTableStore

T = "aaaaaaaa-0000-4000-8000-00000000000a"
OTHER_TENANT = "bbbbbbbb-0000-4000-8000-00000000000b"
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
PARTNER = "pat@contoso.test"
ROOM = "room1@contoso.test"


class RacingTables(InMemoryTableStore):
    """A table store where someone else saves a session just before our first save of it (an ETag race)."""

    def __init__(self) -> None:
        super().__init__()
        self.races_left = 0

    def update(self, table: str, entity: Entity) -> Entity:
        if table == Tables.SESSIONS and self.races_left > 0 and entity.etag is not None:
            self.races_left -= 1
            current = self.get(table, entity.partition_key, entity.row_key)
            assert current is not None
            super().update(table, Entity(current.partition_key, current.row_key, dict(current.data), None))
        return super().update(table, entity)


@dataclass
class World:
    """Fakes wired like the container wires the real adapters, plus helpers to book and notify."""

    clock: FixedClock
    tables: RacingTables
    queues: InMemoryCommandQueue
    secrets: InMemorySecretStore
    graph: FakeCalendarGateway
    organizer: str
    partner: str
    repo: SessionRepository
    keys: ClientStateKeyCache
    subs: SubscriptionService
    worker: NotificationWorker
    reconciler: Reconciler
    lifecycle: LifecycleWorker
    method: ConnectionMethod = ConnectionMethod.DOMAIN_WIDE

    @classmethod
    def make(cls, *, max_minutes: int = 10080, tokens: FakeTokenProvider | None = None,
             method: ConnectionMethod = ConnectionMethod.DOMAIN_WIDE) -> World:
        clock = FixedClock(NOW)
        tables = RacingTables()
        queues = InMemoryCommandQueue(now=clock.now)
        secrets = InMemorySecretStore()
        graph = FakeCalendarGateway(clock=clock, max_subscription_minutes=max_minutes, tokens=tokens)
        organizer = graph.add_user(T, "olivia@contoso.test").user_id
        partner = graph.add_user(T, PARTNER).user_id
        graph.add_room(T, ROOM, "Room 1")
        integrations = IntegrationRepository(tables)
        integrations.save(Integration(tenant_id=T, owner_email="owner@contoso.test", method=method,
                                      status=IntegrationStatus.CONNECTED), None)
        keys = ClientStateKeyCache(secrets)
        alerts = OwnerAlerts(tables, queues, clock)
        subs = SubscriptionService(tables, queues, graph, clock, keys, public_base_url="https://func.example.com",
                                   alerts=alerts)
        reconciler = Reconciler(tables, graph, clock, subs)
        return cls(
            clock=clock, tables=tables, queues=queues, secrets=secrets, graph=graph, organizer=organizer,
            partner=partner, repo=SessionRepository(tables), keys=keys, subs=subs,
            worker=NotificationWorker(tables, queues, graph, clock, alerts=alerts), reconciler=reconciler,
            lifecycle=LifecycleWorker(queues, graph, subs, reconciler, alerts), method=method,
        )

    def book(self, *, hours: float = 24, organizer: str | None = None, room: bool = True) -> Session:
        """A booked session with its event in the organizer's calendar, as the booking flow leaves it."""
        organizer = organizer or self.organizer
        start = NOW + timedelta(hours=hours)
        end = start + timedelta(minutes=30)
        sid = uuid.uuid4().hex
        per_user = self.method is ConnectionMethod.PER_USER
        who = GraphIdentity(T, organizer) if per_user else GraphIdentity(T)
        created = self.graph.create_event(who, organizer, NewEvent(
            subject="Mentoring", start=start, end=end, attendees=(PARTNER,), room=ROOM if room else None,
            transaction_id=sid,
        ))
        session = Session(
            tenant_id=T, session_id=sid, organizer_id=organizer, organizer_address="olivia@contoso.test",
            attendees=(AttendeeState(PARTNER, ResponseType.NOT_RESPONDED, self.partner),), start=start, end=end,
            time_zone="UTC", status=SessionStatus.BOOKED, pending_op=None, room=AttendeeState(ROOM) if room else None,
            event_id=created.event_id, ical_uid=created.ical_uid, change_key=created.change_key,
            created_at=NOW, updated_at=NOW,
        )
        self.repo.add(session)
        self.repo.index_event(T, created.event_id, sid)
        return session

    def move(self, session: Session, by: timedelta) -> None:
        """The organizer moves the session's event in Outlook by ``by``."""
        assert session.event_id is not None
        self.graph.move_event_as_organizer(T, session.organizer_id, session.event_id, session.start + by,
                                           session.end + by)

    def stored(self, session: Session) -> Session:
        return self.repo.require(T, session.session_id).value

    def item(self, session: Session, change: str = "updated") -> ChangeItem:
        assert session.event_id is not None
        return ChangeItem(T, session.organizer_id, session.event_id, change, "sub-1")


def test_untracked_event_notification_makes_no_graph_call() -> None:
    """A notification for an event that is not one of our sessions costs zero Graph calls and changes nothing."""
    w = World.make()
    foreign = w.graph.create_event(GraphIdentity(T), w.organizer, NewEvent(
        subject="Private", start=NOW + timedelta(hours=2), end=NOW + timedelta(hours=3)))
    w.graph.reset_calls()
    outcome = w.worker.handle([ChangeItem(T, w.organizer, foreign.event_id, "created"),
                               ChangeItem(T, w.organizer, "AAMkAD-unknown", "deleted")])
    assert w.graph.call_count() == 0
    assert outcome.untracked == 2 and outcome.changed == 0


def test_partner_acceptance_is_stored() -> None:
    """The partner accepting in Outlook shows up as 'accepted' on the session."""
    w = World.make()
    s = w.book()
    assert s.ical_uid is not None
    copy = w.graph.copy_of(T, PARTNER, s.ical_uid)
    assert copy is not None
    w.graph.respond_as_attendee(T, PARTNER, copy, ResponseType.ACCEPTED)
    w.worker.handle([w.item(s)])
    stored = w.stored(s)
    assert stored.attendees[0].response == ResponseType.ACCEPTED
    assert stored.status == SessionStatus.BOOKED


def test_room_response_is_stored() -> None:
    """The room's automatic answer is stored on the session's room."""
    w = World.make()
    s = w.book()
    w.worker.handle([w.item(s)])
    room = w.stored(s).room
    assert room is not None and room.response == ResponseType.ACCEPTED


def test_move_in_outlook_sets_new_times_with_source_outlook() -> None:
    """The organizer moving the event in Outlook gives the session the new times and source 'outlook'."""
    w = World.make()
    s = w.book()
    assert s.event_id is not None
    new_start = s.start + timedelta(hours=3)
    w.graph.move_event_as_organizer(T, w.organizer, s.event_id, new_start, new_start + timedelta(minutes=45))
    w.worker.handle([w.item(s)])
    stored = w.stored(s)
    assert (stored.start, stored.end) == (new_start, new_start + timedelta(minutes=45))
    assert stored.source == ChangeSource.OUTLOOK
    assert [x.session_id for x in w.repo.list_for_user(T, w.organizer, new_start, new_start + timedelta(hours=1))] \
        == [s.session_id]


def test_cancel_in_outlook_cancels_the_session() -> None:
    """Cancelling in Outlook (Graph then answers 404 for the event) leaves the session cancelled by 'outlook'."""
    w = World.make()
    s = w.book()
    assert s.event_id is not None
    w.graph.cancel_event_as_organizer(T, w.organizer, s.event_id)
    w.worker.handle([w.item(s, "updated")])
    stored = w.stored(s)
    assert stored.status == SessionStatus.CANCELLED and stored.source == ChangeSource.OUTLOOK


def test_deleted_notification_cancels_without_reading_the_event() -> None:
    """A 'deleted' notification cancels the session with no Graph call (the event is gone)."""
    w = World.make()
    s = w.book()
    assert s.event_id is not None
    w.graph.delete_event_in_outlook(T, w.organizer, s.event_id)
    w.graph.reset_calls()
    w.worker.handle([w.item(s, "updated"), w.item(s, "deleted")])
    assert w.stored(s).status == SessionStatus.CANCELLED
    assert w.graph.call_count() == 0


def test_triplicate_notifications_change_the_session_once() -> None:
    """Up to three duplicates, in one message or several, apply the change once; one read per message."""
    w = World.make()
    s = w.book()
    assert s.event_id is not None
    w.move(s, timedelta(hours=1))
    w.graph.reset_calls()
    first = w.worker.handle([w.item(s)] * 3)
    assert first.changed == 1
    assert w.graph.call_count() == 1
    after_first = w.stored(s)
    w.clock.advance(minutes=1)
    for _ in range(2):
        again = w.worker.handle([w.item(s)])
        assert again.changed == 0 and again.unchanged == 1
    assert w.stored(s) == after_first


def test_out_of_order_notifications_end_on_the_latest_state() -> None:
    """Two moves whose notifications arrive in reverse order leave the session at the second move, not the first."""
    w = World.make()
    s = w.book()
    assert s.event_id is not None
    first = s.start + timedelta(hours=1)
    second = s.start + timedelta(hours=5)
    w.graph.move_event_as_organizer(T, w.organizer, s.event_id, first, first + timedelta(minutes=30))
    w.clock.advance(minutes=1)
    w.graph.move_event_as_organizer(T, w.organizer, s.event_id, second, second + timedelta(minutes=30))
    w.worker.handle([w.item(s)])  # the second change's notification arrives first
    w.worker.handle([w.item(s)])  # then the first change's, late
    assert w.stored(s).start == second


def test_stale_view_does_not_undo_a_newer_one() -> None:
    """A read older than what the session already reflects (lastModified earlier) changes nothing."""
    w = World.make()
    s = w.book()
    assert s.event_id is not None
    w.clock.advance(minutes=10)
    w.move(s, timedelta(hours=2))
    w.worker.handle([w.item(s)])
    moved = w.stored(s)
    w.repo.save(replace(moved, last_modified=NOW + timedelta(hours=1)), w.repo.require(T, s.session_id).etag)
    w.graph.move_event_as_organizer(T, w.organizer, s.event_id, s.start, s.end)  # modified at NOW+10min < NOW+1h
    outcome = w.worker.handle([w.item(s)])
    assert outcome.changed == 0
    assert w.stored(s).start == moved.start


def test_several_events_in_one_message_are_read_in_one_batch() -> None:
    """Tracked events of one tenant in one message are read with one $batch (get_events), not one call each."""
    w = World.make()
    sessions = [w.book(hours=24 + i) for i in range(3)]
    for s in sessions:
        assert s.event_id is not None
        w.move(s, timedelta(days=1))
    w.graph.reset_calls()
    outcome = w.worker.handle([w.item(s) for s in sessions])
    assert outcome.changed == 3
    assert w.graph.call_count("get_events") == 1 and w.graph.call_count() == 1
    assert all(w.stored(s).start == s.start + timedelta(days=1) for s in sessions)


def test_notification_for_an_attendee_copy_is_not_applied() -> None:
    """Only the organizer's mailbox counts: an item naming another mailbox for the event is ignored."""
    w = World.make()
    s = w.book()
    assert s.event_id is not None
    w.graph.reset_calls()
    outcome = w.worker.handle([ChangeItem(T, w.partner, s.event_id, "deleted")])
    assert outcome.untracked == 1
    assert w.stored(s).status == SessionStatus.BOOKED
    assert w.graph.call_count() == 0


def test_disabled_tenant_is_skipped_without_graph_calls() -> None:
    """Items of a tenant whose integration is disabled change nothing and cost no Graph call."""
    w = World.make()
    s = w.book()
    repo = IntegrationRepository(w.tables)
    found = repo.get(T)
    assert found is not None
    repo.save(Integration(tenant_id=T, enabled=False, status=IntegrationStatus.CONNECTED), found.etag)
    w.graph.reset_calls()
    outcome = w.worker.handle([w.item(s, "deleted"), w.item(s)])
    assert outcome.skipped == 1
    assert w.graph.call_count() == 0
    assert w.stored(s).status == SessionStatus.BOOKED


def test_throttled_read_is_requeued_after_retry_after_without_spending_an_attempt() -> None:
    """Throttled -> the same items go back on the queue, hidden for retry_after, with the same attempt number."""
    w = World.make()
    s = w.book()
    w.graph.throttle(42)
    outcome = w.worker.handle([w.item(s)], attempt=2)
    assert outcome.retried == 1
    assert w.queues.take(Queues.NOTIFICATIONS) == []
    w.clock.advance(seconds=42)
    (message,) = w.queues.take(Queues.NOTIFICATIONS)
    assert message.body["attempt"] == 2
    assert message.body["items"] == [w.item(s).to_json()]


def test_transient_failures_back_off_then_alert_the_owner() -> None:
    """A transient failure retries with back-off; on the last attempt the owner is alerted, not silently dropped."""
    w = World.make()
    s = w.book()
    w.graph.fail_next("get_event", TransientGraphError())
    w.worker.handle([w.item(s)])
    (retry,) = w.queues.take(Queues.NOTIFICATIONS, include_delayed=True)
    assert retry.body["attempt"] == 1 and retry.visible_at > w.clock.now()
    w.graph.fail_next("get_event", TransientGraphError())
    w.worker.handle_message({**retry.body, "attempt": MAX_ATTEMPTS - 1})
    assert w.queues.take(Queues.NOTIFICATIONS, include_delayed=True) == []
    (alert,) = w.queues.take(Queues.OWNER_ALERTS)
    assert alert.body["alert"] == "subscription_failure" and alert.body["tenantId"] == T


def test_definite_read_error_alerts_the_owner() -> None:
    """A mailbox Graph cannot reach any more is a definite failure: the owner is alerted, nothing is retried."""
    w = World.make()
    s = w.book()
    w.graph.fail_next("get_event", MailboxUnavailable())
    outcome = w.worker.handle([w.item(s)])
    assert outcome.failed == 1
    assert w.queues.take(Queues.NOTIFICATIONS, include_delayed=True) == []
    assert [m.body["alert"] for m in w.queues.take(Queues.OWNER_ALERTS)] == ["subscription_failure"]


def test_lost_etag_race_is_reread_and_reapplied() -> None:
    """When another writer saves the session first, the worker re-reads it and applies the change on top."""
    w = World.make()
    s = w.book()
    assert s.event_id is not None
    w.move(s, timedelta(hours=2))
    w.tables.races_left = 2
    assert w.worker.handle([w.item(s)]).changed == 1
    assert w.stored(s).start == s.start + timedelta(hours=2)


def test_endless_etag_races_surface_as_a_conflict() -> None:
    """A session that keeps changing under the worker raises (the queue retries) rather than looping forever."""
    w = World.make()
    s = w.book()
    assert s.event_id is not None
    w.move(s, timedelta(hours=2))
    w.tables.races_left = 100
    with pytest.raises(ConcurrencyConflict):
        w.worker.handle([w.item(s)])
    assert w.stored(s).start == s.start


def test_message_round_trip_keeps_metadata_only() -> None:
    """The queue message carries ids and the change type only, and parses back to the same items."""
    w = World.make()
    s = w.book()
    message = notifications_message([w.item(s)], correlation_id="cid-1")
    assert set(message["items"][0]) == {"tenantId", "userId", "eventId", "changeType", "subscriptionId"}
    assert message["tenantId"] == T and message["correlationId"] == "cid-1"
    outcome = w.worker.handle_message(message)
    assert outcome.changed + outcome.unchanged == 1


def test_other_tenants_sessions_are_never_touched() -> None:
    """An item naming another tenant finds nothing, even with the same event id (the index is per tenant)."""
    w = World.make()
    s = w.book()
    assert s.event_id is not None
    w.graph.reset_calls()
    outcome = w.worker.handle([ChangeItem(OTHER_TENANT, w.organizer, s.event_id, "deleted")])
    assert outcome.untracked == 1 and w.graph.call_count() == 0
    assert w.stored(s).status == SessionStatus.BOOKED
