"""The audit trail per tenant, newest first (table ``audit``, PartitionKey tenant id).

RowKey = inverted milliseconds ~ a per-process sequence ~ uuid, so a partition query
reads the newest entries first. Two kinds of entries:

* admin changes: who, when and which fields changed from what to what; never a secret;
* app actions (``record_app_action``): every request an app-only token made, directly
  or acting for a user: the acting app (``actor`` = ``app:<client id>``), the user acted
  for (object id), the action (the route's operation id), the ids involved (session,
  pairing...), the HTTP status and error code. Never a subject, comment or other content.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from core.names import Tables
from core.ports import Clock, Entity, EntityValue, TableStore
from core.services.stores.codec import as_datetime, as_int, opt_str

_INVERTED_BASE: Final = 10**15
_SEQ_BASE: Final = 10**10 - 1


APP_ACTOR_PREFIX: Final = "app:"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    changes: dict[str, list[Any]]
    on_behalf_of: str | None = None  # app actions: the user the app acted for
    ids: dict[str, str] = field(default_factory=dict)  # app actions: ids involved, never content
    status: int | None = None  # app actions: the HTTP status answered
    code: str | None = None  # app actions: the error code, when refused


class AuditTrail:
    """Admin changes per tenant, newest first (RowKey = inverted milliseconds ~ uuid)."""

    def __init__(self, tables: TableStore, clock: Clock) -> None:
        self.tables = tables
        self.clock = clock
        self._seq = itertools.count()

    def record(self, tenant_id: str, actor: str, action: str, changes: Mapping[str, list[Any]] | None = None) -> None:
        self._insert(tenant_id, {
            "actor": actor,
            "action": action,
            "changes": json.dumps(dict(changes or {}), default=str),
        })

    def record_app_action(
        self,
        tenant_id: str,
        app_id: str,
        action: str,
        *,
        on_behalf_of: str | None,
        ids: Mapping[str, str],
        status: int,
        code: str | None = None,
    ) -> None:
        """One request of an app (module docstring): who acted, for whom, what, on which ids, with what outcome."""
        self._insert(tenant_id, {
            "actor": APP_ACTOR_PREFIX + app_id,
            "action": action,
            "changes": "{}",
            "appId": app_id,
            "onBehalfOf": on_behalf_of,
            "ids": json.dumps(dict(ids), sort_keys=True),
            "status": status,
            "code": code,
        })

    def _insert(self, tenant_id: str, data: dict[str, EntityValue]) -> None:
        now = self.clock.now()
        inverted = _INVERTED_BASE - int(now.timestamp() * 1000)
        # Within one millisecond, this process's later entries still sort first.
        row = f"{inverted:015d}~{_SEQ_BASE - next(self._seq):010d}~{uuid.uuid4().hex}"
        self.tables.insert(Tables.AUDIT, Entity(tenant_id, row, {"at": now, **data}))

    def entries(self, tenant_id: str, limit: int = 50) -> list[AuditEntry]:
        out = []
        for e in self.tables.query(Tables.AUDIT, tenant_id, limit=limit):
            out.append(
                AuditEntry(
                    at=as_datetime(e.data.get("at")) or datetime.fromtimestamp(0, UTC),
                    actor=str(e.data.get("actor") or ""),
                    action=str(e.data.get("action") or ""),
                    changes=json.loads(str(e.data.get("changes") or "{}")),
                    on_behalf_of=opt_str(e.data.get("onBehalfOf")),
                    ids=json.loads(str(e.data.get("ids") or "{}")),
                    status=as_int(e.data.get("status")) if e.data.get("status") not in (None, "") else None,
                    code=opt_str(e.data.get("code")),
                )
            )
        return out
