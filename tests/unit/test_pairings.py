"""Pairings: members resolved through Graph once, stored as ids + addresses, listed for members only."""

from __future__ import annotations

import pytest

from core.domain.errors import DependencyError, ValidationFailed
from core.services.pairings import PairingRequest, PairingService
from core.services.stores.pairings import PairingRepository
from tests.unit.test_booking_support import ALICE, ALICE_ID, BOB_ID, CAROL, CAROL_ID, TENANT, World


def _service(w: World) -> PairingService:
    return PairingService(w.graph, w.tables, w.clock)


def test_put_resolves_members_by_email_or_id_and_stores_addresses() -> None:
    """A pairing named by email and object id is stored with both members' ids and SMTP addresses."""
    w = World()
    saved = _service(w).put(w.caller(), PairingRequest("p9", mentor=ALICE.upper(), mentee=CAROL_ID))
    assert (saved.mentor_id, saved.mentor_address, saved.mentee_id, saved.mentee_address) == (
        ALICE_ID, ALICE, CAROL_ID, CAROL
    )
    assert PairingRepository(w.tables).require(TENANT, "p9").value == saved


def test_unknown_member_is_422_naming_the_field() -> None:
    """A member Graph does not know is a 422 whose details say which one."""
    w = World()
    with pytest.raises(ValidationFailed) as err:
        _service(w).put(w.caller(), PairingRequest("p9", mentor=ALICE, mentee="ghost@contoso.test"))
    assert err.value.code == "user_not_found"
    assert err.value.details["fields"][0]["loc"] == ["body", "mentee"]


def test_same_person_twice_is_refused() -> None:
    """Mentor and mentee must differ, however they are named."""
    w = World()
    with pytest.raises(ValidationFailed):
        _service(w).put(w.caller(), PairingRequest("p9", mentor=ALICE, mentee=ALICE_ID))


def test_list_mine_shows_active_pairings_only_and_delete_removes_the_index() -> None:
    """Members see their active pairings; deactivated or deleted ones disappear for both."""
    w = World()
    svc = _service(w)
    svc.put(w.caller(), PairingRequest("p9", mentor=CAROL, mentee=ALICE, active=False))
    assert [p.pairing_id for p in svc.list_mine(w.caller())] == ["p1"]
    svc.delete(w.caller(), "p1")
    assert svc.list_mine(w.caller()) == [] and svc.list_mine(w.caller(BOB_ID)) == []
    svc.delete(w.caller(), "p1")  # deleting again is fine


def test_without_graph_only_writes_fail() -> None:
    """A process without a Graph gateway can still list pairings; writes say the dependency is missing."""
    w = World()
    svc = PairingService(None, w.tables, w.clock)
    assert [p.pairing_id for p in svc.list_mine(w.caller())] == ["p1"]
    with pytest.raises(DependencyError):
        svc.put(w.caller(), PairingRequest("p9", mentor=ALICE, mentee=CAROL))
