"""Hourly clean-up of per-request state: expired idempotency keys and past days' slot claims.

Table Storage has no TTL. Each tenant's rows are found without a scan: idempotency keys
through their expiry-hour index (``x~<hour>~<hash>`` rows of past hours), slot claims by
their RowKey's leading day (rows of days before today). Tenants come from the
integration registry, like every timer's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from core.domain.errors import ServiceError
from core.ports import Clock, TableStore
from core.services.idempotency import IdempotencyService
from core.services.slot_guard import SlotClaims
from core.services.stores.integrations import IntegrationRepository

log = logging.getLogger(__name__)


@dataclass
class CleanupReport:
    tenants: int = 0
    keys: int = 0
    claim_rows: int = 0
    errors: int = 0


class RequestStateCleanup:
    """Deletes expired idempotency keys and past slot-claim rows of every tenant (module docstring)."""

    def __init__(self, tables: TableStore, clock: Clock, idempotency: IdempotencyService) -> None:
        self.integrations = IntegrationRepository(tables)
        self.idempotency = idempotency
        self.claims = SlotClaims(tables, clock)

    def run(self) -> CleanupReport:
        report = CleanupReport()
        for tenant_id in list(self.integrations.tenants()):
            report.tenants += 1
            try:
                report.keys += self.idempotency.purge_expired(tenant_id)
                report.claim_rows += self.claims.purge_past(tenant_id)
            except ServiceError as exc:
                log.warning("request-state clean-up of a tenant failed: %s", exc.code)
                report.errors += 1
        log.info("request-state clean-up: %d tenant(s), %d key(s), %d claim row(s) removed",
                 report.tenants, report.keys, report.claim_rows)
        return report
