"""The onboarded-tenant gate: which Entra tenants may use the API at all.

A tenant is *onboarded* once its integration record exists with a status that means
an administrator went through consent (``testing``, ``connected``, ``degraded``, and
``failed``, which stays in so people can still see their sessions and the error).
The integration feature writes that record in ``Tables.INTEGRATIONS`` with
PartitionKey = tenant id and RowKey = ``"integration"``; this module only reads it.

Every authenticated request asks the gate, so answers are cached per worker: a
positive answer for ~30 s, a negative one for ~5 s (a tenant that just finished
consent gets in quickly; ``forget`` makes it immediate in the worker that did it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Final

from core.ports import TableStore
from core.services.stores.integrations import IntegrationRepository

ONBOARDED_STATUSES: Final = frozenset({"testing", "connected", "degraded", "failed"})
POSITIVE_TTL_SECONDS: Final = 30.0
NEGATIVE_TTL_SECONDS: Final = 5.0
MAX_CACHED_TENANTS: Final = 10_000


class TenantGate:
    """Answers "has this tenant onboarded?" from the integrations table, with a short cache."""

    def __init__(
        self,
        tables: TableStore,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        positive_ttl: float = POSITIVE_TTL_SECONDS,
        negative_ttl: float = NEGATIVE_TTL_SECONDS,
    ) -> None:
        self._integrations = IntegrationRepository(tables)
        self._now = monotonic
        self._positive_ttl = positive_ttl
        self._negative_ttl = negative_ttl
        self._cache: dict[str, tuple[bool, float]] = {}
        self._lock = threading.Lock()

    def is_onboarded(self, tenant_id: str) -> bool:
        """True when the tenant's integration record has an onboarded status.

        Storage failures propagate (``StorageUnavailable`` -> 503): an outage must not
        look like "not onboarded" and must not be cached.
        """
        key = tenant_id.lower()
        now = self._now()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        answer = self._integrations.status(key) in ONBOARDED_STATUSES
        ttl = self._positive_ttl if answer else self._negative_ttl
        with self._lock:
            if len(self._cache) >= MAX_CACHED_TENANTS:
                self._cache.clear()
            self._cache[key] = (answer, now + ttl)
        return answer

    def forget(self, tenant_id: str) -> None:
        """Drop the cached answer for a tenant (call after changing its integration status)."""
        with self._lock:
            self._cache.pop(tenant_id.lower(), None)
