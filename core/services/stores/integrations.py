"""The tenant's integration record, its consent row, and the registry of tenants for timers.

Table ``integrations``, PartitionKey = tenant id: RowKey ``integration`` (the record),
``consent`` (where admin consent stands) and ``secret~<name>`` (names of the tenant's
secrets, ``core/services/tenant_secrets.py``). Saving a record also registers the tenant
in the small ``~tenants`` partition, so timers list tenants without a cross-partition scan.
A save that changes the status writes ``integration.status_changed`` to the product in the
same transaction (outbox rows ``x~...``, ``core/services/stores/outbox.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from core.domain.errors import ConcurrencyConflict, NotFound
from core.domain.integration import ConnectionMethod, Integration, IntegrationStatus, PairingPolicy
from core.domain.product_events import integration_drafts
from core.names import Tables
from core.ports import Entity, EntityValue, TableOp, TableStore
from core.services.stores.codec import Versioned, as_datetime, as_int, opt_str
from core.services.stores.outbox import Outbox, make_events

INTEGRATION_ROW = "integration"
CONSENT_ROW = "consent"


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """The ``consent`` row: granted / declined / pending, when, and the error code of a refusal."""

    status: str
    updated_at: datetime | None
    error_code: str | None
    verification: str | None = None  # "<chain>:<attempt>" the next re-proof message must carry ("verifying")
# Timers need every tenant; the port reads one partition at a time, so saving an
# integration also registers its tenant id in this one small partition.
REGISTRY_PARTITION = "~tenants"


def integration_to_entity(i: Integration) -> dict[str, EntityValue]:
    return {
        "vendor": i.vendor,
        "method": i.method.value,
        "ownerEmail": i.owner_email,
        "enabled": i.enabled,
        "status": i.status.value,
        "statusReason": i.status_reason,
        "pairingPolicy": i.pairing_policy.value,
        "accessTestSampleSize": i.access_test_sample_size,
        "consentGrantedAt": i.consent_granted_at,
        "consentGrantedBy": i.consent_granted_by,
        "lastAccessTestId": i.last_access_test_id,
        "statusSince": i.status_since,
        "updatedAt": i.updated_at,
    }


def integration_from_entity(tenant_id: str, d: dict[str, EntityValue]) -> Integration:
    return Integration(
        tenant_id=tenant_id,
        vendor=str(d.get("vendor") or "outlook365"),
        method=ConnectionMethod(str(d.get("method") or "domainWide")),
        owner_email=str(d.get("ownerEmail") or ""),
        enabled=bool(d.get("enabled", True)),
        status=IntegrationStatus(str(d.get("status") or "not_configured")),
        status_reason=opt_str(d.get("statusReason")),
        pairing_policy=PairingPolicy(str(d.get("pairingPolicy") or "registered")),
        access_test_sample_size=as_int(d.get("accessTestSampleSize"), 25) or 25,
        consent_granted_at=as_datetime(d.get("consentGrantedAt")),
        consent_granted_by=opt_str(d.get("consentGrantedBy")),
        last_access_test_id=opt_str(d.get("lastAccessTestId")),
        status_since=as_datetime(d.get("statusSince")),
        updated_at=as_datetime(d.get("updatedAt")),
    )


class IntegrationRepository:
    def __init__(self, tables: TableStore) -> None:
        self.tables = tables
        self.outbox = Outbox(tables)

    def get(self, tenant_id: str) -> Versioned[Integration] | None:
        e = self.tables.get(Tables.INTEGRATIONS, tenant_id, INTEGRATION_ROW)
        return None if e is None else Versioned(integration_from_entity(tenant_id, dict(e.data)), e.etag)

    def get_or_default(self, tenant_id: str) -> Versioned[Integration]:
        return self.get(tenant_id) or Versioned(Integration(tenant_id=tenant_id), None)

    def save(self, integration: Integration, etag: str | None) -> Versioned[Integration]:
        """Insert when ``etag`` is None (``Conflict`` if someone else created it), else replace if unchanged.
        A status change writes ``integration.status_changed`` in the same transaction."""
        entity = Entity(integration.tenant_id, INTEGRATION_ROW, integration_to_entity(integration), etag)
        if etag is None:
            previous = None
            op = TableOp("insert", entity)
        else:
            found = self.tables.get(Tables.INTEGRATIONS, integration.tenant_id, INTEGRATION_ROW)
            if found is None:
                raise NotFound()
            if found.etag != etag:
                raise ConcurrencyConflict()
            previous = integration_from_entity(integration.tenant_id, dict(found.data))
            op = TableOp("update", entity)
        events = make_events(integration.tenant_id, integration_drafts(previous, integration), integration.updated_at)
        stored = self.outbox.commit(Tables.INTEGRATIONS, op, events, notify=False)
        self.tables.upsert(Tables.INTEGRATIONS, Entity(REGISTRY_PARTITION, integration.tenant_id, {}))
        if events:
            self.outbox.committed(Tables.INTEGRATIONS, integration.tenant_id, events)
        return Versioned(integration, stored.etag if stored is not None else None)

    def status(self, tenant_id: str) -> str | None:
        """The stored status of the tenant's integration (one point read), None when there is none."""
        e = self.tables.get(Tables.INTEGRATIONS, tenant_id, INTEGRATION_ROW)
        return None if e is None else opt_str(e.data.get("status"))

    def consent(self, tenant_id: str) -> ConsentRecord | None:
        """Where admin consent stands for the tenant (the ``consent`` row)."""
        e = self.tables.get(Tables.INTEGRATIONS, tenant_id, CONSENT_ROW)
        if e is None:
            return None
        d = e.data
        return ConsentRecord(
            str(d.get("status") or "none"), as_datetime(d.get("updatedAt")), opt_str(d.get("errorCode")),
            opt_str(d.get("verification")),
        )

    def set_consent(self, tenant_id: str, status: str, error_code: str | None, at: datetime,
                    *, verification: str | None = None) -> None:
        data: dict[str, EntityValue] = {"status": status, "errorCode": error_code, "updatedAt": at,
                                        "verification": verification}
        self.tables.upsert(Tables.INTEGRATIONS, Entity(tenant_id, CONSENT_ROW, data))

    def claim_verification(self, tenant_id: str, step: str, at: datetime) -> bool:
        """Take the re-proof step ``step`` ("<chain>:<attempt>") of a consent being verified, ETag-guarded:
        False when the row moved on (a duplicate or stale message, a new consent, a disconnect)."""
        e = self.tables.get(Tables.INTEGRATIONS, tenant_id, CONSENT_ROW)
        if e is None or e.data.get("status") != "verifying" or e.data.get("verification") != step:
            return False
        data = {**e.data, "verification": f"{step}:taken", "updatedAt": at}
        try:
            self.tables.update(Tables.INTEGRATIONS, Entity(tenant_id, CONSENT_ROW, data, e.etag))
        except (ConcurrencyConflict, NotFound):
            return False
        return True

    def clear_consent(self, tenant_id: str) -> None:
        self.tables.delete(Tables.INTEGRATIONS, tenant_id, CONSENT_ROW)

    def tenants(self) -> Iterator[str]:
        """Every tenant that ever saved an integration (for timers)."""
        for e in self.tables.query(Tables.INTEGRATIONS, REGISTRY_PARTITION):
            yield e.row_key
