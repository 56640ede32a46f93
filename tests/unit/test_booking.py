"""Booking through the API side: validation, pairing policy, organizer rules, races and the queue."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from core.domain.calendar import ResponseType
from core.domain.commands import EventWriteCommand
from core.domain.errors import ConcurrencyConflict, Forbidden, NotFound, StorageUnavailable, ValidationFailed
from core.domain.integration import PairingPolicy
from core.domain.sessions import PendingOp, SessionStatus
from core.names import Queues
from core.services.booking import BookingRequest
from core.services.stores.codec import CHANGE_ATTEMPTS
from core.services.stores.pairings import Pairing, PairingRepository
from core.services.stores.sessions import SessionRepository
from tests.unit.test_booking_support import (
    ALICE,
    ALICE_ID,
    BOB,
    BOB_ID,
    CAROL,
    CAROL_ID,
    END,
    NOW,
    ROOM,
    START,
    SUBJECT,
    TENANT,
    World,
)


def test_booking_stores_a_pending_session_and_queues_one_create() -> None:
    """POST stores pending metadata (organizer, partner as attendee, room) and queues create v1."""
    w = World()
    sid = w.book(room=ROOM.upper())
    s = SessionRepository(w.tables).require(TENANT, sid).value
    assert (s.status, s.pending_op, s.version) == (SessionStatus.PENDING, PendingOp.CREATE, 1)
    assert (s.organizer_id, s.organizer_address) == (ALICE_ID, ALICE)
    assert [(a.address, a.user_id) for a in s.attendees] == [(BOB, BOB_ID)]
    assert s.room is not None and s.room.address == ROOM
    assert s.pairing_id == "p1"
    [msg] = w.queues.pending(Queues.EVENT_WRITES)
    cmd = EventWriteCommand.from_message(msg.body)
    assert (cmd.session_id, cmd.op, cmd.version) == (sid, PendingOp.CREATE, 1)


def test_subject_is_sealed_in_the_queue_and_never_stored() -> None:
    """The subject appears in no table entity and not readably in the queued message."""
    w = World()
    w.book()
    assert SUBJECT not in json.dumps([m.body for m in w.queues.pending(Queues.EVENT_WRITES)])
    for table in w.tables._tables:
        assert SUBJECT not in repr(w.tables.all(table))


def test_partner_may_be_named_by_address_within_the_pairing() -> None:
    """Under the registered policy a partner named by email books inside the caller's pairing."""
    w = World()
    s = w.booking.create(w.caller(BOB_ID), BookingRequest(start=START, end=END, time_zone="UTC", partner=ALICE))
    assert s.pairing_id == "p1" and s.organizer_address == BOB and s.attendees[0].user_id == ALICE_ID


def test_registered_policy_refuses_partners_outside_a_pairing() -> None:
    """Carol is a colleague but not paired with Alice: 403 under the registered policy."""
    w = World()
    with pytest.raises(Forbidden) as err:
        w.booking.create(w.caller(), BookingRequest(start=START, end=END, time_zone="UTC", partner=CAROL))
    assert err.value.code == "partner_not_paired"


def test_same_tenant_policy_allows_any_colleague_resolved_through_graph() -> None:
    """Under sameTenant any colleague Graph resolves can be booked, by email or object id."""
    w = World()
    w.set_integration(policy=PairingPolicy.SAME_TENANT)
    s = w.booking.create(w.caller(), BookingRequest(start=START, end=END, time_zone="UTC", partner=CAROL_ID))
    assert s.attendees[0].address == CAROL and s.pairing_id is None and s.organizer_address == ALICE


def test_same_tenant_policy_unknown_partner_is_422() -> None:
    """A partner Graph does not know is a 422 that names the field."""
    w = World()
    w.set_integration(policy=PairingPolicy.SAME_TENANT)
    with pytest.raises(ValidationFailed) as err:
        w.booking.create(w.caller(), BookingRequest(start=START, end=END, time_zone="UTC", partner="nobody@x.test"))
    assert err.value.code == "user_not_found"


def test_pairing_of_others_or_inactive_is_not_found() -> None:
    """Carol cannot book through Alice and Bob's pairing, and an unknown pairing is 404 as well."""
    w = World()
    with pytest.raises(NotFound):
        w.booking.create(w.caller(CAROL_ID), BookingRequest(start=START, end=END, time_zone="UTC", pairing_id="p1"))
    with pytest.raises(NotFound):
        w.booking.create(w.caller(), BookingRequest(start=START, end=END, time_zone="UTC", pairing_id="nope"))


@pytest.mark.parametrize(
    ("start", "end"),
    [(NOW - timedelta(hours=1), NOW), (START, START), (START, START + timedelta(hours=9))],
)
def test_times_in_the_past_or_out_of_bounds_are_refused(start, end) -> None:  # type: ignore[no-untyped-def]
    """End after start, 5 min to 8 h, not in the past: anything else is 422 and stores nothing."""
    w = World()
    with pytest.raises(ValidationFailed):
        w.book(start=start, end=end)
    assert w.queues.pending(Queues.EVENT_WRITES) == []


def test_unknown_room_is_refused() -> None:
    """A room address that is not one of the tenant's rooms is 422 room_not_found."""
    w = World()
    with pytest.raises(ValidationFailed) as err:
        w.book(room="kitchen@contoso.test")
    assert err.value.code == "room_not_found"


def test_disabled_integration_refuses_bookings() -> None:
    """An integration switched off takes no new bookings."""
    w = World()
    w.set_integration(enabled=False)
    with pytest.raises(Forbidden):
        w.book()


def test_attendee_reads_but_cannot_change_and_strangers_get_404() -> None:
    """Bob (attendee) may read and gets 403 on changes; Carol (stranger) gets 404 on everything."""
    w = World()
    sid = w.book()
    assert w.booking.get(w.caller(BOB_ID), sid).session_id == sid
    with pytest.raises(Forbidden):
        w.booking.cancel(w.caller(BOB_ID), sid)
    with pytest.raises(NotFound):
        w.booking.get(w.caller(CAROL_ID), sid)
    with pytest.raises(NotFound):
        w.booking.reschedule(w.caller(CAROL_ID), sid, START, END, "UTC")


def test_list_shows_sessions_to_both_participants_in_the_window() -> None:
    """GET /sessions lists the caller's sessions as organizer or attendee within [from, to)."""
    w = World()
    first = w.book()
    second = w.book(start=START + timedelta(days=2), end=END + timedelta(days=2))
    window = (START - timedelta(days=1), START + timedelta(days=3))
    assert [s.session_id for s in w.booking.list_for(w.caller(), *window)] == [first, second]
    assert [s.session_id for s in w.booking.list_for(w.caller(BOB_ID), *window)] == [first, second]
    assert w.booking.list_for(w.caller(CAROL_ID), *window) == []


def test_reschedule_and_cancel_queue_versioned_commands() -> None:
    """Each change bumps the version and queues a command carrying it."""
    w = World()
    sid = w.book()
    w.drain()
    w.booking.reschedule(w.caller(), sid, START + timedelta(hours=1), END + timedelta(hours=1), "UTC")
    w.booking.cancel(w.caller(), sid, "comment")
    cmds = [EventWriteCommand.from_message(m.body) for m in w.queues.pending(Queues.EVENT_WRITES)]
    assert [(c.op, c.version) for c in cmds] == [(PendingOp.RESCHEDULE, 2), (PendingOp.CANCEL, 3)]
    assert cmds[1].sealed and "comment" not in cmds[1].sealed


def test_a_change_racing_another_is_made_on_the_latest_version() -> None:
    """A cancel read before a racing reschedule saved: the cancel is re-read and made on the moved session
    (both commands queued, in version order), never a 409 for a change nobody asked to compare."""
    w = World()
    sid = w.book()
    w.drain()
    w.tables.before_session_update.append(
        lambda: w.booking.reschedule(w.caller(), sid, START + timedelta(hours=3), END + timedelta(hours=3), "UTC")
    )
    cancelled = w.booking.cancel(w.caller(), sid)
    assert cancelled.status == SessionStatus.CANCELLED or cancelled.pending_op == PendingOp.CANCEL
    cmds = [EventWriteCommand.from_message(m.body) for m in w.queues.pending(Queues.EVENT_WRITES)]
    assert [(c.op, c.version) for c in cmds] == [(PendingOp.RESCHEDULE, 2), (PendingOp.CANCEL, 3)]


def test_a_background_sync_between_read_and_save_does_not_fail_the_user_s_change() -> None:
    """Outlook's answer recorded by the notification worker while the organizer moves the session: the move
    is re-applied on the row with the answer, and the answer is kept."""
    w = World()
    sid = w.book()
    w.drain()
    repo = SessionRepository(w.tables)

    def bob_accepts() -> None:
        found = repo.require(TENANT, sid)
        s = found.value
        answered = replace(s, attendees=tuple(replace(a, response=ResponseType.ACCEPTED) for a in s.attendees))
        repo.save(answered, found.etag, previous=s)

    w.tables.before_session_update.append(bob_accepts)
    moved = w.booking.reschedule(w.caller(), sid, START + timedelta(hours=1), END + timedelta(hours=1), "UTC")
    assert moved.start == START + timedelta(hours=1)
    stored = repo.require(TENANT, sid).value
    assert stored.pending_op == PendingOp.RESCHEDULE and stored.start == START + timedelta(hours=1)
    assert [a.response for a in stored.attendees] == [ResponseType.ACCEPTED]


def test_a_session_that_keeps_changing_gets_409_after_a_few_attempts() -> None:
    """Re-reading is bounded: a row changed before every save is ConcurrencyConflict (409) after four tries."""
    w = World()
    sid = w.book()
    w.drain()
    repo = SessionRepository(w.tables)

    def touch() -> None:  # another writer's save (its own update must not run the hooks still queued)
        queued = list(w.tables.before_session_update)
        w.tables.before_session_update.clear()
        found = repo.require(TENANT, sid)
        repo.save(replace(found.value, updated_at=found.value.updated_at), found.etag, previous=found.value)
        w.tables.before_session_update.extend(queued)

    w.tables.before_session_update.extend([touch] * CHANGE_ATTEMPTS)
    with pytest.raises(ConcurrencyConflict):
        w.booking.cancel(w.caller(), sid)
    assert w.tables.before_session_update == []
    assert repo.require(TENANT, sid).value.pending_op is None


def test_queue_outage_marks_a_new_session_failed_and_rolls_back_a_change() -> None:
    """No silent limbo: a booking that cannot be queued is failed; a change that cannot be queued is undone."""
    w = World()
    w.queues.fail_sends = True
    with pytest.raises(StorageUnavailable):
        w.book()
    [stored] = list(SessionRepository(w.tables).list_tenant(TENANT))
    assert stored.status == SessionStatus.FAILED and stored.failure_reason
    w.queues.fail_sends = False
    sid = w.book(start=START + timedelta(days=1), end=END + timedelta(days=1))
    w.drain()
    w.queues.fail_sends = True
    with pytest.raises(StorageUnavailable):
        w.booking.cancel(w.caller(), sid)
    s = SessionRepository(w.tables).require(TENANT, sid).value
    assert s.status == SessionStatus.BOOKED and s.pending_op is None and s.version == 1


def _hybrid_world(hybrid: str) -> World:
    """Alice and Bob paired; an access test found ``hybrid`` (Alice or Bob) on an on-premises mailbox."""
    from core.domain.access_test import AccessReason, UserResult
    from core.services.stores.access_tests import UnreachableMailboxes

    w = World()
    results = [UserResult(ALICE_ID, ALICE, AccessReason.ACCESSIBLE), UserResult(BOB_ID, BOB, AccessReason.ACCESSIBLE)]
    results = [UserResult(r.user_id, r.user_principal_name, AccessReason.MAILBOX_ON_PREMISES_OR_UNLICENSED)
               if r.user_id == hybrid else r for r in results]
    UnreachableMailboxes(w.tables).record(TENANT, results, "test1", NOW)
    return w


@pytest.mark.parametrize(("hybrid", "role"), [(ALICE_ID, "organizer"), (BOB_ID, "attendee")])
def test_booking_a_mailbox_the_access_test_found_on_premises_is_refused_at_request_time(hybrid: str, role: str) -> None:
    """An organizer or partner whose mailbox is hybrid/on-premises gets 422 mailbox_on_premises_or_unlicensed
    naming who, and nothing is stored or queued (free/busy may answer for them; event writes never would)."""
    from core.domain.errors import MailboxUnavailable

    w = _hybrid_world(hybrid)
    with pytest.raises(MailboxUnavailable) as err:
        w.book()
    assert (err.value.http_status, err.value.code) == (422, "mailbox_on_premises_or_unlicensed")
    assert err.value.details == {"role": role, "userId": hybrid}
    assert w.queues.pending(Queues.EVENT_WRITES) == []


def test_a_later_access_test_that_reaches_the_mailbox_lifts_the_refusal() -> None:
    """Once a mailbox is migrated and a test reaches it, booking with it works again."""
    from core.domain.access_test import AccessReason, UserResult
    from core.services.stores.access_tests import UnreachableMailboxes

    w = _hybrid_world(BOB_ID)
    UnreachableMailboxes(w.tables).record(TENANT, [UserResult(BOB_ID, BOB, AccessReason.ACCESSIBLE)], "test2", NOW)
    assert w.book()


def test_worker_meeting_an_on_premises_organizer_fails_the_session_with_a_clear_reason() -> None:
    """Without an access-test record, the worker's MailboxNotEnabledForRESTAPI ends the session failed with a
    failureReason that says the mailbox is on premises/hybrid or unlicensed (not a generic error)."""
    from tests.support.fake_graph import HYBRID

    w = World()
    w.graph.add_user(TENANT, "hank@contoso.test", kind=HYBRID, user_id="a0000000-0000-4000-8000-00000000000e")
    PairingRepository(w.tables).save(
        Pairing(TENANT, "p2", "a0000000-0000-4000-8000-00000000000e", "hank@contoso.test", BOB_ID, BOB, True, NOW))
    sid = w.booking.create(w.caller("a0000000-0000-4000-8000-00000000000e"),
                           BookingRequest(start=START, end=END, time_zone="UTC", pairing_id="p2")).session_id
    w.drain()
    s = SessionRepository(w.tables).require(TENANT, sid).value
    assert s.status is SessionStatus.FAILED
    assert s.failure_reason is not None and "on-premises or hybrid" in s.failure_reason
