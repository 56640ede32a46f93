"""Events to the product on fakes: outbox atomicity, dispatch, signed delivery, order, retries, disable, replay."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from standardwebhooks.webhooks import WebhookVerificationError

from core.bootstrap import Container
from core.domain.calendar import ResponseType
from core.domain.commands import AlertKind
from core.domain.errors import StorageUnavailable, ValidationFailed
from core.domain.integration import Integration, IntegrationStatus
from core.domain.sessions import AttendeeState, ChangeSource, Session
from core.names import Queues, Tables
from core.ports import Entity, WebhookAttempt
from core.services.product_events.endpoints import EndpointChanges, EndpointInput
from core.services.stores.connections import ConnectionPurpose, ConnectionRecord, ConnectionRepository, ConnectionStatus
from core.services.stores.integrations import IntegrationRepository
from core.services.stores.outbox import OUTBOX_PREFIX, attach_relay
from core.services.stores.sessions import SessionRepository
from core.services.stores.webhooks import DeliveryStore
from core.settings import Settings
from tests.support.fake_webhooks import FakeWebhookSender
from tests.support.memory import FixedClock, InMemoryCommandQueue, InMemorySecretStore, InMemoryTableStore

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
T = "aaaaaaaa-0000-4000-8000-00000000000a"
ADMIN = "a0000000-0000-4000-8000-0000000000ad"
URL = "https://hooks.product.example/calendar"


def settings() -> Settings:
    return Settings.from_env({
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "ENTRA_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
        "ENTRA_CREDENTIAL": "secret",
        "PUBLIC_BASE_URL": "https://func.example.com",
        "APP_URL": "https://app.example.com",
        "KEY_VAULT_URI": "https://kv-test.vault.azure.net/",
        "ACS_ENDPOINT": "https://acs-test.communication.azure.com",
        "ALERT_SENDER_ADDRESS": "DoNotReply@alerts.example.com",
    })


class FlakyTables(InMemoryTableStore):
    """Session writes can be made to fail (an outage in the middle of a save)."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_session_updates = 0

    def update(self, table: str, entity: Entity) -> Entity:
        if table == Tables.SESSIONS and entity.row_key.startswith("s~") and self.fail_session_updates > 0:
            self.fail_session_updates -= 1
            raise StorageUnavailable()
        return super().update(table, entity)


class World:
    def __init__(self) -> None:
        self.clock = FixedClock(NOW)
        self.tables = FlakyTables()
        self.queues = InMemoryCommandQueue(now=self.clock.now)
        self.secrets = InMemorySecretStore()
        self.sender = FakeWebhookSender()
        self.container = Container(settings=settings(), tables=self.tables, queues=self.queues,
                                   secrets=self.secrets, clock=self.clock, webhooks=self.sender)
        self.container.webhook_delivery.jitter = lambda: 0.5  # the schedule's middle: 5 s, 15 s, 45 s...
        self.sessions = SessionRepository(self.tables)
        IntegrationRepository(self.tables).save(Integration(tenant_id=T, status=IntegrationStatus.CONNECTED,
                                                            updated_at=NOW), None)
        self.drain()
        self.sender.sent.clear()

    def endpoint(self, url: str = URL, events: tuple[str, ...] = ()) -> tuple[str, str]:
        state, secret = self.container.webhook_endpoints.create(T, ADMIN, EndpointInput(url=url, events=events))
        return state.endpoint.endpoint_id, secret

    def drain(self, *, until: timedelta = timedelta(0), step: timedelta = timedelta(seconds=1)) -> list[str]:
        """Run the product-events worker over every visible message, moving the clock up to ``until``."""
        outcomes: list[str] = []
        end = self.clock.now() + until
        while True:
            batch = self.queues.take(Queues.PRODUCT_EVENTS)
            for message in batch:
                outcomes.append(self.container.webhook_delivery.handle(message.body))
            if batch:
                continue
            if self.clock.now() >= end:
                return outcomes
            self.clock.advance(seconds=min(step.total_seconds(), (end - self.clock.now()).total_seconds()))

    def book(self, sid: str = "s1") -> Session:
        start = NOW + timedelta(days=1)
        s = Session(tenant_id=T, session_id=sid, organizer_id="org-oid", organizer_address="alice@contoso.test",
                    attendees=(AttendeeState("bob@contoso.test", user_id="bob-oid"),), start=start,
                    end=start + timedelta(minutes=30), time_zone="UTC", created_at=NOW, updated_at=NOW)
        self.sessions.add(s)
        read = self.sessions.require(T, sid)
        done = read.value.mark_created(event_id=f"ev-{sid}", ical_uid=None, join_url=None, online_provider=None,
                                       change_key="1", now=self.clock.now())
        self.sessions.save(done, read.etag, previous=read.value)
        return done

    def change(self, sid: str, **fields: Any) -> Session:
        read = self.sessions.require(T, sid)
        changed = replace(read.value, updated_at=self.clock.now(), **fields)
        self.sessions.save(changed, read.etag)
        return changed

    def outbox(self, table: str = Tables.SESSIONS) -> list[Entity]:
        return [e for e in self.tables.all(table) if e.row_key.startswith(OUTBOX_PREFIX)]

    def payloads(self, secret: str) -> list[dict[str, Any]]:
        return [s.verify(secret) for s in self.sender.sent]


def test_a_saved_change_and_its_event_are_one_transaction() -> None:
    """When the session write fails, neither the change nor its outbox row exists; when it works, both do."""
    w = World()
    attach_relay(w.tables, None)  # no immediate dispatch: look at the outbox itself
    start = NOW + timedelta(days=1)
    w.sessions.add(Session(tenant_id=T, session_id="s1", organizer_id="o", organizer_address="a@contoso.test",
                           attendees=(), start=start, end=start + timedelta(minutes=30), time_zone="UTC"))
    read = w.sessions.require(T, "s1")
    done = read.value.mark_created(event_id="e", ical_uid=None, join_url=None, online_provider=None,
                                   change_key=None, now=NOW)
    w.tables.fail_session_updates = 1
    with pytest.raises(StorageUnavailable):
        w.sessions.save(done, read.etag)
    assert w.outbox() == [] and w.sessions.require(T, "s1").value.status.value == "pending"
    w.sessions.save(done, read.etag)
    [row] = w.outbox()
    assert row.data["type"] == "session.booked" and w.sessions.require(T, "s1").value.status.value == "booked"


def test_a_crash_after_the_commit_loses_nothing_the_sweep_dispatches_it() -> None:
    """The relay dies right after the commit (a crash): the save succeeded, and the sweep delivers the event."""
    w = World()
    _, secret = w.endpoint()

    class Dead:
        def committed(self, table: str, tenant_id: str, streams: Sequence[str]) -> None:
            raise RuntimeError("process killed")

    attach_relay(w.tables, Dead())
    w.book()
    assert [e.data["type"] for e in w.outbox()] == ["session.booked"]
    assert w.queues.pending(Queues.PRODUCT_EVENTS) == []
    w.clock.advance(minutes=1)
    assert w.container.product_events.sweep()["dispatched"] == 1
    w.drain()
    assert [p["type"] for p in w.payloads(secret)] == ["session.booked"] and w.outbox() == []


def test_the_event_version_goes_up_with_every_save() -> None:
    """Every saved change raises eventVersion, including saves that produce no event."""
    w = World()
    w.book()
    first = w.sessions.event_version(T, "s1")
    w.change("s1", change_key="2")  # nothing the product hears about
    w.change("s1", change_key="3")
    assert w.sessions.event_version(T, "s1") == first + 2


def test_a_booking_reaches_the_endpoint_signed_with_its_secret() -> None:
    """session.booked is POSTed with Standard Webhooks headers that verify with the endpoint's secret only."""
    w = World()
    endpoint_id, secret = w.endpoint()
    w.book()
    assert w.drain() == ["delivered"]
    [sent] = w.sender.sent
    payload = sent.verify(secret)
    assert payload["type"] == "session.booked" and payload["data"]["sessionId"] == "s1"
    assert sent.headers["webhook-id"].startswith("evt_") and sent.headers["content-type"] == "application/json"
    _, other = w.endpoint("https://other.example/hook")
    with pytest.raises(WebhookVerificationError):
        sent.verify(other)
    [entry], _ = w.container.webhook_endpoints.deliveries_page(T, endpoint_id, limit=10, before=None)
    assert (entry.outcome, entry.status, entry.attempt, entry.type) == ("delivered", 200, 1, "session.booked")


def test_endpoints_get_only_the_types_they_asked_for_and_disabled_ones_nothing() -> None:
    """A filter limits the types; a disabled endpoint is not sent new events."""
    w = World()
    _, cancels = w.endpoint("https://cancels.example/hook", ("session.cancelled",))
    off, _ = w.endpoint("https://off.example/hook")
    w.container.webhook_endpoints.update(T, ADMIN, off, EndpointChanges(enabled=False))
    w.book()
    s = w.sessions.require(T, "s1").value
    w.change("s1", status=s.mark_cancelled(NOW, ChangeSource.OUTLOOK).status, source=ChangeSource.OUTLOOK)
    w.drain()
    assert [(s.url, s.verify(cancels)["type"]) for s in w.sender.sent] == [
        ("https://cancels.example/hook", "session.cancelled")]


def test_server_errors_are_retried_with_growing_delays_and_the_same_webhook_id() -> None:
    """500, timeout, 500, then 200: four POSTs of one webhook-id, 5 s, 15 s and 45 s apart (jitter pinned)."""
    w = World()
    w.endpoint()
    w.sender.script[URL] = [500, "timeout", 503]
    w.book()
    outcomes = w.drain(until=timedelta(minutes=5))
    assert outcomes.count("retrying") == 3 and outcomes[-1] == "delivered"
    assert len(set(w.sender.ids())) == 1 and len(w.sender.sent) == 4
    times = [int(s.headers["webhook-timestamp"]) for s in w.sender.sent]
    assert [b - a for a, b in itertools.pairwise(times)] == [5, 15, 45]


def test_410_gone_disables_the_endpoint_and_alerts_the_owner() -> None:
    """An endpoint answering 410 is disabled (reason gone), its delivery parked, and the owner alerted once."""
    w = World()
    endpoint_id, _ = w.endpoint()
    w.sender.default = 410
    w.book()
    assert w.drain() == ["gone"]
    state = w.container.webhook_endpoints.get(T, endpoint_id)
    assert not state.endpoint.enabled and state.endpoint.disabled_reason == "gone"
    alerts = [m.body for m in w.queues.take(Queues.OWNER_ALERTS)]
    assert [a["alert"] for a in alerts] == [AlertKind.WEBHOOK_ENDPOINT_DISABLED.value]
    [pending] = list(DeliveryStore(w.tables).pending_of_tenant(T))
    assert pending.value.parked
    w.book("s2")
    w.drain()
    assert len(w.sender.sent) == 1  # nothing new is sent to a disabled endpoint


def test_an_endpoint_failing_for_a_day_is_disabled_once_and_resumes_in_order_when_enabled() -> None:
    """24 h of failures disable the endpoint with one alert; enabling it again delivers what waited, in order."""
    w = World()
    endpoint_id, secret = w.endpoint()
    w.sender.default = 500
    w.book()
    w.change("s1", start=NOW + timedelta(days=2), end=NOW + timedelta(days=2, minutes=30),
             source=ChangeSource.OUTLOOK)
    outcomes = w.drain(until=timedelta(hours=28), step=timedelta(minutes=1))
    assert outcomes.count("endpoint_disabled") == 1
    state = w.container.webhook_endpoints.get(T, endpoint_id)
    assert not state.endpoint.enabled and state.endpoint.disabled_reason == "failing"
    assert len([m for m in w.queues.take(Queues.OWNER_ALERTS)]) == 1
    assert {s.verify(secret)["type"] for s in w.sender.sent} == {"session.booked"}  # the move waited behind it
    w.sender.sent.clear()
    w.sender.default = 200
    w.container.webhook_endpoints.update(T, ADMIN, endpoint_id, EndpointChanges(enabled=True))
    w.drain(until=timedelta(seconds=10))
    assert [(p["type"], p["data"]["version"]) for p in w.payloads(secret)] == [
        ("session.booked", 2), ("session.rescheduled", 3)]


def test_a_later_version_waits_for_an_earlier_one_of_the_same_session() -> None:
    """While version n fails, version n+1 of the same session is not sent; other sessions are not held up."""
    w = World()
    _, secret = w.endpoint()
    failing = {"n": 2}

    def answer(sent: Any) -> int:
        payload = json.loads(sent.body)
        if payload["data"].get("sessionId") == "s1" and payload["type"] == "session.booked" and failing["n"] > 0:
            failing["n"] -= 1
            return 500
        return 200

    w.sender.answer = answer
    w.book("s1")
    w.change("s1", attendees=(AttendeeState("bob@contoso.test", ResponseType.ACCEPTED, "bob-oid"),))
    w.book("s2")
    w.drain(until=timedelta(minutes=2))
    delivered = [(p["data"]["sessionId"], p["type"]) for p in w.payloads(secret)]
    s1 = [t for sid, t in delivered if sid == "s1"]
    assert s1 == ["session.booked", "session.booked", "session.booked", "session.response_changed"]
    assert delivered.index(("s2", "session.booked")) < 2  # s2 went first, not behind s1's retries


def test_two_copies_of_a_message_make_one_post() -> None:
    """A duplicated queue message is claimed once: one POST, the copy sees the delivery done."""
    w = World()
    w.endpoint()
    w.book()
    [message] = w.queues.take(Queues.PRODUCT_EVENTS)
    outcomes = [w.container.webhook_delivery.handle(message.body) for _ in range(2)]
    assert outcomes == ["delivered", "done"] and len(w.sender.sent) == 1


def test_a_deleted_endpoint_receives_nothing_more() -> None:
    """Deleting an endpoint with deliveries in retry stops them: no further POST."""
    w = World()
    endpoint_id, _ = w.endpoint()
    w.sender.default = 500
    w.book()
    w.drain()
    assert len(w.sender.sent) == 1
    w.container.webhook_endpoints.delete(T, ADMIN, endpoint_id)
    w.drain(until=timedelta(hours=1))
    assert len(w.sender.sent) == 1 and list(DeliveryStore(w.tables).pending_of_tenant(T)) == []
    assert w.secrets.names() == []


def test_a_rotated_secret_signs_with_both_secrets_for_a_day() -> None:
    """After a rotation each delivery verifies with the old and the new secret; after 24 h only with the new."""
    w = World()
    endpoint_id, old = w.endpoint()
    _, new = w.container.webhook_endpoints.rotate_secret(T, ADMIN, endpoint_id)
    w.book("s1")
    w.drain()
    [sent] = w.sender.sent
    assert sent.verify(old)["type"] == sent.verify(new)["type"] == "session.booked"
    assert len(sent.headers["webhook-signature"].split(" ")) == 2
    w.clock.advance(hours=25)
    w.book("s2")
    w.drain()
    latest = w.sender.sent[-1]
    assert latest.verify(new)["data"]["sessionId"] == "s2"
    with pytest.raises(WebhookVerificationError):
        latest.verify(old)
    assert w.container.webhook_endpoints.retention()["secrets"] == 1
    assert len(w.secrets.names()) == 1


def test_replay_sends_the_same_webhook_id_again() -> None:
    """Replaying a logged delivery, or everything since a time, re-sends with the original webhook-ids."""
    w = World()
    endpoint_id, _ = w.endpoint()
    w.book("s1")
    w.book("s2")
    w.drain()
    original = w.sender.ids()
    [latest, _], _ = w.container.webhook_endpoints.deliveries_page(T, endpoint_id, limit=10, before=None)
    w.container.webhook_endpoints.replay_delivery(T, ADMIN, endpoint_id, latest.delivery_id)
    w.drain()
    assert w.sender.ids()[-1] == latest.event_id
    before = len(w.sender.sent)
    w.container.webhook_endpoints.replay_since(T, ADMIN, endpoint_id, NOW - timedelta(hours=1))
    w.drain()
    replayed = w.sender.sent[before:]
    assert set(original) <= {s.event_id for s in replayed}  # the bookings, plus the integration's earlier event
    assert {json.loads(s.body)["type"] for s in replayed} == {"session.booked", "integration.status_changed"}


def test_a_delivery_that_keeps_failing_while_others_succeed_is_given_up_after_a_day() -> None:
    """One event always answered 400 (the endpoint stays healthy): after 24 h it is given up and logged."""
    w = World()
    endpoint_id, _ = w.endpoint()
    w.sender.answer = lambda sent: 400 if json.loads(sent.body)["data"].get("sessionId") == "bad" else 200
    w.book("bad")
    for hour in range(26):
        w.book(f"ok{hour}")
        w.drain(until=timedelta(hours=1), step=timedelta(minutes=5))
    entries, _ = w.container.webhook_endpoints.deliveries_page(T, endpoint_id, limit=100, before=None)
    assert [e.outcome for e in entries if e.outcome == "gave_up"] == ["gave_up"]
    assert w.container.webhook_endpoints.get(T, endpoint_id).endpoint.enabled


def test_lost_messages_are_requeued_by_the_sweep() -> None:
    """A pending delivery whose queue message vanished is sent again by the sweep."""
    w = World()
    _, secret = w.endpoint()
    w.book()
    w.queues.take(Queues.PRODUCT_EVENTS)  # the message is lost
    w.clock.advance(minutes=5)
    assert w.container.product_events.sweep()["requeued"] == 1
    w.drain()
    assert [p["type"] for p in w.payloads(secret)] == ["session.booked"]


def test_integration_reconnect_and_access_test_events_reach_the_product() -> None:
    """A status change, a connection flagged needsReconnect and a finished access test are each one event."""
    w = World()
    _, secret = w.endpoint()
    repo = IntegrationRepository(w.tables)
    found = repo.get(T)
    assert found is not None
    repo.save(replace(found.value, status=IntegrationStatus.DEGRADED, updated_at=NOW), found.etag)
    connections = ConnectionRepository(w.tables)
    connections.save(ConnectionRecord(T, "bob-oid", ConnectionPurpose.USER, ConnectionStatus.CONNECTED))
    assert connections.mark_needs_reconnect(T, "bob-oid", "AADSTS700082", NOW)
    assert not connections.mark_needs_reconnect(T, "bob-oid", "AADSTS700082", NOW)
    assert [c.user_id for c in connections.users(T)] == ["bob-oid"]  # outbox rows are not connections
    w.drain()
    kinds = [(p["type"], p["data"].get("status") or p["data"].get("reason")) for p in w.payloads(secret)]
    assert kinds == [("integration.status_changed", "degraded"), ("connection.needs_reconnect", "AADSTS700082")]


def test_a_ping_reaches_even_a_disabled_endpoint_once() -> None:
    """Ping is delivered on request; to a disabled endpoint it is tried once and never disables anything."""
    w = World()
    endpoint_id, secret = w.endpoint()
    w.container.webhook_endpoints.update(T, ADMIN, endpoint_id, EndpointChanges(enabled=False))
    w.sender.default = 500
    w.container.webhook_endpoints.ping(T, ADMIN, endpoint_id)
    assert w.drain(until=timedelta(minutes=10)) == ["failed"]
    w.sender.default = 200
    w.container.webhook_endpoints.ping(T, ADMIN, endpoint_id)
    w.drain()
    assert w.sender.sent[-1].verify(secret)["type"] == "ping"


@pytest.mark.parametrize(("url", "code"), [
    ("http://hooks.example.com/x", "url_not_https"),
    ("https://10.0.0.5/x", "url_address_not_allowed"),
    ("https://internal.example/x", "url_address_not_allowed"),
    ("https://169.254.169.254/latest", "url_address_not_allowed"),
    ("https://gone.example/x", "url_unresolvable"),
])
def test_endpoints_with_unsafe_urls_are_refused(url: str, code: str) -> None:
    """Non-https URLs and hosts that resolve to private or metadata addresses are 422 with a clear code."""
    w = World()
    w.sender.hosts.update({"internal.example": ["52.96.10.10", "10.1.1.1"], "gone.example": []})
    with pytest.raises(ValidationFailed) as caught:
        w.endpoint(url)
    assert caught.value.code == code


def test_an_organisation_has_at_most_twenty_endpoints() -> None:
    """The 21st endpoint is refused with too_many_endpoints."""
    w = World()
    for i in range(20):
        w.endpoint(f"https://hooks{i}.example/x")
    with pytest.raises(ValidationFailed) as caught:
        w.endpoint("https://one-more.example/x")
    assert caught.value.code == "too_many_endpoints"


def test_the_delivery_url_is_checked_again_at_each_attempt() -> None:
    """A host that later resolves to a private address is refused at delivery time and retried, never reached."""
    w = World()
    w.endpoint()
    w.sender.hosts["hooks.product.example"] = ["10.0.0.7"]
    w.book()
    assert w.drain() == ["retrying"] and w.sender.sent == []


def test_secrets_never_reach_tables() -> None:
    """No table value holds an endpoint's secret (they live in the secret store only)."""
    w = World()
    _, secret = w.endpoint()
    w.book()
    w.drain()
    raw = secret.removeprefix("whsec_")
    for table in Tables.ALL:
        for entity in w.tables.all(table):
            assert not any(isinstance(v, str) and raw in v for v in entity.data.values()), table


def test_a_missing_secret_is_a_failed_attempt_not_a_crash() -> None:
    """If the secret store lost an endpoint's secret, the attempt fails (logged) and is retried."""
    w = World()
    w.endpoint()
    for name in w.secrets.names():
        w.secrets.delete(name)
    w.book()
    assert w.drain() == ["retrying"] and w.sender.sent == []
    assert WebhookAttempt(None, 0, "secret_missing").delivered is False


def test_a_worker_dying_while_holding_the_claim_is_recovered_by_the_redelivered_message() -> None:
    """The claim is written, then the process dies before POSTing: the queue's redelivery waits out the
    claim and delivers (one POST)."""
    w = World()
    w.endpoint()
    w.book()
    [message] = w.queues.take(Queues.PRODUCT_EVENTS)
    worker = w.container.webhook_delivery
    found = worker.deliveries.get_pending(T, message.body["row"])
    assert found is not None
    assert worker._claim(found, w.clock.now()) is not None  # ...and then the process is killed
    assert worker.handle(message.body, dequeue_count=2) == "not_due"
    assert w.drain(until=timedelta(seconds=40)) == ["delivered"] and len(w.sender.sent) == 1


def test_a_stale_copy_arriving_early_is_dropped() -> None:
    """A first-time message whose schedule is not the row's (a kick overtook it) is dropped, not re-queued."""
    w = World()
    w.endpoint()
    w.sender.default = 500
    w.book()
    [message] = w.queues.take(Queues.PRODUCT_EVENTS)
    assert w.container.webhook_delivery.handle(message.body) == "retrying"
    assert w.container.webhook_delivery.handle(message.body) == "stale"


def test_a_version_that_parked_behind_a_parked_one_is_woken_when_that_one_is_delivered() -> None:
    """After re-enabling, v3 may look before v2 is unparked and park again; v2's success wakes it at once."""
    w = World()
    endpoint_id, secret = w.endpoint()
    w.sender.default = 410
    w.book()
    w.change("s1", start=NOW + timedelta(days=2), end=NOW + timedelta(days=2, minutes=30), source=ChangeSource.OUTLOOK)
    w.drain(until=timedelta(seconds=5))
    w.sender.default = 200
    w.sender.sent.clear()
    store = DeliveryStore(w.tables)
    rows = list(store.pending_of_endpoint(T, endpoint_id))
    assert [r.value.parked for r in rows] == [True, True]
    state = w.container.webhook_endpoints.get(T, endpoint_id).endpoint
    w.container.webhook_endpoints.endpoints.save(replace(state, enabled=True, disabled_reason=None), None)
    w.container.product_events.kick(store.get_pending(T, rows[1].value.row_key))  # type: ignore[arg-type]
    assert w.drain() == ["parked"]  # the later version looked first and parked behind the earlier one
    w.container.product_events.kick(store.get_pending(T, rows[0].value.row_key))  # type: ignore[arg-type]
    assert w.drain() == ["delivered", "delivered"]
    assert [p["type"] for p in w.payloads(secret)] == ["session.booked", "session.rescheduled"]


def test_the_relay_is_told_only_once_the_sessions_indexes_are_written() -> None:
    """When dispatch starts, the booked session's start-index row and event-index row already exist, so a
    crash during dispatch cannot leave a booked session its indexes do not know."""
    w = World()
    seen: list[tuple[bool, bool]] = []

    class Watching:
        def committed(self, table: str, tenant_id: str, streams: Sequence[str]) -> None:
            if table != Tables.SESSIONS:
                return
            rows = list(w.sessions.start_index(T, NOW))
            seen.append((any(r.tracked for r in rows), w.sessions.session_id_for_event(T, "ev-s1") == "s1"))

    attach_relay(w.tables, Watching())
    w.book()
    assert seen == [(True, True)]


def test_a_row_claimed_by_another_dispatcher_is_not_published_twice_nor_after_its_delivery() -> None:
    """Two dispatchers of one stream: the second stops at the first's claim; once the event is delivered and its
    outbox row gone, dispatching again sends nothing (the same event is never re-created as a delivery)."""
    w = World()
    w.endpoint()
    attach_relay(w.tables, None)
    w.book()
    dispatcher = w.container.product_events
    [row] = list(dispatcher.outbox.pending(Tables.SESSIONS, T))
    assert dispatcher.outbox.claim(row, NOW + timedelta(minutes=1)) is not None  # another dispatcher, mid-way
    assert dispatcher.dispatch_stream(Tables.SESSIONS, T, row.event.ordering_stream) == 0
    assert w.queues.pending(Queues.PRODUCT_EVENTS) == []
    w.clock.advance(minutes=2)  # that dispatcher died: its claim expires and the sweep takes the row
    assert dispatcher.sweep()["dispatched"] == 1
    assert w.drain() == ["delivered"]
    assert dispatcher.sweep()["dispatched"] == 0 and w.drain() == [] and len(w.sender.sent) == 1


def test_a_stream_is_dispatched_in_version_order_even_when_its_rows_arrive_during_dispatch() -> None:
    """Rows committed while a stream is being dispatched are picked up by the same dispatcher, in order."""
    w = World()
    _, secret = w.endpoint()
    attach_relay(w.tables, None)
    w.book()
    w.change("s1", start=NOW + timedelta(days=2), end=NOW + timedelta(days=2, minutes=30), source=ChangeSource.OUTLOOK)
    w.change("s1", status=w.sessions.require(T, "s1").value.mark_cancelled(NOW, ChangeSource.OUTLOOK).status)
    dispatcher = w.container.product_events
    assert dispatcher.dispatch_stream(Tables.SESSIONS, T, "s:s1") == 3
    w.drain()
    assert [(p["type"], p["data"]["version"]) for p in w.payloads(secret)] == [
        ("session.booked", 2), ("session.rescheduled", 3), ("session.cancelled", 4)]


def test_a_booked_session_and_its_start_index_are_written_together() -> None:
    """The write that books a session carries its start-index row: when that write fails, neither changes, and
    when it succeeds the index already says booked (the reconciler can always find it)."""
    w = World()
    attach_relay(w.tables, None)
    start = NOW + timedelta(days=1)
    w.sessions.add(Session(tenant_id=T, session_id="s1", organizer_id="o", organizer_address="a@contoso.test",
                           attendees=(), start=start, end=start + timedelta(minutes=30), time_zone="UTC"))
    read = w.sessions.require(T, "s1")
    done = read.value.mark_created(event_id="ev-1", ical_uid=None, join_url=None, online_provider=None,
                                   change_key=None, now=NOW)
    w.tables.fail_session_updates = 1
    with pytest.raises(StorageUnavailable):
        w.sessions.save(done, read.etag, previous=read.value)
    [row] = list(w.sessions.start_index(T, NOW))
    assert not row.tracked and w.outbox() == []
    w.sessions.save(done, read.etag, previous=read.value)
    [row] = list(w.sessions.start_index(T, NOW))
    assert row.tracked and w.sessions.session_id_for_event(T, "ev-1") == "s1"
