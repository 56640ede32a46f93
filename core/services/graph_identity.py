"""Whose token a Graph call uses, decided from the tenant's connection method.

Features never branch on the method themselves: they ask ``identity_for`` and hand the
result to the gateway, and the token provider (``core/adapters/method_tokens.py``)
returns the matching credential.

    domainWide      -> GraphIdentity(tid)                     app-only token for every mailbox
    perUser         -> GraphIdentity(tid, acting user)        that user's own delegated token
    serviceAccount  -> GraphIdentity(tid, service account)    the scheduling mailbox's delegated token
"""

from __future__ import annotations

from core.domain.calendar import GraphIdentity
from core.domain.errors import Conflict
from core.domain.integration import ConnectionMethod, Integration


class ServiceAccountNotConnected(Conflict):
    """A service-account tenant whose admin has not connected the scheduling mailbox yet."""

    default_code = "service_account_not_connected"
    default_message = "Your organisation's scheduling mailbox is not connected yet; ask your administrator."


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
