"""The one rule for "which Graph identity (and so which token) serves this call".

Every feature asks this module; none branches on the connection method itself. The
identity is explicit for all three methods (the token provider only routes: a user id
means that user's delegated token, none means the app's own token):

    method          for_user(tid, user)                    for_tenant(tid)
    domainWide      GraphIdentity(tid)      app-only       GraphIdentity(tid)      app-only
    perUser         GraphIdentity(tid, user) their token   GraphIdentity(tid)      app-only (needs admin consent)
    serviceAccount  GraphIdentity(tid, mailbox)            GraphIdentity(tid, mailbox)
                    the scheduling mailbox's token, or ServiceAccountNotConnected (409)

``for_user`` is for work on (or on behalf of) one user's mailbox: availability of the
caller, the organizer's events, their subscription. ``for_tenant`` is for tenant data:
the directory, rooms. ``app_only`` is only for proving admin consent, which is about the
app's own token whatever the method. A tenant without an integration record gets the
app's identity (nothing else could serve it).

``require_connection=True`` makes a per-user tenant's user who never connected (or whose
token died) a 409 ``calendar_not_connected`` / ``calendar_reconnect_required``, and a
scheduling mailbox that must reconnect ``service_account_reconnect_required``, before any
work is queued, instead of a token error half-way.
"""

from __future__ import annotations

from collections.abc import Callable

from core.domain.calendar import GraphIdentity
from core.domain.errors import CalendarNotConnected, ServiceAccountNotConnected
from core.domain.integration import ConnectionMethod, Integration
from core.services.stores.connections import ConnectionRepository, require_connected
from core.services.stores.integrations import IntegrationRepository


class GraphIdentities:
    """Answers the identity rule of the module docstring from the integration and connection records."""

    def __init__(self, integrations: IntegrationRepository, connections: ConnectionRepository) -> None:
        self.integrations = integrations
        self.connections = connections

    @staticmethod
    def app_only(tenant_id: str) -> GraphIdentity:
        """The app's own identity in the tenant (proving admin consent)."""
        return GraphIdentity(tenant_id.lower())

    def for_user(
        self,
        tenant_id: str,
        user_id: str,
        *,
        integration: Integration | None = None,
        require_connection: bool = False,
    ) -> GraphIdentity:
        """The identity for work on ``user_id``'s mailbox, or done on their behalf."""
        tenant = tenant_id.lower()
        method = self._method(tenant, integration)
        if method is ConnectionMethod.PER_USER:
            if require_connection:
                require_connected(self.connections, tenant, user_id)
            return GraphIdentity(tenant, user_id.lower())
        if method is ConnectionMethod.SERVICE_ACCOUNT:
            return self._service_account(tenant, require_connection=require_connection)
        return GraphIdentity(tenant)

    def for_users(self, tenant_id: str, *, integration: Integration | None = None) -> Callable[[str], GraphIdentity]:
        """``for_user`` for many users of one tenant, the tenant's records read once (batch planning).

        A service-account tenant without its mailbox raises ``ServiceAccountNotConnected`` at the
        first call, not here.
        """
        tenant = tenant_id.lower()
        method = self._method(tenant, integration)
        if method is ConnectionMethod.PER_USER:
            return lambda user_id: GraphIdentity(tenant, user_id.lower())
        if method is ConnectionMethod.SERVICE_ACCOUNT:
            resolved: list[GraphIdentity] = []

            def mailbox(_: str) -> GraphIdentity:
                if not resolved:
                    resolved.append(self._service_account(tenant))
                return resolved[0]

            return mailbox
        app = GraphIdentity(tenant)
        return lambda _: app

    def for_tenant(self, tenant_id: str, *, integration: Integration | None = None) -> GraphIdentity:
        """The identity for tenant data: directory look-ups, rooms."""
        tenant = tenant_id.lower()
        if self._method(tenant, integration) is ConnectionMethod.SERVICE_ACCOUNT:
            return self._service_account(tenant)
        return GraphIdentity(tenant)

    def service_account_id(self, tenant_id: str) -> str | None:
        """The connected scheduling mailbox's object id (service-account tenants), or None."""
        found = self.connections.service_account_id(tenant_id.lower())
        return None if found is None else found.lower()

    def _service_account(self, tenant_id: str, *, require_connection: bool = False) -> GraphIdentity:
        record = self.connections.service_account(tenant_id)
        if record is None:
            raise ServiceAccountNotConnected()
        if require_connection and record.needs_reconnect:
            raise CalendarNotConnected(
                "Your organisation's scheduling mailbox must be connected again by an administrator.",
                code="service_account_reconnect_required", details={"reason": record.reason},
            )
        return GraphIdentity(tenant_id, record.user_id.lower())

    def _method(self, tenant_id: str, integration: Integration | None) -> ConnectionMethod | None:
        if integration is not None:
            return integration.method
        found = self.integrations.get(tenant_id)
        return None if found is None else found.value.method
