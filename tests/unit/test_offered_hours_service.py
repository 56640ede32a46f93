"""The offered-hours store and service on in-memory tables: rows, precedence, ETags, audit, caps, booking checks."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from core.domain.calendar import Weekday
from core.domain.errors import OfferedHoursInvalid, OutsideOfferedHours, PreconditionFailed
from core.domain.offered_hours import DateOverride, OfferedHours, OverrideMode, WeeklyWindow, Window
from core.domain.sessions import AttendeeState, PendingOp, Session, SessionStatus
from core.names import Tables
from core.services.authz import Caller
from core.services.offered_hours import OfferedHoursService, RulesSource
from core.services.stores.audit import AuditTrail
from core.services.stores.availability_rules import AvailabilityRulesRepository, StoredRules
from core.services.stores.outbox import Outbox, is_outbox_row
from core.services.stores.sessions import SessionRepository
from tests.support.memory import FixedClock, InMemoryTableStore

TENANT = "aaaaaaaa-0000-4000-8000-00000000000a"
OTHER_TENANT = "bbbbbbbb-0000-4000-8000-00000000000b"
MENTOR = "a0000000-0000-4000-8000-00000000000a"
MENTEE = "a0000000-0000-4000-8000-00000000000b"
ADMIN = "a0000000-0000-4000-8000-0000000000ad"
NOW = datetime(2025, 3, 2, 12, 0, tzinfo=UTC)  # Sunday
TUESDAY = datetime(2025, 3, 4, tzinfo=UTC)


def tue_thu(**kw: object) -> OfferedHours:
    windows = (WeeklyWindow(Weekday.TUESDAY, Window.of("14:00", "17:00")),
               WeeklyWindow(Weekday.THURSDAY, Window.of("14:00", "17:00")))
    return OfferedHours("UTC", weekly=windows, **kw)  # type: ignore[arg-type]


def every_weekday(**kw: object) -> OfferedHours:
    days = (Weekday.MONDAY, Weekday.TUESDAY, Weekday.WEDNESDAY, Weekday.THURSDAY, Weekday.FRIDAY)
    return OfferedHours("UTC", weekly=tuple(WeeklyWindow(d, Window.of("09:00", "17:00")) for d in days),
                        **kw)  # type: ignore[arg-type]


class World:
    def __init__(self) -> None:
        self.tables = InMemoryTableStore()
        self.clock = FixedClock(NOW)
        self.service = OfferedHoursService(self.tables, self.clock)
        self.sessions = SessionRepository(self.tables)
        self.mentor = Caller(TENANT, MENTOR)
        self.mentee = Caller(TENANT, MENTEE)
        self.admin = Caller(TENANT, ADMIN, roles=frozenset({"Integration.Admin"}))

    def session(self, start: datetime, minutes: int = 60, *, sid: str = "s1", organizer: str = MENTEE,
                attendee: str = MENTOR, **kw: object) -> Session:
        s = Session(TENANT, sid, organizer, "o@x.test", (AttendeeState("a@x.test", user_id=attendee),), start,
                    start + timedelta(minutes=minutes), "UTC", **kw)  # type: ignore[arg-type]
        self.sessions.add(s)
        return s


# --- the store ---------------------------------------------------------------------------------


def test_rules_round_trip_through_the_row_unchanged() -> None:
    """Every field (overnight windows, each override mode, notice, buffers, caps, the flag) survives the row."""
    tables = InMemoryTableStore()
    repo = AvailabilityRulesRepository(tables)
    rules = OfferedHours(
        "Europe/Berlin",
        weekly=(WeeklyWindow(Weekday.FRIDAY, Window.of("22:00", "02:00", ends_next_day=True)),
                WeeklyWindow(Weekday.MONDAY, Window.of("09:00", "24:00"))),
        overrides=(DateOverride(date(2025, 3, 4), OverrideMode.OFF),
                   DateOverride(date(2025, 3, 5), OverrideMode.REPLACE, (Window.of("10:00", "11:00"),)),
                   DateOverride(date(2025, 3, 6), OverrideMode.ADD, (Window.of("18:00", "19:30"),))),
        min_notice_minutes=720, buffer_before_minutes=5, buffer_after_minutes=10, max_per_day=2, max_per_week=None,
        within_working_hours=False,
    )
    saved = repo.save(TENANT, MENTOR.upper(), StoredRules(rules, NOW, ADMIN))
    found = repo.get(TENANT, MENTOR)
    assert found is not None and found.etag == saved.etag
    assert found.value == StoredRules(rules, NOW, ADMIN)
    [entity] = [e for e in tables.all(Tables.AVAILABILITY_RULES) if not is_outbox_row(e.row_key)]
    assert (entity.partition_key, entity.row_key) == (TENANT, f"u~{MENTOR}")


# --- events to the product -------------------------------------------------------------------


def _rules_events(tables: InMemoryTableStore) -> list[dict[str, object]]:
    outbox = Outbox(tables)
    return [{"type": r.event.type.value, **r.event.data} for r in outbox.pending(Tables.AVAILABILITY_RULES, TENANT)]


def test_each_change_of_offered_hours_writes_one_event_with_the_change() -> None:
    """Set by the user, set for them by the product's server, removed; the default set and removed by an admin:
    one availability_rules.changed each, in the same transaction as the row (outbox), naming who and through which
    app, never the rules themselves. Removing rules nobody has writes nothing."""
    w = World()
    app = Caller(TENANT, MENTOR, acting_app="product-server-client-id")
    w.service.put_for_user(w.mentor, MENTOR, tue_thu())
    w.clock.advance(seconds=5)
    w.service.put_for_user(app, MENTOR, every_weekday())
    w.clock.advance(seconds=5)
    w.service.delete_for_user(w.mentor, MENTOR)
    w.service.delete_for_user(w.mentor, MENTOR)  # nothing left: no event
    w.service.put_default(w.admin, tue_thu())
    w.clock.advance(seconds=1)  # a real clock moves between two storage round trips; this one must be told
    w.service.delete_default(w.admin)
    events = _rules_events(w.tables)
    assert [(e["type"], e["scope"], e.get("userId"), e["change"], e.get("changedBy"), e.get("app")) for e in events] \
        == [("availability_rules.changed", "user", MENTOR, "updated", MENTOR, None),  # one stream per row, in order
            ("availability_rules.changed", "user", MENTOR, "updated", MENTOR, "product-server-client-id"),
            ("availability_rules.changed", "user", MENTOR, "deleted", MENTOR, None),
            ("availability_rules.changed", "default", None, "updated", ADMIN, None),
            ("availability_rules.changed", "default", None, "deleted", ADMIN, None)]
    assert all(set(e) <= {"type", "tenantId", "scope", "userId", "change", "updatedAt", "changedBy", "app"}
               for e in events)
    user_times = [e["updatedAt"] for e in events if e["scope"] == "user"]
    assert user_times == sorted(user_times) and len(set(user_times)) == 3
    assert w.service.any_rules(TENANT) is False  # outbox rows waiting for dispatch are not rules


def test_a_stale_if_match_writes_no_event() -> None:
    """A refused write (412) leaves neither the row nor an event behind."""
    w = World()
    view = w.service.put_for_user(w.mentor, MENTOR, tue_thu())
    w.service.put_for_user(w.mentor, MENTOR, every_weekday())
    before = _rules_events(w.tables)
    with pytest.raises(PreconditionFailed):
        w.service.put_for_user(w.mentor, MENTOR, tue_thu(), if_match=[view.etag or ""])
    with pytest.raises(PreconditionFailed):
        w.service.delete_for_user(w.mentor, MENTOR, if_match=[view.etag or ""])
    assert _rules_events(w.tables) == before and len(before) == 2


def test_rows_are_per_tenant_and_the_default_has_its_own_row() -> None:
    """The default lives at RowKey 'default'; another tenant sees neither it nor a user's rules."""
    repo = AvailabilityRulesRepository(InMemoryTableStore())
    repo.save(TENANT, None, StoredRules(tue_thu()))
    repo.save(TENANT, MENTOR, StoredRules(every_weekday()))
    assert repo.get(TENANT, None) is not None and repo.has_any(TENANT)
    assert repo.get(OTHER_TENANT, None) is None and repo.get(OTHER_TENANT, MENTOR) is None
    assert not repo.has_any(OTHER_TENANT)


# --- precedence and reads -------------------------------------------------------------------------


def test_own_rules_replace_the_default_entirely() -> None:
    """No rules: none; a default: the default (no ETag on /me); own rules: only those, the default's cap gone."""
    w = World()
    assert w.service.view(TENANT, MENTOR).source is RulesSource.NONE
    w.service.put_default(w.admin, tue_thu(max_per_day=1))
    inherited = w.service.view(TENANT, MENTOR)
    assert (inherited.source, inherited.etag) == (RulesSource.DEFAULT, None)
    assert inherited.rules == tue_thu(max_per_day=1)
    w.service.put_for_user(w.mentor, MENTOR, every_weekday())
    own = w.service.view(TENANT, MENTOR)
    assert own.source is RulesSource.OWN and own.etag is not None
    assert own.rules == every_weekday() and own.rules.max_per_day is None
    assert w.service.effective(TENANT, MENTEE) == tue_thu(max_per_day=1)
    w.service.delete_for_user(w.mentor, MENTOR)
    assert w.service.view(TENANT, MENTOR).source is RulesSource.DEFAULT


def test_unusable_rules_are_refused_and_nothing_is_stored() -> None:
    """A PUT with an inverted window is 422 inverted_window and writes no row."""
    w = World()
    bad = OfferedHours("UTC", weekly=(WeeklyWindow(Weekday.MONDAY, Window.of("17:00", "09:00")),))
    with pytest.raises(OfferedHoursInvalid) as caught:
        w.service.put_for_user(w.mentor, MENTOR, bad)
    assert caught.value.code == "inverted_window"
    assert w.tables.all(Tables.AVAILABILITY_RULES) == []


# --- ETags ----------------------------------------------------------------------------------------


def test_if_match_replaces_only_the_version_that_was_read() -> None:
    """The current ETag writes (and yields a new one); the previous ETag is 412; '*' needs an existing row."""
    w = World()
    first = w.service.put_for_user(w.mentor, MENTOR, tue_thu(), if_none_match=True)
    assert first.etag is not None
    second = w.service.put_for_user(w.mentor, MENTOR, every_weekday(), if_match=[first.etag])
    assert second.etag not in (None, first.etag)
    with pytest.raises(PreconditionFailed) as caught:
        w.service.put_for_user(w.mentor, MENTOR, tue_thu(), if_match=[first.etag])
    assert caught.value.http_status == 412 and caught.value.code == "precondition_failed"
    assert w.service.view(TENANT, MENTOR).rules == every_weekday()
    w.service.put_for_user(w.mentor, MENTOR, tue_thu(), if_match=["*"])
    with pytest.raises(PreconditionFailed):
        w.service.put_for_user(w.mentee, MENTEE, tue_thu(), if_match=["*"])


def test_if_none_match_refuses_to_overwrite_rules_created_meanwhile() -> None:
    """Two tabs both creating: the second create-only write is 412 and the first's rules stay."""
    w = World()
    w.service.put_for_user(w.mentor, MENTOR, tue_thu(), if_none_match=True)
    with pytest.raises(PreconditionFailed):
        w.service.put_for_user(w.mentor, MENTOR, every_weekday(), if_none_match=True)
    assert w.service.view(TENANT, MENTOR).rules == tue_thu()


def test_a_write_racing_between_read_and_save_is_412_not_lost() -> None:
    """Another writer saving after our precondition check makes ours fail with 412 instead of overwriting it."""
    w = World()
    view = w.service.put_for_user(w.mentor, MENTOR, tue_thu())
    repo = w.service.rules
    real_get = repo.get

    def get_then_race(tenant: str, user: str | None):  # type: ignore[no-untyped-def]
        found = real_get(tenant, user)
        repo.save(TENANT, MENTOR, StoredRules(every_weekday(max_per_week=3)))  # the other tab wins the race
        return found

    repo.get = get_then_race  # type: ignore[method-assign]
    with pytest.raises(PreconditionFailed):
        w.service.put_for_user(w.mentor, MENTOR, tue_thu(max_per_day=2), if_match=[str(view.etag)])
    repo.get = real_get  # type: ignore[method-assign]
    assert w.service.view(TENANT, MENTOR).rules == every_weekday(max_per_week=3)


def test_without_preconditions_the_last_writer_wins_and_delete_is_idempotent() -> None:
    """Unconditional PUTs replace; deleting twice is fine; a conditional delete of a stale version is 412."""
    w = World()
    first = w.service.put_for_user(w.mentor, MENTOR, tue_thu())
    w.service.put_for_user(w.mentor, MENTOR, every_weekday())
    with pytest.raises(PreconditionFailed):
        w.service.delete_for_user(w.mentor, MENTOR, if_match=[str(first.etag)])
    w.service.delete_for_user(w.mentor, MENTOR)
    w.service.delete_for_user(w.mentor, MENTOR)
    assert w.service.view(TENANT, MENTOR).source is RulesSource.NONE


def test_admin_changes_are_audited_and_users_own_are_not() -> None:
    """The default and another user's rules leave audit entries naming the admin; a user's own change does not."""
    w = World()
    w.service.put_for_user(w.mentor, MENTOR, tue_thu())
    assert AuditTrail(w.tables, w.clock).entries(TENANT) == []
    w.service.put_default(w.admin, tue_thu())
    w.service.put_for_user(w.admin, MENTEE, every_weekday())
    w.service.delete_default(w.admin)
    entries = AuditTrail(w.tables, w.clock).entries(TENANT)
    assert sorted(e.action for e in entries) == [
        "availability_rules.default.delete", "availability_rules.default.put", "availability_rules.put"]
    assert {e.actor for e in entries} == {ADMIN}


# --- what the rules allow ---------------------------------------------------------------------------


def test_constraints_give_offered_intervals_and_buffers_per_user_with_rules() -> None:
    """A user with rules gets their week's offered intervals and buffers; a user without none at all."""
    w = World()
    w.service.put_for_user(w.mentor, MENTOR, tue_thu(buffer_before_minutes=10, buffer_after_minutes=5))
    found = w.service.constraints(TENANT, [MENTOR, MENTEE], TUESDAY, TUESDAY + timedelta(days=7), NOW)
    assert set(found) == {MENTOR}
    c = found[MENTOR]
    assert [(i.start, i.end) for i in c.offered] == [
        (TUESDAY + timedelta(hours=14), TUESDAY + timedelta(hours=17)),
        (TUESDAY + timedelta(days=2, hours=14), TUESDAY + timedelta(days=2, hours=17)),
    ]
    assert (c.buffer_before_minutes, c.buffer_after_minutes, c.within_working_hours) == (10, 5, True)


def test_caps_count_sessions_that_hold_time_only() -> None:
    """Pending and booked sessions count towards maxPerDay; cancelled, failed and cancelling ones do not."""
    w = World()
    w.service.put_for_user(w.mentor, MENTOR, tue_thu(max_per_day=1))
    w.session(TUESDAY + timedelta(hours=9), sid="c", status=SessionStatus.CANCELLED, pending_op=None)
    w.session(TUESDAY + timedelta(hours=10), sid="f", status=SessionStatus.FAILED, pending_op=None)
    w.session(TUESDAY + timedelta(hours=11), sid="x", status=SessionStatus.BOOKED, pending_op=PendingOp.CANCEL)
    window = (TUESDAY, TUESDAY + timedelta(days=7))
    assert len(w.service.constraints(TENANT, [MENTOR], *window, NOW)[MENTOR].offered) == 2
    w.session(TUESDAY + timedelta(hours=12), sid="b", status=SessionStatus.BOOKED, pending_op=None)
    [thursday] = w.service.constraints(TENANT, [MENTOR], *window, NOW)[MENTOR].offered
    assert thursday.start == TUESDAY + timedelta(days=2, hours=14)


def test_require_offered_refuses_outside_windows_notice_caps_and_buffers_without_saying_which() -> None:
    """Each kind of refusal is the same 422 outside_offered_hours with no details; inside everything it passes."""
    w = World()
    w.service.put_for_user(w.mentor, MENTOR, tue_thu(min_notice_minutes=3 * 24 * 60, max_per_week=2,
                                                      buffer_after_minutes=30))
    inside = (TUESDAY + timedelta(days=2, hours=15), TUESDAY + timedelta(days=2, hours=16))
    w.service.require_offered(TENANT, [MENTOR], *inside)
    refusals = [
        (TUESDAY + timedelta(days=2, hours=10), TUESDAY + timedelta(days=2, hours=11)),  # outside the window
        (TUESDAY + timedelta(hours=15), TUESDAY + timedelta(hours=16)),  # too soon (3 days' notice)
    ]
    w.session(TUESDAY + timedelta(days=2, hours=16, minutes=20), 30, sid="later")
    refusals.append(inside)  # the next session starts 20 minutes after: the 30-minute buffer is broken
    messages = set()
    for start, end in refusals:
        with pytest.raises(OutsideOfferedHours) as caught:
            w.service.require_offered(TENANT, [MENTOR], start, end)
        assert caught.value.code == "outside_offered_hours" and caught.value.details == {}
        messages.add(caught.value.message)
    w.session(TUESDAY + timedelta(days=2, hours=14), 30, sid="earlier")  # now two sessions: the week is full
    with pytest.raises(OutsideOfferedHours) as caught:
        w.service.require_offered(TENANT, [MENTOR], TUESDAY + timedelta(days=2, hours=14, minutes=30),
                                  TUESDAY + timedelta(days=2, hours=15))
    messages.add(caught.value.message)
    assert len(messages) == 1


def test_the_session_being_moved_neither_counts_nor_blocks() -> None:
    """Rescheduling the only session of a maxPerDay 1 day to later that day passes with exclude_session."""
    w = World()
    w.service.put_for_user(w.mentor, MENTOR, tue_thu(max_per_day=1, buffer_before_minutes=60))
    w.session(TUESDAY + timedelta(hours=14), sid="moving")
    later = (TUESDAY + timedelta(hours=15), TUESDAY + timedelta(hours=16))
    with pytest.raises(OutsideOfferedHours):
        w.service.require_offered(TENANT, [MENTOR], *later)
    w.service.require_offered(TENANT, [MENTOR], *later, exclude_session="moving")


def test_users_without_rules_and_tenants_without_rules_are_never_restricted() -> None:
    """Someone with no rules in a tenant with rules passes; a tenant with none reads no session at all."""
    w = World()
    w.service.require_offered(TENANT, [MENTEE], NOW + timedelta(minutes=5), NOW + timedelta(minutes=35))
    reads = []
    w.service.sessions.list_for_user = lambda *a: reads.append(a) or []  # type: ignore[method-assign,func-returns-value]
    w.service.require_offered(TENANT, [MENTEE], NOW + timedelta(minutes=5), NOW + timedelta(minutes=35))
    assert reads == []
    w.service.put_for_user(w.mentor, MENTOR, tue_thu())
    w.service.require_offered(TENANT, [MENTEE], NOW + timedelta(minutes=5), NOW + timedelta(minutes=35))


def test_a_rule_change_never_touches_booked_sessions() -> None:
    """Replacing and deleting rules leaves every session row exactly as it was."""
    w = World()
    w.session(TUESDAY + timedelta(hours=14), sid="kept", status=SessionStatus.BOOKED, pending_op=None)
    before = sorted((e.row_key, dict(e.data)) for e in w.tables.all(Tables.SESSIONS))
    w.service.put_for_user(w.mentor, MENTOR, OfferedHours("UTC", overrides=(
        DateOverride(TUESDAY.date(), OverrideMode.OFF),)))
    w.service.put_default(w.admin, tue_thu(max_per_day=1))
    w.service.delete_for_user(w.mentor, MENTOR)
    assert sorted((e.row_key, dict(e.data)) for e in w.tables.all(Tables.SESSIONS)) == before


def test_preview_shows_the_offered_time_with_its_source() -> None:
    """The preview of default rules says so and lists their intervals in UTC, notice applied from now."""
    w = World()
    assert w.service.preview(TENANT, MENTOR, NOW, NOW + timedelta(days=7)).offered == ()
    w.service.put_default(w.admin, replace(tue_thu(), time_zone="Europe/Berlin"))
    preview = w.service.preview(TENANT, MENTOR, NOW, NOW + timedelta(days=7))
    assert (preview.source, preview.time_zone) == (RulesSource.DEFAULT, "Europe/Berlin")
    assert [(i.start.hour, i.end.hour) for i in preview.offered] == [(13, 16), (13, 16)]


def test_a_booking_at_the_end_of_the_calendar_is_refused_not_crashed() -> None:
    """Counting sessions around 31 December 9999 stays inside the calendar: the answer is a plain refusal."""
    w = World()
    w.service.put_for_user(w.mentor, MENTOR, tue_thu(max_per_day=1))
    last = datetime(9999, 12, 31, 22, tzinfo=UTC)
    with pytest.raises(OutsideOfferedHours):
        w.service.require_offered(TENANT, [MENTOR], last, last + timedelta(minutes=30))
