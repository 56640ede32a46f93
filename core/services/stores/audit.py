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
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from core.domain.errors import ValidationFailed
from core.names import Tables
from core.ports import Clock, Entity, EntityValue, TableStore
from core.services.stores.codec import as_datetime, as_int, opt_str

_INVERTED_BASE: Final = 10**15
_SEQ_BASE: Final = 10**10 - 1
# A row key, which is also the paging cursor: inverted milliseconds ~ sequence ~ uuid.
AUDIT_CURSOR: Final = re.compile(r"\d{15}~\d{10}~[0-9a-f]{32}")


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
        """The newest ``limit`` entries."""
        return [_entry(e) for e in self.tables.query(Tables.AUDIT, tenant_id, limit=limit)]

    def page(self, tenant_id: str, *, limit: int, before: str | None = None) -> tuple[list[AuditEntry], str | None]:
        """Up to ``limit`` entries, newest first, older than the cursor ``before`` (the ``next`` of the previous
        page); and the cursor of the following page, None when this one is the last. A cursor that is not one
        of ours is ``ValidationFailed`` (422 ``invalid_cursor``)."""
        start = None
        if before is not None:
            if not AUDIT_CURSOR.fullmatch(before):
                raise ValidationFailed("That is not a cursor this list gave out.", code="invalid_cursor",
                                       details={"fields": [{"loc": ["query", "before"], "msg": "unknown cursor"}]})
            start = before + "0"  # row keys have one length: every older key sorts at or after this
        rows = list(self.tables.query(Tables.AUDIT, tenant_id, row_key_from=start, limit=limit + 1))
        following = rows[limit - 1].row_key if len(rows) > limit else None
        return [_entry(e) for e in rows[:limit]], following


def _entry(e: Entity) -> AuditEntry:
    return AuditEntry(
        at=as_datetime(e.data.get("at")) or datetime.fromtimestamp(0, UTC),
        actor=str(e.data.get("actor") or ""),
        action=str(e.data.get("action") or ""),
        changes=json.loads(str(e.data.get("changes") or "{}")),
        on_behalf_of=opt_str(e.data.get("onBehalfOf")),
        ids=json.loads(str(e.data.get("ids") or "{}")),
        status=as_int(e.data.get("status")) if e.data.get("status") not in (None, "") else None,
        code=opt_str(e.data.get("code")),
    )
