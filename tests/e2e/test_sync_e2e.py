"""Sync back from Outlook on the whole local stack: the simulator's change and lifecycle notifications reach
the host's webhooks over HTTP, go through Azurite queues to the workers, and the real Graph gateway reads
the events back from the simulator.

"Done when": accept, move, cancel in Outlook show on the session; triplicate notifications change it once;
a forged clientState is dropped; subscriptionRemoved recreates and resyncs; a move made while notifications
were off is healed by a ``missed`` event, or by reconciliation when there is no lifecycle event at all.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.bootstrap import get_container
from core.domain.calendar import GraphIdentity, NewEvent, ResponseType
from core.domain.integration import ConnectionMethod
from core.domain.sessions import AttendeeState, ChangeSource, Session, SessionStatus
from core.names import Tables
from core.ports import Entity
from core.services.client_state import ClientStateSigner
from core.services.notifications import is_active
from core.services.stores.integrations import IntegrationRepository
from core.services.stores.sessions import SessionRepository
from functions.webhooks import dropped_counts
from local.simulator.seed import FABRIKAM
from tests.e2e.conftest import Stack
from tests.log_guard import sentinel

ORGANIZER = "felix@fabrikam.test"
PARTNER = "hugo@fabrikam.test"
SUBJECT = sentinel("Confidential subject: sync e2e")


def _user_ids(stack: Stack) -> dict[str, str]:
    tenant = next(t for t in stack.control("GET", "/_sandbox/tenants") if t["id"] == FABRIKAM)
    return {u["userPrincipalName"]: u["id"] for u in tenant["users"]}


@pytest.fixture(scope="module")
def fabrikam(stack: Stack) -> Iterator[dict[str, str]]:
    """Fabrikam onboarded and enabled (a record another test left active is kept), consent granted at the simulator."""
    stack.control("POST", "/_sandbox/consent", {"tenant": FABRIKAM, "granted": True})
    tables = get_container().tables
    found = IntegrationRepository(tables).get(FABRIKAM)
    if found is None or not is_active(found.value) or found.value.method is not ConnectionMethod.DOMAIN_WIDE:
        tables.upsert(Tables.INTEGRATIONS, Entity(FABRIKAM, "integration", {
            "vendor": "outlook365", "method": "domainWide", "ownerEmail": "admin@fabrikam.test",
            "enabled": True, "status": "connected", "pairingPolicy": "registered",
        }))
        tables.upsert(Tables.INTEGRATIONS, Entity("~tenants", FABRIKAM, {}))
    get_container().tenant_gate.forget(FABRIKAM)
    yield _user_ids(stack)
    stack.control("POST", "/_sandbox/faults", {})


@pytest.fixture(autouse=True)
def _no_faults(stack: Stack) -> Iterator[None]:
    stack.control("POST", "/_sandbox/faults", {})
    yield
    stack.control("POST", "/_sandbox/faults", {})


_slot = [0]


def _book(stack: Stack, ids: dict[str, str]) -> Session:
    """A booked session as the booking flow leaves it: the event in the organizer's calendar, the
    session and its event index in Azurite, and the organizer's subscription ensured."""
    container = get_container()
    _slot[0] += 1
    day = datetime.now(UTC).replace(hour=2, minute=0, second=0, microsecond=0) + timedelta(days=2 + _slot[0] % 9)
    start = day + timedelta(minutes=20 * (_slot[0] // 9))
    end = start + timedelta(minutes=30)
    sid = "e2e-sync-" + uuid.uuid4().hex[:12]
    organizer = ids[ORGANIZER]
    # The creation's own notification is not what these tests are about: keep it out of their way.
    stack.control("POST", "/_sandbox/faults", {"notifications": False})
    created = container.gateway.create_event(GraphIdentity(FABRIKAM), organizer, NewEvent(
        subject=SUBJECT, start=start, end=end, attendees=(PARTNER,), transaction_id=sid,
    ))
    assert stack.sim.wait_notifications()
    stack.control("POST", "/_sandbox/faults", {})
    session = Session(
        tenant_id=FABRIKAM, session_id=sid, organizer_id=organizer, organizer_address=ORGANIZER,
        attendees=(AttendeeState(PARTNER, ResponseType.NOT_RESPONDED, ids[PARTNER]),), start=start, end=end,
        time_zone="UTC", status=SessionStatus.BOOKED, pending_op=None, event_id=created.event_id,
        ical_uid=created.ical_uid, change_key=created.change_key, created_at=start, updated_at=start,
    )
    repo = SessionRepository(container.tables)
    repo.add(session)
    repo.index_event(FABRIKAM, created.event_id, sid)
    container.subscriptions.ensure_for_mailbox(FABRIKAM, organizer)
    return session


def _stored(session: Session) -> Session:
    return SessionRepository(get_container().tables).require(FABRIKAM, session.session_id).value


def _etag(session: Session) -> str | None:
    return SessionRepository(get_container().tables).require(FABRIKAM, session.session_id).etag


def _move(stack: Stack, session: Session, minutes: int) -> tuple[datetime, datetime]:
    start, end = session.start + timedelta(minutes=minutes), session.end + timedelta(minutes=minutes)
    stack.control("POST", f"/_sandbox/users/{ORGANIZER}/events/{session.event_id}/move",
                  {"start": start.isoformat(), "end": end.isoformat()})
    return start, end


def _move_unnoticed(stack: Stack, session: Session, minutes: int) -> tuple[datetime, datetime]:
    """Move the event while the simulator delivers no notifications (they are lost for good)."""
    stack.control("POST", "/_sandbox/faults", {"notifications": False})
    moved = _move(stack, session, minutes)
    assert stack.sim.wait_notifications()
    stack.control("POST", "/_sandbox/faults", {})
    return moved


def _moved_to(session: Session, start: datetime) -> Any:
    def check() -> Session | None:
        s = _stored(session)
        return s if s.start == start and s.source == ChangeSource.OUTLOOK else None
    return check


def _subscription_of(stack: Stack, user_id: str) -> dict[str, Any] | None:
    for sub in stack.control("GET", "/_sandbox/subscriptions"):
        if sub["tenantId"] == FABRIKAM and user_id.lower() in sub["resource"].lower():
            found: dict[str, Any] = sub
            return found
    return None


def test_partner_acceptance_shows_on_the_session(stack: Stack, fabrikam: dict[str, str]) -> None:
    """The partner accepts in Outlook -> the session shows 'accepted' within seconds."""
    s = _book(stack, fabrikam)
    copies = stack.control("GET", f"/_sandbox/users/{PARTNER}/events")
    copy = next(e for e in copies if e.get("iCalUId") == s.ical_uid)
    stack.control("POST", f"/_sandbox/users/{PARTNER}/events/{copy['id']}/respond", {"response": "accepted"})
    stack.wait_for(lambda: _stored(s).attendees[0].response == ResponseType.ACCEPTED)


def test_move_in_outlook_gives_new_times_with_source_outlook(stack: Stack, fabrikam: dict[str, str]) -> None:
    """The organizer moves the event in Outlook -> the session has the new times, source 'outlook'."""
    s = _book(stack, fabrikam)
    start, end = _move(stack, s, 60)
    moved = stack.wait_for(_moved_to(s, start))
    assert moved.end == end and moved.status == SessionStatus.BOOKED


def test_cancel_in_outlook_cancels_the_session(stack: Stack, fabrikam: dict[str, str]) -> None:
    """The organizer cancels in Outlook -> the session is cancelled, source 'outlook'."""
    s = _book(stack, fabrikam)
    stack.control("POST", f"/_sandbox/users/{ORGANIZER}/events/{s.event_id}/cancel", {})
    stack.wait_for(lambda: _stored(s).status == SessionStatus.CANCELLED)
    assert _stored(s).source == ChangeSource.OUTLOOK


def test_triplicate_notifications_change_the_session_once(stack: Stack, fabrikam: dict[str, str]) -> None:
    """With every notification delivered three times, the session changes once and stays put after that."""
    s = _book(stack, fabrikam)
    stack.control("POST", "/_sandbox/faults", {"duplicates": 3})
    since = stack.last_seq()
    start, _ = _move(stack, s, 45)
    stack.wait_for(_moved_to(s, start))
    etag = _etag(s)

    def reads_of_the_event() -> int:
        return sum(1 for r in stack.graph_requests(since)
                   if r["method"] == "GET" and str(s.event_id) in r["path"])

    stack.wait_for(lambda: reads_of_the_event() >= 3)  # each duplicate was processed (one read each)
    time.sleep(1.0)  # let any straggling worker finish its save
    assert _etag(s) == etag
    assert _stored(s).start == start


def test_forged_client_state_is_dropped(stack: Stack, fabrikam: dict[str, str]) -> None:
    """A notification with a wrong clientState (here: signed with another key) is answered 202 and dropped."""
    s = _book(stack, fabrikam)
    organizer = fabrikam[ORGANIZER]
    forged = ClientStateSigner(b"not-the-service-key-0123456789").sign(FABRIKAM, organizer)
    before = dropped_counts().get("bad_client_state", 0)
    resource = f"Users/{organizer}/Events/{s.event_id}"
    body = {"value": [{"subscriptionId": "x", "clientState": forged, "changeType": "deleted", "resource": resource,
                       "tenantId": FABRIKAM, "resourceData": {"id": s.event_id}}]}
    r = stack.call("POST", "/graph/notifications", json=body)
    assert r.status_code == 202
    assert dropped_counts().get("bad_client_state", 0) == before + 1
    time.sleep(1.5)
    assert _stored(s).status == SessionStatus.BOOKED


def test_subscription_removed_recreates_and_resyncs(stack: Stack, fabrikam: dict[str, str]) -> None:
    """subscriptionRemoved -> a new subscription for the mailbox and a resync that heals a change made meanwhile."""
    s = _book(stack, fabrikam)
    organizer = fabrikam[ORGANIZER]
    old = _subscription_of(stack, organizer)
    assert old is not None
    start, _ = _move_unnoticed(stack, s, 30)
    assert _stored(s).start == s.start  # the change was never notified
    stack.control("POST", "/_sandbox/subscriptions/lifecycle", {"subscriptionId": old["id"],
                                                               "event": "subscriptionRemoved"})
    new = stack.wait_for(lambda: (sub := _subscription_of(stack, organizer)) and sub["id"] != old["id"] and sub)
    assert new["lifecycleNotificationUrl"].endswith("/api/graph/lifecycle")
    stack.wait_for(_moved_to(s, start))


def test_missed_notifications_are_healed_by_the_missed_event(stack: Stack, fabrikam: dict[str, str]) -> None:
    """Notifications switched off while the event moves, then 'missed' -> the resync heals the session."""
    s = _book(stack, fabrikam)
    sub = _subscription_of(stack, fabrikam[ORGANIZER])
    assert sub is not None
    start, _ = _move_unnoticed(stack, s, 90)
    assert _stored(s).start == s.start
    # Earlier tests here resynced this mailbox moments ago; its 5-minute resync cooldown would book this one for
    # when it ends (core/services/reconcile.py RESYNC_COOLDOWN), so start from a mailbox not resynced lately.
    get_container().subscriptions.store.resync_failed(FABRIKAM, fabrikam[ORGANIZER])
    stack.control("POST", "/_sandbox/subscriptions/lifecycle", {"subscriptionId": sub["id"], "event": "missed"})
    stack.wait_for(_moved_to(s, start))


def test_reconciliation_heals_a_change_nothing_reported(stack: Stack, fabrikam: dict[str, str]) -> None:
    """A move made with notifications off and no lifecycle event is healed by the next reconciliation run."""
    s = _book(stack, fabrikam)
    start, _ = _move_unnoticed(stack, s, 120)
    assert _stored(s).start == s.start
    report = get_container().reconciler.run()
    assert report.sync.changed >= 1
    assert _moved_to(s, start)()
