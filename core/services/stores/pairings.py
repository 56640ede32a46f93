"""Pairings (mentor + mentee) in Table Storage, shared by availability and booking.

Rows in the ``pairings`` table, PartitionKey = tenant id (so a pairing of another
tenant is simply not found):

    p~<pairingId>                 the pairing: mentorId, mentorAddress, menteeId, menteeAddress, active
    m~<userId>~<pairingId>        membership index, one per member -> {pairingId}

User ids are Entra object ids, stored lower-case (the ``Caller`` is lower-case);
addresses are the SMTP addresses resolved when the pairing was written, so finding
free time for a pair needs no directory lookup. The index is written before the
pairing row and removed after it, and ``list_for_user`` re-checks membership, so a
crash between writes can only leave a harmless stale index row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.domain.errors import NotFound
from core.names import Tables
from core.ports import Entity, EntityValue, TableStore
from core.services.stores.codec import END, Versioned, as_datetime

_PAIRING_PREFIX = "p~"
_MEMBER_PREFIX = "m~"



@dataclass(frozen=True, slots=True)
class Pairing:
    """A mentor and a mentee who may book sessions together while ``active``."""

    tenant_id: str
    pairing_id: str
    mentor_id: str
    mentor_address: str
    mentee_id: str
    mentee_address: str
    active: bool = True
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mentor_id", self.mentor_id.lower())
        object.__setattr__(self, "mentee_id", self.mentee_id.lower())

    @property
    def member_ids(self) -> frozenset[str]:
        return frozenset({self.mentor_id, self.mentee_id})

    def includes(self, user_id: str) -> bool:
        """Whether ``user_id`` (an object id, any case) is the mentor or the mentee."""
        return user_id.lower() in self.member_ids

    def address_of(self, user_id: str) -> str:
        """The SMTP address of a member (``ValueError`` for anyone else)."""
        uid = user_id.lower()
        if uid == self.mentor_id:
            return self.mentor_address
        if uid == self.mentee_id:
            return self.mentee_address
        raise ValueError("not a member of this pairing")

    def partner_of(self, user_id: str) -> tuple[str, str]:
        """``(object id, address)`` of the other member (``ValueError`` for a non-member)."""
        uid = user_id.lower()
        if uid == self.mentor_id:
            return self.mentee_id, self.mentee_address
        if uid == self.mentee_id:
            return self.mentor_id, self.mentor_address
        raise ValueError("not a member of this pairing")


def pairing_to_entity(p: Pairing) -> dict[str, EntityValue]:
    return {
        "mentorId": p.mentor_id,
        "mentorAddress": p.mentor_address,
        "menteeId": p.mentee_id,
        "menteeAddress": p.mentee_address,
        "active": p.active,
        "updatedAt": p.updated_at,
    }


def pairing_from_entity(tenant_id: str, pairing_id: str, d: dict[str, EntityValue]) -> Pairing:
    return Pairing(
        tenant_id=tenant_id,
        pairing_id=pairing_id,
        mentor_id=str(d.get("mentorId") or ""),
        mentor_address=str(d.get("mentorAddress") or ""),
        mentee_id=str(d.get("menteeId") or ""),
        mentee_address=str(d.get("menteeAddress") or ""),
        active=bool(d.get("active", True)),
        updated_at=as_datetime(d.get("updatedAt")),
    )


class PairingRepository:
    """Pairings and their membership index, always within one tenant's partition."""

    def __init__(self, tables: TableStore) -> None:
        self.tables = tables

    @staticmethod
    def _row(pairing_id: str) -> str:
        return f"{_PAIRING_PREFIX}{pairing_id}"

    @staticmethod
    def _member_row(user_id: str, pairing_id: str) -> str:
        return f"{_MEMBER_PREFIX}{user_id.lower()}~{pairing_id}"

    def get(self, tenant_id: str, pairing_id: str) -> Versioned[Pairing] | None:
        e = self.tables.get(Tables.PAIRINGS, tenant_id, self._row(pairing_id))
        if e is None:
            return None
        return Versioned(pairing_from_entity(tenant_id, pairing_id, dict(e.data)), e.etag)

    def require(self, tenant_id: str, pairing_id: str) -> Versioned[Pairing]:
        found = self.get(tenant_id, pairing_id)
        if found is None:
            raise NotFound("No such pairing.", code="pairing_not_found")
        return found

    def save(self, pairing: Pairing, etag: str | None = None) -> Versioned[Pairing]:
        """Create or replace; with ``etag`` only if unchanged since read (``ConcurrencyConflict``).

        Members that left the pairing lose their index row; new members get one.
        """
        previous = self.get(pairing.tenant_id, pairing.pairing_id)
        for uid in pairing.member_ids:
            row_key = self._member_row(uid, pairing.pairing_id)
            self.tables.upsert(Tables.PAIRINGS, Entity(pairing.tenant_id, row_key, {"pairingId": pairing.pairing_id}))
        entity = Entity(pairing.tenant_id, self._row(pairing.pairing_id), pairing_to_entity(pairing), etag)
        stored = self.tables.update(Tables.PAIRINGS, entity) if etag else self.tables.upsert(Tables.PAIRINGS, entity)
        if previous is not None:
            for uid in previous.value.member_ids - pairing.member_ids:
                self.tables.delete(Tables.PAIRINGS, pairing.tenant_id, self._member_row(uid, pairing.pairing_id))
        return Versioned(pairing, stored.etag)

    def delete(self, tenant_id: str, pairing_id: str) -> None:
        """Remove a pairing and its index rows; a missing pairing is not an error."""
        found = self.get(tenant_id, pairing_id)
        self.tables.delete(Tables.PAIRINGS, tenant_id, self._row(pairing_id))
        if found is not None:
            for uid in found.value.member_ids:
                self.tables.delete(Tables.PAIRINGS, tenant_id, self._member_row(uid, pairing_id))

    def list_for_user(self, tenant_id: str, user_id: str) -> list[Pairing]:
        """Pairings (active or not) the user belongs to, by pairing id."""
        prefix = f"{_MEMBER_PREFIX}{user_id.lower()}~"
        out: list[Pairing] = []
        for row in self.tables.query(Tables.PAIRINGS, tenant_id, row_key_from=prefix, row_key_to=prefix + END):
            found = self.get(tenant_id, str(row.data.get("pairingId") or row.row_key[len(prefix) :]))
            if found is not None and found.value.includes(user_id):
                out.append(found.value)
        return out


__all__ = ["Pairing", "PairingRepository", "pairing_from_entity", "pairing_to_entity"]
