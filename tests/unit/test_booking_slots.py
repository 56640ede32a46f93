"""Slot taken: request-time re-check (one getSchedule), claims against racing bookings, and the worker's re-check."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from core.domain.errors import SlotTaken, Throttled, TransientGraphError
from core.domain.integration import PairingPolicy
from core.domain.sessions import SessionStatus
from core.names import Queues
from core.services.booking import BookingRequest
from core.services.event_writer import WriteOutcome
from core.services.stores.sessions import SessionRepository
from tests.unit.test_booking_support import ALICE, BOB, CAROL_ID, END, ROOM, START, TENANT, World


@pytest.mark.parametrize("who", [ALICE, BOB, ROOM])
def test_booking_is_refused_at_once_when_the_organizer_partner_or_room_is_busy(who: str) -> None:
    """409 slot_taken naming who is busy; nothing stored or queued; one getSchedule call."""
    w = World()
    w.graph.add_busy(TENANT, who, START - timedelta(minutes=15), START + timedelta(minutes=15))
    w.graph.reset_calls()
    with pytest.raises(SlotTaken) as err:
        w.book(room=ROOM)
    assert err.value.code == "slot_taken" and err.value.details == {"busy": [who]}
    assert w.graph.call_count("get_schedule") == 1
    assert w.queues.pending(Queues.EVENT_WRITES) == []
    assert list(SessionRepository(w.tables).list_tenant(TENANT)) == []


def test_allow_conflicts_books_over_a_busy_slot_and_the_worker_writes_it() -> None:
    """allowConflicts skips both checks: the session is stored with the flag and its event written."""
    w = World()
    w.graph.add_busy(TENANT, BOB, START, END)
    w.graph.reset_calls()
    sid = w.book(allow_conflicts=True)
    assert w.graph.call_count("get_schedule") == 0
    assert w.drain() == [WriteOutcome.APPLIED]
    s = SessionRepository(w.tables).require(TENANT, sid).value
    assert s.status == SessionStatus.BOOKED and s.allow_conflicts


def test_graph_unable_to_answer_at_request_time_defers_the_check_to_the_worker() -> None:
    """Throttled or down at request time: 202 (accepted), and the worker checks before writing."""
    w = World()
    w.graph.fail_next("get_schedule", Throttled(retry_after=5))
    sid = w.book()
    w.graph.add_busy(TENANT, BOB, START, END)  # taken meanwhile
    assert w.drain() == [WriteOutcome.SLOT_TAKEN]
    s = SessionRepository(w.tables).require(TENANT, sid).value
    assert (s.status, s.failure_reason, s.event_id) == (SessionStatus.FAILED, "slot_taken", None)
    assert w.organizer_events() == []
    assert w.alerts() == []  # the user's calendar said no; the integration is fine


def test_worker_recheck_throttled_defers_like_any_call_and_then_books() -> None:
    """A throttled re-check re-queues the command without spending an attempt; the next run books."""
    w = World()
    w.book()
    w.graph.fail_next("get_schedule", Throttled(retry_after=2))
    assert w.drain(include_delayed=True) == [WriteOutcome.DEFERRED, WriteOutcome.APPLIED]
    assert len(w.organizer_events()) == 1


def test_worker_recheck_outage_defers_too() -> None:
    """A transient Graph outage with a retry hint during the re-check defers the command."""
    w = World()
    w.book()
    w.graph.fail_next("get_schedule", TransientGraphError(retry_after=3))
    assert w.drain(include_delayed=True) == [WriteOutcome.DEFERRED, WriteOutcome.APPLIED]


def test_two_racing_bookings_of_one_slot_book_at_most_one() -> None:
    """Both pass getSchedule (no event exists yet); the organizer's slot claim lets only one through."""
    w = World()
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def one() -> None:
        barrier.wait()
        try:
            w.book()
            outcomes.append("accepted")
        except SlotTaken:
            outcomes.append("slot_taken")

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["accepted"] + ["slot_taken"] * 5
    w.drain()
    assert len(w.organizer_events()) == 1


def test_a_second_booking_after_the_first_was_written_is_refused_by_free_busy() -> None:
    """Once the first event exists, getSchedule itself shows the organizer busy."""
    w = World()
    w.book()
    w.drain()
    with pytest.raises(SlotTaken) as err:
        w.booking.create(w.caller(), BookingRequest(start=START + timedelta(minutes=10), end=END, time_zone="UTC",
                                                    pairing_id="p1"))
    assert ALICE in err.value.details["busy"]


def test_a_cancelled_session_frees_its_slot() -> None:
    """After a cancel request the same slot books again (its claim lapses, its event is gone)."""
    w = World()
    first = w.book()
    w.drain()
    w.booking.cancel(w.caller(), first)
    w.drain()
    w.book()


def test_reschedule_ignores_the_session_s_own_event_and_checks_the_rest() -> None:
    """Moving by 15 minutes overlaps only its own event (allowed); onto the partner's meeting is 409."""
    w = World()
    sid = w.book()
    w.drain()
    moved = w.booking.reschedule(w.caller(), sid, START + timedelta(minutes=15), END + timedelta(minutes=15), "UTC")
    assert moved.start == START + timedelta(minutes=15)
    w.drain()
    w.graph.add_busy(TENANT, BOB, START + timedelta(hours=4), END + timedelta(hours=4))
    with pytest.raises(SlotTaken):
        w.booking.reschedule(w.caller(), sid, START + timedelta(hours=4), END + timedelta(hours=4), "UTC")
    again = w.booking.reschedule(w.caller(), sid, START + timedelta(hours=4), END + timedelta(hours=4), "UTC",
                                 allow_conflicts=True)
    assert again.allow_conflicts


def test_reschedule_onto_another_pending_booking_of_the_organizer_is_refused() -> None:
    """A move onto a slot another not-yet-written booking claimed loses, like a racing create."""
    w = World()
    first = w.book()
    w.drain()
    w.book(start=START + timedelta(hours=2), end=END + timedelta(hours=2))  # pending, no event yet
    with pytest.raises(SlotTaken) as err:
        w.booking.reschedule(w.caller(), first, START + timedelta(hours=2), END + timedelta(hours=2), "UTC")
    assert err.value.details == {"busy": [ALICE]}
    assert SessionRepository(w.tables).require(TENANT, first).value.start == START


def test_claims_are_per_organizer_and_the_worker_catches_a_shared_attendee() -> None:
    """Carol's booking with Bob at Alice's pending time is accepted (another organizer), but once Alice's
    invitation is in Bob's calendar the worker's re-check fails Carol's with slot_taken."""
    w = World()
    w.set_integration(policy=PairingPolicy.SAME_TENANT)
    alice_sid = w.book()
    carol_sid = w.booking.create(w.caller(CAROL_ID), BookingRequest(start=START, end=END, time_zone="UTC",
                                                                    partner=BOB)).session_id
    assert w.drain() == [WriteOutcome.APPLIED, WriteOutcome.SLOT_TAKEN]
    repo = SessionRepository(w.tables)
    assert repo.require(TENANT, alice_sid).value.status == SessionStatus.BOOKED
    assert repo.require(TENANT, carol_sid).value.failure_reason == "slot_taken"
