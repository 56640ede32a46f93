"""The audit trail: admin changes per tenant, newest first (table ``audit``, PartitionKey tenant id).

RowKey = inverted milliseconds ~ a per-process sequence ~ uuid, so a partition query
reads the newest entries first. Entries name who, when and which fields changed from
what to what; never a secret.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from core.names import Tables
from core.ports import Clock, Entity, EntityValue, TableStore
from core.services.stores.codec import as_datetime

_INVERTED_BASE: Final = 10**15
_SEQ_BASE: Final = 10**10 - 1


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    changes: dict[str, list[Any]]


class AuditTrail:
    """Admin changes per tenant, newest first (RowKey = inverted milliseconds ~ uuid)."""

    def __init__(self, tables: TableStore, clock: Clock) -> None:
        self.tables = tables
        self.clock = clock
        self._seq = itertools.count()

    def record(self, tenant_id: str, actor: str, action: str, changes: Mapping[str, list[Any]] | None = None) -> None:
        now = self.clock.now()
        inverted = _INVERTED_BASE - int(now.timestamp() * 1000)
        # Within one millisecond, this process's later entries still sort first.
        row = f"{inverted:015d}~{_SEQ_BASE - next(self._seq):010d}~{uuid.uuid4().hex}"
        data: dict[str, EntityValue] = {
            "at": now,
            "actor": actor,
            "action": action,
            "changes": json.dumps(dict(changes or {}), default=str),
        }
        self.tables.insert(Tables.AUDIT, Entity(tenant_id, row, data))

    def entries(self, tenant_id: str, limit: int = 50) -> list[AuditEntry]:
        out = []
        for e in self.tables.query(Tables.AUDIT, tenant_id, limit=limit):
            out.append(
                AuditEntry(
                    at=as_datetime(e.data.get("at")) or datetime.fromtimestamp(0, UTC),
                    actor=str(e.data.get("actor") or ""),
                    action=str(e.data.get("action") or ""),
                    changes=json.loads(str(e.data.get("changes") or "{}")),
                )
            )
        return out
