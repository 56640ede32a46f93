"""Slot claims: which times of an organizer's calendar pending bookings hold (table ``slotclaims``).

PartitionKey = tenant id, RowKey = ``<yyyy-mm-dd>~<organizer object id>`` (the UTC day),
one row per organizer and day, holding the claims that touch that day as a JSON list of
``[sessionId, startUtc, endUtc, claimedAtUtc]``. A session over midnight is claimed in
both days' rows. Rows are replaced with their ETag, so two bookings racing for one
organizer's day are serialised by Table Storage. Only ids and times: no content.
Past days are deleted by the clean-up timer (one range query per tenant: RowKeys start
with the day).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from core.names import Tables
from core.ports import Entity, TableStore
from core.services.stores.codec import Versioned, as_datetime


@dataclass(frozen=True, slots=True)
class SlotClaim:
    """One session's hold on [start, end) of its organizer's calendar."""

    session_id: str
    start: datetime
    end: datetime
    claimed_at: datetime

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.start < end and start < self.end


def claim_days(start: datetime, end: datetime) -> list[date]:
    """The UTC days [start, end) touches, in order."""
    first = start.astimezone(UTC).date()
    last = (end.astimezone(UTC) - timedelta(microseconds=1)).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _row_key(day: date, organizer_id: str) -> str:
    return f"{day.isoformat()}~{organizer_id.lower()}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _parse(raw: str | None) -> tuple[SlotClaim, ...]:
    out = []
    for item in json.loads(raw or "[]"):
        start, end, at = (as_datetime(v) for v in item[1:4])
        if start is not None and end is not None and at is not None:
            out.append(SlotClaim(str(item[0]), start, end, at))
    return tuple(out)


class SlotClaimStore:
    """Per organizer and day rows of claims (module docstring)."""

    def __init__(self, tables: TableStore) -> None:
        self.tables = tables

    def get(self, tenant_id: str, organizer_id: str, day: date) -> Versioned[tuple[SlotClaim, ...]] | None:
        e = self.tables.get(Tables.SLOT_CLAIMS, tenant_id, _row_key(day, organizer_id))
        if e is None:
            return None
        raw = e.data.get("claims")
        return Versioned(_parse(raw if isinstance(raw, str) else None), e.etag)

    def put(self, tenant_id: str, organizer_id: str, day: date, claims: tuple[SlotClaim, ...],
            etag: str | None, *, exists: bool) -> None:
        """Write the day's claims: insert when new (``Conflict`` if someone else did), else replace by ETag."""
        data = json.dumps([[c.session_id, _iso(c.start), _iso(c.end), _iso(c.claimed_at)] for c in claims])
        entity = Entity(tenant_id, _row_key(day, organizer_id), {"claims": data}, etag)
        if exists:
            self.tables.update(Tables.SLOT_CLAIMS, entity)
        else:
            self.tables.insert(Tables.SLOT_CLAIMS, entity)

    def past_rows(self, tenant_id: str, today: date) -> Iterator[str]:
        """Row keys of days before ``today`` (every organizer)."""
        for e in self.tables.query(Tables.SLOT_CLAIMS, tenant_id, row_key_to=today.isoformat()):
            yield e.row_key

    def delete(self, tenant_id: str, row_key: str) -> None:
        self.tables.delete(Tables.SLOT_CLAIMS, tenant_id, row_key)
