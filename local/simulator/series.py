"""Recurring series as Exchange keeps them: a master with a rule, expanded on read.

A series master is one stored ``Event`` with ``recurrence`` (Graph's ``patternedRecurrence``
JSON, normalised), plus its exceptions (``overrides``, keyed by the occurrence's original
start as ISO text so the state file keeps them) and the occurrences deleted from it
(``deleted``). Occurrences are never stored: every read expands the rule with
``core.domain.recurrence.expand`` in the event's start time zone (``originalStartTimeZone``,
or ``range.recurrenceTimeZone``), so a 09:00 Berlin series stays 09:00 across DST, month
ends and leap years follow Exchange, and an Outlook-made ``noEnd`` series works too.

Occurrence ids are derived from the master's id and the original start (Exchange's
occurrence ids carry both), so they are stable across reads and restarts. Instances carry
``type`` (``occurrence`` / ``exception``), ``seriesMasterId`` and ``originalStart``
(resources/event.md); masters ``type: seriesMaster`` and ``recurrence``.

Change notifications: changes to one occurrence (moved, cancelled, answered) are reported
as ``updated`` on the series master only, as Graph does for ``/users/{id}/events``
subscriptions (microsoftgraph/microsoft-graph-docs#5520 "Removal of a recurring event
instance causes only update notification on the SeriesMaster event"; pnp/PnP#1894;
microsoftgraph/msgraph-sdk-dotnet#2822): a client must re-read the series' instances.

Changing the pattern or the times of a series drops its exceptions and deleted occurrences
([MS-OXOCAL] 3.1.4.7.3.5: when the recurrence pattern has changed the client "removes every
exception"; Outlook warns "Any exceptions associated with this recurring appointment will
be cancelled"); changing only the range keeps those still inside it (EWS "Update a
recurring series": a later end date re-evaluates the pattern and may add occurrences).

All functions expect ``state.lock`` to be held.
"""

from __future__ import annotations

import base64
import binascii
import copy
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from core.domain import recurrence as rec
from core.domain.errors import InvalidRecurrence, ServiceError
from local.simulator.state import Event, Mailbox, SimState

OCCURRENCE_PREFIX = "AAMkOcc"
ENDLESS_LIMIT = 800  # occurrences of an endless series the simulator expands (over 15 years weekly)
_STAMP = "%Y%m%dT%H%M%SZ"


def key(moment: datetime) -> str:
    """The key of an occurrence in ``overrides``/``deleted``: its original start, UTC, to the second."""
    return moment.astimezone(UTC).strftime(_STAMP)


def from_key(text: str) -> datetime:
    return datetime.strptime(text, _STAMP).replace(tzinfo=UTC)


def occurrence_id(master_id: str, original_start: datetime) -> str:
    raw = f"{master_id}|{key(original_start)}".encode()
    return OCCURRENCE_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def split_occurrence_id(event_id: str) -> tuple[str, datetime] | None:
    if not event_id.startswith(OCCURRENCE_PREFIX):
        return None
    token = event_id[len(OCCURRENCE_PREFIX) :]
    try:
        master_id, _, stamp = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().rpartition("|")
        return master_id, from_key(stamp)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


def parse_rule(raw: Any) -> dict[str, Any]:
    """A request's ``recurrence``, checked and normalised, or Graph's 400."""
    from local.simulator.web import GraphError

    try:
        rule = rec.from_graph(raw)
        rec.check(rule, allow_no_end=True)
    except InvalidRecurrence as exc:
        raise GraphError(400, "ErrorInvalidRequest", f"The recurrence is not valid: {exc.message}") from exc
    return rec.to_graph(rule)


def rule_of(ev: Event) -> rec.PatternedRecurrence:
    assert ev.recurrence is not None
    return rec.from_graph(ev.recurrence)


def zone_of(ev: Event) -> str:
    return ev.start_tz or "UTC"


def occurrences(ev: Event) -> list[rec.Occurrence]:
    """Every occurrence of the master's rule (original times), bounded for endless series."""
    try:
        return rec.expand(rule_of(ev), ev.start, ev.end, zone_of(ev), limit=ENDLESS_LIMIT)
    except (ServiceError, ValueError):
        return []


def is_master(ev: Event) -> bool:
    return ev.recurrence is not None and ev.series_master_id is None


def instances(ev: Event, start: datetime | None = None, end: datetime | None = None) -> list[Event]:
    """The master's occurrences and exceptions (deleted ones left out) overlapping [start, end)."""
    out = []
    for occurrence in occurrences(ev):
        k = key(occurrence.original_start)
        if k in ev.deleted:
            continue
        override = ev.overrides.get(k, {})
        inst = replace(
            ev,
            id=occurrence_id(ev.id, occurrence.original_start),
            start=override.get("start") or occurrence.start,
            end=override.get("end") or occurrence.end,
            attendees=copy.deepcopy(override.get("attendees", ev.attendees)),
            response=override.get("response") or ev.response,
            show_as=override.get("showAs") or ev.show_as,
            is_cancelled=ev.is_cancelled or bool(override.get("cancelled")),
            recurrence=None,
            overrides={},
            deleted=set(),
            type="exception" if k in ev.overrides else "occurrence",
            series_master_id=ev.id,
            original_start=occurrence.original_start,
        )
        if start is None or end is None or (inst.start < end and start < inst.end):
            out.append(inst)
    return sorted(out, key=lambda e: (e.start, e.id))


def instance_ids(ev: Event) -> set[str]:
    return {i.id for i in instances(ev)} if is_master(ev) else set()


def resolve(mb: Mailbox, event_id: str) -> Event | None:
    """A stored event, or the occurrence/exception an occurrence id names."""
    found = mb.events.get(event_id)
    if found is not None:
        return found
    split = split_occurrence_id(event_id)
    master = mb.events.get(split[0]) if split else None
    if split is None or master is None or not is_master(master):
        return None
    return next((i for i in instances(master) if i.original_start == split[1]), None)


def expanded(events: list[Event], start: datetime, end: datetime) -> list[Event]:
    """Single events overlapping the window, and the occurrences of masters in it (calendarView)."""
    out: list[Event] = []
    for ev in events:
        if is_master(ev):
            out.extend(instances(ev, start, end))
        elif ev.start < end and start < ev.end:
            out.append(ev)
    return sorted(out, key=lambda e: (e.start, e.id))


def retire(state: SimState, mb: Mailbox, master: Event, before: set[str]) -> None:
    """Tombstone occurrence ids that no longer exist, so calendarView delta reports them removed."""
    after = instance_ids(master) if master.id in mb.events else set()
    for gone in sorted(before - after):
        mb.tombstones.append((state.next_seq(), gone))


def start_date_matches(ev: Event) -> bool:
    rule = rule_of(ev)
    zone = rule.range.recurrence_time_zone or zone_of(ev)
    try:
        return rec.on_day(ev.start, zone) == rule.range.start_date
    except ServiceError:
        return False
