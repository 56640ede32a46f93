"""Whose token a Graph call uses, decided from the tenant's connection method.

Features never branch on the method themselves: they ask ``identity_for`` and hand the
result to the gateway, and the token provider (``core/adapters/method_tokens.py``)
returns the matching credential.

    domainWide      -> GraphIdentity(tid)                     app-only token for every mailbox
    perUser         -> GraphIdentity(tid, acting user)        that user's own delegated token
    serviceAccount  -> GraphIdentity(tid, service account)    the scheduling mailbox's delegated token
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from core.domain.calendar import GraphIdentity
from core.domain.errors import ServiceAccountNotConnected
from core.domain.integration import ConnectionMethod, Integration
from core.ports import TableStore

# Graph delivers no change notifications for shared calendars to delegated callers, so
# service-account tenants are re-read by reconciliation this often instead.
SERVICE_ACCOUNT_SYNC_MINUTES: Final = 10




def identity_for(
    integration: Integration, acting_user_id: str | None, *, service_account_id: str | None = None
) -> GraphIdentity:
    """The identity for Graph work done on behalf of ``acting_user_id`` (the organizer, the caller...).

    ``service_account_id`` is the connected scheduling mailbox's object id (from
    ``ConnectionRepository.service_account``); only service-account tenants need it.
    Per-user tenants need an acting user: work nobody acts for (a timer) must name the
    mailbox owner whose calendar it touches.
    """
    tenant_id = integration.tenant_id.lower()
    if integration.method is ConnectionMethod.DOMAIN_WIDE:
        return GraphIdentity(tenant_id)
    if integration.method is ConnectionMethod.PER_USER:
        if not acting_user_id:
            raise ValueError("a per-user tenant needs the acting user's id for Graph work")
        return GraphIdentity(tenant_id, acting_user_id.lower())
    if not service_account_id:
        raise ServiceAccountNotConnected()
    return GraphIdentity(tenant_id, service_account_id.lower())


def resolve_identity(tables: TableStore, integration: Integration, acting_user_id: str | None) -> GraphIdentity:
    """``identity_for`` with the service account looked up in the connections table when the
    tenant's method needs it (one table read, service-account tenants only)."""
    from core.services.connections import ConnectionRepository

    service_account = None
    if integration.method is ConnectionMethod.SERVICE_ACCOUNT:
        service_account = ConnectionRepository(tables).service_account_id(integration.tenant_id)
    return identity_for(integration, acting_user_id, service_account_id=service_account)


class SyncMode(StrEnum):
    """How Outlook-side changes reach the service: pushed by Graph, or found by re-reading."""

    NOTIFICATIONS = "notifications"
    POLLING = "polling"


@dataclass(frozen=True, slots=True)
class SyncPolicy:
    """What GET /api/integration says about sync, and what the reconciliation timers follow."""

    mode: SyncMode
    interval_minutes: int | None = None


def sync_policy(method: ConnectionMethod | None) -> SyncPolicy:
    """Change notifications for domain-wide and per-user tenants (reconciliation is only a safety
    net there); polling every ``SERVICE_ACCOUNT_SYNC_MINUTES`` for service-account tenants."""
    if method is ConnectionMethod.SERVICE_ACCOUNT:
        return SyncPolicy(SyncMode.POLLING, SERVICE_ACCOUNT_SYNC_MINUTES)
    return SyncPolicy(SyncMode.NOTIFICATIONS)
