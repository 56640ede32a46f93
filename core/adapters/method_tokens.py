"""One ``TokenProvider`` for every connection method, so features never ask which one a tenant uses.

    GraphIdentity(tid, user_id)  -> the user's delegated token (per-user, or the service account)
    GraphIdentity(tid)           -> app-only, except in a service-account tenant with a connected
                                    scheduling mailbox: that mailbox's delegated token

Features pick the identity with ``core.services.graph_identity.identity_for``; the
second rule keeps tenant-level work that still says ``GraphIdentity(tid)`` (rooms,
directory look-ups) working in service-account tenants, which grant no application
permissions. The tenant's method is read from the integrations table and cached for a
minute per tenant, so a Graph call does not cost a table read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Final

import requests

from core.domain.calendar import GraphIdentity
from core.domain.integration import ConnectionMethod
from core.ports import Clock, CommandQueue, SecretStore, TableStore, TokenProvider
from core.services.repositories import IntegrationRepository
from core.settings import Settings

METHOD_TTL_SECONDS: Final = 60.0

ServiceAccountLookup = Callable[[str], str | None]


class MethodAwareTokenProvider:
    """Routes each token request to the app-only or the delegated provider (module docstring)."""

    def __init__(
        self,
        app_only: TokenProvider,
        delegated: TokenProvider,
        integrations: IntegrationRepository,
        service_account_lookup: ServiceAccountLookup,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        ttl: float = METHOD_TTL_SECONDS,
    ) -> None:
        self.app_only = app_only
        self.delegated = delegated
        self._integrations = integrations
        self._service_account = service_account_lookup
        self._now = monotonic
        self._ttl = ttl
        self._cache: dict[str, tuple[str | None, float]] = {}
        self._lock = threading.Lock()

    def token(self, who: GraphIdentity) -> str:
        """The credential ``who`` stands for under the tenant's connection method."""
        if who.user_id is not None:
            return self.delegated.token(who)
        account = self._service_account_of(who.tenant_id)
        if account is not None:
            return self.delegated.token(GraphIdentity(who.tenant_id, account))
        return self.app_only.token(who)

    def invalidate(self, tenant_id: str) -> None:
        """Forget both providers' caches and the remembered method of the tenant."""
        with self._lock:
            self._cache.pop(tenant_id.lower(), None)
        self.app_only.invalidate(tenant_id)
        self.delegated.invalidate(tenant_id)

    def _service_account_of(self, tenant_id: str) -> str | None:
        tenant = tenant_id.lower()
        now = self._now()
        with self._lock:
            cached = self._cache.get(tenant)
        if cached is not None and cached[1] > now:
            return cached[0]
        found = self._integrations.get(tenant)
        account = None
        if found is not None and found.value.method is ConnectionMethod.SERVICE_ACCOUNT:
            account = self._service_account(tenant)
        with self._lock:
            self._cache[tenant] = (account, now + self._ttl)
        return account


def build_method_aware_tokens(
    settings: Settings,
    session: requests.Session,
    secrets: SecretStore,
    *,
    tables: TableStore,
    queues: CommandQueue,
    clock: Clock,
) -> MethodAwareTokenProvider:
    """The composite provider ``core/bootstrap.py`` installs as ``Container.tokens``: the app-only and
    delegated providers share one app credential (one federation token for both)."""
    from core.adapters.delegated_tokens import DelegatedTokenProvider
    from core.adapters.tokens import AppCredential, AppOnlyTokenProvider
    from core.services.alerts import OwnerAlerts
    from core.services.connections import ConnectionRepository

    credential = AppCredential(settings, secrets, clock)
    connections = ConnectionRepository(tables)
    app_only = AppOnlyTokenProvider(settings, session, secrets, clock, credential=credential)
    delegated = DelegatedTokenProvider(
        settings, session, secrets, connections, clock,
        alerts=OwnerAlerts(tables, queues, clock), credential=credential,
    )
    return MethodAwareTokenProvider(app_only, delegated, IntegrationRepository(tables), connections.service_account_id)
