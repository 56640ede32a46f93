"""The one identity rule (core/services/identity.py): which Graph identity serves a call, per method."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.domain.errors import CalendarNotConnected, ServiceAccountNotConnected
from core.domain.integration import ConnectionMethod, Integration, IntegrationStatus
from core.services.identity import GraphIdentities
from core.services.stores.connections import (
    ConnectionPurpose,
    ConnectionRecord,
    ConnectionRepository,
    ConnectionStatus,
)
from core.services.stores.integrations import IntegrationRepository
from tests.support.memory import InMemoryTableStore

TENANT = "aaaaaaaa-0000-4000-8000-00000000000a"
ALICE = "a0000000-0000-4000-8000-000000000001"
BOB = "a0000000-0000-4000-8000-000000000002"
MAILBOX = "a0000000-0000-4000-8000-00000000005a"
NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def _world(method: ConnectionMethod | None) -> tuple[GraphIdentities, ConnectionRepository]:
    tables = InMemoryTableStore()
    if method is not None:
        IntegrationRepository(tables).save(Integration(TENANT, method=method, status=IntegrationStatus.CONNECTED), None)
    connections = ConnectionRepository(tables)
    return GraphIdentities(IntegrationRepository(tables), connections), connections


def _connect(connections: ConnectionRepository, user: str, purpose: ConnectionPurpose,
             status: ConnectionStatus = ConnectionStatus.CONNECTED) -> None:
    connections.save(ConnectionRecord(TENANT, user, purpose, status, reason="700082", connected_at=NOW,
                                      updated_at=NOW))


def test_domain_wide_uses_the_app_for_users_and_the_tenant() -> None:
    """Domain-wide: every call, for a user or the tenant, is the app's own (no user id)."""
    identities, _ = _world(ConnectionMethod.DOMAIN_WIDE)
    assert identities.for_user(TENANT, ALICE).user_id is None
    assert identities.for_tenant(TENANT).user_id is None
    assert {identities.for_users(TENANT)(u) for u in (ALICE, BOB)} == {identities.for_tenant(TENANT)}


def test_per_user_uses_each_users_own_token_and_the_app_for_tenant_data() -> None:
    """Per-user: a user's work uses their own token (ids lower-cased); tenant data stays app-only."""
    identities, _ = _world(ConnectionMethod.PER_USER)
    assert identities.for_user(TENANT.upper(), ALICE.upper()).user_id == ALICE
    assert identities.for_users(TENANT)(BOB).user_id == BOB
    assert identities.for_tenant(TENANT).user_id is None


def test_per_user_connection_is_required_when_asked() -> None:
    """A per-user tenant's user who never connected, or must reconnect, is a 409 before any work."""
    identities, connections = _world(ConnectionMethod.PER_USER)
    with pytest.raises(CalendarNotConnected) as missing:
        identities.for_user(TENANT, ALICE, require_connection=True)
    assert missing.value.code == "calendar_not_connected"
    _connect(connections, ALICE, ConnectionPurpose.USER, ConnectionStatus.NEEDS_RECONNECT)
    with pytest.raises(CalendarNotConnected) as dead:
        identities.for_user(TENANT, ALICE, require_connection=True)
    assert dead.value.code == "calendar_reconnect_required"
    _connect(connections, ALICE, ConnectionPurpose.USER)
    assert identities.for_user(TENANT, ALICE, require_connection=True).user_id == ALICE


def test_service_account_serves_everyone_with_the_mailbox() -> None:
    """Service account: users' and tenant work both use the scheduling mailbox's token."""
    identities, connections = _world(ConnectionMethod.SERVICE_ACCOUNT)
    with pytest.raises(ServiceAccountNotConnected):
        identities.for_user(TENANT, ALICE)
    with pytest.raises(ServiceAccountNotConnected):
        identities.for_users(TENANT)(ALICE)
    _connect(connections, MAILBOX, ConnectionPurpose.SERVICE_ACCOUNT)
    assert identities.for_user(TENANT, ALICE).user_id == MAILBOX
    assert identities.for_tenant(TENANT).user_id == MAILBOX
    assert identities.for_users(TENANT)(BOB).user_id == MAILBOX


def test_service_account_that_must_reconnect_is_refused_only_when_required() -> None:
    """A dead mailbox token is a 409 for new work (``service_account_reconnect_required``), not for reads."""
    identities, connections = _world(ConnectionMethod.SERVICE_ACCOUNT)
    _connect(connections, MAILBOX, ConnectionPurpose.SERVICE_ACCOUNT, ConnectionStatus.NEEDS_RECONNECT)
    assert identities.for_user(TENANT, ALICE).user_id == MAILBOX
    with pytest.raises(CalendarNotConnected) as refused:
        identities.for_user(TENANT, ALICE, require_connection=True)
    assert refused.value.code == "service_account_reconnect_required"


def test_a_tenant_without_an_integration_gets_the_app() -> None:
    """No integration record: only the app's identity could serve it."""
    identities, _ = _world(None)
    assert identities.for_user(TENANT, ALICE).user_id is None
    assert GraphIdentities.app_only(TENANT.upper()).tenant_id == TENANT
