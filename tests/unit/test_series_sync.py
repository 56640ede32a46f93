"""Sync back from Outlook for series: notifications naming the master, occurrence changes, pattern edits,
deleted series, reconciliation; and one occurrence changed through the API."""

from __future__ import annotations

from datetime import timedelta

from core.domain.calendar import GraphIdentity, ResponseType
from core.domain.series import NOTE_EXCEPTIONS_RESET, SeriesStatus
from core.domain.sessions import ChangeSource, SessionStatus
from core.names import Tables
from tests.unit.test_booking_support import ALICE, ALICE_ID, BOB, BOB_ID, TENANT
from tests.unit.test_series_support import FIRST, LENGTH, SeriesWorld, week, weekly


def _booked(w: SeriesWorld, **kw: object) -> str:
    sid = w.book_series(**kw)
    w.drain()
    return sid


def _bob_occurrence(w: SeriesWorld, sid: str, n: int) -> str:
    """The id of Bob's copy of occurrence n (0-based)."""
    ical = w.get(sid).current.ical_uid
    assert ical is not None
    copy = w.graph.copy_of(TENANT, BOB, ical)
    assert copy is not None
    found = list(w.graph.list_instances(GraphIdentity(TENANT), BOB, copy, FIRST - timedelta(days=1),
                                        FIRST + timedelta(days=200)))
    return str(found[n].event_id)


def _event_types(w: SeriesWorld) -> list[str]:
    rows = [e for e in w.tables.all(Tables.SESSIONS) if e.row_key.startswith("x~")]
    return [str(e.data["type"]) for e in rows]


def test_an_attendee_declining_one_occurrence_reaches_that_occurrence_only() -> None:
    """Bob declines week 3: the notification names the master; one series re-read (2 calls); only week 3 changes."""
    w = SeriesWorld()
    sid = _booked(w)
    w.graph.respond_as_attendee(TENANT, BOB, _bob_occurrence(w, sid, 2), ResponseType.DECLINED)
    w.graph.reset_calls()
    outcome = w.notify(w.master(sid))
    assert outcome.changed == 1 and w.graph.call_count() == 2
    answers = [r.attendees[0].response for r in w.rows(sid)]
    assert answers[2] is ResponseType.DECLINED and answers.count(ResponseType.DECLINED) == 1
    assert _event_types(w).count("session.response_changed") == 1
    assert w.notify(w.master(sid)).changed == 0  # a duplicate notification changes nothing


def test_the_organizer_moving_one_occurrence_in_outlook_reschedules_it_from_outlook() -> None:
    """A drag of week 5 in Outlook: that row gets the new times, source outlook, session.rescheduled."""
    w = SeriesWorld()
    sid = _booked(w)
    row = w.rows(sid)[4]
    w.graph.move_event_as_organizer(TENANT, ALICE, str(row.event_id), row.start + timedelta(days=1),
                                    row.end + timedelta(days=1))
    w.notify(w.master(sid))
    moved = w.rows(sid)[4]
    assert moved.start == row.start + timedelta(days=1) and moved.source is ChangeSource.OUTLOOK
    assert moved.original_start == row.original_start and moved.session_id == row.session_id
    assert "session.rescheduled" in _event_types(w)


def test_deleting_one_occurrence_in_outlook_cancels_it() -> None:
    """The organizer deletes week 6 in Outlook: that row is cancelled from Outlook, the others stay."""
    w = SeriesWorld()
    sid = _booked(w)
    row = w.rows(sid)[5]
    w.graph.cancel_occurrence_as_organizer(TENANT, ALICE, str(row.event_id))
    w.notify(w.master(sid))
    statuses = [(r.status, r.source) for r in w.rows(sid)]
    assert statuses[5] == (SessionStatus.CANCELLED, ChangeSource.OUTLOOK)
    assert statuses.count((SessionStatus.BOOKED, ChangeSource.PLATFORM)) == 11


def test_editing_the_pattern_in_outlook_follows_the_calendar_and_says_the_exceptions_were_dropped() -> None:
    """Week 3 declined, week 5 moved, week 6 cancelled, then the organizer moves the series to 14:00 in Outlook:
    Exchange drops those exceptions; every row follows the new occurrences (same ids), week 6 comes back, the
    former exceptions and the series carry exceptions_reset_by_pattern_change."""
    w = SeriesWorld()
    sid = _booked(w)
    rows = w.rows(sid)
    w.graph.respond_as_attendee(TENANT, BOB, _bob_occurrence(w, sid, 2), ResponseType.DECLINED)
    w.graph.move_event_as_organizer(TENANT, ALICE, str(rows[4].event_id), rows[4].start + timedelta(hours=1),
                                    rows[4].end + timedelta(hours=1))
    w.graph.cancel_occurrence_as_organizer(TENANT, ALICE, str(rows[5].event_id))
    w.notify(w.master(sid))
    later = FIRST + timedelta(hours=3)
    w.graph.change_series_as_organizer(TENANT, ALICE, w.master(sid), start=later, end=later + LENGTH)
    w.notify(w.master(sid))
    after = w.rows(sid)
    assert [r.session_id for r in after] == [r.session_id for r in rows]
    assert [r.start for r in after] == [week(n)[0] + timedelta(hours=3) for n in range(12)]
    assert all(r.status is SessionStatus.BOOKED and r.source is ChangeSource.OUTLOOK for r in after)
    notes = [n for n, r in enumerate(after) if r.series_note == NOTE_EXCEPTIONS_RESET]
    assert notes == [2, 4, 5]
    s = w.get(sid)
    assert s.note == NOTE_EXCEPTIONS_RESET and s.current.start == later
    assert "series.rescheduled" in _event_types(w)


def test_deleting_the_series_in_outlook_cancels_what_is_ahead() -> None:
    """The organizer deletes the whole series in Outlook: the rows not yet over and the series are cancelled."""
    w = SeriesWorld()
    sid = _booked(w)
    w.graph.delete_event_in_outlook(TENANT, ALICE, w.master(sid))
    w.notify(w.master(sid), "deleted")
    assert w.get(sid).status is SeriesStatus.CANCELLED and w.get(sid).source is ChangeSource.OUTLOOK
    assert all(r.status is SessionStatus.CANCELLED and r.source is ChangeSource.OUTLOOK for r in w.rows(sid))


def test_a_master_notified_for_another_mailbox_is_untracked() -> None:
    """A notification naming our master from someone else's subscription changes nothing and reads nothing."""
    w = SeriesWorld()
    sid = _booked(w)
    w.graph.reset_calls()
    assert w.notify(w.master(sid), user=BOB_ID).untracked == 1 and w.graph.call_count() == 0


def test_reconciliation_heals_a_missed_pattern_change_without_cancelling_blindly() -> None:
    """No notification came: the reconcile $batch finds the occurrences' old ids gone, re-reads the series, and
    the rows follow the new times instead of being cancelled."""
    w = SeriesWorld()
    sid = _booked(w)
    later = FIRST + timedelta(hours=2)
    w.graph.change_series_as_organizer(TENANT, ALICE, w.master(sid), start=later, end=later + LENGTH)
    w.graph.reset_calls()
    report = w.reconciler.run()
    assert report.sync.read == 2 and report.sync.changed == 12  # 2 read in the window, the series re-read whole
    assert all(r.status is SessionStatus.BOOKED for r in w.rows(sid))
    assert [r.start for r in w.rows(sid)] == [week(n)[0] + timedelta(hours=2) for n in range(12)]
    assert [c.method for c in w.graph.calls if c.method != "create_subscription"] == [
        "get_events", "get_event", "list_instances"]  # one $batch, then the master and its instances


def test_reconciliation_of_an_unchanged_series_reads_only_its_occurrences_in_the_window() -> None:
    """Occurrences in the 14-day window ride in the $batch of every session: no instances read, nothing changed."""
    w = SeriesWorld()
    _booked(w)
    w.graph.reset_calls()
    report = w.reconciler.run()
    assert report.sync.read == 2 and report.sync.changed == 0
    assert w.graph.call_count("list_instances") == 0


def test_moving_one_occurrence_through_the_api_makes_an_exception_in_outlook() -> None:
    """PATCH /api/sessions/{occurrence}: the event writer moves that occurrence only."""
    w = SeriesWorld()
    sid = _booked(w)
    row = w.rows(sid)[3]
    w.booking.reschedule(w.caller(), row.session_id, row.start + timedelta(hours=4), row.end + timedelta(hours=4),
                         "Europe/Paris")
    w.drain()
    instances = w.organizer_instances(sid)
    assert instances[3].start == row.start + timedelta(hours=4) and instances[3].type.value == "exception"
    assert [i.start for i in instances[:3]] == [week(n)[0] for n in range(3)]
    assert w.rows(sid)[3].start == row.start + timedelta(hours=4) and w.rows(sid)[3].pending_op is None


def test_cancelling_one_occurrence_through_the_api_cancels_it_in_outlook() -> None:
    """DELETE /api/sessions/{occurrence}: the occurrence is cancelled in Outlook, the series goes on."""
    w = SeriesWorld()
    sid = _booked(w)
    row = w.rows(sid)[1]
    w.booking.cancel(w.caller(), row.session_id)
    w.drain()
    assert len(w.organizer_instances(sid)) == 11
    assert w.rows(sid)[1].status is SessionStatus.CANCELLED and w.get(sid).status is SeriesStatus.BOOKED
    w.notify(w.master(sid))  # Outlook's notification for it changes nothing more
    assert [r.status for r in w.rows(sid)].count(SessionStatus.CANCELLED) == 1


def test_occurrences_list_among_the_callers_sessions() -> None:
    """GET /api/sessions for both participants lists the occurrences with their seriesId."""
    from core.services.booking import SessionQuery

    w = SeriesWorld()
    sid = _booked(w)
    for oid in (ALICE_ID, BOB_ID):
        page = w.booking.list_sessions(w.caller(oid), SessionQuery(start=FIRST - timedelta(days=1),
                                                                   end=FIRST + timedelta(days=60)))
        assert len(page.sessions) == 9 and {s.series_id for s in page.sessions} == {sid}
    assert weekly().range.number_of_occurrences == 12
