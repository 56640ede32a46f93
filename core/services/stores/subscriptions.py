"""Our records of Graph subscriptions, one per watched mailbox, and the renewal index.

Table ``subscriptions``, PartitionKey = tenant id: ``m~<userId>`` (the record: ids and
times only, never the clientState), ``id~<subscriptionId>`` (subscription id ->
mailbox, for lifecycle notifications) and ``~lifetime`` (the longest lifetime Graph grants
this tenant's subscriptions, as learned from its refusals, shared by every instance).
Table ``subscriptionexpiry``, PartitionKey = the hourly bucket ``yyyyMMddHH`` of the
renew-at time, RowKey ``<tenantId>~<userId>``: the renewal timer reads only the buckets
inside its horizon.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from core.domain.commands import RenewalItem
from core.names import Tables
from core.ports import Entity, EntityValue, TableStore
from core.services.stores.codec import END, Versioned, as_int, require_datetime

# The documented lifetime of an Outlook event subscription (the granted expiry is read back).
OUTLOOK_MAX_MINUTES: Final = 10080

_MAILBOX_PREFIX: Final = "m~"
_ID_PREFIX: Final = "id~"
LIFETIME_ROW: Final = "~lifetime"  # the tenant's subscription lifetime Graph allows, as last learned


def bucket_of(moment: datetime) -> str:
    """The hourly bucket (``yyyyMMddHH``, UTC) a renew-at time falls in."""
    return moment.astimezone(UTC).strftime("%Y%m%d%H")


@dataclass(frozen=True, slots=True)
class SubscriptionRecord:
    """Our record of one mailbox's subscription (ids and times only; never the clientState)."""

    tenant_id: str
    user_id: str
    subscription_id: str
    expires_at: datetime
    renew_at: datetime
    created_at: datetime
    lifetime_minutes: int
    failures: int = 0
    last_error: str | None = None

    @property
    def bucket(self) -> str:
        return bucket_of(self.renew_at)




@dataclass(frozen=True, slots=True)
class LearnedLifetime:
    """The maximum subscription lifetime Graph told us (``minutes``), and when."""

    minutes: int
    learned_at: datetime


class SubscriptionStore:
    """The kinds of rows above, kept in step."""

    def __init__(self, tables: TableStore) -> None:
        self.tables = tables

    def lifetime(self, tenant_id: str) -> LearnedLifetime | None:
        e = self.tables.get(Tables.SUBSCRIPTIONS, tenant_id, LIFETIME_ROW)
        if e is None:
            return None
        minutes, at = e.data.get("maxMinutes"), e.data.get("learnedAt")
        if not isinstance(minutes, int) or isinstance(minutes, bool) or minutes <= 0 or not isinstance(at, datetime):
            return None
        return LearnedLifetime(minutes, at)

    def set_lifetime(self, tenant_id: str, minutes: int, at: datetime) -> None:
        self.tables.upsert(Tables.SUBSCRIPTIONS, Entity(tenant_id, LIFETIME_ROW,
                                                        {"maxMinutes": minutes, "learnedAt": at}))

    @staticmethod
    def _to_entity(r: SubscriptionRecord, etag: str | None = None) -> Entity:
        data: dict[str, EntityValue] = {
            "userId": r.user_id,
            "subscriptionId": r.subscription_id,
            "expiresAt": r.expires_at,
            "renewAt": r.renew_at,
            "createdAt": r.created_at,
            "lifetimeMinutes": r.lifetime_minutes,
            "failures": r.failures,
            "lastError": r.last_error,
        }
        return Entity(r.tenant_id, _MAILBOX_PREFIX + r.user_id, data, etag)

    @staticmethod
    def _from_entity(e: Entity) -> SubscriptionRecord:
        d = e.data
        return SubscriptionRecord(
            tenant_id=e.partition_key,
            user_id=str(d.get("userId") or e.row_key[len(_MAILBOX_PREFIX):]),
            subscription_id=str(d["subscriptionId"]),
            expires_at=require_datetime(d["expiresAt"]),
            renew_at=require_datetime(d["renewAt"]),
            created_at=require_datetime(d["createdAt"]),
            lifetime_minutes=as_int(d.get("lifetimeMinutes"), OUTLOOK_MAX_MINUTES),
            failures=as_int(d.get("failures")),
            last_error=None if d.get("lastError") is None else str(d.get("lastError")),
        )

    def get(self, tenant_id: str, user_id: str) -> Versioned[SubscriptionRecord] | None:
        e = self.tables.get(Tables.SUBSCRIPTIONS, tenant_id, _MAILBOX_PREFIX + user_id)
        return None if e is None else Versioned(self._from_entity(e), e.etag)

    def user_of(self, tenant_id: str, subscription_id: str) -> str | None:
        e = self.tables.get(Tables.SUBSCRIPTIONS, tenant_id, _ID_PREFIX + subscription_id)
        return None if e is None else str(e.data["userId"])

    def records(self, tenant_id: str) -> list[SubscriptionRecord]:
        rows = self.tables.query(Tables.SUBSCRIPTIONS, tenant_id, row_key_from=_MAILBOX_PREFIX,
                                 row_key_to=_MAILBOX_PREFIX + END)
        return [self._from_entity(e) for e in rows]

    def save(self, record: SubscriptionRecord, previous: Versioned[SubscriptionRecord] | None) -> SubscriptionRecord:
        """Insert (``Conflict`` if someone else did first) or replace by ETag, then move the index rows."""
        if previous is None:
            self.tables.insert(Tables.SUBSCRIPTIONS, self._to_entity(record))
        else:
            self.tables.update(Tables.SUBSCRIPTIONS, self._to_entity(record, previous.etag))
        old = previous.value if previous is not None else None
        if old is None or old.subscription_id != record.subscription_id:
            self.tables.upsert(Tables.SUBSCRIPTIONS, Entity(record.tenant_id, _ID_PREFIX + record.subscription_id,
                                                            {"userId": record.user_id}))
            if old is not None:
                self.tables.delete(Tables.SUBSCRIPTIONS, old.tenant_id, _ID_PREFIX + old.subscription_id)
        if old is None or old.bucket != record.bucket or old.subscription_id != record.subscription_id:
            self.tables.upsert(Tables.SUBSCRIPTION_EXPIRY, Entity(
                record.bucket, f"{record.tenant_id}~{record.user_id}",
                {"tenantId": record.tenant_id, "userId": record.user_id, "subscriptionId": record.subscription_id},
            ))
            if old is not None and old.bucket != record.bucket:
                self.tables.delete(Tables.SUBSCRIPTION_EXPIRY, old.bucket, f"{old.tenant_id}~{old.user_id}")
        return record

    def delete(self, record: SubscriptionRecord) -> None:
        self.tables.delete(Tables.SUBSCRIPTION_EXPIRY, record.bucket, f"{record.tenant_id}~{record.user_id}")
        self.tables.delete(Tables.SUBSCRIPTIONS, record.tenant_id, _ID_PREFIX + record.subscription_id)
        self.tables.delete(Tables.SUBSCRIPTIONS, record.tenant_id, _MAILBOX_PREFIX + record.user_id)

    def drop_index(self, bucket: str, tenant_id: str, user_id: str) -> None:
        self.tables.delete(Tables.SUBSCRIPTION_EXPIRY, bucket, f"{tenant_id}~{user_id}")

    def due(self, start: datetime, end: datetime) -> list[tuple[str, str, RenewalItem]]:
        """``(bucket, tenantId, item)`` of every index row in the hourly buckets [start, end]."""
        out: list[tuple[str, str, RenewalItem]] = []
        hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        while hour <= end:
            bucket = bucket_of(hour)
            for e in self.tables.query(Tables.SUBSCRIPTION_EXPIRY, bucket):
                tenant_id, user_id = str(e.data["tenantId"]), str(e.data["userId"])
                out.append((bucket, tenant_id, RenewalItem(user_id, str(e.data["subscriptionId"]), bucket)))
            hour += timedelta(hours=1)
        return out
