"""The session state machine: commands are versioned, Outlook changes are applied once and in order."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from core.domain.calendar import AttendeeResponse, EventMetadata, ResponseType
from core.domain.errors import Conflict, Forbidden, ValidationFailed
from core.domain.sessions import AttendeeState, ChangeSource, PendingOp, Session, SessionStatus, validate_times

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
START = NOW + timedelta(days=1)


def booked() -> Session:
    s = Session(
        tenant_id="t1",
        session_id="s1",
        organizer_id="org",
        organizer_address="alice@contoso.test",
        attendees=(AttendeeState("bob@contoso.test", user_id="bob"),),
        start=START,
        end=START + timedelta(minutes=30),
        time_zone="Europe/Berlin",
        room=AttendeeState("room1@contoso.test"),
    )
    return s.mark_created(
        event_id="ev1", ical_uid="uid", join_url="https://teams.example/j", online_provider="teamsForBusiness",
        change_key="ck1", now=NOW,
    )


def meta(s: Session, **changes: object) -> EventMetadata:
    base = EventMetadata(
        event_id="ev1",
        start=s.start,
        end=s.end,
        attendees=(
            AttendeeResponse("bob@contoso.test", ResponseType.NOT_RESPONDED),
            AttendeeResponse("room1@contoso.test", ResponseType.NOT_RESPONDED, is_resource=True),
        ),
        change_key="ck1",
        last_modified=NOW,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_created_session_is_booked_and_command_no_longer_current() -> None:
    """After the worker records the event, a redelivered create command is recognised as stale."""
    s = booked()
    assert s.status == SessionStatus.BOOKED and s.pending_op is None
    assert not s.command_is_current(1, PendingOp.CREATE)


def test_reschedule_bumps_version_and_stale_commands_are_ignored() -> None:
    """Each API change gets a new version; only the newest command is current."""
    s = booked().request_reschedule(START + timedelta(hours=1), START + timedelta(hours=2), "UTC", NOW)
    assert s.pending_op == PendingOp.RESCHEDULE and s.version == 2
    assert s.command_is_current(2, PendingOp.RESCHEDULE)
    s2 = s.request_cancel(NOW)
    assert not s2.command_is_current(2, PendingOp.RESCHEDULE)
    assert s2.command_is_current(3, PendingOp.CANCEL)


def test_only_the_organizer_may_change() -> None:
    """An attendee is refused with 403."""
    with pytest.raises(Forbidden):
        booked().require_organizer("bob")
    booked().require_organizer("org")


def test_attendee_response_from_outlook_is_applied_once() -> None:
    """An accept is stored; the same notification again changes nothing."""
    s = booked()
    m = meta(s, attendees=(AttendeeResponse("bob@contoso.test", ResponseType.ACCEPTED),), change_key="ck2",
             last_modified=NOW + timedelta(minutes=1))
    changed = s.apply_observed(m, NOW)
    assert changed is not None and changed.attendees[0].response == ResponseType.ACCEPTED
    assert changed.apply_observed(m, NOW) is None


def test_move_in_outlook_sets_source_outlook_and_older_views_are_ignored() -> None:
    """A newer move is applied with source outlook; an older notification arriving late is not."""
    s = booked()
    later = meta(s, start=s.start + timedelta(hours=2), end=s.end + timedelta(hours=2), change_key="ck3",
                 last_modified=NOW + timedelta(minutes=5))
    moved = s.apply_observed(later, NOW)
    assert moved is not None and moved.source == ChangeSource.OUTLOOK and moved.start == later.start
    stale = meta(s, change_key="ck2", last_modified=NOW + timedelta(minutes=1))
    assert moved.apply_observed(stale, NOW) is None


def test_cancel_in_outlook_and_deletion_end_cancelled_once() -> None:
    """A cancellation or deletion makes the session cancelled; repeats change nothing."""
    s = booked()
    cancelled = s.apply_observed(meta(s, is_cancelled=True, last_modified=NOW + timedelta(minutes=1)), NOW)
    assert cancelled is not None and cancelled.status == SessionStatus.CANCELLED
    assert cancelled.source == ChangeSource.OUTLOOK
    assert cancelled.mark_deleted_in_outlook(NOW) is None


def test_cancelled_session_cannot_be_rescheduled() -> None:
    """Rescheduling a cancelled session is a 409."""
    with pytest.raises(Conflict):
        booked().mark_cancelled(NOW).request_reschedule(START, START + timedelta(hours=1), "UTC", NOW)


def test_times_are_validated() -> None:
    """End after start, 5 minutes to 8 hours, not in the past."""
    for start, end in [
        (START, START),
        (START, START + timedelta(minutes=2)),
        (START, START + timedelta(hours=9)),
        (NOW - timedelta(hours=1), NOW),
    ]:
        with pytest.raises(ValidationFailed):
            validate_times(start, end, NOW)
    validate_times(START, START + timedelta(minutes=30), NOW)
