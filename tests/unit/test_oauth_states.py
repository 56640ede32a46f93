"""OAuth states: bound to a tenant, stored hashed, taken once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.names import Tables
from core.ports import Entity
from core.services.stores.oauth_states import STATE_TTL, OAuthStateStore, is_expired, new_state
from tests.support.memory import InMemoryTableStore

TENANT = "11111111-1111-4111-8111-111111111111"
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def _issue(tables: InMemoryTableStore, purpose: str = "p", now: datetime = NOW) -> str:
    state, key = new_state(TENANT, lambda n: "r" * 43)
    tables.insert(Tables.OAUTH_STATES, Entity(TENANT, key, {"purpose": purpose, "expiresAt": now + STATE_TTL}))
    return state


def test_state_names_its_tenant_and_is_stored_only_hashed() -> None:
    """The state starts with the tenant id; the table holds its hash, never the random part."""
    tables = InMemoryTableStore()
    state = _issue(tables)
    assert state.startswith(TENANT + ".")
    [row] = tables.all(Tables.OAUTH_STATES)
    assert state.split(".", 1)[1] not in row.row_key


def test_a_state_is_taken_once() -> None:
    """The first take returns the row and deletes it; a replay finds nothing."""
    tables = InMemoryTableStore()
    state = _issue(tables)
    tenant, row = OAuthStateStore(tables).take(state)
    assert tenant == TENANT and row is not None and row.data["purpose"] == "p"
    assert OAuthStateStore(tables).take(state) == (TENANT, None)


def test_malformed_or_foreign_states_are_refused() -> None:
    """No tenant, a non-GUID tenant, a short random part or another tenant's prefix take nothing."""
    tables = InMemoryTableStore()
    state = _issue(tables)
    other = "22222222-2222-4222-8222-222222222222." + state.split(".", 1)[1]
    for bad in (None, "", "nope", "not-a-guid." + "r" * 43, TENANT + ".short", other):
        assert OAuthStateStore(tables).take(bad)[1] is None
    assert OAuthStateStore(tables).take(state)[1] is not None


def test_expired_states_are_recognised_and_purged() -> None:
    """A state past its ten minutes is expired, and purge removes only expired ones of the given purposes."""
    tables = InMemoryTableStore()
    _issue(tables, "p", now=NOW - timedelta(minutes=11))
    _issue_other = new_state(TENANT, lambda n: "s" * 43)[1]
    tables.insert(Tables.OAUTH_STATES, Entity(TENANT, _issue_other, {"purpose": "p", "expiresAt": NOW + STATE_TTL}))
    rows = tables.all(Tables.OAUTH_STATES)
    assert sorted(is_expired(r, NOW) for r in rows) == [False, True]
    OAuthStateStore(tables).purge_expired(TENANT, ("p",), NOW)
    assert [is_expired(r, NOW) for r in tables.all(Tables.OAUTH_STATES)] == [False]
