"""Idempotency keys of write requests (table ``idempotency``, PartitionKey tenant id).

Rows:

    k~<sha256 of caller scope and key>     the key's record: request fingerprint, state, expiry
                                           and, once done, the response to replay
    x~<yyyyMMddHH of expiry>~<hash>        expiry index: the clean-up reads only past hours

The raw ``Idempotency-Key`` is never stored: the row key is a SHA-256 over the caller's
scope (tenant, user, acting app) and the key. The stored response is the route's JSON
reply (ids and statuses of session writes: metadata only) and its ``Location`` header.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from core.names import Tables
from core.ports import Entity, EntityValue, TableStore
from core.services.stores.codec import Versioned, as_int, opt_str, require_datetime

RECORD: Final = "k~"
EXPIRY: Final = "x~"
PENDING: Final = "pending"
DONE: Final = "done"


def expiry_bucket(moment: datetime) -> str:
    """The hourly bucket (``yyyyMMddHH``, UTC) an expiry time falls in."""
    return moment.astimezone(UTC).strftime("%Y%m%d%H")


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One idempotency key of one caller (hashed), and what it answered."""

    tenant_id: str
    key_hash: str
    fingerprint: str
    state: str
    claimed_at: datetime
    expires_at: datetime
    status: int | None = None
    body: str | None = None
    location: str | None = None

    @property
    def done(self) -> bool:
        return self.state == DONE


@dataclass(frozen=True, slots=True)
class ExpiryRow:
    key_hash: str
    row_key: str


def _to_entity(r: KeyRecord, etag: str | None = None) -> Entity:
    data: dict[str, EntityValue] = {
        "fingerprint": r.fingerprint,
        "state": r.state,
        "claimedAt": r.claimed_at,
        "expiresAt": r.expires_at,
        "status": r.status,
        "body": r.body,
        "location": r.location,
    }
    return Entity(r.tenant_id, RECORD + r.key_hash, data, etag)


def _from_entity(e: Entity) -> KeyRecord:
    d = e.data
    status = d.get("status")
    return KeyRecord(
        tenant_id=e.partition_key,
        key_hash=e.row_key[len(RECORD):],
        fingerprint=str(d.get("fingerprint") or ""),
        state=str(d.get("state") or PENDING),
        claimed_at=require_datetime(d.get("claimedAt")),
        expires_at=require_datetime(d.get("expiresAt")),
        status=as_int(status) if status not in (None, "") else None,
        body=opt_str(d.get("body")),
        location=opt_str(d.get("location")),
    )


class IdempotencyStore:
    """Key records and their expiry index (module docstring)."""

    def __init__(self, tables: TableStore) -> None:
        self.tables = tables

    def get(self, tenant_id: str, key_hash: str) -> Versioned[KeyRecord] | None:
        e = self.tables.get(Tables.IDEMPOTENCY, tenant_id, RECORD + key_hash)
        return None if e is None else Versioned(_from_entity(e), e.etag)

    def insert(self, record: KeyRecord) -> str | None:
        """Add a new record (``Conflict`` when the key exists) and its expiry index row; the ETag."""
        stored = self.tables.insert(Tables.IDEMPOTENCY, _to_entity(record))
        self._index(record)
        return stored.etag

    def replace(self, record: KeyRecord, etag: str | None) -> str | None:
        """Replace the record if ``etag`` still matches (``ConcurrencyConflict`` otherwise); the new ETag."""
        stored = self.tables.update(Tables.IDEMPOTENCY, _to_entity(record, etag))
        self._index(record)
        return stored.etag

    def delete(self, tenant_id: str, key_hash: str, etag: str | None) -> None:
        """Delete the record if ``etag`` still matches (its index row is left for the clean-up)."""
        self.tables.delete(Tables.IDEMPOTENCY, tenant_id, RECORD + key_hash, etag)

    def _index(self, record: KeyRecord) -> None:
        row = f"{EXPIRY}{expiry_bucket(record.expires_at)}~{record.key_hash}"
        self.tables.upsert(Tables.IDEMPOTENCY, Entity(record.tenant_id, row, {}))

    def expired_index(self, tenant_id: str, before: datetime) -> Iterator[ExpiryRow]:
        """Index rows of the hours before ``before``'s hour (their records may have expired)."""
        for e in self.tables.query(Tables.IDEMPOTENCY, tenant_id, row_key_from=EXPIRY,
                                   row_key_to=f"{EXPIRY}{expiry_bucket(before)}"):
            yield ExpiryRow(key_hash=e.row_key.rsplit("~", 1)[-1], row_key=e.row_key)

    def delete_index_row(self, tenant_id: str, row_key: str) -> None:
        self.tables.delete(Tables.IDEMPOTENCY, tenant_id, row_key)
