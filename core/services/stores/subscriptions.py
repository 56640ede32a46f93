"""Our records of Graph subscriptions, one per watched mailbox, and the renewal index.

Table ``subscriptions``, PartitionKey = tenant id: ``m~<userId>`` (the record: ids and
times only, never the clientState), ``id~<subscriptionId>`` (subscription id ->
mailbox, for lifecycle notifications) and ``~lifetime`` (the longest lifetime Graph grants
this tenant's subscriptions, as learned from its refusals, shared by every instance),
``lc~<userId>~<event>`` (lifecycle work already done for a subscription: duplicates and
replays within the window are dropped) and ``rs~<userId>`` (the mailbox's last resync and
the one booked after it: at most one resync per mailbox per cooldown, across instances).
Table ``subscriptionexpiry``, PartitionKey = the hourly bucket ``yyyyMMddHH`` of the
renew-at time, RowKey ``<tenantId>~<userId>``: the renewal timer reads only the buckets
inside its horizon.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from core.domain.commands import RenewalItem
from core.domain.errors import ConcurrencyConflict, Conflict, NotFound
from core.names import Tables
from core.ports import Entity, EntityValue, TableStore
from core.services.stores.codec import END, Versioned, as_int, require_datetime

# The documented lifetime of an Outlook event subscription (the granted expiry is read back).
OUTLOOK_MAX_MINUTES: Final = 10080

_MAILBOX_PREFIX: Final = "m~"
_ID_PREFIX: Final = "id~"
_LIFECYCLE_PREFIX: Final = "lc~"  # lc~<userId>~<event>: lifecycle work done for a subscription, and when
_RESYNC_PREFIX: Final = "rs~"  # rs~<userId>: the mailbox's last resync and the one booked after it
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
    nonce: str = ""  # the subscription's clientState nonce ("" for subscriptions made before binding)
    key_id: str = ""  # the clientState key it was signed with

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
            "stateNonce": r.nonce or None,
            "keyId": r.key_id or None,
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
            nonce=str(d.get("stateNonce") or ""),
            key_id=str(d.get("keyId") or ""),
        )

    # --- lifecycle work, shared across instances ------------------------------------------

    def claim_lifecycle(self, tenant_id: str, user_id: str, event: str, subscription_id: str, *, now: datetime,
                        window: timedelta) -> bool:
        """Take the ``event`` work for this mailbox's subscription unless it was done within ``window``
        (ETag-guarded: of two racing workers one wins). False for a duplicate or a replay."""
        key = f"{_LIFECYCLE_PREFIX}{user_id}~{event}"
        e = self.tables.get(Tables.SUBSCRIPTIONS, tenant_id, key)
        if e is not None:
            at = e.data.get("at")
            if e.data.get("subscriptionId") == subscription_id and isinstance(at, datetime) and at > now - window:
                return False
        return self._claim(tenant_id, key, {"subscriptionId": subscription_id, "at": now}, e)

    def release_lifecycle(self, tenant_id: str, user_id: str, event: str) -> None:
        """The claimed work failed: let its retry through."""
        self.tables.delete(Tables.SUBSCRIPTIONS, tenant_id, f"{_LIFECYCLE_PREFIX}{user_id}~{event}")

    def resync_slot(self, tenant_id: str, user_id: str, now: datetime, cooldown: timedelta) -> tuple[str, float]:
        """When this mailbox may be resynced: ``("now", 0)`` (recorded as done now), ``("later", seconds)`` (the
        cooldown runs; one resync is booked for when it ends) or ``("booked", 0)`` (one is booked already, or
        another instance just took it: nothing to do)."""
        key = f"{_RESYNC_PREFIX}{user_id}"
        e = self.tables.get(Tables.SUBSCRIPTIONS, tenant_id, key)
        last = e.data.get("lastAt") if e is not None else None
        booked = e.data.get("nextAt") if e is not None else None
        if not isinstance(last, datetime) or now >= last + cooldown:
            decision, data, delay = "now", {"lastAt": now, "nextAt": None}, 0.0
        elif not isinstance(booked, datetime) or booked < now - cooldown:
            opens = last + cooldown
            decision, data, delay = "later", {"lastAt": last, "nextAt": opens}, (opens - now).total_seconds()
        else:
            return "booked", 0.0
        return (decision, delay) if self._claim(tenant_id, key, data, e) else ("booked", 0.0)

    def _claim(self, tenant_id: str, key: str, data: Mapping[str, EntityValue], read: Entity | None) -> bool:
        """Write ``data`` over the row as ``read`` (insert when there was none, else by its ETag); False when
        another instance wrote first."""
        entity = Entity(tenant_id, key, dict(data), None if read is None else read.etag)
        try:
            if read is None:
                self.tables.insert(Tables.SUBSCRIPTIONS, entity)
            else:
                self.tables.update(Tables.SUBSCRIPTIONS, entity)
        except (Conflict, ConcurrencyConflict, NotFound):
            return False
        return True

    def resynced(self, tenant_id: str, user_id: str, now: datetime) -> None:
        """A resync that did not go through ``resync_slot`` (after a recreate) starts the cooldown too."""
        self.tables.upsert(Tables.SUBSCRIPTIONS, Entity(tenant_id, f"{_RESYNC_PREFIX}{user_id}",
                                                        {"lastAt": now, "nextAt": None}))

    def resync_failed(self, tenant_id: str, user_id: str) -> None:
        """The resync taken ``now`` failed: its retry may run at once."""
        self.tables.delete(Tables.SUBSCRIPTIONS, tenant_id, f"{_RESYNC_PREFIX}{user_id}")

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
