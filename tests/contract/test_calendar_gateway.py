"""One contract for the ``CalendarGateway``: the in-memory fake and the real Graph gateway.

Every test runs twice: against ``FakeCalendarGateway`` (what service unit tests use) and
against the real ``GraphGateway`` + ``AppOnlyTokenProvider`` talking to the local Microsoft
365 simulator over https. A behaviour services rely on is pinned here so the fake cannot
drift from Graph as the real gateway reports it.

The simulator is started once per session and mutated by the tests, so each test works
in its own day, far beyond the seeded events (the seed covers the next 8 weeks), with the
seeded Contoso users; the fake is seeded with the same shapes (``_fake_backend``).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import pytest

from core.domain.calendar import (
    EventMetadata,
    EventType,
    FreeBusyStatus,
    GraphIdentity,
    NewEvent,
    PatternedRecurrence,
    RecurrencePattern,
    RecurrencePatternType,
    RecurrenceRange,
    RecurrenceRangeType,
    ResponseType,
    TimeZoneSpec,
    Weekday,
    WorkingHours,
)
from core.domain.errors import (
    AuthorizationError,
    GraphConflict,
    GraphRequestRejected,
    InvalidRecurrence,
    ItemNotFound,
    MailboxUnavailable,
    OutsideAppScope,
    Throttled,
    TransientGraphError,
    UserNotFound,
)
from core.ports import CalendarGateway
from local.simulator import SimulatorHandle, seed
from tests.support.fake_graph import (
    HYBRID,
    ON_PREMISES,
    OUTSIDE_SCOPE,
    SCHEDULE_MAILBOX_UNREACHABLE,
    SCHEDULE_OUTSIDE_SCOPE,
    SCHEDULE_UNKNOWN_ADDRESS,
    UNLICENSED,
    FakeCalendarGateway,
    FakeTokenProvider,
)
from tests.support.simulator import (
    SimulatorControl,
    WebhookReceiver,
    real_gateway,
    running_simulator,
    webhook_receiver,
)

TENANT = seed.CONTOSO
OTHER_TENANT = seed.FABRIKAM
ALICE, BOB, CAROL = seed.ALICE, seed.BOB, "carol@contoso.test"
ON_PREM, UNLICENSED_USER, SCOPED = "onprem1@contoso.test", "nolicense1@contoso.test", "scoped1@contoso.test"
DISABLED_USER, SKYPE_ONLY = "trent@contoso.test", "victor@contoso.test"
HYBRID_USER = "hybrid1@contoso.test"
ROOM, SECOND_ROOM, ROOM_LIST = "room-orca@contoso.test", "room-thames@contoso.test", "rooms-b1@contoso.test"
UNKNOWN = "nobody@contoso.test"
MISSING_EVENT = "AAMkADno+such/event0000000000000000000000="
WORK_DAYS = frozenset({Weekday.MONDAY, Weekday.TUESDAY, Weekday.WEDNESDAY, Weekday.THURSDAY, Weekday.FRIDAY})

_days = itertools.count(70)


@dataclass
class Backend:
    """A gateway plus the few things a test needs that the port does not offer."""

    name: str
    gateway: CalendarGateway
    who: GraphIdentity
    notification_url: str
    own_response: Callable[[str, str], str]
    without_consent: Callable[[], AbstractContextManager[GraphIdentity]]
    outlook: Outlook


class Outlook(Protocol):
    """Changes people make in Outlook (not calls of ours): the simulator's control API or the fake's helpers."""

    def respond(self, attendee: str, event_id: str, response: str) -> None: ...

    def move(self, organizer: str, event_id: str, start: datetime, end: datetime) -> None: ...

    def cancel(self, organizer: str, event_id: str) -> None: ...


@dataclass
class _FakeOutlook:
    fake: FakeCalendarGateway

    def respond(self, attendee: str, event_id: str, response: str) -> None:
        self.fake.respond_as_attendee(TENANT, attendee, event_id, response)

    def move(self, organizer: str, event_id: str, start: datetime, end: datetime) -> None:
        self.fake.move_event_as_organizer(TENANT, organizer, event_id, start, end)

    def cancel(self, organizer: str, event_id: str) -> None:
        self.fake.cancel_event_as_organizer(TENANT, organizer, event_id)


@dataclass
class _SimulatorOutlook:
    control: SimulatorControl

    def respond(self, attendee: str, event_id: str, response: str) -> None:
        self.control.respond(attendee, event_id, response)

    def move(self, organizer: str, event_id: str, start: datetime, end: datetime) -> None:
        self.control.move(organizer, event_id, start.isoformat(), end.isoformat())

    def cancel(self, organizer: str, event_id: str) -> None:
        self.control.cancel(organizer, event_id)


@pytest.fixture
def day() -> datetime:
    """Midnight UTC of a day no other test uses, past every seeded event."""
    base = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return base + timedelta(days=next(_days))


# --- backends --------------------------------------------------------------------------


def _fake_backend() -> Backend:
    tokens = FakeTokenProvider(consented=[TENANT, OTHER_TENANT])
    fake = FakeCalendarGateway(tokens=tokens)
    pacific = WorkingHours(WORK_DAYS, time(9), time(17), TimeZoneSpec("Pacific Standard Time"))
    fake.add_user(TENANT, "admin@contoso.test", user_id=seed.CONTOSO_ADMIN_ID, time_zone="Eastern Standard Time")
    fake.add_user(TENANT, ALICE, user_id=seed.ALICE_ID, working_hours=pacific)
    fake.add_user(TENANT, BOB, user_id=seed.BOB_ID, time_zone="W. Europe Standard Time")
    fake.add_user(TENANT, CAROL)
    fake.add_user(TENANT, ON_PREM, kind=ON_PREMISES)
    fake.add_user(TENANT, UNLICENSED_USER, kind=UNLICENSED)
    fake.add_user(TENANT, SCOPED, kind=OUTSIDE_SCOPE)
    fake.add_user(TENANT, HYBRID_USER, kind=HYBRID, time_zone="Eastern Standard Time")
    fake.add_user(TENANT, DISABLED_USER, kind="disabled")
    fake.add_user(TENANT, SKYPE_ONLY, providers=("skypeForBusiness",))
    fake.add_room_list(TENANT, ROOM_LIST, "Building 1 Rooms")
    fake.add_room_list(TENANT, "rooms-b2@contoso.test", "Building 2 Rooms")
    fake.add_room(TENANT, ROOM, "Orca (B1, 8)", capacity=8, building="Building 1", room_list=ROOM_LIST)
    fake.add_room(TENANT, SECOND_ROOM, "Thames (B2, 6)", capacity=6, building="Building 2",
                  room_list="rooms-b2@contoso.test")
    fake.add_user(OTHER_TENANT, seed.FABRIKAM_ADMIN, user_id=seed.FABRIKAM_ADMIN_ID)

    @contextmanager
    def without_consent() -> Iterator[GraphIdentity]:
        tokens.revoke_consent(OTHER_TENANT)
        try:
            yield GraphIdentity(OTHER_TENANT)
        finally:
            tokens.grant_consent(OTHER_TENANT)

    return Backend(
        name="fake",
        gateway=fake,
        who=GraphIdentity(TENANT),
        notification_url="https://service.example/api/graph/notifications",
        own_response=lambda user, event_id: str(fake.response_of(TENANT, user, event_id)),
        without_consent=without_consent,
        outlook=_FakeOutlook(fake),
    )


@dataclass
class _Simulator:
    handle: SimulatorHandle
    control: SimulatorControl
    receiver: WebhookReceiver


@pytest.fixture(scope="session")
def simulator() -> Iterator[_Simulator]:
    """The simulator in-process with Contoso's consent granted, and a webhook endpoint for subscriptions."""
    with running_simulator() as handle, webhook_receiver() as receiver:
        control = SimulatorControl(handle)
        control.grant_consent(TENANT)
        yield _Simulator(handle, control, receiver)


def _simulator_backend(sim: _Simulator) -> Backend:
    gateway, _tokens = real_gateway(sim.handle)

    def own_response(user: str, event_id: str) -> str:
        for event in sim.control.events(user):
            if event["id"] == event_id:
                return str(event["responseStatus"]["response"])
        raise AssertionError(f"{event_id} is not in {user}'s calendar")

    @contextmanager
    def without_consent() -> Iterator[GraphIdentity]:
        sim.control.revoke_consent(OTHER_TENANT)
        try:
            yield GraphIdentity(OTHER_TENANT)
        finally:
            sim.control.grant_consent(OTHER_TENANT)

    return Backend(
        name="simulator",
        gateway=gateway,
        who=GraphIdentity(TENANT),
        notification_url=sim.receiver.url,
        own_response=own_response,
        without_consent=without_consent,
        outlook=_SimulatorOutlook(sim.control),
    )


@pytest.fixture(params=["fake", "simulator"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """The gateway under contract: the fake, then the real gateway on the simulator."""
    if request.param == "fake":
        return _fake_backend()
    return _simulator_backend(request.getfixturevalue("simulator"))


def _meeting(day: datetime, hour: int, *, minutes: int = 30, **fields: Any) -> NewEvent:
    start = day + timedelta(hours=hour)
    return NewEvent(subject="Mentoring", start=start, end=start + timedelta(minutes=minutes), **fields)


def _copy_in(gateway: CalendarGateway, who: GraphIdentity, user: str, day: datetime) -> list[str]:
    """Ids of the events in ``user``'s calendar on ``day``."""
    return [item.event_id for item in gateway.calendar_view(who, user, day, day + timedelta(days=1))]


# --- directory -------------------------------------------------------------------------


def test_list_users_returns_enabled_accounts_with_mailboxes_only(backend: Backend) -> None:
    """Disabled accounts and room mailboxes are left out; unreachable mailboxes still appear."""
    users = list(backend.gateway.list_users(backend.who, page_size=7))
    addresses = {u.mail for u in users}
    assert {ALICE, BOB, ON_PREM, SCOPED} <= addresses
    assert DISABLED_USER not in addresses
    assert ROOM not in addresses
    assert all(u.account_enabled and u.mail for u in users)


def test_get_user_resolves_by_id_and_by_upn(backend: Backend) -> None:
    """A user is found by object id and by UPN, and both give the same account."""
    by_upn = backend.gateway.get_user(backend.who, ALICE)
    by_id = backend.gateway.get_user(backend.who, seed.ALICE_ID)
    assert by_upn.user_id == seed.ALICE_ID
    assert by_id.user_principal_name == ALICE
    assert by_id == by_upn


def test_get_user_of_unknown_address_raises_user_not_found(backend: Backend) -> None:
    """An address the directory does not know is UserNotFound."""
    with pytest.raises(UserNotFound):
        backend.gateway.get_user(backend.who, UNKNOWN)


def test_get_users_resolves_many_refs_in_batches_and_reports_each_unknown_one(backend: Backend) -> None:
    """Ids, UPNs and unknown addresses (more than one $batch of 20) each get their user or UserNotFound."""
    refs = [seed.ALICE_ID, BOB, CAROL.upper(), UNKNOWN, *(f"nobody{n}@contoso.test" for n in range(20))]
    found = backend.gateway.get_users(backend.who, refs)
    assert set(found) == set(refs)
    alice, bob, carol = (found[r] for r in refs[:3])
    assert not isinstance(alice, Exception) and alice.mail == ALICE
    assert not isinstance(bob, Exception) and bob.user_id == backend.gateway.get_user(backend.who, BOB).user_id
    assert not isinstance(carol, Exception) and carol.mail == CAROL
    assert all(isinstance(found[r], UserNotFound) for r in refs[3:])


# --- calendars, mailbox settings, reachability ------------------------------------------


def test_get_calendar_reports_allowed_online_meeting_providers(backend: Backend) -> None:
    """Teams is allowed on a normal calendar and not on a Skype-only one."""
    assert backend.gateway.get_calendar(backend.who, ALICE).allows("teamsForBusiness")
    skype = backend.gateway.get_calendar(backend.who, SKYPE_ONLY)
    assert not skype.allows("teamsForBusiness")
    assert skype.allowed_online_meeting_providers == ("skypeForBusiness",)


@pytest.mark.parametrize(
    ("user", "error"),
    [(ON_PREM, MailboxUnavailable), (UNLICENSED_USER, MailboxUnavailable), (SCOPED, OutsideAppScope),
     (UNKNOWN, UserNotFound)],
)
def test_unreachable_mailboxes_raise_classified_errors(
    backend: Backend, user: str, error: type[Exception]
) -> None:
    """Calendar and mailbox-settings calls on unreachable mailboxes raise the classified error."""
    with pytest.raises(error):
        backend.gateway.get_calendar(backend.who, user)
    with pytest.raises(error):
        backend.gateway.get_mailbox_settings(backend.who, user)


def test_mailbox_settings_give_time_zone_and_working_hours(backend: Backend) -> None:
    """The mailbox's Windows time zone name and its working hours in that zone come back."""
    settings = backend.gateway.get_mailbox_settings(backend.who, ALICE)
    assert settings.time_zone == "Pacific Standard Time"
    hours = settings.working_hours
    assert hours is not None
    assert hours.days == WORK_DAYS
    assert (hours.start, hours.end) == (time(9), time(17))
    assert hours.time_zone.name == "Pacific Standard Time"


def test_probe_mailboxes_classifies_each_user(backend: Backend) -> None:
    """Reachable is None; the others get MailboxUnavailable, OutsideAppScope or UserNotFound."""
    result = backend.gateway.probe_mailboxes(backend.who, [ALICE, ON_PREM, UNLICENSED_USER, SCOPED, UNKNOWN, ALICE])
    assert list(result) == [ALICE, ON_PREM, UNLICENSED_USER, SCOPED, UNKNOWN]
    assert result[ALICE] is None
    assert isinstance(result[ON_PREM], MailboxUnavailable)
    assert isinstance(result[UNLICENSED_USER], MailboxUnavailable)
    assert isinstance(result[SCOPED], OutsideAppScope)
    assert isinstance(result[UNKNOWN], UserNotFound)


def test_hybrid_mailbox_has_free_busy_but_no_rest_access(backend: Backend, day: datetime) -> None:
    """A hybrid (on-premises) mailbox answers getSchedule with its availability while its calendar probe fails."""
    [hybrid] = backend.gateway.get_schedule(backend.who, ALICE, [HYBRID_USER], day, day + timedelta(days=1))
    assert hybrid.ok and hybrid.working_hours is not None
    assert isinstance(backend.gateway.probe_mailboxes(backend.who, [HYBRID_USER])[HYBRID_USER], MailboxUnavailable)
    with pytest.raises(MailboxUnavailable):
        backend.gateway.get_calendar(backend.who, HYBRID_USER)


def test_token_failure_without_consent_is_an_authorization_error(backend: Backend) -> None:
    """Without admin consent every call fails with an AuthorizationError subclass, not a Graph error."""
    with backend.without_consent() as who, pytest.raises(AuthorizationError) as caught:
        backend.gateway.get_user(who, seed.FABRIKAM_ADMIN)
    assert caught.value.code == "app_not_in_tenant"


# --- free/busy -------------------------------------------------------------------------


def test_get_schedule_reports_busy_times_and_per_address_errors_in_request_order(
    backend: Backend, day: datetime
) -> None:
    """Events show as busy (organizer) and tentative (invited); unreachable addresses get an error code."""
    created = backend.gateway.create_event(backend.who, ALICE, _meeting(day, 10, attendees=(BOB,)))
    addresses = [BOB, UNKNOWN, ALICE, ON_PREM, SCOPED]
    schedules = backend.gateway.get_schedule(backend.who, ALICE, addresses, day, day + timedelta(days=1))
    assert [s.address for s in schedules] == addresses
    bob, unknown, alice, on_prem, scoped = schedules
    assert [(b.start, b.end, b.status) for b in alice.busy] == [(created.start, created.end, FreeBusyStatus.BUSY)]
    assert [(b.start, b.end, b.status) for b in bob.busy] == [(created.start, created.end, FreeBusyStatus.TENTATIVE)]
    assert alice.ok and alice.working_hours is not None and alice.working_hours.days == WORK_DAYS
    assert alice.availability_view == "0" * 20 + "2" + "0" * 27
    assert bob.availability_view == "0" * 20 + "1" + "0" * 27
    assert (unknown.error_code, on_prem.error_code, scoped.error_code) == (
        SCHEDULE_UNKNOWN_ADDRESS,
        SCHEDULE_MAILBOX_UNREACHABLE,
        SCHEDULE_OUTSIDE_SCOPE,
    )
    assert not unknown.busy and not unknown.ok


def test_get_schedule_refuses_more_than_20_addresses_before_calling(backend: Backend, day: datetime) -> None:
    """21 addresses (or none) is a ValueError: Graph's limit is 20 schedules per call."""
    with pytest.raises(ValueError, match="20"):
        backend.gateway.get_schedule(backend.who, ALICE, [ALICE] * 21, day, day + timedelta(hours=1))
    with pytest.raises(ValueError, match="20"):
        backend.gateway.get_schedule(backend.who, ALICE, [], day, day + timedelta(hours=1))


def test_get_schedule_with_unreachable_anchor_raises(backend: Backend, day: datetime) -> None:
    """The anchor mailbox must be reachable: its error is raised for the whole call."""
    with pytest.raises(MailboxUnavailable):
        backend.gateway.get_schedule(backend.who, ON_PREM, [ALICE], day, day + timedelta(hours=1))


# --- events ----------------------------------------------------------------------------


def test_a_group_event_invites_optional_people_and_guests_outside_the_tenant(backend: Backend, day: datetime) -> None:
    """Required, optional and guest attendees (with a display name) are all on the organizer's event; a colleague
    gets a copy whatever their type; a guest gets none (their mailbox is not the tenant's)."""
    gw, who = backend.gateway, backend.who
    guest = "jordan.candidate@example.org"
    created = gw.create_event(who, ALICE, _meeting(day, 14, attendees=(BOB, guest), optional_attendees=(CAROL,),
                                                   attendee_names=((guest, "Jordan Candidate"),)))
    listed = {a.address.lower(): a.response for a in gw.get_event(who, ALICE, created.event_id).attendees}
    assert listed == {BOB: ResponseType.NONE, guest: ResponseType.NONE, CAROL: ResponseType.NONE}
    assert len(_copy_in(gw, who, CAROL, day)) == 1 and len(_copy_in(gw, who, BOB, day)) == 1


def test_create_event_gives_the_attendee_a_not_responded_copy(backend: Backend, day: datetime) -> None:
    """The organizer's event lists the attendee (no answer yet); the attendee's copy has its own id."""
    gw, who = backend.gateway, backend.who
    created = gw.create_event(who, ALICE, _meeting(day, 11, attendees=(BOB,)))
    organizer_view = gw.get_event(who, ALICE, created.event_id)
    assert organizer_view.organizer == ALICE
    assert [(a.address, a.response, a.is_resource) for a in organizer_view.attendees] == [
        (BOB, ResponseType.NONE, False)
    ]
    assert (organizer_view.start, organizer_view.end) == (created.start, created.end)
    [copy_id] = _copy_in(gw, who, BOB, day)
    assert copy_id != created.event_id
    copy = gw.get_event(who, BOB, copy_id)
    assert copy.ical_uid == created.ical_uid == organizer_view.ical_uid
    assert copy.organizer == ALICE and copy.transaction_id is None
    assert not copy.is_cancelled
    assert backend.own_response(BOB, copy_id) == ResponseType.NOT_RESPONDED
    assert backend.own_response(ALICE, created.event_id) == ResponseType.ORGANIZER


def test_same_transaction_id_twice_creates_one_event(backend: Backend, day: datetime) -> None:
    """A retried create with the same transactionId returns the first event instead of a second one."""
    meeting = _meeting(day, 12, attendees=(BOB,), transaction_id="tx-contract-1")
    first = backend.gateway.create_event(backend.who, ALICE, meeting)
    second = backend.gateway.create_event(backend.who, ALICE, meeting)
    assert second.event_id == first.event_id
    assert first.transaction_id == "tx-contract-1"
    assert _copy_in(backend.gateway, backend.who, ALICE, day) == [first.event_id]
    assert len(_copy_in(backend.gateway, backend.who, BOB, day)) == 1


def test_find_event_by_transaction_id_finds_the_event_or_none(backend: Backend, day: datetime) -> None:
    """Crash recovery finds the event created with a transactionId, and None for an unused one."""
    created = backend.gateway.create_event(backend.who, ALICE, _meeting(day, 13, transaction_id="tx-find-1"))
    found = backend.gateway.find_event_by_transaction_id(backend.who, ALICE, "tx-find-1", day, day + timedelta(days=1))
    assert found is not None
    assert (found.event_id, found.transaction_id) == (created.event_id, "tx-find-1")
    missing = backend.gateway.find_event_by_transaction_id(
        backend.who, ALICE, "tx-unused", day, day + timedelta(days=1)
    )
    assert missing is None


def test_online_meeting_link_follows_the_calendars_allowed_provider(backend: Backend, day: datetime) -> None:
    """Teams gives a Teams join URL; a Skype-only calendar falls back to its own provider."""
    teams = backend.gateway.create_event(
        backend.who, ALICE, _meeting(day, 14, online_meeting_provider="teamsForBusiness")
    )
    assert teams.join_url is not None and teams.join_url.startswith("https://teams.microsoft.com/")
    skype = backend.gateway.create_event(
        backend.who, SKYPE_ONLY, _meeting(day, 14, online_meeting_provider="teamsForBusiness")
    )
    assert skype.join_url is not None and "teams.microsoft.com" not in skype.join_url
    assert backend.gateway.get_event(backend.who, ALICE, teams.event_id).join_url == teams.join_url


def test_update_event_moves_the_event_and_the_attendee_copy(backend: Backend, day: datetime) -> None:
    """PATCHing start/end moves the organizer's event and the invitee's copy; answers reset."""
    gw, who = backend.gateway, backend.who
    created = gw.create_event(who, ALICE, _meeting(day, 9, attendees=(BOB,)))
    new_start = day + timedelta(hours=15)
    moved = gw.update_event(who, ALICE, created.event_id, new_start, new_start + timedelta(hours=1),
                            time_zone="Pacific Standard Time")
    assert (moved.event_id, moved.start, moved.end) == (created.event_id, new_start, new_start + timedelta(hours=1))
    assert gw.get_event(who, ALICE, created.event_id).start == new_start
    [copy_id] = _copy_in(gw, who, BOB, day)
    assert gw.get_event(who, BOB, copy_id).start == new_start


def test_cancel_event_removes_the_organizers_event_and_cancels_the_copy(backend: Backend, day: datetime) -> None:
    """After cancel the organizer's event is gone (ItemNotFound, also on a second cancel); the copy is cancelled."""
    gw, who = backend.gateway, backend.who
    created = gw.create_event(who, ALICE, _meeting(day, 16, attendees=(BOB,)))
    [copy_id] = _copy_in(gw, who, BOB, day)
    gw.cancel_event(who, ALICE, created.event_id, comment="Sorry")
    with pytest.raises(ItemNotFound):
        gw.get_event(who, ALICE, created.event_id)
    with pytest.raises(ItemNotFound):
        gw.cancel_event(who, ALICE, created.event_id)
    assert gw.get_event(who, BOB, copy_id).is_cancelled


def test_cancel_by_an_attendee_is_rejected(backend: Backend, day: datetime) -> None:
    """Only the organizer can cancel: an attendee's cancel is refused by Graph."""
    gw, who = backend.gateway, backend.who
    gw.create_event(who, ALICE, _meeting(day, 17, attendees=(BOB,)))
    [copy_id] = _copy_in(gw, who, BOB, day)
    with pytest.raises(GraphRequestRejected):
        gw.cancel_event(who, BOB, copy_id)


def test_delete_event_removes_it_and_a_second_delete_is_item_not_found(backend: Backend, day: datetime) -> None:
    """Delete removes the event; deleting again is ItemNotFound ("already gone")."""
    created = backend.gateway.create_event(backend.who, ALICE, _meeting(day, 18))
    backend.gateway.delete_event(backend.who, ALICE, created.event_id)
    assert created.event_id not in _copy_in(backend.gateway, backend.who, ALICE, day)
    with pytest.raises(ItemNotFound):
        backend.gateway.delete_event(backend.who, ALICE, created.event_id)


def test_calendar_view_shows_subjects_only_when_asked(backend: Backend, day: datetime) -> None:
    """Own-calendar views carry subjects on request only; times, status and transactionId always."""
    created = backend.gateway.create_event(backend.who, ALICE, _meeting(day, 19, transaction_id="tx-view-1"))
    window = (day, day + timedelta(days=1))
    [plain] = backend.gateway.calendar_view(backend.who, ALICE, *window)
    [with_subject] = backend.gateway.calendar_view(backend.who, ALICE, *window, include_subject=True)
    assert plain.subject is None
    assert with_subject.subject == "Mentoring"
    assert (plain.event_id, plain.start, plain.end) == (created.event_id, created.start, created.end)
    assert (plain.show_as, plain.transaction_id, plain.is_cancelled) == (FreeBusyStatus.BUSY, "tx-view-1", False)


def test_get_events_reports_failures_per_pair(backend: Backend, day: datetime) -> None:
    """A batch read gives metadata for existing events and ItemNotFound/UserNotFound per failing pair."""
    created = backend.gateway.create_event(backend.who, ALICE, _meeting(day, 8))
    refs = [(ALICE, created.event_id), (ALICE, MISSING_EVENT), (UNKNOWN, created.event_id)]
    result = backend.gateway.get_events(backend.who, refs)
    assert list(result) == refs
    found = result[(ALICE, created.event_id)]
    assert not isinstance(found, Exception) and found.start == created.start
    assert isinstance(result[(ALICE, MISSING_EVENT)], ItemNotFound)
    assert isinstance(result[(UNKNOWN, created.event_id)], UserNotFound)


def test_calendar_view_delta_reports_changes_and_removals_since_the_last_link(
    backend: Backend, day: datetime
) -> None:
    """An initial sync lists the window; the next one only what changed and the ids that went away."""
    gw, who = backend.gateway, backend.who
    window = (day, day + timedelta(days=1))
    kept = gw.create_event(who, CAROL, _meeting(day, 9))
    removed = gw.create_event(who, CAROL, _meeting(day, 10))
    initial = gw.calendar_view_delta(who, CAROL, *window)
    assert {i.event_id for i in initial.items} == {kept.event_id, removed.event_id}
    assert initial.removed == ()
    added = gw.create_event(who, CAROL, _meeting(day, 11))
    gw.delete_event(who, CAROL, removed.event_id)
    changes = gw.calendar_view_delta(who, CAROL, *window, delta_link=initial.delta_link)
    assert [i.event_id for i in changes.items] == [added.event_id]
    assert changes.removed == (removed.event_id,)
    quiet = gw.calendar_view_delta(who, CAROL, *window, delta_link=changes.delta_link)
    assert (quiet.items, quiet.removed) == ((), ())


def test_outlook_answers_moves_and_cancellations_show_in_graph(backend: Backend, day: datetime) -> None:
    """What attendees and organizers do in Outlook is what the service reads back through the gateway."""
    gw, who, outlook = backend.gateway, backend.who, backend.outlook
    created = gw.create_event(who, ALICE, _meeting(day, 21, attendees=(BOB, CAROL)))
    [bob_copy] = _copy_in(gw, who, BOB, day)
    [carol_copy] = _copy_in(gw, who, CAROL, day)
    outlook.respond(BOB, bob_copy, "accepted")
    outlook.respond(CAROL, carol_copy, "declined")
    answers = {a.address: a.response for a in gw.get_event(who, ALICE, created.event_id).attendees}
    assert answers == {BOB: ResponseType.ACCEPTED, CAROL: ResponseType.DECLINED}
    assert backend.own_response(BOB, bob_copy) == ResponseType.ACCEPTED
    assert _copy_in(gw, who, CAROL, day) == []  # declining removes the attendee's copy

    later = created.start + timedelta(hours=1)
    outlook.move(ALICE, created.event_id, later, later + timedelta(minutes=30))
    moved = gw.get_event(who, ALICE, created.event_id)
    assert moved.start == later
    assert {a.address: a.response for a in moved.attendees}[BOB] == ResponseType.NONE
    assert gw.get_event(who, BOB, bob_copy).start == later
    assert backend.own_response(BOB, bob_copy) == ResponseType.NOT_RESPONDED

    outlook.cancel(ALICE, created.event_id)
    with pytest.raises(ItemNotFound):
        gw.get_event(who, ALICE, created.event_id)
    assert gw.get_event(who, BOB, bob_copy).is_cancelled


# --- rooms -----------------------------------------------------------------------------


def test_rooms_and_room_lists(backend: Backend) -> None:
    """Room lists, all rooms, and the rooms of one list, with capacity and building."""
    lists = {rl.address: rl.display_name for rl in backend.gateway.list_room_lists(backend.who)}
    assert lists[ROOM_LIST] == "Building 1 Rooms"
    all_rooms = {r.address for r in backend.gateway.list_rooms(backend.who)}
    assert {ROOM, SECOND_ROOM} <= all_rooms
    in_list = {r.address: r for r in backend.gateway.list_rooms(backend.who, ROOM_LIST)}
    assert ROOM in in_list and SECOND_ROOM not in in_list
    assert (in_list[ROOM].capacity, in_list[ROOM].building) == (8, "Building 1")


def test_room_accepts_when_free_and_declines_when_taken(backend: Backend, day: datetime) -> None:
    """A room attendee answers at once: accepted for the first booking, declined for an overlapping one."""
    gw, who = backend.gateway, backend.who
    first = gw.create_event(who, ALICE, _meeting(day, 20, room=ROOM, room_name="Orca"))
    second = gw.create_event(who, BOB, _meeting(day, 20, room=ROOM))
    first_room = [a for a in gw.get_event(who, ALICE, first.event_id).attendees if a.is_resource]
    second_room = [a for a in gw.get_event(who, BOB, second.event_id).attendees if a.is_resource]
    assert [(a.address, a.response) for a in first_room] == [(ROOM, ResponseType.ACCEPTED)]
    assert [(a.address, a.response) for a in second_room] == [(ROOM, ResponseType.DECLINED)]
    [room_schedule] = gw.get_schedule(who, ALICE, [ROOM], day, day + timedelta(days=1))
    assert [(b.start, b.status) for b in room_schedule.busy] == [(first.start, FreeBusyStatus.BUSY)]


# --- subscriptions ---------------------------------------------------------------------


def test_subscription_create_renew_delete_with_granted_expiry(backend: Backend) -> None:
    """Graph's granted expiry is read back on create and renew; after delete a renewal is ItemNotFound."""
    gw, who = backend.gateway, backend.who
    now = datetime.now(UTC).replace(microsecond=0)
    sub = gw.create_subscription(
        who,
        resource=f"/users/{seed.ALICE_ID}/events",
        change_type="created,updated,deleted",
        notification_url=backend.notification_url,
        lifecycle_url=backend.notification_url,
        client_state="contract-client-state",
        expiration=now + timedelta(days=2),
    )
    assert sub.expiration == now + timedelta(days=2)
    assert sub.resource == f"/users/{seed.ALICE_ID}/events"
    renewed = gw.renew_subscription(who, sub.subscription_id, now + timedelta(days=3))
    assert (renewed.subscription_id, renewed.expiration) == (sub.subscription_id, now + timedelta(days=3))
    batch = gw.renew_subscriptions(who, [(sub.subscription_id, now + timedelta(days=4)), ("0000-gone", now)])
    renewed_again = batch[sub.subscription_id]
    assert not isinstance(renewed_again, Exception) and renewed_again.expiration == now + timedelta(days=4)
    assert isinstance(batch["0000-gone"], ItemNotFound)
    gw.reauthorize_subscription(who, sub.subscription_id)
    gw.delete_subscription(who, sub.subscription_id)
    gw.delete_subscription(who, sub.subscription_id)  # already gone: not an error
    with pytest.raises(ItemNotFound):
        gw.renew_subscription(who, sub.subscription_id, now + timedelta(days=1))


def test_subscription_longer_than_the_outlook_maximum_is_refused(backend: Backend) -> None:
    """An expiry beyond 10,080 minutes is refused by Graph (the service must ask for less)."""
    with pytest.raises(GraphRequestRejected):
        backend.gateway.create_subscription(
            backend.who,
            resource=f"/users/{seed.ALICE_ID}/events",
            change_type="created,updated,deleted",
            notification_url=backend.notification_url,
            lifecycle_url=backend.notification_url,
            client_state="contract-client-state",
            expiration=datetime.now(UTC) + timedelta(minutes=10080 + 60),
        )


def test_list_subscriptions_gives_this_apps_live_subscriptions_of_the_tenant_only(backend: Backend) -> None:
    """GET /subscriptions lists what the app created in the caller's tenant (with granted expiry), not other
    tenants' and not deleted ones."""
    gw, who = backend.gateway, backend.who
    expiry = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)

    def create(identity: GraphIdentity, user_id: str) -> str:
        return gw.create_subscription(
            identity, resource=f"/users/{user_id}/events", change_type="created,updated,deleted",
            notification_url=backend.notification_url, lifecycle_url=backend.notification_url,
            client_state="contract-client-state", expiration=expiry,
        ).subscription_id

    alice, bob = create(who, seed.ALICE_ID), create(who, seed.BOB_ID)
    other = create(GraphIdentity(OTHER_TENANT), seed.FABRIKAM_ADMIN_ID)
    listed = {s.subscription_id: s for s in gw.list_subscriptions(who)}
    assert {alice, bob} <= set(listed) and other not in listed
    assert listed[alice].resource == f"/users/{seed.ALICE_ID}/events"
    assert listed[alice].expiration == expiry
    gw.delete_subscription(who, bob)
    assert bob not in {s.subscription_id for s in gw.list_subscriptions(who)}
    assert other in {s.subscription_id for s in gw.list_subscriptions(GraphIdentity(OTHER_TENANT))}
    for identity, sub_id in ((who, alice), (GraphIdentity(OTHER_TENANT), other)):
        gw.delete_subscription(identity, sub_id)


def test_subscription_on_an_unreachable_mailbox_raises_its_error(backend: Backend) -> None:
    """Subscribing to an on-premises mailbox's events fails with MailboxUnavailable."""
    user_id = backend.gateway.get_user(backend.who, ON_PREM).user_id
    with pytest.raises(MailboxUnavailable):
        backend.gateway.create_subscription(
            backend.who,
            resource=f"/users/{user_id}/events",
            change_type="created,updated,deleted",
            notification_url=backend.notification_url,
            lifecycle_url=backend.notification_url,
            client_state="contract-client-state",
            expiration=datetime.now(UTC) + timedelta(days=1),
        )


# --- fake-only controls (what service tests rely on beyond the port) --------------------


def _fake() -> FakeCalendarGateway:
    gateway = _fake_backend().gateway
    assert isinstance(gateway, FakeCalendarGateway)
    return gateway


def test_fake_counts_calls_per_method_and_tenant() -> None:
    """``call_count`` lets a test prove e.g. "one getSchedule for a pair" or "no Graph call at all"."""
    fake = _fake()
    who = GraphIdentity(TENANT)
    assert fake.call_count() == 0
    start = datetime(2030, 1, 7, 9, tzinfo=UTC)
    fake.get_schedule(who, ALICE, [ALICE, BOB], start, start + timedelta(hours=8))
    fake.get_user(who, ALICE)
    assert fake.call_count("get_schedule") == 1
    assert fake.call_count(tenant_id=TENANT) == 2
    assert [c.method for c in fake.calls] == ["get_schedule", "get_user"]


def test_fake_fail_next_fails_once_and_fail_always_until_cleared() -> None:
    """Injected failures: ``fail_next`` is used up by one call, ``fail_always`` lasts until ``clear_faults``."""
    fake = _fake()
    who = GraphIdentity(TENANT)
    fake.fail_next("get_user", TransientGraphError())
    with pytest.raises(TransientGraphError):
        fake.get_user(who, ALICE)
    assert fake.get_user(who, ALICE).mail == ALICE
    fake.fail_always("get_calendar", MailboxUnavailable)
    for _ in range(2):
        with pytest.raises(MailboxUnavailable):
            fake.get_calendar(who, ALICE)
    fake.clear_faults()
    assert fake.get_calendar(who, ALICE).allows("teamsForBusiness")


def test_fake_throttle_switch_raises_throttled_with_retry_after() -> None:
    """While throttled every call raises Throttled carrying retry_after, as the gateway does after its retries."""
    fake = _fake()
    fake.throttle(retry_after=12)
    with pytest.raises(Throttled) as caught:
        fake.get_user(GraphIdentity(TENANT), ALICE)
    assert caught.value.retry_after == 12
    fake.stop_throttling()
    assert fake.get_user(GraphIdentity(TENANT), ALICE).user_id == seed.ALICE_ID


def test_fake_outlook_helpers_change_what_graph_reports() -> None:
    """Responses, moves and cancellations made "in Outlook" show in the organizer's and attendee's events."""
    fake = _fake()
    who = GraphIdentity(TENANT)
    start = datetime(2030, 1, 8, 17, tzinfo=UTC)
    created = fake.create_event(who, ALICE, NewEvent("1:1", start, start + timedelta(minutes=30), attendees=(BOB,)))
    copy_id = fake.copy_of(TENANT, BOB, created.ical_uid or "")
    assert copy_id is not None
    fake.respond_as_attendee(TENANT, BOB, copy_id, "accepted")
    assert fake.get_event(who, ALICE, created.event_id).attendees[0].response == ResponseType.ACCEPTED
    later = start + timedelta(hours=1)
    fake.move_event_as_organizer(TENANT, ALICE, created.event_id, later, later + timedelta(hours=1))
    moved = fake.get_event(who, ALICE, created.event_id)
    assert moved.start == start + timedelta(hours=1)
    assert moved.attendees[0].response == ResponseType.NONE
    fake.cancel_event_as_organizer(TENANT, ALICE, created.event_id)
    assert fake.get_event(who, BOB, copy_id).is_cancelled
    assert fake.events_of(TENANT, ALICE) == []
    assert fake.call_count() == 4  # create + 3 reads: Outlook-side changes are not Graph calls of ours


def test_fake_ids_are_graph_shaped_and_deterministic() -> None:
    """Ids are base64 like Exchange's (with '/' or '+' among many) and repeat for the same seeding."""
    first, second = _fake(), _fake()
    who = GraphIdentity(TENANT)
    start = datetime(2030, 1, 9, 17, tzinfo=UTC)
    ids = [
        first.create_event(who, ALICE, NewEvent("x", start, start + timedelta(minutes=30))).event_id
        for _ in range(20)
    ]
    again = [
        second.create_event(who, ALICE, NewEvent("x", start, start + timedelta(minutes=30))).event_id
        for _ in range(20)
    ]
    assert ids == again
    assert all(i.startswith("AAMkAD") for i in ids)
    assert any("/" in i or "+" in i for i in ids)


def test_fake_delegated_token_needs_a_connected_user() -> None:
    """A per-user identity works once the user connected and raises ReconnectRequired after revocation."""
    tokens = FakeTokenProvider()
    fake = FakeCalendarGateway(tokens=tokens)
    fake.add_user(TENANT, ALICE, user_id=seed.ALICE_ID)
    me = GraphIdentity(TENANT, seed.ALICE_ID)
    tokens.connect_user(TENANT, seed.ALICE_ID)
    assert fake.get_calendar(me, ALICE).allows("teamsForBusiness")
    tokens.revoke_user(TENANT, seed.ALICE_ID)
    with pytest.raises(AuthorizationError) as caught:
        fake.get_calendar(me, ALICE)
    assert caught.value.code == "reconnect_required"
    assert tokens.requests == 2


# --- secondary calendars (the service-account method's "Scheduler" fallback) ----------------


def test_created_calendar_is_found_by_name_and_takes_events(backend: Backend, day: datetime) -> None:
    """A secondary calendar is created once, found by name (any case), and events can be created in it."""
    gw, who = backend.gateway, backend.who
    name = f"Scheduler {day:%Y%m%d}"
    assert gw.find_calendar(who, CAROL, name) is None
    created = gw.create_calendar(who, CAROL, name)
    assert created.calendar_id
    found = gw.find_calendar(who, CAROL, name.upper())
    assert found is not None and found.calendar_id == created.calendar_id
    event = gw.create_event(who, CAROL, _meeting(day, 9, attendees=(BOB,), calendar_id=created.calendar_id))
    assert gw.get_event(who, CAROL, event.event_id).organizer == CAROL
    assert event.event_id not in _copy_in(gw, who, CAROL, day)  # not in the default calendar's view


def test_creating_a_calendar_whose_name_is_taken_is_a_conflict(backend: Backend, day: datetime) -> None:
    """Graph refuses a second calendar with the same name (409), so callers find before they create."""
    name = f"Taken {day:%Y%m%d}"
    backend.gateway.create_calendar(backend.who, CAROL, name)
    with pytest.raises(GraphConflict):
        backend.gateway.create_calendar(backend.who, CAROL, name)


# --- recurring series -------------------------------------------------------------------
# Series span weeks, so each test gets its own stretch of a far year (no other test looks there).

_series_blocks = itertools.count()
LA = "America/Los_Angeles"


@pytest.fixture
def block() -> date:
    """A Monday in a 12-week stretch of 2031-2033 that no other test uses."""
    return date(2031, 1, 6) + timedelta(weeks=12 * next(_series_blocks))


def _weekly(first: date, count: int = 6, *, days: tuple[Weekday, ...] = (Weekday.MONDAY,)) -> PatternedRecurrence:
    return PatternedRecurrence(
        RecurrencePattern(RecurrencePatternType.WEEKLY, 1, days),
        RecurrenceRange(RecurrenceRangeType.NUMBERED, first, number_of_occurrences=count),
    )


def _series(first: date, hour: int = 9, *, zone: str = LA, count: int = 6, **fields: Any) -> NewEvent:
    start = datetime.combine(first, time(hour), tzinfo=ZoneInfo(zone))
    return NewEvent(
        subject="Mentoring series",
        start=start,
        end=start + timedelta(minutes=45),
        time_zone=zone,
        recurrence=_weekly(first, count),
        **fields,
    )


def _window(first: date, weeks: int = 12) -> tuple[datetime, datetime]:
    start = datetime.combine(first, time(0), tzinfo=UTC) - timedelta(days=1)
    return start, start + timedelta(weeks=weeks)


def _instances(backend: Backend, user: str, series_id: str, first: date) -> list[EventMetadata]:
    return list(backend.gateway.list_instances(backend.who, user, series_id, *_window(first)))


def _bob_series(backend: Backend, first: date) -> str:
    """The id of Bob's copy of the series (his only series item in the stretch)."""
    items = list(backend.gateway.calendar_view(backend.who, BOB, *_window(first)))
    assert items, "Bob has no copy of the series"
    meta = backend.gateway.get_event(backend.who, BOB, items[0].event_id)
    assert meta.series_master_id is not None
    return meta.series_master_id


def test_series_is_created_as_a_master_with_occurrences_at_local_time_across_dst(backend: Backend) -> None:
    """A weekly series over the US DST change: one master, six occurrences at 09:00 Los Angeles time."""
    gw, who = backend.gateway, backend.who
    first = date(2030, 2, 25)  # 10 March 2030 is the spring-forward Sunday in Los Angeles
    meeting = _series(first, attendees=(BOB,), online_meeting_provider="teamsForBusiness", transaction_id="tx-series-1")
    created = gw.create_event(who, ALICE, meeting)
    assert created.join_url is not None and created.transaction_id == "tx-series-1"
    assert gw.create_event(who, ALICE, meeting).event_id == created.event_id
    master = gw.get_event(who, ALICE, created.event_id)
    assert master.type == EventType.SERIES_MASTER
    assert master.recurrence == meeting.recurrence
    assert master.series_master_id is None
    instances = _instances(backend, ALICE, created.event_id, first)
    assert [i.type for i in instances] == [EventType.OCCURRENCE] * 6
    assert {i.series_master_id for i in instances} == {created.event_id}
    assert [i.start.astimezone(ZoneInfo(LA)).time() for i in instances] == [time(9)] * 6
    assert [i.start.hour for i in instances] == [17, 17, 16, 16, 16, 16]  # UTC: PST then PDT
    assert [i.original_start for i in instances] == [i.start for i in instances]
    assert all(i.end - i.start == timedelta(minutes=45) for i in instances)
    occurrence = gw.get_event(who, ALICE, instances[2].event_id)
    assert (occurrence.type, occurrence.start, occurrence.series_master_id) == (
        EventType.OCCURRENCE, instances[2].start, created.event_id
    )
    # the attendee's calendar and free/busy show occurrences, never the master
    bob_view = list(gw.calendar_view(who, BOB, *_window(first)))
    assert [i.start for i in bob_view] == [i.start for i in instances]
    [schedule] = gw.get_schedule(who, ALICE, [BOB], instances[0].start - timedelta(hours=1),
                                 instances[-1].end + timedelta(hours=1))
    assert [(b.start, b.status) for b in schedule.busy] == [(i.start, FreeBusyStatus.TENTATIVE) for i in instances]


def test_series_with_a_room_is_accepted_only_when_every_occurrence_is_free(backend: Backend, block: date) -> None:
    """The room accepts a free series, and declines a series with one clashing occurrence."""
    gw, who = backend.gateway, backend.who
    free = gw.create_event(who, ALICE, _series(block, 8, room=ROOM, room_name="Orca"))
    answers = {a.address: a.response for a in gw.get_event(who, ALICE, free.event_id).attendees}
    assert answers[ROOM] == ResponseType.ACCEPTED
    clash_start = datetime.combine(block + timedelta(weeks=3), time(13), tzinfo=ZoneInfo(LA))
    gw.create_event(who, CAROL, NewEvent(subject="Taken", start=clash_start, end=clash_start + timedelta(hours=1),
                                         room=SECOND_ROOM))
    taken = gw.create_event(who, ALICE, _series(block, 13, room=SECOND_ROOM))
    answers = {a.address: a.response for a in gw.get_event(who, ALICE, taken.event_id).attendees}
    assert answers[SECOND_ROOM] == ResponseType.DECLINED


def test_moving_one_occurrence_makes_an_exception_and_moves_the_attendees_copy(backend: Backend, block: date) -> None:
    """PATCH on an occurrence id makes it an exception (original start kept); Bob's occurrence follows."""
    gw, who = backend.gateway, backend.who
    created = gw.create_event(who, ALICE, _series(block, attendees=(BOB,)))
    second = _instances(backend, ALICE, created.event_id, block)[1]
    new_start = second.start + timedelta(days=1, hours=2)
    moved = gw.update_event(who, ALICE, second.event_id, new_start, new_start + timedelta(hours=1), time_zone=LA)
    assert (moved.type, moved.start, moved.original_start) == (EventType.EXCEPTION, new_start, second.start)
    after = _instances(backend, ALICE, created.event_id, block)
    assert [i.type for i in after].count(EventType.EXCEPTION) == 1
    assert [i.start for i in after][1] == new_start
    bob = {i.original_start: i for i in _instances(backend, BOB, _bob_series(backend, block), block)}
    assert bob[second.start].start == new_start


def test_an_occurrence_cannot_move_onto_a_neighbours_day(backend: Backend, block: date) -> None:
    """Outlook's rule: moving an occurrence to the next occurrence's day is ErrorOccurrenceCrossingBoundary."""
    gw, who = backend.gateway, backend.who
    created = gw.create_event(who, ALICE, _series(block))
    first, second = _instances(backend, ALICE, created.event_id, block)[:2]
    with pytest.raises(GraphRequestRejected) as caught:
        gw.update_event(who, ALICE, first.event_id, second.start + timedelta(hours=3),
                        second.start + timedelta(hours=4), time_zone=LA)
    assert caught.value.graph_code == "ErrorOccurrenceCrossingBoundary"
    assert _instances(backend, ALICE, created.event_id, block)[0].start == first.start


def test_cancelling_one_occurrence_removes_it_and_cancels_the_attendees(backend: Backend, block: date) -> None:
    """The cancelled occurrence leaves the organizer's series; Bob's copy of it shows cancelled."""
    gw, who = backend.gateway, backend.who
    created = gw.create_event(who, ALICE, _series(block, attendees=(BOB,)))
    third = _instances(backend, ALICE, created.event_id, block)[2]
    gw.cancel_event(who, ALICE, third.event_id, comment="Holiday")
    remaining = _instances(backend, ALICE, created.event_id, block)
    assert len(remaining) == 5 and third.start not in [i.start for i in remaining]
    with pytest.raises(ItemNotFound):
        gw.get_event(who, ALICE, third.event_id)
    bob = {i.original_start: i for i in _instances(backend, BOB, _bob_series(backend, block), block)}
    assert bob[third.start].is_cancelled
    assert not any(i.is_cancelled for start, i in bob.items() if start != third.start)


def test_an_attendee_declining_one_occurrence_shows_on_that_occurrence_only(backend: Backend, block: date) -> None:
    """Bob declines the fourth occurrence in Outlook: the organizer sees it there, the rest unanswered."""
    gw, who = backend.gateway, backend.who
    created = gw.create_event(who, ALICE, _series(block, attendees=(BOB,)))
    bob_series = _bob_series(backend, block)
    bob_fourth = _instances(backend, BOB, bob_series, block)[3]
    backend.outlook.respond(BOB, bob_fourth.event_id, "declined")
    answers = [
        {a.address: a.response for a in i.attendees}[BOB] for i in _instances(backend, ALICE, created.event_id, block)
    ]
    assert answers == [ResponseType.NONE] * 3 + [ResponseType.DECLINED] + [ResponseType.NONE] * 2
    assert bob_fourth.original_start not in [i.original_start for i in _instances(backend, BOB, bob_series, block)]


def test_changing_the_pattern_drops_the_exceptions(backend: Backend, block: date) -> None:
    """After a move and a cancel, a new pattern (Tuesdays) regenerates the series with no exception."""
    gw, who = backend.gateway, backend.who
    created = gw.create_event(who, ALICE, _series(block, attendees=(BOB,)))
    instances = _instances(backend, ALICE, created.event_id, block)
    gw.update_event(who, ALICE, instances[1].event_id, instances[1].start + timedelta(hours=2),
                    instances[1].end + timedelta(hours=2), time_zone=LA)
    gw.cancel_event(who, ALICE, instances[4].event_id)
    tuesday = block + timedelta(days=1)
    start = datetime.combine(tuesday, time(9), tzinfo=ZoneInfo(LA))
    rule = _weekly(tuesday, 6, days=(Weekday.TUESDAY,))
    master = gw.update_series(who, ALICE, created.event_id, recurrence=rule, start=start,
                              end=start + timedelta(minutes=45), time_zone=LA)
    assert master.recurrence == rule
    after = _instances(backend, ALICE, created.event_id, block)
    assert [i.type for i in after] == [EventType.OCCURRENCE] * 6
    assert [i.start.astimezone(ZoneInfo(LA)).date() for i in after] == [tuesday + timedelta(weeks=n) for n in range(6)]
    bob = _instances(backend, BOB, _bob_series(backend, block), block)
    assert [i.start for i in bob] == [i.start for i in after]
    assert not any(i.is_cancelled for i in bob)


def test_ending_a_series_keeps_earlier_exceptions_and_never_extends_it(backend: Backend, block: date) -> None:
    """end_series cuts after a date (the exception before it stays); a later date changes nothing."""
    gw, who = backend.gateway, backend.who
    created = gw.create_event(who, ALICE, _series(block, attendees=(BOB,)))
    instances = _instances(backend, ALICE, created.event_id, block)
    gw.update_event(who, ALICE, instances[1].event_id, instances[1].start + timedelta(hours=1),
                    instances[1].end + timedelta(hours=1), time_zone=LA)
    ended = gw.end_series(who, ALICE, created.event_id, block + timedelta(weeks=2))
    assert ended.recurrence is not None
    assert ended.recurrence.range.type == RecurrenceRangeType.END_DATE
    assert ended.recurrence.range.end_date == block + timedelta(weeks=2)
    after = _instances(backend, ALICE, created.event_id, block)
    assert [i.type for i in after] == [EventType.OCCURRENCE, EventType.EXCEPTION, EventType.OCCURRENCE]
    assert len(_instances(backend, BOB, _bob_series(backend, block), block)) == 3
    again = gw.end_series(who, ALICE, created.event_id, block + timedelta(weeks=8))
    assert again.recurrence == ended.recurrence
    with pytest.raises(InvalidRecurrence) as caught:
        gw.end_series(who, ALICE, created.event_id, block - timedelta(days=1))
    assert caught.value.code == "end_before_start"


def test_cancelling_the_master_cancels_the_whole_series(backend: Backend, block: date) -> None:
    """Cancel on the master id: the organizer's series is gone, every occurrence of Bob's copy is cancelled."""
    gw, who = backend.gateway, backend.who
    created = gw.create_event(who, ALICE, _series(block, attendees=(BOB,)))
    bob_series = _bob_series(backend, block)
    gw.cancel_event(who, ALICE, created.event_id)
    with pytest.raises(ItemNotFound):
        gw.get_event(who, ALICE, created.event_id)
    with pytest.raises(ItemNotFound):
        list(gw.list_instances(who, ALICE, created.event_id, *_window(block)))
    bob = _instances(backend, BOB, bob_series, block)
    assert len(bob) == 6 and all(i.is_cancelled for i in bob)


def test_an_invalid_rule_is_refused_before_anything_is_sent(backend: Backend, block: date) -> None:
    """A weekly rule without days is InvalidRecurrence and creates nothing."""
    bad = PatternedRecurrence(
        RecurrencePattern(RecurrencePatternType.WEEKLY, 1, ()),
        RecurrenceRange(RecurrenceRangeType.NUMBERED, block, number_of_occurrences=3),
    )
    meeting = dataclasses.replace(_series(block), recurrence=bad)
    with pytest.raises(InvalidRecurrence) as caught:
        backend.gateway.create_event(backend.who, ALICE, meeting)
    assert caught.value.code == "days_of_week_required"
    assert list(backend.gateway.calendar_view(backend.who, ALICE, *_window(block))) == []
