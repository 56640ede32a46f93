"""Group sessions: attendees (colleagues and guests, required or optional), any-of rooms and hosts, the rules."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from core.domain.access_test import AccessReason, UserResult
from core.domain.assignment import RoomChoice
from core.domain.calendar import ResponseType
from core.domain.errors import Forbidden, MailboxUnavailable, SlotTaken, ValidationFailed
from core.domain.integration import PairingPolicy
from core.domain.product_events import EventType
from core.domain.sessions import AttendeeType, Session, SessionStatus
from core.names import Queues, Tables
from core.ports import Entity
from core.services.authz import ROLE_INTEGRATION_ADMIN, Caller
from core.services.booking import BookingRequest
from core.services.notifications import SessionSync
from core.services.party import AttendeeRequest
from core.services.stores.access_tests import UnreachableMailboxes
from core.services.stores.outbox import Outbox
from core.services.stores.sessions import SessionRepository
from tests.log_guard import sentinel
from tests.unit.test_booking_support import (
    ALICE,
    ALICE_ID,
    BOB,
    BOB_ID,
    CAROL,
    CAROL_ID,
    END,
    START,
    TENANT,
    World,
)

DAVE_ID = "a0000000-0000-4000-8000-000000000004"
ERIN_ID = "a0000000-0000-4000-8000-000000000005"
FRANK_ID = "a0000000-0000-4000-8000-000000000006"
DAVE, ERIN, FRANK = "dave@contoso.test", "erin@contoso.test", "frank@contoso.test"
GUEST = "Candidate.Person@Example.org"
GUEST_NAME = sentinel("Guest display name: Jordan Candidate")
BIG, SMALL, MID = "room.big@contoso.test", "room.small@contoso.test", "room.mid@contoso.test"


def group_world(policy: PairingPolicy = PairingPolicy.SAME_TENANT) -> World:
    """Alice, Bob, Carol (from World) plus Dave, Erin, Frank and three rooms of 12, 4 and 6 seats."""
    w = World()
    for uid, address in ((DAVE_ID, DAVE), (ERIN_ID, ERIN), (FRANK_ID, FRANK)):
        w.graph.add_user(TENANT, address, user_id=uid)
    for address, name, seats in ((BIG, "Big", 12), (SMALL, "Small", 4), (MID, "Mid", 6)):
        w.graph.add_room(TENANT, address, name, capacity=seats)
    w.set_integration(policy=policy)
    return w


def person(ref: str, kind: AttendeeType = AttendeeType.REQUIRED, name: str | None = None) -> AttendeeRequest:
    return AttendeeRequest(user=None, email=ref, name=name, type=kind) if "@" in ref and not ref.endswith(
        "contoso.test") else AttendeeRequest(user=ref, type=kind, name=name)


def book(w: World, caller: Caller | None = None, offset: timedelta = timedelta(0), **kw: Any) -> Session:
    request = BookingRequest(start=START + offset, end=END + offset, time_zone="Europe/Paris",
                             subject="Panel interview", **kw)
    return w.booking.create(caller or w.caller(), request)


def stored(w: World, sid: str) -> Session:
    return SessionRepository(w.tables).require(TENANT, sid).value


def event_of(w: World, s: Session) -> str:
    [event] = [e for e in w.graph.events_of(TENANT, ALICE) if e.transaction_id == s.session_id]
    return event.event_id


# --- attendees ---------------------------------------------------------------------------------------


def test_a_panel_with_a_guest_invites_everyone_with_their_type_and_the_guest_name_reaches_only_outlook() -> None:
    """Required and optional colleagues and a named guest: stored with types, sent to Outlook with them."""
    w = group_world()
    s = book(w, attendees=(person(CAROL), person(DAVE, AttendeeType.OPTIONAL), person(GUEST, name=GUEST_NAME)))
    assert [(a.address, a.user_id, a.type, a.guest) for a in s.attendees] == [
        (CAROL, CAROL_ID, AttendeeType.REQUIRED, False), (DAVE, DAVE_ID, AttendeeType.OPTIONAL, False),
        (GUEST, None, AttendeeType.REQUIRED, True)]
    assert s.pairing_id is None and s.organizer_address == ALICE
    w.drain()
    assert stored(w, s.session_id).status is SessionStatus.BOOKED
    assert w.graph.attendees_of(TENANT, ALICE, event_of(w, stored(w, s.session_id))) == [
        (CAROL, "required", None), (GUEST, "required", GUEST_NAME), (DAVE, "optional", None)]


def test_the_guest_name_is_never_stored_and_travels_sealed() -> None:
    """The display name appears in no table entity and not readably in the queued command."""
    w = group_world()
    book(w, attendees=(person(GUEST, name=GUEST_NAME),))
    assert GUEST_NAME not in json.dumps([m.body for m in w.queues.pending(Queues.EVENT_WRITES)])
    for table in w.tables._tables:
        assert GUEST_NAME not in repr(w.tables.all(table))
    w.drain()
    for table in w.tables._tables:
        assert GUEST_NAME not in repr(w.tables.all(table))


def test_a_colleague_named_by_email_is_a_colleague_not_a_guest() -> None:
    """An address the directory knows is that colleague (their id kept, their calendar checked)."""
    w = group_world()
    s = book(w, attendees=(AttendeeRequest(email=CAROL.upper()),))
    [a] = s.attendees
    assert (a.address, a.user_id, a.guest) == (CAROL, CAROL_ID, False)


def test_the_legacy_pair_body_is_one_required_attendee_stored_as_before() -> None:
    """pairingId still books one required colleague, and its row keeps the pre-group attendee format."""
    w = group_world()
    sid = w.book()
    raw = w.tables.get(Tables.SESSIONS, TENANT, f"s~{sid}")
    assert raw is not None and json.loads(str(raw.data["attendees"])) == [[BOB, "notResponded", BOB_ID]]
    assert raw.data.get("anyOf") is None


def test_rows_written_before_groups_read_as_required_colleagues() -> None:
    """A stored row with three-element attendees (and no anyOf) reads back as required, non-guest attendees."""
    w = group_world()
    sid = w.book()
    raw = w.tables.get(Tables.SESSIONS, TENANT, f"s~{sid}")
    assert raw is not None
    data = {k: v for k, v in raw.data.items() if k != "anyOf"}
    data["attendees"] = json.dumps([[BOB, "accepted", BOB_ID], [CAROL, "declined", CAROL_ID]])
    w.tables.upsert(Tables.SESSIONS, Entity(TENANT, f"s~{sid}", data))
    s = stored(w, sid)
    assert [(a.address, a.response, a.type, a.guest, a.host) for a in s.attendees] == [
        (BOB, ResponseType.ACCEPTED, AttendeeType.REQUIRED, False, False),
        (CAROL, ResponseType.DECLINED, AttendeeType.REQUIRED, False, False)]
    assert s.any_of is None


# --- bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("attendees", "code"), [
    ([person(f"guest{n}@example.org") for n in range(51)], "too_many_attendees"),
    ([AttendeeRequest(email="not-an-address")], "invalid_attendee_email"),
    ([AttendeeRequest(email="x@nodot")], "invalid_attendee_email"),
    ([person(CAROL), AttendeeRequest(user=CAROL_ID)], "duplicate_attendee"),
    ([person(GUEST), AttendeeRequest(email=GUEST.lower())], "duplicate_attendee"),
    ([AttendeeRequest(user=ALICE_ID)], "organizer_as_attendee"),
    ([AttendeeRequest(email=ALICE.upper())], "organizer_as_attendee"),
    ([AttendeeRequest(user="nobody@contoso.test")], "user_not_found"),
    ([AttendeeRequest(email=BIG)], "user_not_found"),  # a room mailbox is not a person (disabled account)
])
def test_bad_attendees_are_422_with_a_clear_code(attendees: list[AttendeeRequest], code: str) -> None:
    """Too many, a bad address, the same person twice (id or email, any case), the organizer, an unknown colleague,
    a room named as a person."""
    w = group_world()
    with pytest.raises(ValidationFailed) as err:
        book(w, attendees=tuple(attendees))
    assert err.value.code == code
    assert w.queues.pending(Queues.EVENT_WRITES) == []


def test_fifty_attendees_are_accepted() -> None:
    """The limit itself is allowed: 50 guests besides the organizer."""
    w = group_world()
    s = book(w, attendees=tuple(person(f"guest{n}@example.org") for n in range(50)))
    assert len(s.attendees) == 50 and all(a.guest for a in s.attendees)


@pytest.mark.parametrize(("kw", "code"), [
    ({"hosts": tuple(f"h{n}@contoso.test" for n in range(11))}, "too_many_hosts"),
    ({"hosts": (CAROL,), "attendees": (person(CAROL_ID),)}, "duplicate_attendee"),
    ({"hosts": (ALICE,)}, "organizer_as_attendee"),
    ({"attendees": (person(CAROL),), "rooms": (BIG, BIG.upper())}, "duplicate_room"),
    ({"attendees": (person(CAROL),), "rooms": ("room.none@contoso.test",)}, "room_not_found"),
    ({"attendees": (person(CAROL),), "rooms": (SMALL,), "capacity": 5}, "no_room_fits"),
    ({"attendees": (person(CAROL),), "rooms": tuple(f"r{n}@contoso.test" for n in range(21))}, "too_many_rooms"),
])
def test_bad_any_of_requests_are_422_with_a_clear_code(kw: dict[str, Any], code: str) -> None:
    """Hosts and rooms: limits, duplicates (across attendees too), the organizer, unknown or too small rooms."""
    w = group_world()
    with pytest.raises(ValidationFailed) as err:
        book(w, **kw)
    assert err.value.code == code


# --- the pairing policy -------------------------------------------------------------------------------


def test_registered_policy_refuses_unpaired_colleagues_and_guests_from_a_user() -> None:
    """Under registered a user may group only their pairing partners; guests need the product or an admin."""
    w = group_world(PairingPolicy.REGISTERED)
    with pytest.raises(Forbidden) as err:
        book(w, attendees=(person(BOB_ID), person(CAROL)))
    assert err.value.code == "attendee_not_paired" and err.value.details["attendees"] == [CAROL]
    with pytest.raises(Forbidden) as err:
        book(w, attendees=(person(BOB_ID), person(GUEST)))
    assert err.value.code == "guests_not_allowed"
    with pytest.raises(Forbidden) as err:
        book(w, hosts=(CAROL, BOB))
    assert err.value.code == "attendee_not_paired"
    s = book(w, attendees=(person(BOB_ID, AttendeeType.OPTIONAL),))
    assert s.attendees[0].user_id == BOB_ID


def test_registered_policy_lets_the_product_server_and_admins_book_any_group() -> None:
    """The product's server acting for Alice, and a tenant admin, may invite anyone (guests too)."""
    w = group_world(PairingPolicy.REGISTERED)
    app = Caller(TENANT, ALICE_ID, app_id="product", acting_app="product")
    s = book(w, app, attendees=(person(CAROL), person(GUEST)))
    assert [a.guest for a in s.attendees] == [False, True]
    admin = Caller(TENANT, ALICE_ID, roles=frozenset({ROLE_INTEGRATION_ADMIN}))
    s = book(w, admin, offset=timedelta(hours=2), attendees=(person(DAVE),))
    assert s.attendees[0].user_id == DAVE_ID
    s = book(w, app, offset=timedelta(hours=4), partner=CAROL)  # the single-partner body follows the same rule
    assert s.attendees[0].user_id == CAROL_ID


def test_same_tenant_policy_allows_guests_from_users() -> None:
    """Under sameTenant any user may invite colleagues and guests."""
    w = group_world(PairingPolicy.SAME_TENANT)
    s = book(w, attendees=(person(GUEST),))
    assert s.attendees[0].guest


@pytest.mark.parametrize("role", ["attendee", "host"])
def test_an_attendee_or_host_on_premises_is_refused_as_for_pairs(role: str) -> None:
    """A colleague an access test found on premises is 422 mailbox_on_premises_or_unlicensed, naming the role."""
    w = group_world()
    UnreachableMailboxes(w.tables).record(
        TENANT, [UserResult(DAVE_ID, DAVE, AccessReason.MAILBOX_ON_PREMISES_OR_UNLICENSED)], "t1", w.clock.now())
    kw: dict[str, Any] = {"attendees": (person(DAVE),)} if role == "attendee" else {"hosts": (CAROL, DAVE)}
    with pytest.raises(MailboxUnavailable) as err:
        book(w, **kw)
    assert err.value.details == {"role": role, "userId": DAVE_ID}


# --- free/busy -----------------------------------------------------------------------------------------


def test_a_busy_required_colleague_takes_the_slot_but_optional_people_and_guests_never_do() -> None:
    """409 slot_taken names the busy required colleague; a busy optional one books anyway; guests are not read."""
    w = group_world()
    w.graph.add_busy(TENANT, DAVE, START, END)
    with pytest.raises(SlotTaken) as err:
        book(w, attendees=(person(CAROL), person(DAVE)))
    assert err.value.details["busy"] == [DAVE]
    w.graph.reset_calls()
    s = book(w, attendees=(person(CAROL), person(DAVE, AttendeeType.OPTIONAL), person(GUEST)))
    [call] = [c for c in w.graph.calls if c.method == "get_schedule"]
    assert call.args.endswith("n=2")  # Alice and Carol: not the optional colleague, not the guest
    w.drain()
    assert stored(w, s.session_id).status is SessionStatus.BOOKED


def test_a_group_of_more_than_twenty_is_checked_in_groups_of_twenty() -> None:
    """24 required colleagues plus the organizer: two getSchedule calls at request time, one directory $batch pair."""
    w = group_world()
    people = []
    for n in range(24):
        w.graph.add_user(TENANT, f"p{n}@contoso.test")
        people.append(person(f"p{n}@contoso.test"))
    w.graph.reset_calls()
    book(w, attendees=tuple(people))
    assert w.graph.call_count("get_schedule") == 2
    assert w.graph.call_count("get_users") == 2  # 25 lookups in $batch groups of 20
    assert w.graph.call_count("get_user") == 0


# --- any-of rooms ----------------------------------------------------------------------------------------


def test_any_of_rooms_first_takes_the_first_free_room_that_seats_the_party() -> None:
    """first: the order given, skipping rooms that are busy or too small; the answer says why."""
    w = group_world()
    w.graph.add_busy(TENANT, MID, START, END)
    s = book(w, attendees=(person(CAROL),), rooms=(SMALL, MID, BIG), room_choice=RoomChoice.FIRST, capacity=5)
    assert s.room is not None and s.room.address == BIG
    assert s.any_of is not None and s.any_of.room_reason is not None and "first free room" in s.any_of.room_reason


def test_any_of_rooms_best_fit_takes_the_smallest_free_room_for_the_party() -> None:
    """bestFit with the party size (organizer + 3) as the need: the 4-seat room."""
    w = group_world()
    s = book(w, attendees=(person(CAROL), person(DAVE), person(GUEST)), rooms=(BIG, MID, SMALL),
             room_choice=RoomChoice.BEST_FIT)
    assert s.room is not None and s.room.address == SMALL
    assert s.any_of is not None and s.any_of.capacity == 4 and "(4 seats)" in (s.any_of.room_reason or "")


def test_two_bookings_at_once_never_take_the_same_room() -> None:
    """The room is claimed: a second booking at the same time (another organizer) gets the next room."""
    w = group_world()
    first = book(w, attendees=(person(CAROL),), rooms=(MID, BIG))
    second = book(w, w.caller(BOB_ID), attendees=(person(DAVE),), rooms=(MID, BIG))
    assert first.room is not None and second.room is not None
    assert (first.room.address, second.room.address) == (MID, BIG)
    with pytest.raises(SlotTaken) as err:
        book(w, w.caller(ERIN_ID), attendees=(person(FRANK),), rooms=(MID, BIG))
    assert err.value.details["anyOf"] == "rooms"


# --- any-of hosts ----------------------------------------------------------------------------------------


def test_hosts_are_chosen_by_load_and_spread_round_robin() -> None:
    """Six bookings with any of three interviewers: each interviewer hosts two, the host is a required attendee."""
    w = group_world()
    chosen = []
    for n in range(6):
        s = book(w, offset=timedelta(days=n), attendees=(person(GUEST),), hosts=(CAROL, DAVE, ERIN))
        host = s.host
        assert host is not None and host.required and host.user_id in (CAROL_ID, DAVE_ID, ERIN_ID)
        chosen.append(host.user_id)
    assert sorted(chosen.count(h) for h in (CAROL_ID, DAVE_ID, ERIN_ID)) == [2, 2, 2]
    assert len(set(chosen[:3])) == 3 and len(set(chosen[3:])) == 3  # each round visits everyone once


def test_a_busy_host_is_skipped_and_no_free_host_is_slot_taken() -> None:
    """A busy candidate is never chosen; when every candidate is busy the booking is 409 slot_taken (hosts)."""
    w = group_world()
    w.graph.add_busy(TENANT, CAROL, START, END)
    s = book(w, hosts=(CAROL, DAVE))
    assert s.host is not None and s.host.user_id == DAVE_ID
    w.graph.add_busy(TENANT, ERIN, START, END)
    with pytest.raises(SlotTaken) as err:
        book(w, w.caller(BOB_ID), hosts=(CAROL, ERIN))
    assert err.value.details["anyOf"] == "hosts"


def test_a_host_another_booking_holds_is_not_taken_twice() -> None:
    """Two organizers at the same time with the same pool: the claim sends the second to another host."""
    w = group_world()
    first = book(w, hosts=(CAROL, DAVE))
    second = book(w, w.caller(BOB_ID), hosts=(CAROL, DAVE))
    assert first.host is not None and second.host is not None and first.host.user_id != second.host.user_id


def test_the_worker_chooses_again_when_the_chosen_host_and_room_were_taken_meanwhile() -> None:
    """Busy after the request: the worker picks another free candidate, saves it, and writes that one."""
    w = group_world()
    s = book(w, attendees=(person(GUEST),), hosts=(CAROL, DAVE), rooms=(MID, BIG))
    assert s.host is not None and s.room is not None
    first_host, first_room = s.host.address, s.room.address
    w.graph.add_busy(TENANT, first_host, START, END)
    w.graph.add_busy(TENANT, first_room, START, END)
    w.drain()
    after = stored(w, s.session_id)
    assert after.status is SessionStatus.BOOKED
    assert after.host is not None and after.host.address != first_host
    assert after.room is not None and after.room.address != first_room
    assert after.any_of is not None and "Chosen again" in (after.any_of.host_reason or "")
    people = {a for a, _, _ in w.graph.attendees_of(TENANT, ALICE, event_of(w, after))}
    assert after.host.address in people and after.room.address in people and first_host not in people


def test_the_worker_fails_slot_taken_when_no_candidate_is_left() -> None:
    """When every host is busy by the time the event is written, the session fails with slot_taken."""
    w = group_world()
    s = book(w, hosts=(CAROL, DAVE))
    w.graph.add_busy(TENANT, CAROL, START, END)
    w.graph.add_busy(TENANT, DAVE, START, END)
    w.drain()
    after = stored(w, s.session_id)
    assert (after.status, after.failure_reason) == (SessionStatus.FAILED, "slot_taken")
    assert w.organizer_events() == []


# --- Outlook answers ----------------------------------------------------------------------------------------


def test_each_attendees_answer_is_synced_and_announced_per_attendee() -> None:
    """A colleague declines and a guest accepts in Outlook: the session shows both; response_changed names them."""
    w = group_world()
    s = book(w, attendees=(person(CAROL), person(DAVE, AttendeeType.OPTIONAL), person(GUEST)))
    w.drain()
    event_id = event_of(w, stored(w, s.session_id))
    carol_copy = w.graph.copy_of(TENANT, CAROL, w.graph.get_event(_who(), ALICE, event_id).ical_uid or "")
    assert carol_copy is not None
    w.graph.respond_as_attendee(TENANT, CAROL, carol_copy, ResponseType.DECLINED)
    w.graph.respond_as_guest(TENANT, ALICE, event_id, GUEST, ResponseType.ACCEPTED)
    sync = SessionSync(SessionRepository(w.tables), w.graph, w.clock, w.booking.identities)
    meta = w.graph.get_event(_who(), ALICE, event_id)
    assert sync.update(TENANT, s.session_id, lambda cur: cur.apply_observed(meta, w.clock.now()))
    after = stored(w, s.session_id)
    assert [(a.address, a.response) for a in after.attendees] == [
        (CAROL, ResponseType.DECLINED), (DAVE, ResponseType.NONE), (GUEST, ResponseType.ACCEPTED)]
    [changed] = [r.event for r in Outbox(w.tables).pending(Tables.SESSIONS, TENANT)
                 if r.event.type is EventType.SESSION_RESPONSE_CHANGED]
    assert sorted((c["email"], c["response"], c["previous"]) for c in changed.data["changes"]) == [
        (GUEST, "accepted", "notResponded"), (CAROL, "declined", "notResponded")]
    guest = next(a for a in changed.data["attendees"] if a["email"] == GUEST)
    assert guest == {"user": GUEST, "email": GUEST, "type": "required", "guest": True, "response": "accepted"}


def _who() -> Any:
    from core.domain.calendar import GraphIdentity

    return GraphIdentity(TENANT)


# --- reschedule and cancel -----------------------------------------------------------------------------------


def test_a_group_moves_unless_a_required_person_or_the_chosen_host_is_busy_then() -> None:
    """Reschedule checks the organizer, required colleagues, the chosen host and the room; optional people never."""
    w = group_world()
    s = book(w, attendees=(person(CAROL), person(DAVE, AttendeeType.OPTIONAL)), hosts=(ERIN,))
    w.drain()
    later = timedelta(hours=3)
    w.graph.add_busy(TENANT, DAVE, START + later, END + later)
    moved = w.booking.reschedule(w.caller(), s.session_id, START + later, END + later, "Europe/Paris")
    assert moved.pending_op is not None
    w.drain()
    w.graph.add_busy(TENANT, ERIN, START + 2 * later, END + 2 * later)
    with pytest.raises(SlotTaken) as err:
        w.booking.reschedule(w.caller(), s.session_id, START + 2 * later, END + 2 * later, "Europe/Paris")
    assert err.value.details["busy"] == [ERIN]
    w.booking.cancel(w.caller(), s.session_id)
    w.drain()
    assert stored(w, s.session_id).status is SessionStatus.CANCELLED


def test_attendees_may_read_a_group_session_and_strangers_may_not() -> None:
    """Every colleague attendee (optional too) and the chosen host read it; a colleague not in it gets 404."""
    from core.domain.errors import NotFound

    w = group_world()
    s = book(w, attendees=(person(CAROL), person(DAVE, AttendeeType.OPTIONAL)), hosts=(ERIN,))
    for oid in (CAROL_ID, DAVE_ID, ERIN_ID):
        assert w.booking.get(w.caller(oid), s.session_id).session_id == s.session_id
    with pytest.raises(NotFound):
        w.booking.get(w.caller(FRANK_ID), s.session_id)
    listed = w.booking.list_for(w.caller(DAVE_ID), START - timedelta(days=1), START + timedelta(days=1))
    assert [x.session_id for x in listed] == [s.session_id]
