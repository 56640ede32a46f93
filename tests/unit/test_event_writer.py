"""The event-write worker: exactly one Outlook event per session under redelivery, crashes, races and throttling."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from core.domain.calendar import ResponseType
from core.domain.commands import EventWriteCommand
from core.domain.errors import (
    ConsentMissing,
    InvalidMessage,
    MailboxUnavailable,
    StorageUnavailable,
    Throttled,
    TransientGraphError,
)
from core.domain.sessions import ChangeSource, PendingOp, SessionStatus
from core.names import Queues
from core.services.event_writer import DEFAULT_SUBJECT, REASON_POISON, WriteOutcome, choose_provider, seal_texts
from core.services.stores.sessions import SessionRepository
from tests.unit.test_booking_support import ALICE, BOB, END, ROOM, START, SUBJECT, TENANT, World


def _session(w: World, sid: str):  # type: ignore[no-untyped-def]
    return SessionRepository(w.tables).require(TENANT, sid).value


def _subjects(w: World) -> list[str | None]:
    from core.domain.calendar import GraphIdentity

    view = w.graph.calendar_view(GraphIdentity(TENANT), ALICE, START - timedelta(days=1), END + timedelta(days=1),
                                 include_subject=True)
    return [item.subject for item in view]


# --- provider choice ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("allowed", "expected"),
    [
        (("teamsForBusiness", "skypeForBusiness"), "teamsForBusiness"),
        (("skypeForBusiness", "teamsForBusiness"), "teamsForBusiness"),
        (("skypeForBusiness",), "skypeForBusiness"),
        (("skypeForConsumer",), None),
        ((), None),
    ],
)
def test_teams_is_preferred_then_skype_for_business_then_no_link(
    allowed: tuple[str, ...], expected: str | None
) -> None:
    """The provider comes from the calendar's allowed list: Teams first, Skype for Business next, else none."""
    assert choose_provider(allowed) == expected


# --- the happy path ----------------------------------------------------------------------


def test_booking_creates_one_event_with_partner_room_and_teams_link() -> None:
    """The organizer's calendar gets one event: partner required, room as resource, Teams link, session booked."""
    w = World()
    sid = w.book(room=ROOM)
    assert w.drain() == [WriteOutcome.APPLIED]
    [event] = w.organizer_events()
    assert event.transaction_id == sid
    assert {(a.address, a.is_resource) for a in event.attendees} == {(BOB, False), (ROOM, True)}
    assert (event.start, event.end) == (START, END)
    s = _session(w, sid)
    assert s.status == SessionStatus.BOOKED and s.pending_op is None
    assert s.event_id == event.event_id and s.ical_uid == event.ical_uid
    assert s.join_url and s.join_url == event.join_url and s.online_provider == "teamsForBusiness"
    assert s.room is not None and s.room.response == ResponseType.NOT_RESPONDED
    assert SessionRepository(w.tables).by_event(TENANT, event.event_id) is not None
    assert _subjects(w) == [SUBJECT]


def test_calendar_without_online_providers_books_without_a_link() -> None:
    """No provider allowed: the event is booked without a link and the session keeps online_provider None."""
    w = World()
    w.graph.add_user(TENANT, "dora@contoso.test", user_id="a0000000-0000-4000-8000-0000000000d0", providers=())
    from core.services.stores.pairings import Pairing, PairingRepository

    PairingRepository(w.tables).save(Pairing(TENANT, "p2", "a0000000-0000-4000-8000-0000000000d0",
                                             "dora@contoso.test", "a0000000-0000-4000-8000-000000000002", BOB))
    from core.services.booking import BookingRequest, online_meeting_unavailable

    sid = w.booking.create(w.caller("a0000000-0000-4000-8000-0000000000d0"),
                           BookingRequest(start=START, end=END, time_zone="UTC", pairing_id="p2")).session_id
    w.drain()
    s = _session(w, sid)
    assert s.status == SessionStatus.BOOKED and s.join_url is None and s.online_provider is None
    assert online_meeting_unavailable(s)


def test_missing_or_unreadable_subject_uses_the_template() -> None:
    """A command whose sealed subject does not open still books, with the subject template."""
    w = World()
    sid = w.book(subject=None)
    [msg] = w.queues.take(Queues.EVENT_WRITES)
    tampered = {**msg.body, "sealed": seal_texts(w.sealer, TENANT, "another-session", subject="x")}
    assert w.writer.handle(tampered) == WriteOutcome.APPLIED
    assert _session(w, sid).status == SessionStatus.BOOKED
    assert _subjects(w) == [DEFAULT_SUBJECT]


def test_first_booking_calls_the_subscription_hook_once_per_organizer() -> None:
    """After an organizer's first booking the subscription hook runs; later bookings do not call it again."""
    w = World()
    w.book()
    w.book(start=START + timedelta(days=1), end=END + timedelta(days=1))
    w.drain()
    assert w.hooked == [(TENANT, "a0000000-0000-4000-8000-000000000001")]


def test_the_organizers_mailbox_is_watched_before_the_event_is_created() -> None:
    """The subscription hook runs before the Graph create, so an Outlook change right after creation is notified."""
    w = World()
    events_when_hooked: list[int] = []
    w.writer.on_first_booking = lambda t, u: events_when_hooked.append(w.graph.call_count("create_event"))
    w.book()
    w.drain()
    assert events_when_hooked == [0]
    assert w.graph.call_count("create_event") == 1


# --- at least once, without duplicates ---------------------------------------------------


def test_redelivered_command_changes_nothing() -> None:
    """The same create delivered twice books once: the second delivery is stale and makes no Graph call."""
    w = World()
    w.book()
    [msg] = w.queues.take(Queues.EVENT_WRITES)
    assert w.writer.handle(msg.body) == WriteOutcome.APPLIED
    w.graph.reset_calls()
    assert w.writer.handle(msg.body, dequeue_count=2) == WriteOutcome.STALE
    assert w.graph.call_count() == 0
    assert len(w.organizer_events()) == 1


def test_crash_between_create_and_save_does_not_duplicate_the_event() -> None:
    """Graph created the event but the table write failed: the retry finds it by transactionId and records it."""
    w = World()
    sid = w.book()
    [msg] = w.queues.take(Queues.EVENT_WRITES)
    w.tables.fail_session_updates = 1
    with pytest.raises(StorageUnavailable):
        w.writer.handle(msg.body, dequeue_count=1)
    assert _session(w, sid).status == SessionStatus.PENDING
    assert w.writer.handle(msg.body, dequeue_count=2) == WriteOutcome.APPLIED
    assert w.graph.call_count("create_event") == 1
    assert w.graph.call_count("find_event_by_transaction_id") == 1
    [event] = w.organizer_events()
    assert _session(w, sid).event_id == event.event_id


def test_first_attempt_skips_the_transaction_lookup() -> None:
    """A first delivery cannot have created anything, so it costs no calendar search."""
    w = World()
    w.book()
    w.drain()
    assert w.graph.call_count("find_event_by_transaction_id") == 0
    assert w.graph.call_count("create_event") == 1


def test_retry_after_a_timeout_that_did_create_makes_no_second_event() -> None:
    """Graph timed out after creating: the retried attempt finds that event, never a second one."""
    w = World()
    sid = w.book()
    [msg] = w.queues.take(Queues.EVENT_WRITES)
    w.writer.handle(msg.body)  # created and recorded...
    s = _session(w, sid)
    # ...but pretend the record was lost, as if the answer never came back
    from dataclasses import replace

    repo = SessionRepository(w.tables)
    read = repo.require(TENANT, sid)
    repo.save(replace(s, status=SessionStatus.PENDING, pending_op=PendingOp.CREATE, event_id=None), read.etag)
    assert w.writer.handle(msg.body, dequeue_count=3) == WriteOutcome.APPLIED
    assert len(w.organizer_events()) == 1 and w.graph.call_count("create_event") == 1


def test_two_workers_with_the_same_command_make_one_event() -> None:
    """Two workers racing on one command: Graph's transactionId dedupes, the ETag loser sees it is done."""
    w = World()
    sid = w.book()
    [msg] = w.queues.take(Queues.EVENT_WRITES)
    other = w.new_writer()
    outcomes: list[WriteOutcome] = []
    w.tables.before_session_update.append(lambda: outcomes.append(other.handle(msg.body)))
    outcomes.append(w.writer.handle(msg.body))
    assert sorted(outcomes) == sorted([WriteOutcome.APPLIED, WriteOutcome.MERGED])
    assert len(w.organizer_events()) == 1
    assert _session(w, sid).status == SessionStatus.BOOKED


def test_cancel_racing_the_create_cancels_the_event_it_made() -> None:
    """A cancel that lands while the create is writing: the event id is merged, then the cancel removes it."""
    w = World()
    sid = w.book()
    [create] = w.queues.take(Queues.EVENT_WRITES)
    w.tables.before_session_update.append(lambda: w.booking.cancel(w.caller(), sid))
    assert w.writer.handle(create.body) == WriteOutcome.MERGED
    assert _session(w, sid).event_id is not None
    assert w.drain() == [WriteOutcome.APPLIED]
    s = _session(w, sid)
    assert s.status == SessionStatus.CANCELLED and s.pending_op is None
    assert w.organizer_events() == []


def test_cancel_that_ran_before_the_late_create_leaves_no_orphan() -> None:
    """The cancel found nothing and finished first; the create that then reached Outlook cancels its own event."""
    w = World()
    sid = w.book()
    [create] = w.queues.take(Queues.EVENT_WRITES)
    real_create = w.graph.create_event

    def cancel_then_create(*args: Any, **kwargs: Any) -> Any:
        # The create passed its checks; before its request reaches Outlook the organizer cancels
        # and the cancel command runs to the end (it finds nothing to cancel yet).
        w.booking.cancel(w.caller(), sid)
        w.drain()
        assert _session(w, sid).status == SessionStatus.CANCELLED
        return real_create(*args, **kwargs)

    w.graph.create_event = cancel_then_create  # type: ignore[method-assign]
    assert w.writer.handle(create.body) == WriteOutcome.MERGED
    assert w.organizer_events() == []
    s = _session(w, sid)
    assert s.status == SessionStatus.CANCELLED and s.event_id is not None


def test_reschedule_before_booking_uses_the_first_command_with_the_new_times() -> None:
    """A reschedule while still pending: the original create books at the new times and keeps its subject."""
    w = World()
    sid = w.book()
    w.booking.reschedule(w.caller(), sid, START + timedelta(hours=2), END + timedelta(hours=2), "Europe/Paris")
    outcomes = w.drain()
    assert outcomes == [WriteOutcome.APPLIED, WriteOutcome.STALE]
    [event] = w.organizer_events()
    assert event.start == START + timedelta(hours=2)
    assert _subjects(w) == [SUBJECT]
    assert _session(w, sid).status == SessionStatus.BOOKED


# --- reschedule and cancel ---------------------------------------------------------------


def test_reschedule_moves_the_event_and_cancel_removes_it_with_comment() -> None:
    """Reschedule patches start/end in Outlook; cancel uses the organizer's cancel action."""
    w = World()
    sid = w.book()
    w.drain()
    new_start = START + timedelta(days=1)
    w.booking.reschedule(w.caller(), sid, new_start, new_start + timedelta(minutes=30), "UTC")
    assert w.drain() == [WriteOutcome.APPLIED]
    [event] = w.organizer_events()
    assert event.start == new_start
    assert _session(w, sid).status == SessionStatus.BOOKED
    w.booking.cancel(w.caller(), sid, "Sorry, something came up")
    assert w.drain() == [WriteOutcome.APPLIED]
    assert w.organizer_events() == []
    copy = w.graph.events_of(TENANT, BOB)
    assert len(copy) == 1 and copy[0].is_cancelled
    assert _session(w, sid).status == SessionStatus.CANCELLED


def test_cancel_of_an_event_already_gone_in_outlook_is_cancelled_not_failed() -> None:
    """The organizer deleted the event in Outlook first: the cancel still ends cancelled."""
    w = World()
    sid = w.book()
    w.drain()
    w.graph.delete_event_in_outlook(TENANT, ALICE, _session(w, sid).event_id or "")
    w.booking.cancel(w.caller(), sid)
    assert w.drain() == [WriteOutcome.APPLIED]
    assert _session(w, sid).status == SessionStatus.CANCELLED


def test_reschedule_of_an_event_deleted_in_outlook_ends_cancelled_from_outlook() -> None:
    """Nothing to move any more: the session is cancelled, with Outlook as the source."""
    w = World()
    sid = w.book()
    w.drain()
    w.graph.delete_event_in_outlook(TENANT, ALICE, _session(w, sid).event_id or "")
    w.booking.reschedule(w.caller(), sid, START + timedelta(hours=1), END + timedelta(hours=1), "UTC")
    w.drain()
    s = _session(w, sid)
    assert s.status == SessionStatus.CANCELLED and s.source == ChangeSource.OUTLOOK


def test_cancel_before_the_create_ran_makes_no_event() -> None:
    """Cancelled while pending: the create is stale, the cancel finds nothing in Outlook and ends cancelled."""
    w = World()
    sid = w.book()
    w.booking.cancel(w.caller(), sid)
    assert w.drain() == [WriteOutcome.STALE, WriteOutcome.APPLIED]
    assert w.graph.call_count("create_event") == 0
    assert _session(w, sid).status == SessionStatus.CANCELLED


# --- failures ----------------------------------------------------------------------------


def test_throttled_command_is_requeued_after_retry_after_without_spending_an_attempt() -> None:
    """Throttled: the same command goes back on the queue, hidden for Retry-After; nothing is raised."""
    w = World()
    sid = w.book()
    w.graph.throttle(retry_after=42)
    assert w.drain() == [WriteOutcome.DEFERRED]
    [again] = w.queues.pending(Queues.EVENT_WRITES)
    assert again.visible_at == w.clock.now() + timedelta(seconds=42)
    assert again.body["version"] == 1 and again.body["deferrals"] == 1
    w.graph.stop_throttling()
    w.clock.advance(seconds=42)
    assert w.drain() == [WriteOutcome.APPLIED]
    assert len(w.organizer_events()) == 1
    assert _session(w, sid).status == SessionStatus.BOOKED


def test_outage_with_a_retry_hint_waits_on_the_queue_with_growing_delays() -> None:
    """Graph or Entra ID down (TransientGraphError with a hint): deferred, not an attempt spent; delays grow."""
    w = World()
    sid = w.book()
    w.graph.fail_always("get_calendar", lambda: TransientGraphError(retry_after=1.0))
    delays = []
    for _ in range(4):
        assert w.drain() == [WriteOutcome.DEFERRED]
        [again] = w.queues.pending(Queues.EVENT_WRITES)
        delays.append((again.visible_at - w.clock.now()).total_seconds())
        w.clock.advance(seconds=delays[-1])
    assert delays == sorted(delays) and delays[-1] > delays[0]
    assert _session(w, sid).status == SessionStatus.PENDING
    w.graph.clear_faults()
    assert w.drain() == [WriteOutcome.APPLIED]
    assert _session(w, sid).status == SessionStatus.BOOKED and len(w.organizer_events()) == 1


def test_transient_error_raises_for_a_retry_and_last_attempt_marks_failed_and_alerts() -> None:
    """A 5xx is retried by the host; on the last attempt the session fails visibly and the owner is alerted."""
    w = World()
    sid = w.book()
    [msg] = w.queues.take(Queues.EVENT_WRITES)
    w.graph.fail_always("get_calendar", TransientGraphError)
    for attempt in range(1, 5):
        with pytest.raises(TransientGraphError):
            w.writer.handle(msg.body, dequeue_count=attempt)
        assert _session(w, sid).status == SessionStatus.PENDING
    with pytest.raises(TransientGraphError):
        w.writer.handle(msg.body, dequeue_count=5)
    s = _session(w, sid)
    assert s.status == SessionStatus.FAILED and s.failure_reason
    assert w.alerts() == ["session_failed"]


@pytest.mark.parametrize("error", [MailboxUnavailable, ConsentMissing])
def test_permanent_refusal_fails_at_once_with_a_readable_reason(error: type[Exception]) -> None:
    """An on-premises mailbox or revoked consent cannot succeed on retry: failed now, owner alerted."""
    w = World()
    sid = w.book()
    w.graph.fail_always("create_event", error)  # type: ignore[arg-type]
    assert w.drain() == [WriteOutcome.FAILED]
    s = _session(w, sid)
    assert s.status == SessionStatus.FAILED
    assert s.failure_reason and s.failure_reason.startswith("Outlook refused the change")
    assert w.alerts() == ["session_failed"]


def test_poison_message_marks_the_session_failed_and_alerts() -> None:
    """A command in the poison queue ends the session failed with a reason, and the owner hears of it."""
    w = World()
    sid = w.book()
    [msg] = w.queues.take(Queues.EVENT_WRITES)
    w.writer.handle_poison(msg.body)
    s = _session(w, sid)
    assert s.status == SessionStatus.FAILED and s.failure_reason == REASON_POISON
    assert w.alerts() == ["poison_message"]


def test_disabled_integration_fails_the_session_instead_of_writing() -> None:
    """Commands of a tenant whose integration was turned off write nothing and say why."""
    w = World()
    sid = w.book()
    w.set_integration(enabled=False)
    assert w.drain() == [WriteOutcome.FAILED]
    assert w.graph.call_count("create_event") == 0
    assert _session(w, sid).status == SessionStatus.FAILED


def test_unreadable_command_is_refused_as_an_invalid_message() -> None:
    """A message that is not an event-write command raises ``InvalidMessage`` (the queue's poison policy)."""
    w = World()
    with pytest.raises(InvalidMessage):
        w.writer.handle({"kind": "event_write", "tenantId": TENANT})
    with pytest.raises(InvalidMessage):
        w.writer.handle({"kind": "event_write", "tenantId": TENANT, "sessionId": "s", "version": 1, "op": "move"})
    assert w.queues.take(Queues.EVENT_WRITES) == []


def test_throttling_forever_eventually_spends_attempts() -> None:
    """Deferrals are bounded: a command throttled too often falls back to ordinary retries."""
    w = World()
    w.book()
    [msg] = w.queues.take(Queues.EVENT_WRITES)
    w.graph.fail_always("get_calendar", lambda: Throttled(retry_after=1))
    with pytest.raises(Throttled):
        w.writer.handle({**msg.body, "deferrals": 10_000})


def test_command_round_trips_through_its_message() -> None:
    """An EventWriteCommand survives to_message/from_message unchanged."""
    cmd = EventWriteCommand(TENANT, "s1", PendingOp.CANCEL, 3, "cid", "v1.abc", 2)
    assert EventWriteCommand.from_message(cmd.to_message()) == cmd
