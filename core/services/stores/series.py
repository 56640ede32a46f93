"""Series rows (core/domain/series.py) in the ``sessions`` table, beside the occurrences they own.

PartitionKey is the tenant id. Rows:

    r~<seriesId>                  the series (metadata only: ids, rule, times, status, responses)
    q~<userObjectId>~<seriesId>   per-participant index for "my series" (organizer and attendees)

and in ``eventindex``, RowKey = a series master's event id -> ``{"seriesId": ...}`` (an
occurrence's event id maps to its session row like any session's), so a change
notification naming a master costs one point read to recognise.

Why the ``sessions`` table: a series and its occurrence rows (``s~<seriesId>-<stamp>``,
core/services/stores/sessions.py) share the tenant's partition, so the series row, its
index rows and its product events (outbox rows ``x~r:<seriesId>~...``) commit in one
entity-group transaction, the outbox sweep already covers the table, and nothing new has
to be provisioned. The rule is stored as Graph's ``patternedRecurrence`` JSON: only days,
intervals, dates and counts, never event content.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from core.domain.calendar import ResponseType
from core.domain.errors import NotFound
from core.domain.product_events import ProductEvent, series_drafts
from core.domain.recurrence import from_graph, to_graph
from core.domain.series import OnConflict, Segment, Series, SeriesOp, SeriesStatus
from core.domain.sessions import AttendeeState, ChangeSource
from core.names import Tables
from core.ports import Entity, EntityValue, TableOp, TableStore
from core.services.stores.codec import END, Versioned, as_datetime, as_int, opt_str
from core.services.stores.outbox import Outbox, make_events

EVENT_VERSION = "eventVersion"
SERIES_PREFIX = "r~"
USER_INDEX = "q~"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def segment_to_json(g: Segment) -> dict[str, Any]:
    return {"recurrence": to_graph(g.recurrence), "start": _iso(g.start), "end": _iso(g.end),
            "timeZone": g.time_zone, "masterEventId": g.master_event_id, "iCalUId": g.ical_uid}


def segment_from_json(raw: dict[str, Any]) -> Segment:
    start, end = as_datetime(raw["start"]), as_datetime(raw["end"])
    assert start is not None and end is not None
    return Segment(recurrence=from_graph(raw["recurrence"]), start=start, end=end, time_zone=str(raw["timeZone"]),
                   master_event_id=raw.get("masterEventId") or None, ical_uid=raw.get("iCalUId") or None)


def series_to_entity(s: Series) -> dict[str, EntityValue]:
    return {
        "organizerId": s.organizer_id,
        "organizerAddress": s.organizer_address,
        "attendees": json.dumps([[a.address, a.response.value, a.user_id] for a in s.attendees]),
        "room": json.dumps([s.room.address, s.room.response.value]) if s.room else None,
        "segments": json.dumps([segment_to_json(g) for g in s.segments]),
        "status": s.status.value,
        "pendingOp": s.pending_op.value if s.pending_op else None,
        "version": s.version,
        "onlineMeeting": s.online_meeting,
        "onlineProvider": s.online_provider,
        "joinUrl": s.join_url,
        "source": s.source.value,
        "failureReason": s.failure_reason,
        "pairingId": s.pairing_id,
        "onConflict": s.on_conflict.value,
        "skipped": json.dumps([_iso(m) for m in s.skipped]) if s.skipped else None,
        "slotChecked": True if s.slot_checked else None,
        "requested": json.dumps(segment_to_json(s.requested)) if s.requested else None,
        "splitFrom": s.split_from.astimezone(UTC) if s.split_from else None,
        "cancelFrom": s.cancel_from.isoformat() if s.cancel_from else None,
        "cancelAll": True if s.cancel_all else None,
        "seriesNote": s.note,
        "changeKey": s.change_key,
        "lastModified": s.last_modified,
        "createdAt": s.created_at,
        "updatedAt": s.updated_at,
    }


def series_from_entity(tenant_id: str, series_id: str, d: dict[str, EntityValue]) -> Series:
    attendees = tuple(AttendeeState(a, ResponseType(r), u) for a, r, u in json.loads(str(d["attendees"])))
    room_raw = d.get("room")
    room = None
    if room_raw:
        address, response = json.loads(str(room_raw))
        room = AttendeeState(address, ResponseType(response))
    pending = d.get("pendingOp")
    requested = d.get("requested")
    skipped = [as_datetime(v) for v in json.loads(str(d.get("skipped") or "[]"))]
    cancel_from = opt_str(d.get("cancelFrom"))
    return Series(
        tenant_id=tenant_id,
        series_id=series_id,
        organizer_id=str(d["organizerId"]),
        organizer_address=str(d["organizerAddress"]),
        attendees=attendees,
        segments=tuple(segment_from_json(g) for g in json.loads(str(d["segments"]))),
        status=SeriesStatus(str(d["status"])),
        pending_op=SeriesOp(str(pending)) if pending else None,
        version=as_int(d.get("version"), 1) or 1,
        room=room,
        online_meeting=bool(d.get("onlineMeeting", True)),
        online_provider=opt_str(d.get("onlineProvider")),
        join_url=opt_str(d.get("joinUrl")),
        source=ChangeSource(str(d.get("source") or "platform")),
        failure_reason=opt_str(d.get("failureReason")),
        pairing_id=opt_str(d.get("pairingId")),
        on_conflict=OnConflict(str(d.get("onConflict") or OnConflict.FAIL.value)),
        skipped=tuple(m for m in skipped if m is not None),
        slot_checked=bool(d.get("slotChecked")),
        requested=segment_from_json(json.loads(str(requested))) if requested else None,
        split_from=as_datetime(d.get("splitFrom")),
        cancel_from=date.fromisoformat(cancel_from) if cancel_from else None,
        cancel_all=bool(d.get("cancelAll")),
        note=opt_str(d.get("seriesNote")),
        change_key=opt_str(d.get("changeKey")),
        last_modified=as_datetime(d.get("lastModified")),
        created_at=as_datetime(d.get("createdAt")),
        updated_at=as_datetime(d.get("updatedAt")),
    )


def _user_rk(user_id: str, series_id: str) -> str:
    return f"{USER_INDEX}{user_id.lower()}~{series_id}"


def _user_ids(s: Series) -> set[str]:
    return {s.organizer_id.lower()} | {a.user_id.lower() for a in s.attendees if a.user_id}


def index_entry(tables: TableStore, tenant_id: str, event_id: str) -> tuple[str | None, str | None]:
    """(session id, series id) an event id stands for, in one read of its ``eventindex`` row."""
    e = tables.get(Tables.EVENT_INDEX, tenant_id, event_id)
    if e is None:
        return None, None
    return opt_str(e.data.get("sessionId")), opt_str(e.data.get("seriesId"))


class SeriesRepository:
    """Series rows with their product events (same transaction), user index and master index."""

    def __init__(self, tables: TableStore) -> None:
        self.tables = tables
        self.outbox = Outbox(tables)

    def get(self, tenant_id: str, series_id: str) -> Versioned[Series] | None:
        e = self.tables.get(Tables.SESSIONS, tenant_id, f"{SERIES_PREFIX}{series_id}")
        if e is None:
            return None
        return Versioned(series_from_entity(tenant_id, series_id, dict(e.data)), e.etag)

    def require(self, tenant_id: str, series_id: str) -> Versioned[Series]:
        found = self.get(tenant_id, series_id)
        if found is None:
            raise NotFound("No such series.", code="series_not_found")
        return found

    def add(self, series: Series) -> Versioned[Series]:
        """Store a new series and its user-index rows in one transaction (a pending series has no events yet)."""
        drafts = series_drafts(None, series, 1)
        data = {**series_to_entity(series), EVENT_VERSION: max(1, len(drafts))}
        events = make_events(series.tenant_id, drafts, series.updated_at or series.created_at)
        state = TableOp("insert", Entity(series.tenant_id, f"{SERIES_PREFIX}{series.series_id}", data))
        index = [TableOp("upsert", Entity(series.tenant_id, _user_rk(uid, series.series_id),
                                           {"seriesId": series.series_id})) for uid in sorted(_user_ids(series))]
        stored = self.outbox.commit(Tables.SESSIONS, state, events, notify=False, extra=index)
        self._index_masters(None, series)
        self.outbox.committed(Tables.SESSIONS, series.tenant_id, events)
        return Versioned(series, stored.etag if stored is not None else None)

    def save(self, series: Series, etag: str | None) -> Versioned[Series]:
        """Replace if ``etag`` still matches (``ConcurrencyConflict`` otherwise; None: whatever is stored).
        The series events of the change go in the same transaction; masters new to the row are indexed
        after the commit (as sessions index their events)."""
        def build(current: Entity) -> tuple[dict[str, EntityValue], list[ProductEvent], list[TableOp]]:
            previous = series_from_entity(series.tenant_id, series.series_id, dict(current.data))
            base = as_int(current.data.get(EVENT_VERSION), 0)
            drafts = series_drafts(previous, series, base + 1)
            data = {**series_to_entity(series), EVENT_VERSION: base + max(1, len(drafts))}
            return data, make_events(series.tenant_id, drafts, series.updated_at), []

        try:
            current, stored, events = self.outbox.replace(Tables.SESSIONS, series.tenant_id,
                                                          f"{SERIES_PREFIX}{series.series_id}", etag, build)
        except NotFound:
            raise NotFound("No such series.", code="series_not_found") from None
        previous = series_from_entity(series.tenant_id, series.series_id, dict(current.data))
        self._index_masters(previous, series)
        self.outbox.committed(Tables.SESSIONS, series.tenant_id, events)
        return Versioned(series, stored.etag if stored is not None else None)

    def _index_masters(self, previous: Series | None, s: Series) -> None:
        known = {g.master_event_id for g in previous.segments} if previous is not None else set()
        for g in s.segments:
            if g.master_event_id and g.master_event_id not in known:
                self.tables.upsert(Tables.EVENT_INDEX, Entity(s.tenant_id, g.master_event_id,
                                                              {"seriesId": s.series_id}))

    def list_for_user(self, tenant_id: str, user_id: str) -> list[Series]:
        """The series a user organizes or attends (user-index range query, then point reads)."""
        prefix = f"{USER_INDEX}{user_id.lower()}~"
        out = []
        for row in self.tables.query(Tables.SESSIONS, tenant_id, row_key_from=prefix, row_key_to=prefix + END):
            found = self.get(tenant_id, str(row.data.get("seriesId") or row.row_key[len(prefix):]))
            if found is not None and found.value.involves(user_id.lower()):
                out.append(found.value)
        return out
