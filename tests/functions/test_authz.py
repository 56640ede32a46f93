"""Authorization rules keyed by (tid, oid): organizer, attendees, and nothing across tenants."""

from __future__ import annotations

import pytest

from core.domain.errors import Forbidden, NotFound
from core.names import Tables
from core.ports import Entity
from core.services.authz import (
    Caller,
    require_admin,
    require_organizer,
    require_pairing_writer,
    require_participant,
)
from core.services.stores.pairings import PairingRepository
from tests.functions.conftest import TENANT_A, TENANT_B, USER_A, USER_A2, USER_B, Env, TokenFactory, bearer
from tests.support.memory import InMemoryTableStore

ORGANIZER = Caller(TENANT_A, USER_A)
ATTENDEE = Caller(TENANT_A, USER_A2)
STRANGER = Caller(TENANT_A, "a0000000-0000-4000-8000-0000000000ee")
FOREIGN_SAME_OID = Caller(TENANT_B, USER_A)  # an oid is only meaningful with its tid


def _session_store() -> InMemoryTableStore:
    tables = InMemoryTableStore()
    tables.insert(Tables.PAIRINGS, Entity(TENANT_A, "p~s-1", {"mentorId": USER_A, "menteeId": USER_A2}))
    return tables


def test_organizer_may_read_and_change() -> None:
    """The organizer passes both the read and the change rule."""
    require_participant(USER_A, [USER_A2], ORGANIZER)
    require_organizer(USER_A, [USER_A2], ORGANIZER)


def test_attendee_may_read_but_not_change() -> None:
    """An attendee reads the session but changing it is 403 organizer_only."""
    require_participant(USER_A, [USER_A2], ATTENDEE)
    with pytest.raises(Forbidden) as err:
        require_organizer(USER_A, [USER_A2], ATTENDEE)
    assert err.value.code == "organizer_only"


def test_stranger_sees_nothing() -> None:
    """Someone neither organizer nor attendee gets 404 for both reads and changes."""
    with pytest.raises(NotFound):
        require_participant(USER_A, [USER_A2], STRANGER)
    with pytest.raises(NotFound):
        require_organizer(USER_A, [USER_A2], STRANGER)


def test_app_callers_are_never_participants() -> None:
    """An app-only token whose oid happens to equal a user's is not that user."""
    app = Caller(TENANT_A, USER_A, roles=frozenset({"Pairings.ReadWrite.All"}), is_app=True)
    with pytest.raises(NotFound):
        require_participant(USER_A, [], app)


def test_other_tenant_id_is_not_found() -> None:
    """Rows are read from the caller's own tenant partition, so another tenant's id is 404."""
    pairings = PairingRepository(_session_store())
    assert pairings.require(ORGANIZER.tenant_id, "s-1").value.mentor_id == USER_A
    with pytest.raises(NotFound):
        pairings.require(FOREIGN_SAME_OID.tenant_id, "s-1")


def test_admin_and_pairing_writer_rules() -> None:
    """Integration.Admin is needed for admin work; the app role only counts on app-only tokens."""
    admin = Caller(TENANT_A, USER_A, roles=frozenset({"Integration.Admin"}))
    require_admin(admin)
    require_pairing_writer(admin)
    with pytest.raises(Forbidden):
        require_admin(Caller(TENANT_A, USER_A, roles=frozenset({"Integration.Admin"}), is_app=True))
    with pytest.raises(Forbidden):
        require_pairing_writer(Caller(TENANT_A, USER_A, roles=frozenset({"Pairings.ReadWrite.All"})))
    require_pairing_writer(Caller(TENANT_A, USER_A, roles=frozenset({"Pairings.ReadWrite.All"}), is_app=True))


RESCHEDULE = {"start": "2025-03-04T10:00:00+01:00", "end": "2025-03-04T11:00:00+01:00", "timeZone": "Europe/Paris"}


def _store_session(env: Env) -> None:
    """A real session of tenant A: USER_A organizes, USER_A2 attends."""
    from datetime import UTC, datetime

    from core.domain.sessions import AttendeeState, Session
    from core.services.stores.sessions import SessionRepository

    SessionRepository(env.tables).add(Session(
        tenant_id=TENANT_A, session_id="s-1", organizer_id=USER_A, organizer_address="a@a.example",
        attendees=(AttendeeState(address="a2@a.example", user_id=USER_A2),),
        start=datetime(2025, 3, 4, 9, tzinfo=UTC), end=datetime(2025, 3, 4, 10, tzinfo=UTC), time_zone="Europe/Paris",
    ))


@pytest.mark.parametrize(("method", "body"), [("GET", None), ("PATCH", RESCHEDULE), ("DELETE", None)])
def test_another_tenant_reading_a_session_by_id_gets_404(
    env: Env, mint: TokenFactory, method: str, body: dict[str, str] | None
) -> None:
    """Tenant A's session is 404 for a tenant B caller, even one with the same oid, and for strangers in A."""
    _store_session(env)
    for token in (mint(tid=TENANT_B, oid=USER_A), mint(tid=TENANT_B, oid=USER_B), mint(oid=STRANGER.object_id)):
        r = env.client.request(method, "/api/sessions/s-1", headers=bearer(token), json=body)
        assert r.status == 404
        assert r.json()["error"]["code"] in ("not_found", "session_not_found")


def test_attendee_reads_but_cannot_change_a_session(env: Env, mint: TokenFactory) -> None:
    """Attendees see the session; rescheduling or cancelling it is 403 for them."""
    _store_session(env)
    attendee = mint(oid=USER_A2)
    assert env.client.get("/api/sessions/s-1", headers=bearer(attendee)).status == 200
    assert env.client.patch("/api/sessions/s-1", headers=bearer(attendee), json=RESCHEDULE).status == 403
    assert env.client.delete("/api/sessions/s-1", headers=bearer(attendee)).status == 403
    assert env.client.get("/api/sessions/s-1", headers=bearer(mint())).status == 200
