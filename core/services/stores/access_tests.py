"""Access-test reports in table ``accesstests`` (PartitionKey tenant, RowKey test id) plus a ``latest`` pointer row.

The per-user results are JSON split over ``users<i>`` properties (a string property
holds at most 32 K characters); counts, reasons and hints are stored alongside. A save that
finishes a report writes ``access_test.completed`` to the product in the same transaction
(outbox rows ``x~...``, ``core/services/stores/outbox.py``).

``UnreachableMailboxes`` keeps one row per mailbox an access test found on premises, hybrid
or unlicensed (RowKey ``mbx~<objectId>``: reason, test id, time), so booking refuses such a
mailbox at request time with one point read instead of failing in the worker. A later test
that finds the mailbox reachable removes its row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

from core.domain.access_test import AccessReason, AccessTestReport, RunStatus, UserResult, hints_by_reason
from core.domain.errors import ConcurrencyConflict, NotFound
from core.domain.product_events import access_test_drafts
from core.names import Tables
from core.ports import Entity, EntityValue, TableOp, TableStore
from core.services.stores.codec import END, Versioned, as_datetime
from core.services.stores.outbox import Outbox, make_events

LATEST_ROW: Final = "latest"
UNREACHABLE_PREFIX: Final = "mbx~"
# What booking refuses at request time: Outlook events cannot be read or written in these mailboxes.
BLOCKING_REASONS: Final = frozenset({AccessReason.MAILBOX_ON_PREMISES_OR_UNLICENSED})
_CHUNK_CHARS: Final = 30_000  # a Table Storage string property holds at most 64 KiB (32K UTF-16 chars)

def _split(text: str) -> list[str]:
    return [text[i : i + _CHUNK_CHARS] for i in range(0, len(text), _CHUNK_CHARS)] or [""]


class AccessTestStore:
    """Reports in table ``accesstests`` (PartitionKey tenant, RowKey test id) plus a ``latest`` pointer row."""

    def __init__(self, tables: TableStore, app_id: str) -> None:
        self.tables = tables
        self.app_id = app_id
        self.outbox = Outbox(tables)

    def to_entity(self, report: AccessTestReport, etag: str | None = None) -> Entity:
        users = json.dumps(
            [[u.user_id, u.user_principal_name, u.reason.value] for u in report.users], separators=(",", ":")
        )
        parts = _split(users)
        data: dict[str, EntityValue] = {
            "status": report.status.value,
            "startedAt": report.started_at,
            "finishedAt": report.finished_at,
            "requestedBy": report.requested_by,
            "errorCode": report.error_code,
            "graphCalls": report.graph_calls,
            "sampled": report.sampled,
            "accessible": report.accessible,
            "inaccessible": report.inaccessible,
            "byReason": json.dumps({k.value: v for k, v in report.by_reason.items()}),
            "hints": json.dumps(
                {r.value: h for r, h in hints_by_reason(self.app_id).items() if r in report.by_reason}
            ),
            "userChunks": len(parts),
        }
        for i, part in enumerate(parts):
            data[f"users{i}"] = part
        return Entity(report.tenant_id, report.test_id, data, etag)

    @staticmethod
    def from_entity(entity: Entity) -> AccessTestReport:
        d = entity.data
        count = int(d.get("userChunks") or 0)  # type: ignore[arg-type]
        raw = "".join(str(d.get(f"users{i}") or "") for i in range(count))
        users = tuple(
            UserResult(str(uid), str(upn) if upn else None, AccessReason(str(reason)))
            for uid, upn, reason in (json.loads(raw) if raw else [])
        )
        started = as_datetime(d.get("startedAt"))
        calls = d.get("graphCalls")
        return AccessTestReport(
            tenant_id=entity.partition_key,
            test_id=entity.row_key,
            status=RunStatus(str(d.get("status") or "running")),
            started_at=started or datetime.fromtimestamp(0, UTC),
            requested_by=str(d["requestedBy"]) if d.get("requestedBy") else None,
            finished_at=as_datetime(d.get("finishedAt")),
            users=users,
            error_code=str(d["errorCode"]) if d.get("errorCode") else None,
            graph_calls=int(calls) if isinstance(calls, int | float) else None,
        )

    def get(self, tenant_id: str, test_id: str) -> Versioned[AccessTestReport] | None:
        if test_id == LATEST_ROW:
            return None
        entity = self.tables.get(Tables.ACCESS_TESTS, tenant_id, test_id)
        return None if entity is None else Versioned(self.from_entity(entity), entity.etag)

    def add(self, report: AccessTestReport) -> Versioned[AccessTestReport]:
        events = make_events(report.tenant_id, access_test_drafts(None, report), report.finished_at)
        stored = self.outbox.commit(Tables.ACCESS_TESTS, TableOp("insert", self.to_entity(report)), events)
        return Versioned(report, stored.etag if stored is not None else None)

    def save(self, report: AccessTestReport, etag: str | None) -> Versioned[AccessTestReport]:
        """Replace (if ``etag`` still matches); finishing a report writes ``access_test.completed``."""
        found = self.tables.get(Tables.ACCESS_TESTS, report.tenant_id, report.test_id)
        if found is None:
            raise NotFound()
        if etag is not None and found.etag != etag:
            raise ConcurrencyConflict()
        previous = self.from_entity(found)
        events = make_events(report.tenant_id, access_test_drafts(previous, report), report.finished_at)
        stored = self.outbox.commit(Tables.ACCESS_TESTS, TableOp("update", self.to_entity(report, etag)), events)
        return Versioned(report, stored.etag if stored is not None else None)

    def _pointer(self, tenant_id: str) -> dict[str, EntityValue]:
        entity = self.tables.get(Tables.ACCESS_TESTS, tenant_id, LATEST_ROW)
        return dict(entity.data) if entity is not None else {}

    def point(self, tenant_id: str, *, latest: str, finished: str | None = None) -> None:
        """Move the pointers. A test finishing after a newer one was started (an admin's rerun
        overtaking the consent callback's test) records itself as finished but leaves ``latest``
        on the newer test, so the admin polls the run they asked for."""
        data = self._pointer(tenant_id)
        current = str(data.get("latest") or "")
        if current and current != latest:
            newer = self.get(tenant_id, current)
            mine = self.get(tenant_id, latest)
            if newer is not None and mine is not None and newer.value.started_at > mine.value.started_at:
                latest = current
        data["latest"] = latest
        if finished is not None:
            data["lastFinished"] = finished
        self.tables.upsert(Tables.ACCESS_TESTS, Entity(tenant_id, LATEST_ROW, data))

    def latest(self, tenant_id: str) -> AccessTestReport | None:
        test_id = self._pointer(tenant_id).get("latest")
        found = self.get(tenant_id, str(test_id)) if test_id else None
        return found.value if found else None

    def last_finished(self, tenant_id: str) -> AccessTestReport | None:
        test_id = self._pointer(tenant_id).get("lastFinished")
        found = self.get(tenant_id, str(test_id)) if test_id else None
        return found.value if found else None

    def forget_latest(self, tenant_id: str) -> None:
        """Disconnect: the next consent starts without a previous report to compare with."""
        self.tables.delete(Tables.ACCESS_TESTS, tenant_id, LATEST_ROW)


class UnreachableMailboxes:
    """Mailboxes access tests found unusable for events (see the module docstring)."""

    def __init__(self, tables: TableStore) -> None:
        self.tables = tables

    def record(self, tenant_id: str, results: Sequence[UserResult], test_id: str, at: datetime) -> None:
        """Mark the blocking results, unmark sampled users now reachable (one partition read, then writes)."""
        known = {
            e.row_key[len(UNREACHABLE_PREFIX):]
            for e in self.tables.query(Tables.ACCESS_TESTS, tenant_id, row_key_from=UNREACHABLE_PREFIX,
                                       row_key_to=UNREACHABLE_PREFIX + END)
        }
        for result in results:
            uid = result.user_id.lower()
            if result.reason in BLOCKING_REASONS:
                data: dict[str, EntityValue] = {"reason": result.reason.value, "testId": test_id, "at": at}
                self.tables.upsert(Tables.ACCESS_TESTS, Entity(tenant_id, UNREACHABLE_PREFIX + uid, data))
            elif result.reason is AccessReason.ACCESSIBLE and uid in known:
                self.tables.delete(Tables.ACCESS_TESTS, tenant_id, UNREACHABLE_PREFIX + uid)

    def reason_of(self, tenant_id: str, user_id: str) -> AccessReason | None:
        """The blocking reason recorded for the mailbox, or None (unknown or reachable)."""
        entity = self.tables.get(Tables.ACCESS_TESTS, tenant_id.lower(), UNREACHABLE_PREFIX + user_id.lower())
        if entity is None:
            return None
        try:
            return AccessReason(str(entity.data.get("reason")))
        except ValueError:
            return None
