"""Repositories round-trip domain values through the TableStore port, tenant-scoped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.domain.errors import ConcurrencyConflict
from core.domain.integration import Integration, IntegrationStatus
from core.domain.sessions import AttendeeState, Session
from core.services.stores.integrations import IntegrationRepository
from core.services.stores.sessions import SessionRepository
from tests.support.memory import InMemoryTableStore

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def make_session(sid: str = "s1", tenant: str = "t1", hours: int = 24) -> Session:
    start = NOW + timedelta(hours=hours)
    return Session(
        tenant_id=tenant, session_id=sid, organizer_id="org", organizer_address="alice@contoso.test",
        attendees=(AttendeeState("bob@contoso.test", user_id="bob"),), start=start, end=start + timedelta(minutes=30),
        time_zone="UTC", room=AttendeeState("room@contoso.test"), created_at=NOW, updated_at=NOW,
    )


def test_session_round_trips_and_is_listed_for_both_participants() -> None:
    """A stored session reads back equal and shows up for organizer and attendee in its window only."""
    repo = SessionRepository(InMemoryTableStore())
    s = make_session()
    repo.add(s)
    got = repo.require("t1", "s1")
    assert got.value == s
    window = (NOW, NOW + timedelta(days=2))
    assert [x.session_id for x in repo.list_for_user("t1", "org", *window)] == ["s1"]
    assert [x.session_id for x in repo.list_for_user("t1", "bob", *window)] == ["s1"]
    assert repo.list_for_user("t1", "bob", NOW + timedelta(days=3), NOW + timedelta(days=4)) == []
    assert repo.get("t2", "s1") is None


def test_save_with_stale_etag_is_a_conflict_and_reschedule_moves_the_index() -> None:
    """Two writers with the same ETag: the second loses; a moved session is found at its new time."""
    repo = SessionRepository(InMemoryTableStore())
    v = repo.add(make_session())
    moved = v.value.request_reschedule(NOW + timedelta(days=5), NOW + timedelta(days=5, minutes=30), "UTC", NOW)
    repo.save(moved, v.etag, previous=v.value)
    with pytest.raises(ConcurrencyConflict):
        repo.save(moved, v.etag, previous=v.value)
    assert repo.list_for_user("t1", "bob", NOW, NOW + timedelta(days=2)) == []
    assert len(repo.list_for_user("t1", "bob", NOW + timedelta(days=4), NOW + timedelta(days=6))) == 1


def test_event_index_finds_the_session() -> None:
    """Recording an event id makes the session findable by it, within the tenant only."""
    repo = SessionRepository(InMemoryTableStore())
    v = repo.add(make_session())
    booked = v.value.mark_created(event_id="AAMk/+=", ical_uid=None, join_url=None, online_provider=None,
                                  change_key=None, now=NOW)
    repo.save(booked, v.etag, previous=v.value)
    found = repo.by_event("t1", "AAMk/+=")
    assert found is not None and found.value.event_id == "AAMk/+="
    assert repo.by_event("t2", "AAMk/+=") is None


def test_integration_round_trip_and_registry() -> None:
    """An integration reads back equal and its tenant is listed for timers."""
    repo = IntegrationRepository(InMemoryTableStore())
    i = Integration(tenant_id="t1", owner_email="owner@contoso.test").transition(
        IntegrationStatus.CONSENT_PENDING, NOW
    )
    v = repo.save(i, None)
    assert repo.get("t1") == v
    assert list(repo.tenants()) == ["t1"]


def _start_rows(tables: InMemoryTableStore) -> list[str]:
    return [e.row_key for e in tables.query("sessions", "t1", row_key_from="t~", row_key_to="t~\U0010ffff")]


def test_start_index_finds_upcoming_sessions_and_moves_on_reschedule() -> None:
    """upcoming() finds a session by start time; a reschedule moves its t~ row, leaving no stale one."""
    tables = InMemoryTableStore()
    repo = SessionRepository(tables)
    v = repo.add(make_session())
    repo.add(make_session("s2", hours=24 * 10))
    assert [s.session_id for s in repo.upcoming("t1", NOW, NOW + timedelta(days=2))] == ["s1"]
    moved = v.value.request_reschedule(NOW + timedelta(days=5), NOW + timedelta(days=5, minutes=30), "UTC", NOW)
    repo.save(moved, v.etag, previous=v.value)
    assert repo.upcoming("t1", NOW, NOW + timedelta(days=2)) == []
    assert [s.session_id for s in repo.upcoming("t1", NOW + timedelta(days=4), NOW + timedelta(days=6))] == ["s1"]
    assert len(_start_rows(tables)) == 2
    assert repo.upcoming("t2", NOW, NOW + timedelta(days=30)) == []
