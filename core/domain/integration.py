"""A customer tenant's integration: configuration plus a status machine.

    not_configured --PUT--> consent_pending --consent proven--> testing --report--> connected | degraded | failed
                                 ^                                 ^                     │
                                 │                                 └──── rerun ──────────┘
          disconnected <--DELETE-- (any)          token failure / consent revoked --> failed

The record lives in table ``integrations`` under PartitionKey = tenant id and RowKey
``integration`` (the tenant gate in core/services/tenancy.py reads ``status``).
``enabled = False`` stops all calendar work without losing the configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Final

from core.domain.errors import Conflict


class IntegrationStatus(StrEnum):
    NOT_CONFIGURED = "not_configured"
    CONSENT_PENDING = "consent_pending"
    TESTING = "testing"
    CONNECTED = "connected"
    DEGRADED = "degraded"
    FAILED = "failed"
    DISCONNECTED = "disconnected"


class ConnectionMethod(StrEnum):
    DOMAIN_WIDE = "domainWide"
    PER_USER = "perUser"
    SERVICE_ACCOUNT = "serviceAccount"


class PairingPolicy(StrEnum):
    REGISTERED = "registered"
    SAME_TENANT = "sameTenant"


ONBOARDED = frozenset(
    {IntegrationStatus.TESTING, IntegrationStatus.CONNECTED, IntegrationStatus.DEGRADED, IntegrationStatus.FAILED}
)
DEFAULT_SAMPLE_SIZE = 25
MAX_SAMPLE_SIZE = 500

_ALLOWED: dict[IntegrationStatus, frozenset[IntegrationStatus]] = {
    IntegrationStatus.NOT_CONFIGURED: frozenset({IntegrationStatus.CONSENT_PENDING}),
    IntegrationStatus.CONSENT_PENDING: frozenset(
        {IntegrationStatus.CONSENT_PENDING, IntegrationStatus.TESTING, IntegrationStatus.FAILED}
    ),
    IntegrationStatus.TESTING: frozenset(
        {IntegrationStatus.CONNECTED, IntegrationStatus.DEGRADED, IntegrationStatus.FAILED, IntegrationStatus.TESTING}
    ),
    IntegrationStatus.CONNECTED: frozenset(
        {IntegrationStatus.TESTING, IntegrationStatus.DEGRADED, IntegrationStatus.FAILED, IntegrationStatus.CONNECTED}
    ),
    IntegrationStatus.DEGRADED: frozenset(
        {IntegrationStatus.TESTING, IntegrationStatus.CONNECTED, IntegrationStatus.FAILED, IntegrationStatus.DEGRADED}
    ),
    IntegrationStatus.FAILED: frozenset(
        {
            IntegrationStatus.TESTING,
            IntegrationStatus.CONSENT_PENDING,
            IntegrationStatus.CONNECTED,
            IntegrationStatus.DEGRADED,
            IntegrationStatus.FAILED,
        }
    ),
    IntegrationStatus.DISCONNECTED: frozenset({IntegrationStatus.CONSENT_PENDING}),
}


@dataclass(frozen=True, slots=True)
class Integration:
    tenant_id: str
    vendor: str = "outlook365"
    method: ConnectionMethod = ConnectionMethod.DOMAIN_WIDE
    owner_email: str = ""
    enabled: bool = True
    status: IntegrationStatus = IntegrationStatus.NOT_CONFIGURED
    status_reason: str | None = None
    pairing_policy: PairingPolicy = PairingPolicy.REGISTERED
    access_test_sample_size: int = DEFAULT_SAMPLE_SIZE
    consent_granted_at: datetime | None = None
    consent_granted_by: str | None = None
    last_access_test_id: str | None = None
    status_since: datetime | None = None
    updated_at: datetime | None = None

    @property
    def onboarded(self) -> bool:
        return self.status in ONBOARDED

    @property
    def active(self) -> bool:
        """May the service do calendar work for this tenant right now?"""
        return self.enabled and self.onboarded

    def transition(self, to: IntegrationStatus, now: datetime, reason: str | None = None) -> Integration:
        allowed = to == IntegrationStatus.DISCONNECTED or to in _ALLOWED[self.status]
        if not allowed:
            raise Conflict(
                f"The integration cannot go from {self.status.value} to {to.value}.", code="invalid_status_change"
            )
        since = self.status_since if to == self.status else now
        return replace(self, status=to, status_reason=reason, status_since=since, updated_at=now)


# Graph delivers no change notifications for shared calendars to delegated callers, so
# service-account tenants are re-read by reconciliation this often instead.
SERVICE_ACCOUNT_SYNC_MINUTES: Final = 10


class SyncMode(StrEnum):
    """How Outlook-side changes reach the service: pushed by Graph, or found by re-reading."""

    NOTIFICATIONS = "notifications"
    POLLING = "polling"


@dataclass(frozen=True, slots=True)
class SyncPolicy:
    """What GET /api/integration says about sync, and what the reconciliation timers follow."""

    mode: SyncMode
    interval_minutes: int | None = None


def sync_policy(method: ConnectionMethod | None) -> SyncPolicy:
    """Change notifications for domain-wide and per-user tenants (reconciliation is only a safety
    net there); polling every ``SERVICE_ACCOUNT_SYNC_MINUTES`` for service-account tenants."""
    if method is ConnectionMethod.SERVICE_ACCOUNT:
        return SyncPolicy(SyncMode.POLLING, SERVICE_ACCOUNT_SYNC_MINUTES)
    return SyncPolicy(SyncMode.NOTIFICATIONS)
