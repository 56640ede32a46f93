"""Typed repositories over the ``TableStore`` port.

PartitionKey is always the tenant id, so nothing can be read across tenants by
construction. Rows in the ``sessions`` table:

    s~<sessionId>                          the session (metadata only)
    u~<userObjectId>~<startUtc>~<sessionId>   per-participant index for "my sessions in a window"
    t~<startUtc>~<sessionId>               start-time index for reconciliation (``StartIndexRow``)

The ``t~`` rows let the reconciliation timer find a tenant's upcoming sessions with one
range query instead of scanning every session ever stored; each carries what the timer
needs to plan work and subscription housekeeping without reading the session itself.
Tenants whose sessions predate the index are backfilled once (``backfill_start_index``).

Saving a session also writes the product events the change produces (``session.booked``,
``session.rescheduled``...; ``core/domain/product_events.py``) as outbox rows ``x~...`` in the
same transaction as the ``s~`` row (``core/services/stores/outbox.py``). ``eventVersion`` on
the ``s~`` row is the session's event version: it increases with every saved change, and
the events of a save carry the versions it took, so receivers can drop stale deliveries.

Attendees are stored as a JSON list of ``[address, response, userId]`` (a required colleague,
the only kind before groups) or ``[address, response, userId, type, guest, host]``; rows
written before groups read as required colleagues. A session with any-of choices keeps its
candidates and the reasons of its choices in ``anyOf`` (JSON). Guests' display names are
never stored.

The ``eventindex`` table maps a Graph event id to its session (RowKey = event id,
encoded by the adapter), which lets a change notification for an untracked event
cost one point read and zero Graph calls.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.domain.assignment import AnyOf, HostCandidate, RoomChoice, RoomOption
from core.domain.calendar import ResponseType
from core.domain.errors import NotFound
from core.domain.product_events import ProductEvent, session_drafts
from core.domain.sessions import AttendeeState, AttendeeType, ChangeSource, PendingOp, Session, SessionStatus
from core.names import Tables
from core.ports import MAX_TRANSACTION_OPS, Entity, EntityValue, TableOp, TableStore
from core.services.stores.codec import END, Versioned, as_datetime, as_int, iso_utc, opt_str
from core.services.stores.outbox import Outbox, make_events

EVENT_VERSION = "eventVersion"  # the s~ row's event version (module docstring)
_UNCONDITIONAL_ATTEMPTS = 5


def attendee_to_json(a: AttendeeState) -> list[Any]:
    """``[address, response, userId]`` for a required colleague (the form every row had before groups);
    ``[address, response, userId, type, guest, host]`` otherwise. No display name: guests' names
    travel sealed to Outlook only."""
    short: list[Any] = [a.address, a.response.value, a.user_id]
    if a.type is AttendeeType.REQUIRED and not a.guest and not a.host:
        return short
    return [*short, a.type.value, a.guest, a.host]


def attendee_from_json(item: list[Any]) -> AttendeeState:
    address, response, user_id = item[0], item[1], item[2]
    kind = AttendeeType(item[3]) if len(item) > 3 and item[3] else AttendeeType.REQUIRED
    return AttendeeState(str(address), ResponseType(response), user_id, kind,
                         guest=bool(item[4]) if len(item) > 4 else False,
                         host=bool(item[5]) if len(item) > 5 else False)


def any_of_to_json(a: AnyOf) -> str:
    return json.dumps({
        "rooms": [[r.address, r.capacity] for r in a.rooms], "roomChoice": a.room_choice.value, "capacity": a.capacity,
        "hosts": [[h.user_id, h.address] for h in a.hosts], "roomReason": a.room_reason, "hostReason": a.host_reason,
    }, separators=(",", ":"))


def any_of_from_json(raw: str) -> AnyOf:
    d = json.loads(raw)
    capacity = d.get("capacity")
    return AnyOf(
        rooms=tuple(RoomOption(str(addr), int(cap) if cap is not None else None) for addr, cap in d.get("rooms") or ()),
        room_choice=RoomChoice(d.get("roomChoice") or RoomChoice.FIRST.value),
        capacity=int(capacity) if capacity is not None else None,
        hosts=tuple(HostCandidate(str(uid), str(addr)) for uid, addr in d.get("hosts") or ()),
        room_reason=d.get("roomReason"),
        host_reason=d.get("hostReason"),
    )


def session_to_entity(s: Session) -> dict[str, EntityValue]:
    return {
        "organizerId": s.organizer_id,
        "organizerAddress": s.organizer_address,
        "attendees": json.dumps([attendee_to_json(a) for a in s.attendees]),
        "room": json.dumps([s.room.address, s.room.response.value]) if s.room else None,
        "start": s.start.astimezone(UTC),
        "end": s.end.astimezone(UTC),
        "timeZone": s.time_zone,
        "status": s.status.value,
        "pendingOp": s.pending_op.value if s.pending_op else None,
        "version": s.version,
        "onlineMeeting": s.online_meeting,
        "onlineProvider": s.online_provider,
        "joinUrl": s.join_url,
        "eventId": s.event_id,
        "iCalUId": s.ical_uid,
        "changeKey": s.change_key,
        "lastModified": s.last_modified,
        "source": s.source.value,
        "failureReason": s.failure_reason,
        "pairingId": s.pairing_id,
        "calendarId": s.calendar_id,
        "allowConflicts": True if s.allow_conflicts else None,
        "anyOf": any_of_to_json(s.any_of) if s.any_of is not None else None,
        "createdAt": s.created_at,
        "updatedAt": s.updated_at,
        # occurrences of a series (left out for lone sessions)
        **({"seriesId": s.series_id, "originalStart": s.original_start, "seriesNote": s.series_note}
           if s.series_id else {}),
    }


def session_from_entity(tenant_id: str, session_id: str, d: dict[str, EntityValue]) -> Session:
    attendees = tuple(attendee_from_json(item) for item in json.loads(str(d["attendees"])))
    room_raw = d.get("room")
    room = None
    if room_raw:
        addr, resp = json.loads(str(room_raw))
        room = AttendeeState(addr, ResponseType(resp))
    pending = d.get("pendingOp")
    start, end = as_datetime(d["start"]), as_datetime(d["end"])
    assert start is not None and end is not None
    return Session(
        tenant_id=tenant_id,
        session_id=session_id,
        organizer_id=str(d["organizerId"]),
        organizer_address=str(d["organizerAddress"]),
        attendees=attendees,
        start=start,
        end=end,
        time_zone=str(d["timeZone"]),
        status=SessionStatus(str(d["status"])),
        pending_op=PendingOp(str(pending)) if pending else None,
        version=as_int(d.get("version"), 1) or 1,
        room=room,
        online_meeting=bool(d.get("onlineMeeting", True)),
        online_provider=opt_str(d.get("onlineProvider")),
        join_url=opt_str(d.get("joinUrl")),
        event_id=opt_str(d.get("eventId")),
        ical_uid=opt_str(d.get("iCalUId")),
        change_key=opt_str(d.get("changeKey")),
        last_modified=as_datetime(d.get("lastModified")),
        source=ChangeSource(str(d.get("source") or "platform")),
        failure_reason=opt_str(d.get("failureReason")),
        pairing_id=opt_str(d.get("pairingId")),
        calendar_id=opt_str(d.get("calendarId")),
        allow_conflicts=bool(d.get("allowConflicts")),
        any_of=any_of_from_json(str(d["anyOf"])) if d.get("anyOf") else None,
        created_at=as_datetime(d.get("createdAt")),
        updated_at=as_datetime(d.get("updatedAt")),
        series_id=opt_str(d.get("seriesId")),
        original_start=as_datetime(d.get("originalStart")),
        series_note=opt_str(d.get("seriesNote")),
    )


START_INDEX = "t~"
START_INDEX_END = START_INDEX + END


@dataclass(frozen=True, slots=True)
class StartIndexRow:
    """One ``t~`` row: enough to plan a re-read and decide subscription need without a point read."""

    session_id: str
    start: datetime
    end: datetime
    organizer_id: str
    tracked: bool  # has an event and is not final: worth re-reading
    open: bool  # not finally cancelled/failed: its organizer still needs a subscription until it ends
    scheduler_calendar: bool  # booked in the scheduling mailbox's calendar (read from there)
    series_id: str | None = None  # an occurrence of this series


def _start_rk(s: Session) -> str:
    return f"{START_INDEX}{iso_utc(s.start)}~{s.session_id}"


def _start_row_data(s: Session) -> dict[str, EntityValue]:
    # Copies of session fields only (same names): the index adds no new kind of data to the table.
    return {
        "sessionId": s.session_id,
        "end": s.end.astimezone(UTC),
        "organizerId": s.organizer_id,
        "status": s.status.value,
        "pendingOp": s.pending_op.value if s.pending_op else None,
        "eventId": s.event_id,
        "calendarId": s.calendar_id,
        **({"seriesId": s.series_id} if s.series_id else {}),
    }


def _start_row(e: Entity) -> StartIndexRow:
    d = e.data
    start = as_datetime(e.row_key[len(START_INDEX) :].split("~", 1)[0])
    end = as_datetime(d.get("end"))
    assert start is not None and end is not None
    status, pending, booked = SessionStatus(str(d.get("status"))), d.get("pendingOp"), bool(d.get("eventId"))
    final = status in (SessionStatus.CANCELLED, SessionStatus.FAILED) and not pending
    failed_unbooked = status == SessionStatus.FAILED and not booked and not pending
    cancelled = status == SessionStatus.CANCELLED and not pending
    return StartIndexRow(
        session_id=str(d["sessionId"]),
        start=start,
        end=end,
        organizer_id=str(d.get("organizerId") or ""),
        tracked=booked and not final,
        open=not (cancelled or failed_unbooked),
        scheduler_calendar=bool(d.get("calendarId")),
        series_id=opt_str(d.get("seriesId")),
    )


class SessionRepository:
    """Sessions, their per-user and start-time indexes and the event-id index, all keyed by tenant."""

    def __init__(self, tables: TableStore) -> None:
        self.tables = tables
        self.outbox = Outbox(tables)

    def get(self, tenant_id: str, session_id: str) -> Versioned[Session] | None:
        e = self.tables.get(Tables.SESSIONS, tenant_id, f"s~{session_id}")
        if e is None:
            return None
        return Versioned(session_from_entity(tenant_id, session_id, dict(e.data)), e.etag)

    def require(self, tenant_id: str, session_id: str) -> Versioned[Session]:
        found = self.get(tenant_id, session_id)
        if found is None:
            raise NotFound("No such session.", code="session_not_found")
        return found

    def add(self, session: Session) -> Versioned[Session]:
        """Store a new session with its index rows (and the events it produces, if any) in one transaction."""
        drafts = session_drafts(None, session, 1)
        data = {**session_to_entity(session), EVENT_VERSION: max(1, len(drafts))}
        events = make_events(session.tenant_id, drafts, session.updated_at or session.created_at)
        state = TableOp("insert", Entity(session.tenant_id, f"s~{session.session_id}", data))
        stored = self._commit(state, events, self._index_ops(None, session), notify=False)
        if session.event_id:
            self.index_event(session.tenant_id, session.event_id, session.session_id)
        if events:
            self.outbox.committed(Tables.SESSIONS, session.tenant_id, events)
        return Versioned(session, stored.etag if stored is not None else None)

    def save(self, session: Session, etag: str | None, previous: Session | None = None) -> Versioned[Session]:
        """Replace if ``etag`` still matches (``ConcurrencyConflict`` otherwise; ``etag=None`` replaces
        whatever is stored); keeps indexes in step. The product events of the change are derived
        from what is stored now and written in the same transaction, and the event version goes up.
        ``previous`` is accepted for callers' convenience; the stored row is what counts.

        The ``u~`` and ``t~`` rows the new state needs are written in the same entity-group
        transaction as the ``s~`` row (same table and partition), so a crash can never leave a
        booked session its start index does not know (the reconciler finds it). The
        ``eventindex`` row (another table) follows the commit, as before: written earlier, a
        notification for the new event would meet a session that does not know its event yet.
        Rows the old state no longer needs are deleted after the commit (readers skip stale ones).
        """
        def build(current: Entity) -> tuple[dict[str, EntityValue], list[ProductEvent], list[TableOp]]:
            stored_prev = session_from_entity(session.tenant_id, session.session_id, dict(current.data))
            base = as_int(current.data.get(EVENT_VERSION), 0)
            drafts = session_drafts(stored_prev, session, base + 1)
            data = {**session_to_entity(session), EVENT_VERSION: base + max(1, len(drafts))}
            events = make_events(session.tenant_id, drafts, session.updated_at)
            return data, events, self._index_ops(stored_prev, session)

        current, stored, events = self.outbox.replace(Tables.SESSIONS, session.tenant_id, f"s~{session.session_id}",
                                                      etag, build, attempts=_UNCONDITIONAL_ATTEMPTS)
        previous = session_from_entity(session.tenant_id, session.session_id, dict(current.data))
        if session.event_id and previous.event_id != session.event_id:
            self.index_event(session.tenant_id, session.event_id, session.session_id)
        if previous.start != session.start:
            self._unindex_users(previous)
        if _start_rk(previous) != _start_rk(session):
            self.tables.delete(Tables.SESSIONS, previous.tenant_id, _start_rk(previous))
        if events:  # dispatch once every index row is in place (Outbox.commit)
            self.outbox.committed(Tables.SESSIONS, session.tenant_id, events)
        return Versioned(session, stored.etag if stored is not None else None)

    def _index_ops(self, previous: Session | None, s: Session) -> list[TableOp]:
        """Upserts of the index rows the new state needs and the old one did not have right."""
        ops: list[TableOp] = []
        if previous is None or previous.start != s.start:
            ops += [TableOp("upsert", Entity(s.tenant_id, self._index_rk(uid, s), {"sessionId": s.session_id}))
                    for uid in sorted(self._user_ids(s))]
        if previous is None or _start_rk(previous) != _start_rk(s) or _start_row_data(previous) != _start_row_data(s):
            ops.append(TableOp("upsert", Entity(s.tenant_id, _start_rk(s), _start_row_data(s))))
        return ops

    def _commit(self, state: TableOp, events: list[ProductEvent], index_ops: list[TableOp], *, notify: bool = True
                ) -> Entity | None:
        """State, outbox rows and index rows in one transaction; when they would pass the service's
        100-operation limit (a very large group), the user-index rows follow the commit instead."""
        inside, after = index_ops, []
        if 1 + len(events) + len(index_ops) > MAX_TRANSACTION_OPS:
            inside = [op for op in index_ops if not op.entity.row_key.startswith("u~")]
            after = [op for op in index_ops if op.entity.row_key.startswith("u~")]
        stored = self.outbox.commit(Tables.SESSIONS, state, events, notify=False, extra=inside)
        for op in after:
            self.tables.upsert(Tables.SESSIONS, op.entity)
        if notify and events:
            self.outbox.committed(Tables.SESSIONS, state.entity.partition_key, events)
        return stored

    def event_version(self, tenant_id: str, session_id: str) -> int:
        """The session's current event version (0 when it has none yet)."""
        e = self.tables.get(Tables.SESSIONS, tenant_id, f"s~{session_id}")
        return 0 if e is None else as_int(e.data.get(EVENT_VERSION), 0)

    # user index
    def _user_ids(self, s: Session) -> set[str]:
        return {s.organizer_id} | {a.user_id for a in s.attendees if a.user_id}

    def _index_rk(self, user_id: str, s: Session) -> str:
        return f"u~{user_id}~{iso_utc(s.start)}~{s.session_id}"

    def _index_users(self, s: Session) -> None:
        for uid in self._user_ids(s):
            row = Entity(s.tenant_id, self._index_rk(uid, s), {"sessionId": s.session_id})
            self.tables.upsert(Tables.SESSIONS, row)

    def _unindex_users(self, s: Session) -> None:
        for uid in self._user_ids(s):
            self.tables.delete(Tables.SESSIONS, s.tenant_id, self._index_rk(uid, s))

    def list_for_user(self, tenant_id: str, user_id: str, start: datetime, end: datetime) -> list[Session]:
        """Sessions the user organizes or attends that start in [start, end)."""
        out: list[Session] = []
        for row in self.tables.query(
            Tables.SESSIONS,
            tenant_id,
            row_key_from=f"u~{user_id}~{iso_utc(start)}",
            row_key_to=f"u~{user_id}~{iso_utc(end)}",
        ):
            found = self.get(tenant_id, str(row.data["sessionId"]))
            if found and start <= found.value.start < end and found.value.involves(user_id):
                out.append(found.value)
        return out

    def list_tenant(self, tenant_id: str) -> Iterator[Session]:
        """Every session of a tenant: a full partition scan, for exports and the one-off index backfill."""
        for e in self.tables.query(Tables.SESSIONS, tenant_id, row_key_from="s~", row_key_to="s~" + END):
            yield session_from_entity(tenant_id, e.row_key[2:], dict(e.data))

    # start-time index
    def _index_start(self, s: Session) -> None:
        self.tables.upsert(Tables.SESSIONS, Entity(s.tenant_id, _start_rk(s), _start_row_data(s)))

    def has_start_index(self, tenant_id: str) -> bool:
        """Does the tenant have any ``t~`` row (false only for data written before the index existed)?"""
        rows = self.tables.query(
            Tables.SESSIONS, tenant_id, row_key_from=START_INDEX, row_key_to=START_INDEX_END, limit=1
        )
        return next(iter(rows), None) is not None

    def backfill_start_index(self, tenant_id: str) -> int:
        """One-off migration: write the ``t~`` rows of a tenant whose sessions predate the index."""
        count = 0
        for s in self.list_tenant(tenant_id):
            self._index_start(s)
            count += 1
        return count

    def start_index(self, tenant_id: str, start: datetime, end: datetime | None = None) -> Iterator[StartIndexRow]:
        """Index rows of sessions starting in [start, end) (open-ended without ``end``), in start order."""
        upper = f"{START_INDEX}{iso_utc(end)}" if end is not None else START_INDEX_END
        for e in self.tables.query(
            Tables.SESSIONS, tenant_id, row_key_from=f"{START_INDEX}{iso_utc(start)}", row_key_to=upper
        ):
            yield _start_row(e)

    def upcoming(self, tenant_id: str, start: datetime, end: datetime) -> list[Session]:
        """Sessions starting in [start, end) by a range query over the start-time index.

        A tenant with no index rows at all (sessions stored before the index existed)
        falls back to one filtered ``list_tenant`` scan; ``backfill_start_index`` ends that.
        """
        if not self.has_start_index(tenant_id):
            return sorted(
                (s for s in self.list_tenant(tenant_id) if start <= s.start < end),
                key=lambda s: (s.start, s.session_id),
            )
        out: list[Session] = []
        for row in self.start_index(tenant_id, start, end):
            found = self.get(tenant_id, row.session_id)
            if found is not None and start <= found.value.start < end and found.value.start == row.start:
                out.append(found.value)  # a row left behind by an interrupted move is skipped
        return out

    # event index
    def index_event(self, tenant_id: str, event_id: str, session_id: str) -> None:
        self.tables.upsert(Tables.EVENT_INDEX, Entity(tenant_id, event_id, {"sessionId": session_id}))

    def session_id_for_event(self, tenant_id: str, event_id: str) -> str | None:
        """The session an event id stands for (None for untracked events and for series masters,
        whose index rows name a ``seriesId`` instead: core/services/stores/series.py)."""
        e = self.tables.get(Tables.EVENT_INDEX, tenant_id, event_id)
        return None if e is None else opt_str(e.data.get("sessionId"))

    def occurrences(self, tenant_id: str, series_id: str) -> list[Versioned[Session]]:
        """The occurrence rows of a series (ids ``<seriesId>-...``: one range query), by original start."""
        out = []
        for e in self.tables.query(Tables.SESSIONS, tenant_id, row_key_from=f"s~{series_id}-",
                                   row_key_to=f"s~{series_id}-{END}"):
            s = session_from_entity(tenant_id, e.row_key[2:], dict(e.data))
            if s.series_id == series_id:
                out.append(Versioned(s, e.etag))
        return sorted(out, key=lambda v: (v.value.original_start or v.value.start, v.value.session_id))

    def by_event(self, tenant_id: str, event_id: str) -> Versioned[Session] | None:
        sid = self.session_id_for_event(tenant_id, event_id)
        return None if sid is None else self.get(tenant_id, sid)
