"""Owner-alert bookkeeping in table ``alerts`` (PartitionKey tenant id).

RowKey ``<kind>``: the claim of the current period (ETag-guarded, so two workers racing
send one alert), with how many repeats were suppressed. RowKey ``sent~<hash>``: the
marker the owner-alert worker writes once an alert was mailed (a redelivered message
is not mailed twice).
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Final

from core.domain.errors import ConcurrencyConflict, Conflict
from core.names import Tables
from core.ports import Entity, EntityValue, TableStore
from core.services.stores.codec import as_datetime, as_int

SENT_PREFIX: Final = "sent~"


class AlertClaims:
    """Claims per (tenant, alert kind) and the sent markers (module docstring)."""

    def __init__(self, tables: TableStore) -> None:
        self.tables = tables

    def claim(self, tenant_id: str, kind: str, *, now: datetime, since: datetime, detail: str,
              period: timedelta) -> bool:
        """True when this caller may send the alert now; False for a repeat within ``period``
        or when another worker claimed it first (exactly one goes out)."""
        row = self.tables.get(Tables.ALERTS, tenant_id, kind)
        data: dict[str, EntityValue] = {"lastSentAt": now, "since": since, "detail": detail[:500], "suppressed": 0}
        try:
            if row is None:
                self.tables.insert(Tables.ALERTS, Entity(tenant_id, kind, data))
                return True
            last = as_datetime(row.data.get("lastSentAt"))
            if last is not None and now - last < period:
                kept: dict[str, EntityValue] = {**row.data, "suppressed": as_int(row.data.get("suppressed")) + 1}
                # Another worker counting at the same moment is fine: the count is advisory.
                with contextlib.suppress(ConcurrencyConflict):
                    self.tables.update(Tables.ALERTS, Entity(tenant_id, kind, kept, row.etag))
                return False
            self.tables.update(Tables.ALERTS, Entity(tenant_id, kind, data, row.etag))
            return True
        except (Conflict, ConcurrencyConflict):
            return False

    def release(self, tenant_id: str, kind: str) -> None:
        """The condition cleared: the next failure of this kind alerts again at once."""
        self.tables.delete(Tables.ALERTS, tenant_id, kind)

    def was_sent(self, tenant_id: str, marker: str) -> bool:
        return self.tables.get(Tables.ALERTS, tenant_id, SENT_PREFIX + marker) is not None

    def mark_sent(self, tenant_id: str, marker: str, kind: str, at: datetime) -> None:
        self.tables.upsert(Tables.ALERTS, Entity(tenant_id, SENT_PREFIX + marker, {"kind": kind, "sentAt": at}))
