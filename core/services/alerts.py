"""Owner alerts: tell the integration owner when the connection breaks, once per kind and period.

Any service calls ``OwnerAlerts.notify(tenant, kind, detail=...)``. The first call of a
kind within the period claims the (tenant, kind) row in the ``alerts`` table with an
ETag-guarded write (so two workers racing send one alert, not two) and enqueues an
``owner-alert`` command; the owner-alert worker renders and mails it. Later calls in
the same period only count (``suppressed``), so a failing retry loop or a thousand
users failing at once produce one email, not a thousand.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from core.domain.commands import AlertCommand, AlertKind
from core.names import Queues
from core.ports import Clock, CommandQueue, TableStore
from core.services.stores.alerts import AlertClaims

DEFAULT_PERIOD = timedelta(hours=12)






class OwnerAlerts:
    def __init__(self, tables: TableStore, queues: CommandQueue, clock: Clock, period: timedelta = DEFAULT_PERIOD):
        self.claims = AlertClaims(tables)
        self.queues = queues
        self.clock = clock
        self.period = period

    def notify(self, tenant_id: str, kind: AlertKind, *, detail: str, since: datetime | None = None) -> bool:
        """Queue an alert unless one of this kind went out for this tenant within the period.

        Returns True when an alert was queued, False when it was suppressed as a repeat.
        """
        now = self.clock.now()
        since = since or now
        if not self.claims.claim(tenant_id, kind.value, now=now, since=since, detail=detail, period=self.period):
            return False
        self.queues.send(Queues.OWNER_ALERTS, AlertCommand(tenant_id, kind, detail, since).to_message())
        return True

    def resolve(self, tenant_id: str, kind: AlertKind) -> None:
        """The condition cleared: the next failure of this kind alerts again at once."""
        self.claims.release(tenant_id, kind.value)
