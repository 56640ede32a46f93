"""Booking a series (the API side): validation, clashes per occurrence and onConflict, claims, offered hours, rights."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, timedelta

import pytest

from core.domain.calendar import (
    PatternedRecurrence,
    RecurrencePattern,
    RecurrencePatternType,
    RecurrenceRange,
    RecurrenceRangeType,
    ResponseType,
    Weekday,
    WeekIndex,
)
from core.domain.commands import SeriesWriteCommand
from core.domain.errors import (
    Forbidden,
    InvalidRecurrence,
    NotFound,
    OutsideOfferedHours,
    SlotTaken,
    ValidationFailed,
)
from core.domain.offered_hours import DateOverride, OfferedHours, OverrideMode, WeeklyWindow, Window
from core.domain.recurrence import schedule_calls
from core.domain.series import OnConflict, Series, SeriesOp, SeriesStatus
from core.names import Queues
from core.services.authz import Caller
from core.services.offered_hours import OfferedHoursService
from core.services.series import ROLE_ATTENDEE, ROLE_ORGANIZER, ROLE_ROOM
from core.services.stores.codec import Versioned
from tests.unit.test_booking_support import ALICE, ALICE_ID, BOB, BOB_ID, CAROL_ID, ROOM, SUBJECT, TENANT
from tests.unit.test_series_support import FIRST, LENGTH, SeriesWorld, week, weekly


def test_a_series_is_stored_pending_and_queued_as_one_versioned_command() -> None:
    """POST with a recurrence stores one pending series (version 1, create) and queues one series_write; the
    subject is sealed in the message, never stored."""
    w = SeriesWorld()
    sid = w.book_series(room=ROOM)
    s = w.get(sid)
    assert (s.status, s.pending_op, s.version) == (SeriesStatus.PENDING, SeriesOp.CREATE, 1)
    assert (s.organizer_id, s.organizer_address, s.attendees[0].user_id) == (ALICE_ID, ALICE, BOB_ID)
    assert s.room is not None and s.room.address == ROOM and s.pairing_id == "p1"
    assert s.current.start == FIRST and s.time_zone == "Europe/Paris"
    [msg] = w.queues.pending(Queues.EVENT_WRITES)
    cmd = SeriesWriteCommand.from_message(msg.body)
    assert (cmd.series_id, cmd.op, cmd.version) == (sid, SeriesOp.CREATE, 1) and cmd.sealed
    assert SUBJECT not in json.dumps(msg.body)
    for table in w.tables._tables:
        assert SUBJECT not in repr(w.tables.all(table))
    assert w.rows(sid) == []  # rows come from Outlook's instances, after the master is written


@pytest.mark.parametrize(("recurrence", "code"), [
    (weekly(105), "too_many_occurrences"),
    (PatternedRecurrence(RecurrencePattern(RecurrencePatternType.WEEKLY, 1, (Weekday.TUESDAY,)),
                         RecurrenceRange(RecurrenceRangeType.NO_END, FIRST.date())), "no_end_not_allowed"),
    (weekly(days=(Weekday.MONDAY,)), "start_not_in_pattern"),
    (weekly(start=date(2026, 3, 4)), "start_date_mismatch"),
    (PatternedRecurrence(RecurrencePattern(RecurrencePatternType.DAILY, 1),
                         RecurrenceRange(RecurrenceRangeType.END_DATE, FIRST.date(), end_date=date(2028, 6, 1))),
     "series_too_long"),
    (PatternedRecurrence(RecurrencePattern(RecurrencePatternType.WEEKLY, 0, (Weekday.TUESDAY,)),
                         RecurrenceRange(RecurrenceRangeType.NUMBERED, FIRST.date(), number_of_occurrences=3)),
     "interval_not_positive"),
])
def test_a_pattern_graph_refuses_or_past_the_limits_is_422_with_the_domains_code(
    recurrence: PatternedRecurrence, code: str,
) -> None:
    """Bad rules fail before anything is stored or queued, with the domain's code."""
    w = SeriesWorld()
    with pytest.raises(InvalidRecurrence) as err:
        w.book_series(recurrence=recurrence)
    assert err.value.code == code and err.value.http_status == 422
    assert w.queues.pending(Queues.EVENT_WRITES) == []


def test_monthly_patterns_book_including_the_last_friday() -> None:
    """relativeMonthly "last Friday" and absoluteMonthly by date are accepted from their first occurrence."""
    w = SeriesWorld()
    last_friday = FIRST.replace(day=27)  # 27 March 2026 is the month's last Friday
    rule = PatternedRecurrence(RecurrencePattern(RecurrencePatternType.RELATIVE_MONTHLY, 1, (Weekday.FRIDAY,),
                                                 index=WeekIndex.LAST),
                               RecurrenceRange(RecurrenceRangeType.NUMBERED, last_friday.date(),
                                               number_of_occurrences=6))
    sid = w.book_series(start=last_friday, end=last_friday + LENGTH, recurrence=rule)
    assert [o.start.day for o in w.get(sid).current.occurrences()] == [27, 24, 29, 26, 31, 28]
    by_date = PatternedRecurrence(RecurrencePattern(RecurrencePatternType.ABSOLUTE_MONTHLY, 1, day_of_month=3),
                                  RecurrenceRange(RecurrenceRangeType.END_DATE, FIRST.date(),
                                                  end_date=date(2026, 8, 3)))
    sid = w.book_series(start=FIRST + timedelta(hours=3), end=FIRST + timedelta(hours=3) + LENGTH, recurrence=by_date)
    assert len(w.get(sid).current.occurrences()) == 6


def test_fail_refuses_a_series_with_a_busy_occurrence_naming_it_and_with_whom() -> None:
    """Bob busy in week 4 and the room in week 6: 409 slot_taken listing exactly those occurrences and roles."""
    w = SeriesWorld()
    w.graph.add_busy(TENANT, BOB, *week(3))
    w.graph.add_busy(TENANT, ROOM, *week(5))
    with pytest.raises(SlotTaken) as err:
        w.book_series(room=ROOM)
    listed = err.value.details["occurrences"]
    assert [(o["index"], o["with"]) for o in listed] == [
        (4, [{"role": ROLE_ATTENDEE, "user": BOB_ID}]), (6, [{"role": ROLE_ROOM, "user": ROOM}])]
    assert w.queues.pending(Queues.EVENT_WRITES) == []


def test_skip_clashing_books_the_rest_and_remembers_the_skipped() -> None:
    """skipClashing stores the clashing occurrences as skipped; the others are booked."""
    w = SeriesWorld()
    w.graph.add_busy(TENANT, ALICE, *week(2))
    sid = w.book_series(on_conflict=OnConflict.SKIP)
    assert w.get(sid).skipped == (week(2)[0],)


def test_skip_clashing_with_every_occurrence_taken_is_409() -> None:
    """Nothing left to book is still a refusal."""
    w = SeriesWorld()
    for n in range(3):
        w.graph.add_busy(TENANT, BOB, *week(n))
    with pytest.raises(SlotTaken):
        w.book_series(recurrence=weekly(3), on_conflict=OnConflict.SKIP)


def test_book_anyway_reads_no_free_busy_and_books_every_occurrence() -> None:
    """bookAnyway: busy calendars do not matter and getSchedule is not called."""
    w = SeriesWorld()
    w.graph.add_busy(TENANT, BOB, *week(1))
    w.graph.reset_calls()
    sid = w.book_series(on_conflict=OnConflict.BOOK_ANYWAY)
    assert w.graph.call_count("get_schedule") == 0 and w.get(sid).skipped == ()


def test_each_occurrence_is_claimed_so_a_racing_single_booking_is_refused() -> None:
    """While the series waits for the worker, a session at week 5's time (not yet in any calendar) is 409."""
    w = SeriesWorld()
    w.book_series()
    start, end = week(4)
    with pytest.raises(SlotTaken):
        w.book(start=start, end=end)
    w.book(start=start + timedelta(days=1), end=end + timedelta(days=1))  # the rest of the span is not held


def test_the_partners_offered_hours_bind_each_occurrence() -> None:
    """Bob is off on 17 March: fail lists week 3 (role attendee, no reason); skip skips it; bookAnyway is 422."""
    w = SeriesWorld()
    rules = OfferedHours("Europe/Paris", weekly=(WeeklyWindow(Weekday.TUESDAY, Window.of("09:00", "13:00")),),
                         overrides=(DateOverride(date(2026, 3, 17), OverrideMode.OFF),))
    OfferedHoursService(w.tables, w.clock).put_for_user(w.caller(BOB_ID), BOB_ID, rules)
    with pytest.raises(SlotTaken) as err:
        w.book_series()
    assert [(o["index"], o["with"][0]["role"]) for o in err.value.details["occurrences"]] == [(3, ROLE_ATTENDEE)]
    assert w.get(w.book_series(on_conflict=OnConflict.SKIP)).skipped == (week(2)[0],)
    with pytest.raises(OutsideOfferedHours) as refused:
        w.book_series(on_conflict=OnConflict.BOOK_ANYWAY)
    assert refused.value.details["occurrences"][0]["index"] == 3


def test_a_daily_cap_counts_the_series_own_earlier_occurrences() -> None:
    """Bob takes at most 2 sessions a week: a daily series clashes from its third occurrence in a week."""
    w = SeriesWorld()
    rules = OfferedHours("Europe/Paris", weekly=tuple(WeeklyWindow(d, Window.of("08:00", "18:00")) for d in Weekday),
                         max_per_week=2, within_working_hours=False)
    OfferedHoursService(w.tables, w.clock).put_for_user(w.caller(BOB_ID), BOB_ID, rules)
    daily = PatternedRecurrence(RecurrencePattern(RecurrencePatternType.DAILY, 1),
                                RecurrenceRange(RecurrenceRangeType.NUMBERED, FIRST.date(), number_of_occurrences=4))
    with pytest.raises(SlotTaken) as err:
        w.book_series(recurrence=daily)
    assert [o["index"] for o in err.value.details["occurrences"]] == [3, 4]


def test_availability_answers_per_occurrence_with_whom_in_the_fewest_calls() -> None:
    """A 52-week series of two people and a room: 6 getSchedule calls (the floor), clashes named by role only."""
    w = SeriesWorld()
    w.graph.add_busy(TENANT, ALICE, *week(30))
    w.graph.add_busy(TENANT, ROOM, *week(30))
    w.graph.reset_calls()
    result = w.series.check(w.caller(), w.request(recurrence=weekly(52), room=ROOM), suggest=False)
    assert len(result.occurrences) == 52 and result.schedule_calls == 6 == w.graph.call_count("get_schedule")
    assert result.schedule_calls == schedule_calls(3, 6)
    [clash] = result.clashing
    assert clash.index == 31 and [p.role for p in clash.clashes] == [ROLE_ORGANIZER, ROLE_ROOM]


def test_availability_suggests_the_series_moved_on_the_same_days() -> None:
    """Bob busy at 10:00 in two weeks: the nearest shift with no clash is offered, reading nothing more."""
    w = SeriesWorld()
    w.graph.add_busy(TENANT, BOB, *week(1))
    w.graph.add_busy(TENANT, BOB, *week(5))
    w.graph.reset_calls()
    result = w.series.check(w.caller(), w.request())
    assert len(result.clashing) == 2
    best = result.suggestions[0]
    assert best.clashing == 0 and abs(best.shift_minutes) == 45
    assert w.graph.call_count("get_schedule") == result.schedule_calls == 2


def test_attendees_read_but_cannot_change_and_strangers_get_404() -> None:
    """Bob reads the series, gets 403 on changes; Carol gets 404 on everything."""
    w = SeriesWorld()
    sid = w.book_series()
    w.drain()
    assert w.series.get(w.caller(BOB_ID), sid).series.series_id == sid
    with pytest.raises(Forbidden):
        w.series.cancel(w.caller(BOB_ID), sid)
    with pytest.raises(Forbidden):
        w.series.reschedule(w.caller(BOB_ID), sid, *week(1))
    for attempt in (lambda: w.series.get(w.caller(CAROL_ID), sid), lambda: w.series.cancel(w.caller(CAROL_ID), sid)):
        with pytest.raises(NotFound):
            attempt()
    app = Caller(TENANT, "app", roles=frozenset({"Sessions.ReadWrite.All"}), is_app=True)
    assert len(w.series.get(app, sid).occurrences) == 12  # the product's server reads its tenant's series


def test_a_pending_series_shows_the_occurrences_its_rule_gives() -> None:
    """Before the worker ran, GET shows the expected occurrences (no ids yet)."""
    w = SeriesWorld()
    view = w.series.get(w.caller(), w.book_series())
    assert view.occurrences == () and len(view.expected) == 12 and view.expected[0].start == FIRST


def test_cancel_from_a_date_that_already_started_or_after_the_end_is_422() -> None:
    """Cancelling from a past occurrence's date, or after the last one, names the problem."""
    w = SeriesWorld()
    sid = w.book_series()
    w.drain()
    w.clock.advance(weeks=3)
    with pytest.raises(ValidationFailed) as err:
        w.series.cancel(w.caller(), sid, date(2026, 3, 10))
    assert err.value.code == "cancel_from_started"
    with pytest.raises(ValidationFailed) as err:
        w.series.cancel(w.caller(), sid, date(2026, 7, 1))
    assert err.value.code == "cancel_from_after_series"


def test_an_occurrence_cannot_move_onto_a_neighbours_day() -> None:
    """PATCH one occurrence to the next occurrence's day: 422 occurrence_crossing_boundary; within its week: ok."""
    w = SeriesWorld()
    sid = w.book_series()
    w.drain()
    third = w.rows(sid)[2]
    with pytest.raises(ValidationFailed) as err:
        w.booking.reschedule(w.caller(), third.session_id, third.start + timedelta(weeks=1),
                             third.end + timedelta(weeks=1), "Europe/Paris")
    assert err.value.code == "occurrence_crossing_boundary"
    moved = w.booking.reschedule(w.caller(), third.session_id, third.start + timedelta(days=2),
                                 third.end + timedelta(days=2), "Europe/Paris")
    assert moved.pending_op is not None


def test_occurrences_do_not_change_while_their_series_is_being_changed() -> None:
    """A pending series change makes occurrence changes 409 series_change_pending."""
    w = SeriesWorld()
    sid = w.book_series()
    w.drain()
    w.series.cancel(w.caller(), sid, date(2026, 4, 21))
    row = w.rows(sid)[1]
    with pytest.raises(Exception) as err:
        w.booking.cancel(w.caller(), row.session_id)
    assert getattr(err.value, "code", None) == "series_change_pending"


def test_the_queue_down_fails_a_new_series_with_503() -> None:
    """A series that cannot be queued ends failed (the caller gets the dependency error)."""
    from core.domain.errors import StorageUnavailable

    w = SeriesWorld()
    original = w.queues.send

    def down(*a: object, **kw: object) -> None:
        raise StorageUnavailable()

    w.queues.send = down  # type: ignore[method-assign]
    with pytest.raises(StorageUnavailable):
        w.book_series()
    w.queues.send = original  # type: ignore[method-assign]
    [series] = w.series.list_for(w.caller())
    assert series.status is SeriesStatus.FAILED and series.pending_op is None and series.failure_reason


def test_a_series_change_racing_a_sync_back_from_outlook_is_made_on_the_latest_version() -> None:
    """Outlook's answer to the series recorded (the sync saves the series row) between the organizer's read and
    save: the cancel is read again and made on the answered row, no 409, the answer kept."""
    w = SeriesWorld()
    sid = w.book_series()
    w.drain()
    repo = w.series.series
    real_save = repo.save
    raced: list[bool] = []

    def save_after_a_sync(series: Series, etag: str | None) -> Versioned[Series]:
        if not raced:
            raced.append(True)
            found = repo.require(TENANT, sid)
            answered = replace(found.value, attendees=tuple(
                replace(a, response=ResponseType.ACCEPTED) for a in found.value.attendees))
            real_save(answered, found.etag)
        return real_save(series, etag)

    repo.save = save_after_a_sync  # type: ignore[method-assign]
    cancelled = w.series.cancel(w.caller(), sid)
    assert raced and cancelled.pending_op is SeriesOp.CANCEL
    stored = w.get(sid)
    assert stored.pending_op is SeriesOp.CANCEL and [a.response for a in stored.attendees] == [ResponseType.ACCEPTED]
    assert [SeriesWriteCommand.from_message(m.body).op for m in w.queues.pending(Queues.EVENT_WRITES)] == [
        SeriesOp.CANCEL]
