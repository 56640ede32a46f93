"""The series worker: one Outlook series under redelivery, crashes, races and throttling; reschedules and cancels."""

from __future__ import annotations

import contextlib
import json
from datetime import date, timedelta
from typing import Any

from core.domain.calendar import GraphIdentity, PatternedRecurrence, RecurrencePattern, RecurrencePatternType
from core.domain.errors import StorageUnavailable, Throttled
from core.domain.series import NOTE_EXCEPTIONS_RESET, NOTE_SKIPPED, OnConflict, SeriesStatus
from core.domain.sessions import ChangeSource, SessionStatus
from core.names import Queues, Tables
from core.services.event_writer import REASON_POISON, WriteOutcome
from core.services.slot_guard import SLOT_TAKEN
from tests.unit.test_booking_support import ALICE, BOB, ROOM, TENANT
from tests.unit.test_series_support import FIRST, LENGTH, SeriesWorld, week, weekly


def _masters(w: SeriesWorld) -> list[Any]:
    return [e for e in w.organizer_events() if e.recurrence is not None]


def _events(w: SeriesWorld) -> list[tuple[str, str]]:
    """(type, stream) of every product event written so far, in stream order."""
    rows = [e for e in w.tables.all(Tables.SESSIONS) if e.row_key.startswith("x~")]
    return [(str(e.data["type"]), str(e.data["stream"])) for e in sorted(rows, key=lambda e: e.row_key)]


def test_one_master_with_teams_and_room_and_a_row_per_occurrence() -> None:
    """The worker writes ONE series master (recurrence, Teams, room, transactionId = series id) and reads its
    12 occurrences back as booked rows carrying seriesId, their occurrence ids and the join URL."""
    w = SeriesWorld()
    sid = w.book_series(room=ROOM)
    assert w.drain() == [WriteOutcome.APPLIED]
    [master] = _masters(w)
    assert master.transaction_id == sid and master.recurrence == weekly()
    assert {a.address for a in master.attendees} == {BOB, ROOM}
    s = w.get(sid)
    assert s.status is SeriesStatus.BOOKED and s.master_event_id == master.event_id and s.join_url
    rows = w.rows(sid)
    assert [r.start for r in rows] == [week(n)[0] for n in range(12)]
    assert all(r.status is SessionStatus.BOOKED and r.series_id == sid and r.join_url == s.join_url for r in rows)
    assert len({r.event_id for r in rows}) == 12 and all(r.event_id != master.event_id for r in rows)
    assert rows[0].room is not None and rows[0].room.address == ROOM
    assert w.hooked == [(TENANT, s.organizer_id)]
    kinds = _events(w)
    assert kinds.count(("series.booked", f"r:{sid}")) == 1
    assert sum(1 for k, _ in kinds if k == "session.booked") == 12


def test_redelivery_and_a_second_worker_never_make_a_second_master() -> None:
    """The same command delivered again (and by a worker that believes it is a retry) changes nothing."""
    w = SeriesWorld()
    w.book_series()
    [msg] = w.queues.take(Queues.EVENT_WRITES)
    assert w.series_writer.handle(msg.body) is WriteOutcome.APPLIED
    assert w.series_writer.handle(msg.body, dequeue_count=2) is WriteOutcome.STALE
    assert len(_masters(w)) == 1


def test_a_crash_after_the_master_was_written_finds_it_again() -> None:
    """Storage fails right after Graph created the master: the retry finds it by transactionId, no second one."""
    w = SeriesWorld()
    sid = w.book_series()
    [msg] = w.queues.take(Queues.EVENT_WRITES)
    real_save = w.series_writer.series.save
    calls = {"n": 0}

    def failing_save(series: Any, etag: Any) -> Any:
        calls["n"] += 1
        if series.master_event_id is not None and calls["n"] <= 2:
            raise StorageUnavailable()
        return real_save(series, etag)

    w.series_writer.series.save = failing_save  # type: ignore[method-assign]
    with contextlib.suppress(StorageUnavailable):
        w.series_writer.handle(msg.body)
    w.series_writer.series.save = real_save  # type: ignore[method-assign]
    w.graph.reset_calls()
    assert w.series_writer.handle(msg.body, dequeue_count=2) is WriteOutcome.APPLIED
    assert w.graph.call_count("create_event") == 0 and w.graph.call_count("find_event_by_transaction_id") == 1
    assert len(_masters(w)) == 1 and w.get(sid).status is SeriesStatus.BOOKED and len(w.rows(sid)) == 12


def test_throttling_defers_without_spending_an_attempt() -> None:
    """A throttled Graph re-queues the command after Retry-After; it then books once."""
    w = SeriesWorld()
    sid = w.book_series()
    w.graph.throttle(retry_after=7)
    assert w.drain() == [WriteOutcome.DEFERRED]
    [delayed] = w.queues.pending(Queues.EVENT_WRITES)
    assert delayed.body["deferrals"] == 1
    w.graph.stop_throttling()
    assert w.drain(include_delayed=True) == [WriteOutcome.APPLIED]
    assert len(_masters(w)) == 1 and w.get(sid).status is SeriesStatus.BOOKED


def test_the_recheck_fails_the_series_when_an_occurrence_was_taken_meanwhile() -> None:
    """Bob became busy in week 7 after the request: onConflict fail ends the series failed slot_taken, unwritten."""
    w = SeriesWorld()
    sid = w.book_series()
    w.graph.add_busy(TENANT, BOB, *week(6))
    assert w.drain() == [WriteOutcome.SLOT_TAKEN]
    s = w.get(sid)
    assert s.status is SeriesStatus.FAILED and s.failure_reason == SLOT_TAKEN and _masters(w) == []
    assert ("series.failed", f"r:{sid}") in _events(w)


def test_skipped_occurrences_become_cancelled_occurrences_of_the_one_series() -> None:
    """skipClashing: the master holds all 12, the clashing two are cancelled in Outlook and shown cancelled."""
    w = SeriesWorld()
    w.graph.add_busy(TENANT, BOB, *week(2))
    sid = w.book_series(on_conflict=OnConflict.SKIP)
    w.graph.add_busy(TENANT, ALICE, *week(8))  # taken after the request: the worker's re-check skips it too
    w.drain()
    s = w.get(sid)
    assert s.status is SeriesStatus.BOOKED and s.skipped == (week(2)[0], week(8)[0])
    assert len(w.organizer_instances(sid)) == 10
    rows = w.rows(sid)
    assert len(rows) == 12
    skipped = [r for r in rows if r.status is SessionStatus.CANCELLED]
    assert [r.start for r in skipped] == [week(2)[0], week(8)[0]]
    assert all(r.series_note == NOTE_SKIPPED and r.event_id is None for r in skipped)


def test_a_cancel_that_overtakes_the_create_leaves_nothing_in_outlook() -> None:
    """DELETE before the worker ran: the create is stale, the cancel finds no master and ends the series cancelled."""
    w = SeriesWorld()
    sid = w.book_series()
    w.series.cancel(w.caller(), sid)
    w.drain()
    assert _masters(w) == [] and w.get(sid).status is SeriesStatus.CANCELLED


def test_cancel_the_whole_series_before_it_starts() -> None:
    """Every occurrence and the master are cancelled (attendees get Outlook's cancellation)."""
    w = SeriesWorld()
    sid = w.book_series()
    w.drain()
    w.series.cancel(w.caller(), sid, comment="Sorry")
    w.drain()
    assert w.get(sid).status is SeriesStatus.CANCELLED and _masters(w) == []
    assert all(r.status is SessionStatus.CANCELLED and r.source is ChangeSource.PLATFORM for r in w.rows(sid))
    assert sum(1 for k, _ in _events(w) if k == "session.cancelled") == 12
    assert ("series.cancelled", f"r:{sid}") in _events(w)


def test_cancel_from_a_date_ends_the_series_the_day_before() -> None:
    """From week 8 on: the master's range ends the day before (end_series), those rows are cancelled, the series
    stays booked with cancelledFrom, and series.cancelled says scope "from"."""
    w = SeriesWorld()
    sid = w.book_series()
    w.drain()
    w.series.cancel(w.caller(), sid, week(7)[0].date())
    w.drain()
    s = w.get(sid)
    assert s.status is SeriesStatus.BOOKED and s.cancel_from == week(7)[0].date()
    assert s.current.recurrence.range.end_date == week(7)[0].date() - timedelta(days=1)
    assert len(w.organizer_instances(sid)) == 7
    assert [r.status for r in w.rows(sid)] == [SessionStatus.BOOKED] * 7 + [SessionStatus.CANCELLED] * 5
    cancelled = [e for e in w.tables.all(Tables.SESSIONS) if e.row_key.startswith("x~r:")
                 and e.data["type"] == "series.cancelled"]
    assert json.loads(str(cancelled[0].data["data"]))["scope"] == "from"


def test_cancel_a_running_series_keeps_its_past() -> None:
    """Three weeks in, DELETE cancels the rest; the occurrences that happened stay booked."""
    w = SeriesWorld()
    sid = w.book_series()
    w.drain()
    w.clock.advance(weeks=2, days=1, hours=2)
    w.series.cancel(w.caller(), sid)
    w.drain()
    assert w.get(sid).status is SeriesStatus.CANCELLED
    assert [r.status for r in w.rows(sid)] == [SessionStatus.BOOKED] * 3 + [SessionStatus.CANCELLED] * 9
    assert len(w.organizer_instances(sid)) == 3


def test_rescheduling_a_series_not_yet_started_moves_every_occurrence_keeping_their_ids() -> None:
    """New time for the whole series: one PATCH of the master; each row keeps its id and gets the new times
    (session.rescheduled); a row that was moved on its own is told its exception was dropped."""
    w = SeriesWorld()
    sid = w.book_series()
    w.drain()
    rows = w.rows(sid)
    w.graph.move_event_as_organizer(TENANT, ALICE, rows[4].event_id, rows[4].start + timedelta(hours=1),
                                    rows[4].end + timedelta(hours=1))
    w.notify(w.master(sid))
    later = FIRST + timedelta(hours=2)
    w.series.reschedule(w.caller(), sid, later, later + LENGTH)
    assert w.drain() == [WriteOutcome.APPLIED]
    after = w.rows(sid)
    assert [r.session_id for r in after] == [r.session_id for r in rows]
    assert [r.start for r in after] == [week(n)[0] + timedelta(hours=2) for n in range(12)]
    assert after[4].series_note == NOTE_EXCEPTIONS_RESET and after[3].series_note is None
    assert w.get(sid).status is SeriesStatus.BOOKED and len(_masters(w)) == 1
    assert ("series.rescheduled", f"r:{sid}") in _events(w)


def test_rescheduling_a_running_series_changes_only_what_is_ahead() -> None:
    """After three occurrences, a move to Thursdays ends the first Outlook series and continues in a second one;
    the past rows stay, the nine ahead take the new occurrences in order."""
    w = SeriesWorld()
    sid = w.book_series()
    w.drain()
    before = w.rows(sid)
    w.clock.advance(weeks=2, days=1, hours=3)
    thursday = week(3)[0] + timedelta(days=2)
    w.series.reschedule(w.caller(), sid, thursday, thursday + LENGTH)
    assert w.drain() == [WriteOutcome.APPLIED]
    s = w.get(sid)
    assert len(s.segments) == 2 and s.segments[0].recurrence.range.end_date == date(2026, 3, 17)
    assert s.segments[1].recurrence.range.number_of_occurrences == 9
    assert s.segments[1].recurrence.pattern.days_of_week[0].value == "thursday"
    masters = _masters(w)
    assert len(masters) == 2 and {m.transaction_id for m in masters} == {sid, f"{sid}.2"}
    after = w.rows(sid)
    assert [r.session_id for r in after] == [r.session_id for r in before]
    assert [r.start for r in after[:3]] == [r.start for r in before[:3]]
    assert [r.start.weekday() for r in after[3:]] == [3] * 9 and after[3].start == thursday
    assert {r.event_id for r in after[3:]}.isdisjoint({r.event_id for r in before})


def test_a_split_retried_after_a_crash_does_not_write_a_third_master() -> None:
    """The split's steps are recorded: a redelivery after the new master was made finds it, once."""
    w = SeriesWorld()
    sid = w.book_series()
    w.drain()
    w.clock.advance(weeks=2, days=1, hours=3)
    thursday = week(3)[0] + timedelta(days=2)
    w.series.reschedule(w.caller(), sid, thursday, thursday + LENGTH)
    [msg] = w.queues.take(Queues.EVENT_WRITES)
    real = w.series_writer.sync.fold

    def down(*_a: object, **_k: object) -> None:
        raise StorageUnavailable()

    w.series_writer.sync.fold = down  # type: ignore[method-assign,assignment]
    with contextlib.suppress(StorageUnavailable):
        w.series_writer.handle(msg.body)
    w.series_writer.sync.fold = real  # type: ignore[method-assign]
    assert w.series_writer.handle(msg.body, dequeue_count=2) is WriteOutcome.APPLIED
    assert len(_masters(w)) == 2 and len(w.get(sid).segments) == 2


def test_a_new_weekly_rule_can_replace_the_pattern() -> None:
    """PATCH with a recurrence (every two weeks) rewrites the rule; surplus rows are cancelled."""
    w = SeriesWorld()
    sid = w.book_series()
    w.drain()
    rule = weekly(6, interval=2)
    w.series.reschedule(w.caller(), sid, FIRST, FIRST + LENGTH, recurrence=rule)
    w.drain()
    rows = w.rows(sid)
    assert [r.status for r in rows].count(SessionStatus.BOOKED) == 6
    assert [r.start for r in rows if r.status is SessionStatus.BOOKED] == [week(2 * n)[0] for n in range(6)]
    assert w.get(sid).current.recurrence.pattern.interval == 2


def test_the_poison_queue_fails_the_series_and_alerts() -> None:
    """A command that ends in the poison queue marks the series failed and alerts the owner."""
    w = SeriesWorld()
    sid = w.book_series()
    [msg] = w.queues.take(Queues.EVENT_WRITES)
    w.series_writer.handle_poison(msg.body)
    s = w.get(sid)
    assert s.status is SeriesStatus.FAILED and s.failure_reason == REASON_POISON
    assert "poison_message" in w.alerts()


def test_a_permanent_refusal_fails_the_series() -> None:
    """Graph refusing the master for good (consent gone) ends the series failed with Outlook's reason."""
    from core.domain.errors import ConsentMissing

    w = SeriesWorld()
    sid = w.book_series()
    w.graph.fail_next("create_event", ConsentMissing())
    assert w.drain() == [WriteOutcome.FAILED]
    assert w.get(sid).status is SeriesStatus.FAILED and w.get(sid).pending_op is None


def test_throttled_recheck_is_deferred_too() -> None:
    """getSchedule throttled during the re-check defers the command like any other call."""
    w = SeriesWorld()
    w.book_series()
    w.graph.fail_next("get_schedule", Throttled(retry_after=3))
    assert w.drain() == [WriteOutcome.DEFERRED]


def test_a_monthly_last_friday_series_round_trips_through_outlook() -> None:
    """relativeMonthly last Friday: the master carries the rule and the rows fall on last Fridays."""
    from core.domain.calendar import RecurrenceRange, RecurrenceRangeType, Weekday, WeekIndex

    w = SeriesWorld()
    start = FIRST.replace(day=27)
    rule = PatternedRecurrence(RecurrencePattern(RecurrencePatternType.RELATIVE_MONTHLY, 1, (Weekday.FRIDAY,),
                                                 index=WeekIndex.LAST),
                               RecurrenceRange(RecurrenceRangeType.NUMBERED, start.date(), number_of_occurrences=4))
    sid = w.book_series(start=start, end=start + LENGTH, recurrence=rule)
    w.drain()
    assert [r.start.day for r in w.rows(sid)] == [27, 24, 29, 26]
    assert w.graph.get_event(GraphIdentity(TENANT), ALICE, w.master(sid)).recurrence == rule
    assert w.get(sid).pending_op is None and w.get(sid).status is SeriesStatus.BOOKED


def test_every_instances_window_the_worker_asks_for_ends_after_it_starts() -> None:
    """Cancelling from a date and splitting a running series read instances past the old end: never an empty
    or inverted window (Graph refuses one)."""
    w = SeriesWorld()
    windows: list[tuple[Any, Any]] = []
    real = w.graph.list_instances

    def spy(who: Any, user: str, series_id: str, start: Any, end: Any) -> Any:
        windows.append((start, end))
        return real(who, user, series_id, start, end)

    w.graph.list_instances = spy  # type: ignore[method-assign]
    sid = w.book_series()
    w.drain()
    w.series.cancel(w.caller(), sid, week(9)[0].date())
    w.drain()
    w.clock.advance(weeks=2, days=1, hours=3)
    thursday = week(3)[0] + timedelta(days=2)
    w.series.reschedule(w.caller(), sid, thursday, thursday + LENGTH)
    w.drain()
    assert len(windows) >= 4 and all(start < end for start, end in windows)
