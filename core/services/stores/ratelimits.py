"""Shared token buckets in table ``ratelimits``: PartitionKey tenant id, RowKey ``<policy>~<scope>``.

``scope`` is the caller's object id, or ``~tenant`` for the tenant's own bucket. A row holds
the tokens left (``tokens``, a float) as of ``at``; a lease refills the bucket for the time
since ``at`` (``burst`` at most), takes up to ``want`` whole tokens and writes the rest back
with the ETag it read (a racing instance re-reads and tries again), so every instance of a
scaled-out app draws from one budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from core.domain.errors import ConcurrencyConflict, Conflict, NotFound
from core.names import Tables
from core.ports import Entity, TableStore

TENANT_SCOPE: Final = "~tenant"
_ATTEMPTS: Final = 4


@dataclass(frozen=True, slots=True)
class Lease:
    """What the shared bucket granted: ``tokens`` (0 when empty) and, when empty, seconds until the next one."""

    tokens: int
    retry_after: float = 0.0


class RateLimitStore:
    def __init__(self, tables: TableStore) -> None:
        self.tables = tables

    def lease(self, tenant_id: str, row: str, *, burst: int, refill_seconds: float, want: int,
              now: datetime) -> Lease:
        """Take up to ``want`` tokens from the bucket ``row`` of ``tenant_id`` (``ConcurrencyConflict`` after
        ``_ATTEMPTS`` lost races; the storage errors of the port otherwise)."""
        for _ in range(_ATTEMPTS):
            found = self.tables.get(Tables.RATE_LIMITS, tenant_id, row)
            tokens = float(burst)
            if found is not None:
                stored, at = found.data.get("tokens"), found.data.get("at")
                if isinstance(stored, int | float) and not isinstance(stored, bool) and isinstance(at, datetime):
                    elapsed = max(0.0, (now - at).total_seconds())
                    tokens = min(float(burst), float(stored) + elapsed / refill_seconds)
            if tokens < 1.0:
                return Lease(0, max(0.001, (1.0 - tokens) * refill_seconds))
            taken = max(1, min(want, math.floor(tokens)))
            entity = Entity(tenant_id, row, {"tokens": tokens - taken, "at": now, "updatedAt": now},
                            None if found is None else found.etag)
            try:
                if found is None:
                    self.tables.insert(Tables.RATE_LIMITS, entity)
                else:
                    self.tables.update(Tables.RATE_LIMITS, entity)
            except (Conflict, ConcurrencyConflict, NotFound):
                continue
            return Lease(taken)
        raise ConcurrencyConflict("The rate-limit bucket kept changing.")
