"""Series rules without I/O: occurrence ids, pairing rows with instances, product events, commands, storage codec."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from core.domain.calendar import EventMetadata, EventType
from core.domain.commands import SeriesWriteCommand
from core.domain.errors import Conflict, InvalidMessage
from core.domain.product_events import EventType as Kind
from core.domain.product_events import series_drafts
from core.domain.series import (
    OnConflict,
    Segment,
    Series,
    SeriesOp,
    SeriesStatus,
    cut_date,
    match_instances,
    occurrence_session_id,
    series_of_session_id,
)
from core.domain.sessions import AttendeeState, Session, SessionStatus
from core.services.stores.series import series_from_entity, series_to_entity
from tests.unit.test_series_support import FIRST, LENGTH, ZONE, weekly

SID = "0123456789abcdef0123456789abcdef"
T = "tenant"


def _series(**kw: object) -> Series:
    values: dict[str, object] = {
        "tenant_id": T, "series_id": SID, "organizer_id": "alice", "organizer_address": "alice@x.test",
        "attendees": (AttendeeState("bob@x.test", user_id="bob"),),
        "segments": (Segment(weekly(), FIRST, FIRST + LENGTH, ZONE),), **kw,
    }
    return Series(**values)  # type: ignore[arg-type]


def _row(original: datetime, *, start: datetime | None = None, status: SessionStatus = SessionStatus.BOOKED) -> Session:
    begin = start or original
    return Session(T, occurrence_session_id(SID, original), "alice", "alice@x.test",
                   (AttendeeState("bob@x.test", user_id="bob"),), begin, begin + LENGTH, ZONE, status=status,
                   pending_op=None, series_id=SID, original_start=original, event_id=f"occ-{original:%m%d}")


def _instance(original: datetime, *, start: datetime | None = None) -> EventMetadata:
    begin = start or original
    return EventMetadata(f"occ-{original:%m%d%H}", begin, begin + LENGTH, type=EventType.OCCURRENCE,
                         series_master_id="master", original_start=original)


def test_occurrence_ids_name_their_series_and_lone_ids_do_not() -> None:
    """An occurrence row's id carries its series id and original start; a lone session's id names no series."""
    row_id = occurrence_session_id(SID, FIRST)
    assert row_id == f"{SID}-20260303T1000"
    assert series_of_session_id(row_id) == SID
    assert series_of_session_id(occurrence_session_id(SID, FIRST, 2)) == SID
    assert series_of_session_id(SID) is None
    assert series_of_session_id("a-20260303T1000") is None


def test_instances_pair_with_rows_by_original_start_then_in_order() -> None:
    """Same original start pairs directly (a moved one included); after a new rule the k-th row takes the k-th
    new occurrence; surplus rows are gone and surplus instances new."""
    weeks = [FIRST + timedelta(weeks=n) for n in range(4)]
    rows = [_row(w) for w in weeks]
    moved = _instance(weeks[1], start=weeks[1] + timedelta(hours=2))
    same = match_instances(rows, [_instance(weeks[0]), moved, _instance(weeks[3])], lambda _r: True)
    assert [(r.original_start, i.start) for r, i in same.same] == [(weeks[0], weeks[0]), (weeks[1], moved.start),
                                                                    (weeks[3], weeks[3])]
    assert [r.original_start for r in same.gone] == [weeks[2]] and same.new == []
    shifted = [_instance(w + timedelta(days=1)) for w in [*weeks, weeks[-1] + timedelta(weeks=1)]]
    remap = match_instances(rows, shifted, lambda _r: True)
    assert [(r.original_start, i.original_start) for r, i in remap.remapped] == [
        (w, w + timedelta(days=1)) for w in weeks]
    assert [i.original_start for i in remap.new] == [weeks[-1] + timedelta(weeks=1, days=1)]
    assert remap.same == [] and remap.gone == []


def test_rows_before_the_window_are_never_judged_gone() -> None:
    """Out of scope (history before the window read) a row without an instance is left alone."""
    rows = [_row(FIRST), _row(FIRST + timedelta(weeks=1))]
    result = match_instances(rows, [_instance(FIRST + timedelta(weeks=1))], lambda r: r.start > FIRST)
    assert result.gone == [] and len(result.same) == 1


def test_series_events_follow_status_and_rule_changes() -> None:
    """booked, failed and cancelled on status changes; rescheduled when an applied change or Outlook moved the rule;
    cancelled with scope "from" when a cancellation from a date was applied; nothing while a change is pending."""
    pending = _series()
    booked = pending.mark_booked(FIRST)
    assert [d.type for d in series_drafts(pending, booked, 3)] == [Kind.SERIES_BOOKED]
    assert series_drafts(pending, booked, 3)[0].data["version"] == 3
    assert series_drafts(pending, booked, 3)[0].stream == f"r:{SID}"
    assert [d.type for d in series_drafts(pending, pending.mark_failed("x", FIRST), 1)] == [Kind.SERIES_FAILED]
    asked = booked.request_cancel(date(2026, 4, 21), FIRST)
    assert series_drafts(booked, asked, 1) == []
    cut = series_drafts(asked, asked.mark_booked(FIRST), 1)
    assert [d.type for d in cut] == [Kind.SERIES_CANCELLED] and cut[0].data["scope"] == "from"
    assert cut[0].data["cancelledFrom"] == "2026-04-21"
    whole = series_drafts(booked, booked.mark_cancelled(FIRST), 1)
    assert [d.type for d in whole] == [Kind.SERIES_CANCELLED] and whole[0].data["scope"] == "all"
    later = Segment(weekly(), FIRST + timedelta(hours=1), FIRST + timedelta(hours=1) + LENGTH, ZONE)
    moved = booked.with_segment(0, later)
    assert [d.type for d in series_drafts(booked, moved, 1)] == [Kind.SERIES_RESCHEDULED]
    assert series_drafts(booked, booked, 1) == []


def test_series_event_data_is_metadata_only() -> None:
    """A series event carries ids, the rule as Graph JSON, times, status and answers; nothing else."""
    data = series_drafts(_series(), _series().mark_booked(FIRST), 1)[0].data
    assert set(data) == {"seriesId", "tenantId", "organizer", "start", "end", "timeZone", "recurrence", "status",
                         "source", "version", "attendees"}
    assert data["recurrence"]["pattern"] == {"type": "weekly", "interval": 1, "daysOfWeek": ["tuesday"],
                                             "firstDayOfWeek": "sunday"}


def test_changes_are_refused_while_one_is_pending_or_after_cancellation() -> None:
    """A series being written or cancelled takes no new change (409 with a code)."""
    pending = _series()
    with pytest.raises(Conflict) as err:
        pending.request_reschedule(pending.current, None, FIRST)
    assert err.value.code == "series_change_pending"
    cancelled = pending.mark_cancelled(FIRST)
    with pytest.raises(Conflict) as err:
        cancelled.request_cancel(None, FIRST)
    assert err.value.code == "series_cancelled"
    assert pending.request_cancel(None, FIRST).pending_op is SeriesOp.CANCEL  # a cancel overtakes a create


def test_cut_date_is_the_day_after_the_last_started_occurrence() -> None:
    """Nothing started: None (everything goes); after three weeks: the day after the third occurrence."""
    s = _series()
    assert cut_date(s, FIRST - timedelta(days=1)) is None
    assert cut_date(s, FIRST + timedelta(weeks=2, hours=1)) == date(2026, 3, 18)


def test_commands_round_trip_and_refuse_what_is_not_one() -> None:
    """A series command survives the queue; another kind, a bad op or version is an invalid message."""
    cmd = SeriesWriteCommand(T, SID, SeriesOp.RESCHEDULE, 3, "cid", "sealed", 2)
    assert SeriesWriteCommand.from_message(cmd.to_message()) == cmd
    for broken in ({**cmd.to_message(), "kind": "event_write"}, {**cmd.to_message(), "op": "explode"},
                   {**cmd.to_message(), "version": 0}, {**cmd.to_message(), "seriesId": ""}):
        with pytest.raises(InvalidMessage):
            SeriesWriteCommand.from_message(broken)


def test_series_rows_round_trip_through_the_codec() -> None:
    """Every field of a series survives storage (rule as Graph JSON, segments, skipped starts, dates)."""
    s = replace(_series(room=AttendeeState("room@x.test")), status=SeriesStatus.BOOKED, pending_op=None,
                on_conflict=OnConflict.SKIP, skipped=(FIRST + timedelta(weeks=2),), slot_checked=True,
                cancel_from=date(2026, 5, 5), note="exceptions_reset_by_pattern_change", join_url="https://j",
                requested=Segment(weekly(3), FIRST, FIRST + LENGTH, ZONE), split_from=FIRST,
                created_at=FIRST, updated_at=FIRST)
    s = s.with_segment(0, replace(s.current, master_event_id="m1", ical_uid="u1"))
    back = series_from_entity(T, SID, series_to_entity(s))
    assert back == s
    assert all(v is None or isinstance(v, str | int | bool | datetime) for v in series_to_entity(s).values())
    assert datetime(2026, 1, 1, tzinfo=UTC) < back.start
