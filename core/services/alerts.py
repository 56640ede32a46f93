"""Owner alerts: tell the integration owner when the connection breaks, once per kind and period.

Any service calls ``OwnerAlerts.notify(tenant, kind, detail=...)``. The first call of a
kind within the period claims the (tenant, kind) row in the ``alerts`` table with an
ETag-guarded write (so two workers racing send one alert, not two) and enqueues an
``owner-alert`` command; the owner-alert worker renders and mails it. Later calls in
the same period only count (``suppressed``), so a failing retry loop or a thousand
users failing at once produce one email, not a thousand.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from core.domain.errors import ConcurrencyConflict, Conflict
from core.names import Queues, Tables
from core.ports import Clock, CommandQueue, Entity, EntityValue, TableStore

DEFAULT_PERIOD = timedelta(hours=12)


class AlertKind(StrEnum):
    CONSENT_REVOKED = "consent_revoked"
    TOKEN_FAILURE = "token_failure"  # noqa: S105 - an alert kind, not a credential
    ACCESS_TEST_REGRESSED = "access_test_regressed"
    SUBSCRIPTION_FAILURE = "subscription_failure"
    POISON_MESSAGE = "poison_message"
    SESSION_FAILED = "session_failed"
    USER_RECONNECT_REQUIRED = "user_reconnect_required"


@dataclass(frozen=True, slots=True)
class AlertCommand:
    """The queued alert: what broke, since when; no secrets, no event content."""

    tenant_id: str
    kind: AlertKind
    detail: str
    since: datetime

    def to_message(self) -> dict[str, str]:
        return {
            "kind": "owner_alert",
            "tenantId": self.tenant_id,
            "alert": self.kind.value,
            "detail": self.detail,
            "since": self.since.isoformat(),
        }

    @classmethod
    def from_message(cls, message: dict[str, str]) -> AlertCommand:
        return cls(
            tenant_id=message["tenantId"],
            kind=AlertKind(message["alert"]),
            detail=message.get("detail", "")[:1000],
            since=datetime.fromisoformat(message["since"]),
        )


class OwnerAlerts:
    def __init__(self, tables: TableStore, queues: CommandQueue, clock: Clock, period: timedelta = DEFAULT_PERIOD):
        self.tables = tables
        self.queues = queues
        self.clock = clock
        self.period = period

    def notify(self, tenant_id: str, kind: AlertKind, *, detail: str, since: datetime | None = None) -> bool:
        """Queue an alert unless one of this kind went out for this tenant within the period.

        Returns True when an alert was queued, False when it was suppressed as a repeat.
        """
        now = self.clock.now()
        since = since or now
        row = self.tables.get(Tables.ALERTS, tenant_id, kind.value)
        data: dict[str, EntityValue] = {"lastSentAt": now, "since": since, "detail": detail[:500], "suppressed": 0}
        try:
            if row is None:
                self.tables.insert(Tables.ALERTS, Entity(tenant_id, kind.value, data))
            else:
                last = row.data.get("lastSentAt")
                if isinstance(last, datetime) and now - last < self.period:
                    suppressed = int(row.data.get("suppressed") or 0) + 1  # type: ignore[arg-type]
                    kept: dict[str, EntityValue] = {**row.data, "suppressed": suppressed}
                    # Another worker counting at the same moment is fine: the count is advisory.
                    with contextlib.suppress(ConcurrencyConflict):
                        self.tables.update(Tables.ALERTS, Entity(tenant_id, kind.value, kept, row.etag))
                    return False
                self.tables.update(Tables.ALERTS, Entity(tenant_id, kind.value, data, row.etag))
        except (Conflict, ConcurrencyConflict):
            return False  # someone else claimed this alert first: exactly one goes out
        self.queues.send(Queues.OWNER_ALERTS, AlertCommand(tenant_id, kind, detail, since).to_message())
        return True

    def resolve(self, tenant_id: str, kind: AlertKind) -> None:
        """The condition cleared: the next failure of this kind alerts again at once."""
        self.tables.delete(Tables.ALERTS, tenant_id, kind.value)
