"""Offered-hours rules in Table Storage (table ``availabilityrules``, PartitionKey = tenant id).

Rows:

    u~<userObjectId>    one user's own rules (user ids lower-case, like the ``Caller``)
    default             the tenant default, set by an admin, for users without their own

Each row holds the rules only: a time zone, the windows as compact JSON of minute
numbers (``weekly``: ``[[isoWeekday, start, end], ...]``; ``overrides``: ``[[date,
mode, [[start, end], ...]], ...]``), notice, buffers, caps, ``withinWorkingHours``, and
who changed them when (``updatedAt``, ``updatedBy``: an object id). No event content,
no subject, nothing read from a calendar. The limits of core/domain/offered_hours.py
keep a row far under Table Storage's 64 KiB per property (100 overrides of 12 windows
are about 16,000 characters).

Writes are ETag-conditional when the caller asks (``etag`` to replace exactly the version
read, ``create_only`` to refuse replacing one): ``ConcurrencyConflict`` /
``Conflict`` / ``NotFound`` from the port then tell the service the precondition failed.

Every write and every delete that removed something writes ``availability_rules.changed``
for the product in the same entity-group transaction (outbox rows ``x~r:<user>~...``,
``core/services/stores/outbox.py``); readers here never scan past ``x~``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Final

from core.domain.calendar import Weekday
from core.domain.errors import ConcurrencyConflict, NotFound
from core.domain.offered_hours import DateOverride, OfferedHours, OverrideMode, WeeklyWindow, Window
from core.domain.product_events import rules_draft
from core.names import Tables
from core.ports import Entity, EntityValue, TableOp, TableOpKind, TableStore
from core.services.stores.codec import CHANGE_ATTEMPTS, Versioned, as_datetime, as_int, opt_str
from core.services.stores.outbox import OUTBOX_PREFIX, Outbox, make_events

DEFAULT_ROW: Final = "default"
USER_PREFIX: Final = "u~"
_BY_ISO: Final = {day.iso: day for day in Weekday}


@dataclass(frozen=True, slots=True)
class StoredRules:
    """Rules as stored, with who last changed them and when."""

    rules: OfferedHours
    updated_at: datetime | None = None
    updated_by: str | None = None


def rules_to_entity(stored: StoredRules) -> dict[str, EntityValue]:
    r = stored.rules
    weekly = [[w.day.iso, w.window.start, w.window.end] for w in r.weekly]
    overrides = [[o.day.isoformat(), o.mode.value, [[w.start, w.end] for w in o.windows]] for o in r.overrides]
    return {
        "timeZone": r.time_zone,
        "weekly": json.dumps(weekly, separators=(",", ":")),
        "overrides": json.dumps(overrides, separators=(",", ":")),
        "minNoticeMinutes": r.min_notice_minutes,
        "bufferBeforeMinutes": r.buffer_before_minutes,
        "bufferAfterMinutes": r.buffer_after_minutes,
        "maxPerDay": r.max_per_day,
        "maxPerWeek": r.max_per_week,
        "withinWorkingHours": r.within_working_hours,
        "updatedAt": stored.updated_at,
        "updatedBy": stored.updated_by,
    }


def rules_from_entity(d: dict[str, EntityValue]) -> StoredRules:
    weekly = tuple(
        WeeklyWindow(_BY_ISO[int(iso)], Window(int(start), int(end)))
        for iso, start, end in json.loads(str(d.get("weekly") or "[]"))
    )
    overrides = tuple(
        DateOverride(date.fromisoformat(str(day)), OverrideMode(str(mode)),
                     tuple(Window(int(s), int(e)) for s, e in windows))
        for day, mode, windows in json.loads(str(d.get("overrides") or "[]"))
    )
    max_day, max_week = d.get("maxPerDay"), d.get("maxPerWeek")
    rules = OfferedHours(
        time_zone=str(d["timeZone"]),
        weekly=weekly,
        overrides=overrides,
        min_notice_minutes=as_int(d.get("minNoticeMinutes")),
        buffer_before_minutes=as_int(d.get("bufferBeforeMinutes")),
        buffer_after_minutes=as_int(d.get("bufferAfterMinutes")),
        max_per_day=None if max_day is None or max_day == "" else as_int(max_day),
        max_per_week=None if max_week is None or max_week == "" else as_int(max_week),
        within_working_hours=bool(d.get("withinWorkingHours", True)),
    )
    return StoredRules(rules, as_datetime(d.get("updatedAt")), opt_str(d.get("updatedBy")))


class AvailabilityRulesRepository:
    """Users' own rules and the tenant default, always within one tenant's partition.

    ``user_id`` None names the tenant default everywhere below.
    """

    def __init__(self, tables: TableStore) -> None:
        self.tables = tables
        self.outbox = Outbox(tables)

    @staticmethod
    def row_key(user_id: str | None) -> str:
        return DEFAULT_ROW if user_id is None else f"{USER_PREFIX}{user_id.lower()}"

    def get(self, tenant_id: str, user_id: str | None) -> Versioned[StoredRules] | None:
        e = self.tables.get(Tables.AVAILABILITY_RULES, tenant_id, self.row_key(user_id))
        if e is None:
            return None
        return Versioned(rules_from_entity(dict(e.data)), e.etag)

    def save(
        self,
        tenant_id: str,
        user_id: str | None,
        stored: StoredRules,
        *,
        etag: str | None = None,
        create_only: bool = False,
        app: str | None = None,
    ) -> Versioned[StoredRules]:
        """Create or replace; ``etag``: only that version (``ConcurrencyConflict``, or ``NotFound`` once
        deleted); ``create_only``: only if none exists (``Conflict``); neither: last writer wins. The
        product event (``app``: the acting app's client id) is written in the same transaction."""
        entity = Entity(tenant_id, self.row_key(user_id), rules_to_entity(stored), etag)
        kind: TableOpKind = "insert" if create_only else "update" if etag is not None else "upsert"
        at = stored.updated_at or datetime.now(UTC)
        events = make_events(tenant_id, [rules_draft(tenant_id, _user(user_id), deleted=False, at=at,
                                                     by=stored.updated_by, app=app)], at)
        saved = self.outbox.commit(Tables.AVAILABILITY_RULES, TableOp(kind, entity), events)
        return Versioned(stored, saved.etag if saved is not None else None)

    def delete(self, tenant_id: str, user_id: str | None, etag: str | None = None, *, at: datetime | None = None,
               by: str | None = None, app: str | None = None) -> bool:
        """Remove the rules (``ConcurrencyConflict`` when ``etag`` is no longer current); missing is fine
        (False, and no event). The product event goes in the same transaction as the delete."""
        when = at or datetime.now(UTC)
        for _ in range(CHANGE_ATTEMPTS):
            found = self.tables.get(Tables.AVAILABILITY_RULES, tenant_id, self.row_key(user_id))
            if found is None:
                if etag is not None:
                    raise ConcurrencyConflict()
                return False
            if etag is not None and found.etag != etag:
                raise ConcurrencyConflict()
            events = make_events(tenant_id, [rules_draft(tenant_id, _user(user_id), deleted=True, at=when,
                                                         by=by, app=app)], when)
            op = TableOp("delete", Entity(tenant_id, found.row_key, {}, found.etag))
            try:
                self.outbox.commit(Tables.AVAILABILITY_RULES, op, events)
            except (ConcurrencyConflict, NotFound):
                if etag is not None:
                    raise ConcurrencyConflict() from None
                continue  # changed or removed between our read and the delete: look again
            return True
        raise ConcurrencyConflict()

    def has_any(self, tenant_id: str) -> bool:
        """Whether the tenant has a default or any user's rules (one query, at most one row read; the
        outbox rows after them are not rules)."""
        rows = self.tables.query(Tables.AVAILABILITY_RULES, tenant_id, row_key_to=OUTBOX_PREFIX, limit=1)
        return next(iter(rows), None) is not None


def _user(user_id: str | None) -> str | None:
    return None if user_id is None else user_id.lower()


__all__ = ["DEFAULT_ROW", "AvailabilityRulesRepository", "StoredRules", "rules_from_entity", "rules_to_entity"]
