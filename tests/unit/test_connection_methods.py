"""Every feature under the per-user and service-account connection methods, on the fakes.

Per-user: the caller's (organizer's) own delegated token, and a clear 409 before anything is
queued when they have not connected. Service account: the scheduling mailbox's token, events
in the organizer's calendar through delegate rights, the "Scheduler" calendar fallback where
it has none, no subscriptions (polling instead), and per-method access tests.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import time, timedelta
from typing import Any

import pytest

from core.domain.access_test import AccessReason, RunStatus
from core.domain.calendar import GraphIdentity, TimeZoneSpec, Weekday, WorkingHours
from core.domain.commands import AccessTestCommand
from core.domain.errors import Conflict, ReconnectRequired
from core.domain.integration import (
    SERVICE_ACCOUNT_SYNC_MINUTES,
    ConnectionMethod,
    Integration,
    IntegrationStatus,
    SyncMode,
    sync_policy,
)
from core.domain.sessions import ChangeSource, SessionStatus
from core.names import Queues
from core.services.access_test import AccessTestService
from core.services.alerts import OwnerAlerts
from core.services.authz import Caller
from core.services.availability import AvailabilityQuery, AvailabilityService
from core.services.client_state import ClientStateKeyCache
from core.services.event_writer import SCHEDULER_CALENDAR, WriteOutcome
from core.services.reconcile import Reconciler
from core.services.stores.connections import ConnectionPurpose, ConnectionRecord, ConnectionRepository, ConnectionStatus
from core.services.stores.integrations import IntegrationRepository
from core.services.stores.sessions import SessionRepository
from core.services.subscriptions import SubscriptionService
from functions.schemas.integration import Integration as IntegrationReply
from tests.support.fake_graph import NORMAL
from tests.unit.test_booking_support import ALICE, ALICE_ID, BOB, BOB_ID, END, NOW, ROOM, START, TENANT, World

SCHEDULER = "scheduler@contoso.test"
SCHEDULER_ID = "a0000000-0000-4000-8000-00000000005c"


def _world(method: ConnectionMethod) -> World:
    w = World()
    repo = IntegrationRepository(w.tables)
    found = repo.get(TENANT)
    assert found is not None
    repo.save(replace(found.value, method=method), found.etag)
    w.graph.add_user(TENANT, SCHEDULER, user_id=SCHEDULER_ID)
    return w


def _connect_user(w: World, user_id: str) -> None:
    w.tokens.connect_user(TENANT, user_id)
    ConnectionRepository(w.tables).save(ConnectionRecord(
        TENANT, user_id, ConnectionPurpose.USER, ConnectionStatus.CONNECTED, connected_at=NOW, updated_at=NOW))


def _connect_service_account(w: World, *, delegate_of: tuple[str, ...] = ()) -> None:
    w.tokens.connect_user(TENANT, SCHEDULER_ID)
    ConnectionRepository(w.tables).save(ConnectionRecord(
        TENANT, SCHEDULER_ID, ConnectionPurpose.SERVICE_ACCOUNT, ConnectionStatus.CONNECTED,
        username=SCHEDULER, connected_at=NOW, updated_at=NOW))
    for owner in delegate_of:
        w.graph.grant_delegate(TENANT, owner, SCHEDULER)


def _session(w: World, sid: str) -> Any:
    return SessionRepository(w.tables).require(TENANT, sid).value


def _availability(w: World) -> AvailabilityService:
    return AvailabilityService(w.graph, w.tables, w.clock)


def _query() -> AvailabilityQuery:
    return AvailabilityQuery(start=START, end=START + timedelta(hours=4), duration_minutes=30,
                             time_zone="Europe/Paris", pairing_id="p1", working_hours_only=False)


def _subscriptions(w: World) -> SubscriptionService:
    return SubscriptionService(w.tables, w.queues, w.graph, w.clock, ClientStateKeyCache(w.secrets),
                               public_base_url="https://func.example.com",
                               alerts=OwnerAlerts(w.tables, w.queues, w.clock))


def _access_tests(w: World) -> AccessTestService:
    return AccessTestService(tables=w.tables, queues=w.queues, clock=w.clock, gateway=w.graph,
                             alerts=OwnerAlerts(w.tables, w.queues, w.clock), app_id="app", tokens=w.tokens,
                             new_id=lambda: "t1")


# --- per-user ---------------------------------------------------------------------------------


def test_per_user_availability_needs_the_caller_connected_then_uses_their_own_token() -> None:
    """Not connected: 409 calendar_not_connected; connected: slots come through the caller's own token."""
    w = _world(ConnectionMethod.PER_USER)
    with pytest.raises(Conflict) as caught:
        _availability(w).free_slots(w.caller(), _query())
    assert caught.value.code == "calendar_not_connected"
    _connect_user(w, ALICE_ID)
    assert _availability(w).free_slots(w.caller(), _query()).slots
    w.tokens.revoke_user(TENANT, ALICE_ID)  # the app-only token would still work: this proves it is delegated
    with pytest.raises(ReconnectRequired):
        _availability(w).free_slots(w.caller(), _query())


def test_per_user_booking_by_an_unconnected_organizer_is_refused_before_anything_is_queued() -> None:
    """POST /api/sessions answers 409 calendar_not_connected at once: no session, no queued write."""
    w = _world(ConnectionMethod.PER_USER)
    with pytest.raises(Conflict) as caught:
        w.book()
    assert caught.value.code == "calendar_not_connected"
    assert w.queues.pending(Queues.EVENT_WRITES) == []
    assert list(SessionRepository(w.tables).list_tenant(TENANT)) == []


def test_per_user_booking_writes_with_the_organizers_token_and_the_partner_needs_no_connection() -> None:
    """The organizer (connected) books; the partner never connected and still gets the invitation."""
    w = _world(ConnectionMethod.PER_USER)
    _connect_user(w, ALICE_ID)
    sid = w.book(room=ROOM)
    assert w.drain() == [WriteOutcome.APPLIED]
    [event] = w.organizer_events()
    assert {a.address for a in event.attendees} == {BOB, ROOM}
    assert w.graph.copy_of(TENANT, BOB, str(event.ical_uid)) is not None
    assert _session(w, sid).status == SessionStatus.BOOKED and _session(w, sid).calendar_id is None


def test_per_user_organizer_who_must_reconnect_cannot_reschedule() -> None:
    """A connection flagged needsReconnect refuses changes with 409 calendar_reconnect_required."""
    w = _world(ConnectionMethod.PER_USER)
    _connect_user(w, ALICE_ID)
    sid = w.book()
    w.drain()
    ConnectionRepository(w.tables).mark_needs_reconnect(TENANT, ALICE_ID, "50173", NOW)
    with pytest.raises(Conflict) as caught:
        w.booking.reschedule(w.caller(), sid, START + timedelta(hours=1), END + timedelta(hours=1), "UTC")
    assert caught.value.code == "calendar_reconnect_required" and caught.value.details["reason"] == "50173"


def test_per_user_subscription_is_created_with_the_organizers_own_token() -> None:
    """The subscription reaches the organizer's mailbox only through their delegated token."""
    w = _world(ConnectionMethod.PER_USER)
    _connect_user(w, ALICE_ID)
    record = _subscriptions(w).ensure_for_mailbox(TENANT, ALICE_ID)
    assert record is not None and len(w.graph.subscriptions_of(TENANT)) == 1
    w.tokens.revoke_user(TENANT, ALICE_ID)
    with pytest.raises(ReconnectRequired):
        _subscriptions(w).recreate(TENANT, ALICE_ID)


# --- service account ----------------------------------------------------------------------------


def test_service_account_tenant_without_its_mailbox_refuses_bookings() -> None:
    """No scheduling mailbox connected: 409 service_account_not_connected at POST time."""
    w = _world(ConnectionMethod.SERVICE_ACCOUNT)
    with pytest.raises(Conflict) as caught:
        w.book()
    assert caught.value.code == "service_account_not_connected"


def test_service_account_availability_uses_the_mailboxs_token() -> None:
    """Free/busy of both people comes through the scheduling mailbox, no user connection needed."""
    w = _world(ConnectionMethod.SERVICE_ACCOUNT)
    _connect_service_account(w)
    assert _availability(w).free_slots(w.caller(), _query()).slots
    w.tokens.revoke_user(TENANT, SCHEDULER_ID)
    with pytest.raises(ReconnectRequired):
        _availability(w).free_slots(w.caller(), _query())


def test_service_account_calendar_settings_come_from_getschedule() -> None:
    """Another user's mailbox settings are not shared with a delegate: working hours and zone come from
    getSchedule through the mailbox's token."""
    w = _world(ConnectionMethod.SERVICE_ACCOUNT)
    _connect_service_account(w)
    hours = WorkingHours(frozenset({Weekday.MONDAY, Weekday.TUESDAY}), time(8), time(16),
                         TimeZoneSpec("W. Europe Standard Time"))
    dora = "a0000000-0000-4000-8000-0000000000d0"
    w.graph.add_user(TENANT, "dora@contoso.test", user_id=dora, working_hours=hours)
    view = _availability(w).calendar_settings(Caller(TENANT, dora, scopes=frozenset({"access_as_user"})))
    assert view.time_zone == "Europe/Berlin"
    assert view.working_hours is not None and view.working_hours.days == ("monday", "tuesday")
    assert view.working_hours.start == "08:00:00"


def test_service_account_with_delegate_rights_books_in_the_organizers_calendar() -> None:
    """Through the shared-calendar path the organizer stays the organizer and sees the partner's RSVP."""
    w = _world(ConnectionMethod.SERVICE_ACCOUNT)
    _connect_service_account(w, delegate_of=(ALICE,))
    sid = w.book(room=ROOM)
    assert w.drain() == [WriteOutcome.APPLIED]
    [event] = w.organizer_events()
    assert event.organizer == ALICE and {a.address for a in event.attendees} == {BOB, ROOM}
    assert _session(w, sid).calendar_id is None
    assert w.graph.calendars_of(TENANT, SCHEDULER) == {}


def test_service_account_without_delegate_rights_falls_back_to_one_scheduler_calendar() -> None:
    """403 on the organizer's calendar: the event goes into the mailbox's "Scheduler" calendar (created
    once, reused) with organizer, partner and room invited; the session records the calendar."""
    w = _world(ConnectionMethod.SERVICE_ACCOUNT)
    _connect_service_account(w)
    first, second = w.book(room=ROOM), w.book(start=START + timedelta(days=1), end=END + timedelta(days=1))
    assert w.drain() == [WriteOutcome.APPLIED, WriteOutcome.APPLIED]
    calendars = w.graph.calendars_of(TENANT, SCHEDULER)
    assert list(calendars.values()) == [SCHEDULER_CALENDAR]
    [calendar_id] = calendars
    assert all(e.organizer == SCHEDULER for e in w.organizer_events())  # she organizes nothing...
    for sid in (first, second):
        s = _session(w, sid)
        assert s.status == SessionStatus.BOOKED and s.calendar_id == calendar_id
        event = w.graph.get_event(GraphIdentity(TENANT, SCHEDULER_ID), SCHEDULER, str(s.event_id))
        assert {ALICE, BOB} <= {a.address for a in event.attendees}
        assert w.graph.copy_of(TENANT, ALICE, str(event.ical_uid)) is not None  # ...but she is invited
    event = w.graph.get_event(GraphIdentity(TENANT, SCHEDULER_ID), SCHEDULER, str(_session(w, first).event_id))
    assert ROOM in {a.address for a in event.attendees}


def test_scheduler_fallback_sessions_are_rescheduled_and_cancelled_in_the_same_calendar() -> None:
    """Reschedule and cancel act on the Scheduler calendar's event, never on the organizer's calendar."""
    w = _world(ConnectionMethod.SERVICE_ACCOUNT)
    _connect_service_account(w)
    sid = w.book()
    w.drain()
    event_id = str(_session(w, sid).event_id)
    w.booking.reschedule(w.caller(), sid, START + timedelta(hours=2), END + timedelta(hours=2), "UTC")
    assert w.drain() == [WriteOutcome.APPLIED]
    moved = w.graph.get_event(GraphIdentity(TENANT, SCHEDULER_ID), SCHEDULER, event_id)
    assert moved.start == START + timedelta(hours=2)
    w.booking.cancel(w.caller(), sid)
    assert w.drain() == [WriteOutcome.APPLIED]
    assert _session(w, sid).status == SessionStatus.CANCELLED
    assert [e.event_id for e in w.graph.events_of(TENANT, SCHEDULER)] == []


def test_existing_scheduler_calendar_is_found_by_name_not_created_again() -> None:
    """A Scheduler calendar made earlier (another process, a previous deployment) is reused."""
    w = _world(ConnectionMethod.SERVICE_ACCOUNT)
    _connect_service_account(w)
    made = w.graph.create_calendar(GraphIdentity(TENANT, SCHEDULER_ID), SCHEDULER, "scheduler")
    sid = w.book()
    w.drain()
    assert _session(w, sid).calendar_id == made.calendar_id
    assert len(w.graph.calendars_of(TENANT, SCHEDULER)) == 1


def test_service_account_tenants_get_no_subscriptions_and_are_polled() -> None:
    """ensure_for_mailbox does nothing for service-account tenants; the status promises polling."""
    w = _world(ConnectionMethod.SERVICE_ACCOUNT)
    _connect_service_account(w, delegate_of=(ALICE,))
    assert _subscriptions(w).ensure_for_mailbox(TENANT, ALICE_ID) is None
    assert w.graph.subscriptions_of(TENANT) == []
    assert sync_policy(ConnectionMethod.SERVICE_ACCOUNT).mode is SyncMode.POLLING
    assert sync_policy(ConnectionMethod.PER_USER).mode is SyncMode.NOTIFICATIONS
    reply = IntegrationReply(tenant_id=TENANT, method="serviceAccount", status="connected")
    dumped = reply.model_dump(by_alias=True, mode="json")
    assert (dumped["sync"], dumped["syncIntervalMinutes"]) == ("polling", SERVICE_ACCOUNT_SYNC_MINUTES)
    per_user = IntegrationReply(tenant_id=TENANT, method="perUser", status="connected")
    assert per_user.model_dump(by_alias=True)["sync"] == "notifications"


def test_polling_reconciliation_reads_scheduler_calendar_sessions_from_the_mailbox() -> None:
    """A move of a fallback event (in the mailbox's calendar) is seen by the service-account timer run;
    a domain-wide tenant is not touched by that run."""
    w = _world(ConnectionMethod.SERVICE_ACCOUNT)
    _connect_service_account(w)
    sid = w.book()
    w.drain()
    s = _session(w, sid)
    new_start = s.start + timedelta(hours=3)
    w.graph.move_event_as_organizer(TENANT, SCHEDULER, str(s.event_id), new_start, new_start + timedelta(minutes=45))
    other = "bbbbbbbb-0000-4000-8000-00000000000b"
    IntegrationRepository(w.tables).save(Integration(other, status=IntegrationStatus.CONNECTED), None)
    reconciler = Reconciler(w.tables, w.graph, w.clock, _subscriptions(w))
    report = reconciler.run(methods={ConnectionMethod.SERVICE_ACCOUNT})
    assert report.tenants == 1 and report.sync.changed == 1
    moved = _session(w, sid)
    assert moved.start == new_start and moved.source == ChangeSource.OUTLOOK
    assert moved.status == SessionStatus.BOOKED


# --- access tests per method --------------------------------------------------------------------


def test_per_user_access_test_reports_connected_not_connected_and_reconnect() -> None:
    """Connected users reachable with their own token, the others not_connected / needs_reconnect: degraded."""
    w = _world(ConnectionMethod.PER_USER)
    _connect_user(w, ALICE_ID)
    _connect_user(w, BOB_ID)
    ConnectionRepository(w.tables).mark_needs_reconnect(TENANT, BOB_ID, "700082", NOW)
    report = _access_tests(w).run(AccessTestCommand(TENANT, "t1"))
    assert report is not None and report.status is RunStatus.COMPLETED
    reasons = {u.user_id: u.reason for u in report.users}
    assert reasons[ALICE_ID] is AccessReason.ACCESSIBLE
    assert reasons[BOB_ID] is AccessReason.NEEDS_RECONNECT
    assert reasons[SCHEDULER_ID] is AccessReason.NOT_CONNECTED
    found = IntegrationRepository(w.tables).get(TENANT)
    assert found is not None and found.value.status is IntegrationStatus.DEGRADED


def test_service_account_access_test_reports_calendars_without_delegate_rights() -> None:
    """Calendars the mailbox may edit are accessible; the others are no_delegate_access with the PowerShell."""
    w = _world(ConnectionMethod.SERVICE_ACCOUNT)
    _connect_service_account(w, delegate_of=(ALICE,))
    w.graph.add_user(TENANT, "dora@contoso.test", kind=NORMAL)
    report = _access_tests(w).run(AccessTestCommand(TENANT, "t1"))
    assert report is not None and report.status is RunStatus.COMPLETED
    by_upn = {u.user_principal_name: u.reason for u in report.users}
    assert SCHEDULER not in by_upn  # the mailbox itself is not sampled
    assert by_upn[ALICE] is AccessReason.ACCESSIBLE
    assert by_upn[BOB] is AccessReason.NO_DELEGATE_ACCESS
    hint = _access_tests(w).hint(AccessReason.NO_DELEGATE_ACCESS) or ""
    assert "Add-MailboxFolderPermission" in hint and "-AccessRights Editor" in hint


def test_service_account_access_test_without_a_mailbox_fails_with_that_reason() -> None:
    """No scheduling mailbox yet: the test ends failed (service_account_not_connected), no exception."""
    w = _world(ConnectionMethod.SERVICE_ACCOUNT)
    report = _access_tests(w).run(AccessTestCommand(TENANT, "t1"))
    assert report is not None and report.status is RunStatus.FAILED
    assert report.error_code == "service_account_not_connected"
    found = IntegrationRepository(w.tables).get(TENANT)
    assert found is not None and found.value.status_reason == "service_account_not_connected"


def test_an_older_access_test_finishing_late_does_not_hide_the_newer_one() -> None:
    """A test that replaced a running one (a new consent, a method change) stays "latest" when the older one
    finishes after it."""
    w = _world(ConnectionMethod.PER_USER)
    ids = iter(["older", "newer"])
    service = AccessTestService(tables=w.tables, queues=w.queues, clock=w.clock, gateway=w.graph,
                                alerts=OwnerAlerts(w.tables, w.queues, w.clock), app_id="app", tokens=w.tokens,
                                new_id=lambda: next(ids))
    service.start(TENANT, None)
    w.clock.advance(seconds=5)
    service.start(TENANT, None, replace_running=True)
    service.run(AccessTestCommand(TENANT, "older"))
    assert service.latest(TENANT).test_id == "newer"
    service.run(AccessTestCommand(TENANT, "newer"))
    assert service.latest(TENANT).test_id == "newer" and service.latest(TENANT).finished
