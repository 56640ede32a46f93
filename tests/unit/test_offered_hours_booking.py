"""Booking respects offered hours: attendees' rules refuse create and reschedule; the organizer's own do not."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.domain.calendar import Weekday
from core.domain.errors import OutsideOfferedHours
from core.domain.offered_hours import OfferedHours, WeeklyWindow, Window
from core.domain.sessions import SessionStatus
from core.names import Queues
from core.services.offered_hours import OfferedHoursService
from core.services.stores.sessions import SessionRepository
from tests.unit.test_booking_support import ALICE_ID, BOB_ID, START, TENANT, World

# START is Tuesday 3 March 2026 10:00Z.


def tuesday_mornings(**kw: object) -> OfferedHours:
    return OfferedHours("UTC", weekly=(WeeklyWindow(Weekday.TUESDAY, Window.of("09:00", "12:00")),),
                        **kw)  # type: ignore[arg-type]


def offered(w: World) -> OfferedHoursService:
    return OfferedHoursService(w.tables, w.clock)


def test_booking_inside_the_attendees_offered_hours_is_accepted() -> None:
    """Alice books Bob on Tuesday 10:00, inside Bob's Tuesday 09:00-12:00: 202 as usual."""
    w = World()
    offered(w).put_for_user(w.caller(BOB_ID), BOB_ID, tuesday_mornings())
    sid = w.book()
    assert SessionRepository(w.tables).require(TENANT, sid).value.status is SessionStatus.PENDING


def test_booking_outside_the_attendees_offered_hours_is_422_and_stores_nothing() -> None:
    """Alice books Bob on Tuesday 13:00, outside his window: 422 outside_offered_hours, no session, nothing queued."""
    w = World()
    offered(w).put_for_user(w.caller(BOB_ID), BOB_ID, tuesday_mornings())
    with pytest.raises(OutsideOfferedHours) as caught:
        w.book(start=START + timedelta(hours=3), end=START + timedelta(hours=3, minutes=45))
    assert caught.value.code == "outside_offered_hours" and caught.value.http_status == 422
    assert SessionRepository(w.tables).list_for_user(TENANT, ALICE_ID, START - timedelta(days=1),
                                                      START + timedelta(days=1)) == []
    assert w.queues.pending(Queues.EVENT_WRITES) == []


def test_the_organizers_own_rules_do_not_bind_their_own_booking() -> None:
    """Alice's rules offer nothing on Tuesday afternoon, yet she may book Bob (no rules) then."""
    w = World()
    offered(w).put_for_user(w.caller(), ALICE_ID, tuesday_mornings())
    w.book(start=START + timedelta(hours=4), end=START + timedelta(hours=4, minutes=30))


def test_a_tenant_default_binds_attendees_without_their_own_rules() -> None:
    """With only a default offering Tuesday mornings, booking Bob at 14:00 is refused."""
    w = World()
    admin = w.caller("a0000000-0000-4000-8000-0000000000ad")
    offered(w).put_default(admin, tuesday_mornings())
    with pytest.raises(OutsideOfferedHours):
        w.book(start=START + timedelta(hours=4), end=START + timedelta(hours=4, minutes=30))


def test_the_attendees_cap_holds_across_bookings() -> None:
    """Bob takes at most one session a day: the first Tuesday booking passes, the second is refused."""
    w = World()
    offered(w).put_for_user(w.caller(BOB_ID), BOB_ID, tuesday_mornings(max_per_day=1))
    w.book(start=START - timedelta(hours=1), end=START - timedelta(minutes=30))
    with pytest.raises(OutsideOfferedHours):
        w.book(start=START + timedelta(hours=1), end=START + timedelta(hours=1, minutes=30))


def test_reschedule_is_checked_against_the_attendees_rules_without_counting_itself() -> None:
    """Moving the day's only session within the window passes (cap 1); moving it out of the window is refused."""
    w = World()
    offered(w).put_for_user(w.caller(BOB_ID), BOB_ID, tuesday_mornings(max_per_day=1))
    sid = w.book(start=START - timedelta(hours=1), end=START - timedelta(minutes=30))
    moved = w.booking.reschedule(w.caller(), sid, START + timedelta(hours=1), START + timedelta(hours=1, minutes=30),
                                 "UTC")
    assert moved.start == START + timedelta(hours=1)
    with pytest.raises(OutsideOfferedHours):
        w.booking.reschedule(w.caller(), sid, START + timedelta(hours=5), START + timedelta(hours=5, minutes=30),
                             "UTC")
    assert SessionRepository(w.tables).require(TENANT, sid).value.start == START + timedelta(hours=1)


def test_changing_rules_after_booking_leaves_the_session_booked() -> None:
    """Bob withdrawing Tuesday after a booking neither cancels nor moves it; the worker still books it."""
    w = World()
    service = offered(w)
    service.put_for_user(w.caller(BOB_ID), BOB_ID, tuesday_mornings())
    sid = w.book()
    service.put_for_user(w.caller(BOB_ID), BOB_ID, OfferedHours("UTC"))
    w.drain()
    session = SessionRepository(w.tables).require(TENANT, sid).value
    assert (session.status, session.start) == (SessionStatus.BOOKED, START)
