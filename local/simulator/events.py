"""Calendar behaviour: invitations, attendee copies, rooms, responses, cancellations, free/busy.

All functions expect ``state.lock`` to be held by the caller. They change the model
and call ``state.touch`` for every event they change, which queues the change
notifications; nothing here does I/O.

What Exchange does, reproduced:
- the organizer's event keeps the attendee list; each reachable attendee gets a copy
  in their own calendar (new id, same ``iCalUId``), shown ``tentative`` until answered;
- on the organizer's copy attendees start with ``status.response`` ``none``; the
  attendee's own copy says ``notResponded``; answers update the organizer's event;
- room mailboxes answer at once: accepted if free, declined if not;
- moving a meeting resets the people's answers and makes rooms decide again;
- cancelling deletes the organizer's event and marks attendee copies ``isCancelled``
  (rooms drop theirs); declining removes the attendee's copy.
- recurring series (``series.py``): a room accepts a series only when every occurrence is
  free (Exchange's default ``MaximumConflictInstances`` 0); moving one occurrence makes an
  exception, never onto a neighbour's day (400 ``ErrorOccurrenceCrossingBoundary``,
  api-reference/v1.0/api/event-update.md); cancelling one removes it for the organizer and
  marks the attendees' occurrence cancelled; an attendee answers or declines one occurrence;
  the series' attendee answers are per occurrence on the organizer's side.
"""

from __future__ import annotations

import copy
import math
import re
import uuid
from datetime import datetime, timedelta, tzinfo
from typing import Any

from core.domain import recurrence as rec
from local.simulator import series
from local.simulator.state import Event, Mailbox, SimState, Tenant, new_id
from local.simulator.timeutil import BadTime, dttz, iso_z, now_utc, overlaps, parse_dttz
from local.simulator.web import GraphError

NO_TIME = "0001-01-01T00:00:00Z"
_PROVIDERS = ("teamsForBusiness", "skypeForBusiness", "skypeForConsumer")
_SHOW_AS = ("free", "tentative", "busy", "oof", "workingElsewhere", "unknown")
_VIEW_DIGIT = {"free": 0, "tentative": 1, "busy": 2, "oof": 3, "workingElsewhere": 4, "unknown": 0}
_VIEW_RANK = {0: 0, 1: 1, 4: 2, 2: 3, 3: 4}
_TAGS = re.compile(r"<[^>]+>")


# -- rendering ------------------------------------------------------------------------
def render_event(ev: Event, tz: tzinfo, tz_name: str) -> dict[str, Any]:
    """The Graph ``event`` resource for one stored event."""
    location = _location(ev.location)
    return {
        "@odata.etag": f'W/"{ev.change_key}"',
        "id": ev.id,
        "createdDateTime": iso_z(ev.created),
        "lastModifiedDateTime": iso_z(ev.modified),
        "changeKey": ev.change_key,
        "categories": list(ev.categories),
        "transactionId": ev.transaction_id,
        "originalStartTimeZone": ev.start_tz,
        "originalEndTimeZone": ev.end_tz,
        "iCalUId": ev.ical_uid,
        "reminderMinutesBeforeStart": ev.reminder_minutes,
        "isReminderOn": not ev.is_cancelled,
        "hasAttachments": False,
        "subject": ev.subject,
        "bodyPreview": _TAGS.sub("", ev.body_html)[:255],
        "importance": ev.importance,
        "sensitivity": ev.sensitivity,
        "isAllDay": ev.is_all_day,
        "isCancelled": ev.is_cancelled,
        "isOrganizer": ev.is_organizer,
        "responseRequested": True,
        "seriesMasterId": ev.series_master_id,
        "showAs": ev.show_as,
        "type": "seriesMaster" if series.is_master(ev) else ev.type,
        "webLink": f"https://outlook.office365.com/owa/?itemid={ev.id}&exvsurl=1&path=/calendar/item",
        "onlineMeetingUrl": None,
        "allowNewTimeProposals": True,
        "isOnlineMeeting": ev.is_online,
        "onlineMeetingProvider": ev.provider,
        "isDraft": False,
        "hideAttendees": False,
        "responseStatus": {"response": ev.response, "time": iso_z(ev.response_time) if ev.response_time else NO_TIME},
        "body": {"contentType": "html", "content": ev.body_html},
        "start": dttz(ev.start, tz, tz_name),
        "end": dttz(ev.end, tz, tz_name),
        "location": location,
        "locations": [location] if location.get("displayName") else [],
        "recurrence": copy.deepcopy(ev.recurrence) if series.is_master(ev) else None,
        "originalStart": iso_z(ev.original_start) if ev.original_start is not None else None,
        "attendees": copy.deepcopy(ev.attendees),
        "organizer": {"emailAddress": {"name": ev.organizer_name, "address": ev.organizer_address}},
        "onlineMeeting": {"joinUrl": ev.join_url} if ev.join_url else None,
    }


def _location(loc: dict[str, Any]) -> dict[str, Any]:
    if not loc.get("displayName"):
        return {
            "displayName": "",
            "locationType": "default",
            "uniqueIdType": "unknown",
            "address": {},
            "coordinates": {},
        }
    out = {
        "displayName": loc["displayName"],
        "locationType": loc.get("locationType", "default"),
        "uniqueId": loc.get("uniqueId", loc["displayName"]),
        "uniqueIdType": loc.get("uniqueIdType", "private"),
    }
    if loc.get("locationEmailAddress"):
        out["locationEmailAddress"] = loc["locationEmailAddress"]
    return out


def select(
    obj: dict[str, Any], select_param: str | None, always: tuple[str, ...] = ("id", "@odata.etag")
) -> dict[str, Any]:
    """Honour ``$select`` (Graph keeps ``id`` and the etag)."""
    if not select_param:
        return obj
    wanted = {s.strip() for s in select_param.split(",") if s.strip()} | set(always)
    return {k: v for k, v in obj.items() if k in wanted}


# -- create ---------------------------------------------------------------------------
def create_event(state: SimState, tenant: Tenant, mb: Mailbox, calendar_id: str, payload: Any) -> tuple[Event, bool]:
    """Create an event as the organizer; returns (event, created). Retries by transactionId return the original."""
    if not isinstance(payload, dict):
        raise GraphError(400, "ErrorInvalidRequest", "The request body must be an event.")
    tx = payload.get("transactionId")
    tx_key = f"{calendar_id}|{tx}" if tx else None
    if tx_key and (existing := mb.events.get(mb.transactions.get(tx_key, ""))) is not None:
        return existing, False
    start, end, start_tz, end_tz = _times(payload, required=True)
    ev = Event(
        id=new_id(),
        ical_uid="040000008200E00074C5B7101A82E008" + uuid.uuid4().hex,
        mailbox_id=mb.id,
        calendar_id=calendar_id,
        subject=str(payload.get("subject") or ""),
        start=start,
        end=end,
        start_tz=start_tz,
        end_tz=end_tz,
        organizer_name=mb.display_name,
        organizer_address=mb.upn,
        transaction_id=tx,
        response="organizer",
    )
    _apply_simple(ev, payload)
    if payload.get("recurrence") is not None:
        ev.recurrence = series.parse_rule(payload["recurrence"])
        if not series.start_date_matches(ev):
            raise GraphError(
                400,
                "ErrorPropertyValidationFailure",
                "The recurrence range start date must be the date of the event's start in its time zone.",
            )
    ev.attendees = [_attendee(a) for a in payload.get("attendees") or []]
    if payload.get("isOnlineMeeting"):
        _make_online(ev, mb, payload.get("onlineMeetingProvider"))
    _room_decisions(tenant, ev, [a["emailAddress"]["address"] for a in ev.attendees])
    state.touch(tenant, mb, ev, "created")
    if tx_key:
        mb.transactions[tx_key] = ev.id
    _sync_attendees(state, tenant, ev, time_changed=True, previous=set())
    return ev, True


def _times(payload: dict[str, Any], *, required: bool) -> tuple[datetime, datetime, str, str]:
    if required and (not payload.get("start") or not payload.get("end")):
        raise GraphError(400, "ErrorInvalidRequest", "An event needs both start and end.")
    try:
        start = parse_dttz(payload["start"])
        end = parse_dttz(payload["end"])
    except BadTime as exc:
        raise GraphError(
            400, "TimeZoneNotSupportedException" if "TimeZone" in str(exc) else "ErrorInvalidRequest", str(exc)
        ) from exc
    if end < start:
        raise GraphError(400, "ErrorInvalidRequest", "The end of the event must be after its start.")
    return start, end, _tz_name(payload["start"]), _tz_name(payload["end"])


def _tz_name(value: Any) -> str:
    return str(value.get("timeZone") or "UTC") if isinstance(value, dict) else "UTC"


def _attendee(raw: Any) -> dict[str, Any]:
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("emailAddress"), dict)
        or not raw["emailAddress"].get("address")
    ):
        raise GraphError(400, "ErrorInvalidRecipients", "At least one recipient isn't valid.")
    kind = raw.get("type", "required")
    if kind not in ("required", "optional", "resource"):
        raise GraphError(400, "RequestBodyRead", f"Requested value '{kind}' was not found.")
    email = raw["emailAddress"]
    return {
        "type": kind,
        "status": {"response": "none", "time": NO_TIME},
        "emailAddress": {"name": email.get("name") or email["address"], "address": email["address"]},
    }


def _apply_simple(ev: Event, payload: dict[str, Any]) -> None:
    if "subject" in payload:
        ev.subject = str(payload["subject"] or "")
    if isinstance(payload.get("body"), dict):
        ev.body_html = str(payload["body"].get("content") or "")
    if payload.get("showAs") in _SHOW_AS:
        ev.show_as = payload["showAs"]
    if payload.get("sensitivity") in ("normal", "personal", "private", "confidential"):
        ev.sensitivity = payload["sensitivity"]
    if payload.get("importance") in ("low", "normal", "high"):
        ev.importance = payload["importance"]
    if isinstance(payload.get("categories"), list):
        ev.categories = [str(c) for c in payload["categories"]]
    if isinstance(payload.get("reminderMinutesBeforeStart"), int):
        ev.reminder_minutes = payload["reminderMinutesBeforeStart"]
    if "isAllDay" in payload:
        ev.is_all_day = bool(payload["isAllDay"])
    if isinstance(payload.get("location"), dict):
        ev.location = {k: v for k, v in payload["location"].items() if isinstance(v, str)}


def _make_online(ev: Event, mb: Mailbox, requested: Any) -> None:
    """Teams/Skype link per the calendar's allowed providers (observed Graph behaviour)."""
    provider = requested if requested in _PROVIDERS else mb.default_provider
    if provider not in mb.allowed_providers:
        provider = mb.default_provider  # Exchange falls back to the calendar's default provider
    if provider not in mb.allowed_providers or provider == "unknown":
        ev.is_online, ev.provider, ev.join_url = False, "unknown", None  # 201, but no meeting
        return
    ev.is_online, ev.provider = True, provider
    token = uuid.uuid4().hex
    if provider == "teamsForBusiness":
        ev.join_url = (
            f"https://teams.microsoft.com/l/meetup-join/19%3ameeting_{token}%40thread.v2/0"
            f"?context=%7b%22Tid%22%3a%22{mb.tenant_id}%22%2c%22Oid%22%3a%22{mb.id}%22%7d"
        )
    else:
        ev.join_url = f"https://meet.lync.com/{mb.upn.split('@')[1]}/{mb.upn.split('@')[0]}/{token[:8].upper()}"


# -- attendees, rooms -----------------------------------------------------------------
def _room_decisions(tenant: Tenant, ev: Event, addresses: list[str]) -> None:
    """Rooms among ``addresses`` accept if free over the event's time, else decline."""
    wanted = {a.lower() for a in addresses}
    spans = [(i.start, i.end) for i in series.instances(ev)] if series.is_master(ev) else [(ev.start, ev.end)]
    for att in ev.attendees:
        room = tenant.find(att["emailAddress"]["address"])
        if room is None or not room.is_room or att["emailAddress"]["address"].lower() not in wanted:
            continue
        # A series is accepted only if every occurrence is free (Exchange's default
        # MaximumConflictInstances 0 declines the whole series on any conflict).
        free = all(room_free(room, ev.ical_uid, s, e) for s, e in spans)
        att["type"] = "resource"
        att["status"] = {"response": "accepted" if free else "declined", "time": iso_z(now_utc())}
        if free and not ev.location.get("displayName"):
            ev.location = {
                "displayName": room.display_name,
                "locationType": "conferenceRoom",
                "uniqueId": room.upn,
                "uniqueIdType": "directory",
                "locationEmailAddress": room.upn,
            }


def room_free(room: Mailbox, ical_uid: str, start: datetime, end: datetime) -> bool:
    """Nothing else blocks the room over [start, end) (series occurrences included)."""
    return not any(
        not other.is_cancelled and other.ical_uid != ical_uid and other.show_as in ("busy", "tentative", "oof")
        for other in series.expanded(list(room.events.values()), start, end)
    )


def _copy_in(mb: Mailbox, ical_uid: str) -> Event | None:
    for ev in mb.events.values():
        if ev.ical_uid == ical_uid:
            return ev
    return None


def _sync_attendees(state: SimState, tenant: Tenant, org: Event, *, time_changed: bool, previous: set[str]) -> None:
    """Create or update every reachable attendee's copy of the organizer's event ``org``."""
    for att in org.attendees:
        address = att["emailAddress"]["address"]
        target = tenant.find(address)
        if target is None or target.id == org.mailbox_id or not target.has_rest_mailbox:
            continue
        existing = _copy_in(target, org.ical_uid)
        if target.is_room and att["status"]["response"] == "declined":
            if existing is not None:
                _gone(state, tenant, target, existing)
            continue
        if existing is None:
            existing = Event(
                id=new_id(),
                ical_uid=org.ical_uid,
                mailbox_id=target.id,
                calendar_id=target.default_calendar_id,
                subject=org.subject,
                start=org.start,
                end=org.end,
                is_organizer=False,
                response="accepted" if target.is_room else "notResponded",
                show_as="busy" if target.is_room else "tentative",
                created=now_utc(),
            )
            change = "created"
        else:
            if not time_changed and address.lower() in previous and not _differs(existing, org):
                continue
            change = "updated"
            if time_changed and not target.is_room:
                existing.response, existing.response_time, existing.show_as = "notResponded", None, "tentative"
        _mirror(existing, org)
        state.touch(tenant, target, existing, change)


def _differs(copy_ev: Event, org: Event) -> bool:
    return (
        copy_ev.subject,
        copy_ev.start,
        copy_ev.end,
        copy_ev.location,
        copy_ev.join_url,
        copy_ev.is_cancelled,
        copy_ev.recurrence,
    ) != (
        org.subject,
        org.start,
        org.end,
        org.location,
        org.join_url,
        org.is_cancelled,
        org.recurrence,
    )


def _mirror(copy_ev: Event, org: Event) -> None:
    copy_ev.recurrence = copy.deepcopy(org.recurrence)
    for k, override in org.overrides.items():
        if override.get("start") is not None:
            mine = copy_ev.overrides.setdefault(k, {})
            mine["start"], mine["end"] = override["start"], override["end"]
    for k in org.deleted:
        copy_ev.overrides.setdefault(k, {})["cancelled"] = True
    copy_ev.subject, copy_ev.body_html = org.subject, org.body_html
    copy_ev.start, copy_ev.end, copy_ev.start_tz, copy_ev.end_tz = org.start, org.end, org.start_tz, org.end_tz
    copy_ev.is_all_day, copy_ev.sensitivity, copy_ev.importance = org.is_all_day, org.sensitivity, org.importance
    copy_ev.organizer_name, copy_ev.organizer_address = org.organizer_name, org.organizer_address
    copy_ev.attendees = copy.deepcopy(org.attendees)
    copy_ev.is_online, copy_ev.provider, copy_ev.join_url = org.is_online, org.provider, org.join_url
    copy_ev.location = dict(org.location)
    copy_ev.is_cancelled = org.is_cancelled


# -- update ---------------------------------------------------------------------------
def update_event(state: SimState, tenant: Tenant, mb: Mailbox, ev: Event, payload: Any) -> Event:
    """PATCH: the organizer's changes reach every attendee; an attendee's edits stay local."""
    if not isinstance(payload, dict):
        raise GraphError(400, "ErrorInvalidRequest", "The request body must be an event.")
    if ev.series_master_id is not None:
        return _update_occurrence(state, tenant, mb, ev, payload)
    if series.is_master(ev) and ev.is_organizer and ({"recurrence", "start", "end"} & set(payload)):
        return _update_series(state, tenant, mb, ev, payload)
    if payload.get("recurrence") is not None and ev.is_organizer and not series.is_master(ev):
        raise GraphError(400, "ErrorInvalidRequest", "A single event cannot be turned into a series here.")
    time_changed = False
    if "start" in payload or "end" in payload:
        merged = {
            "start": payload.get("start") or {"dateTime": ev.start.isoformat(), "timeZone": "UTC"},
            "end": payload.get("end") or {"dateTime": ev.end.isoformat(), "timeZone": "UTC"},
        }
        start, end, start_tz, end_tz = _times(merged, required=True)
        time_changed = (start, end) != (ev.start, ev.end)
        ev.start, ev.end, ev.start_tz, ev.end_tz = start, end, start_tz, end_tz
    _apply_simple(ev, payload)
    if not ev.is_organizer:
        state.touch(tenant, mb, ev, "updated")
        return ev
    previous = {a["emailAddress"]["address"].lower() for a in ev.attendees}
    removed: list[str] = []
    if isinstance(payload.get("attendees"), list):
        new_list = [_attendee(a) for a in payload["attendees"]]
        old = {a["emailAddress"]["address"].lower(): a for a in ev.attendees}
        for att in new_list:
            kept = old.get(att["emailAddress"]["address"].lower())
            if kept is not None:
                att["status"] = kept["status"]
        removed = [addr for addr in old if addr not in {a["emailAddress"]["address"].lower() for a in new_list}]
        ev.attendees = new_list
    if payload.get("isOnlineMeeting") and not ev.is_online:
        _make_online(ev, mb, payload.get("onlineMeetingProvider"))
    added = [a["emailAddress"]["address"] for a in ev.attendees if a["emailAddress"]["address"].lower() not in previous]
    if time_changed:
        for att in ev.attendees:
            att["status"] = {"response": "none", "time": NO_TIME}
        _room_decisions(tenant, ev, [a["emailAddress"]["address"] for a in ev.attendees])
    else:
        _room_decisions(tenant, ev, added)
    state.touch(tenant, mb, ev, "updated")
    for address in removed:
        _cancel_copy(state, tenant, address, ev.ical_uid)
    _sync_attendees(state, tenant, ev, time_changed=time_changed, previous=previous)
    return ev


def _new_times(payload: dict[str, Any], ev: Event) -> tuple[datetime, datetime, str, str]:
    merged = {
        "start": payload.get("start") or {"dateTime": ev.start.isoformat(), "timeZone": "UTC"},
        "end": payload.get("end") or {"dateTime": ev.end.isoformat(), "timeZone": "UTC"},
    }
    return _times(merged, required=True)


def _copies(tenant: Tenant, master: Event) -> list[tuple[Mailbox, Event]]:
    out = []
    for att in master.attendees:
        target = tenant.find(att["emailAddress"]["address"])
        if target is None or target.id == master.mailbox_id or not target.has_rest_mailbox:
            continue
        found = _copy_in(target, master.ical_uid)
        if found is not None and not found.is_organizer:
            out.append((target, found))
    return out


def _update_series(state: SimState, tenant: Tenant, mb: Mailbox, master: Event, payload: dict[str, Any]) -> Event:
    """PATCH on a master: a new pattern or new times drop the exceptions; a new range keeps those inside it."""
    before = series.instance_ids(master)
    old_rule = series.rule_of(master)
    trial = copy.copy(master)
    if "start" in payload or "end" in payload:
        trial.start, trial.end, trial.start_tz, trial.end_tz = _new_times(payload, master)
    if "recurrence" in payload:
        if payload["recurrence"] is None:
            raise GraphError(400, "ErrorInvalidRequest", "A series cannot be turned into a single event here.")
        trial.recurrence = series.parse_rule(payload["recurrence"])
    if not series.start_date_matches(trial):
        raise GraphError(
            400,
            "ErrorPropertyValidationFailure",
            "The recurrence range start date must be the date of the event's start in its time zone.",
        )
    times_changed = (trial.start, trial.end) != (master.start, master.end)
    master.start, master.end, master.start_tz, master.end_tz = trial.start, trial.end, trial.start_tz, trial.end_tz
    master.recurrence = trial.recurrence
    pattern_changed = series.rule_of(master).pattern != old_rule.pattern or times_changed
    copies = _copies(tenant, master)
    if pattern_changed:
        for event in [master] + [found for _t, found in copies]:
            event.overrides.clear()
            event.deleted.clear()
        for att in master.attendees:
            att["status"] = {"response": "none", "time": NO_TIME}
        _room_decisions(tenant, master, [a["emailAddress"]["address"] for a in master.attendees])
    else:
        kept = {series.key(o.original_start) for o in series.occurrences(master)}
        for event in [master] + [found for _t, found in copies]:
            event.overrides = {k: v for k, v in event.overrides.items() if k in kept}
            event.deleted &= kept
    _apply_simple(master, payload)
    state.touch(tenant, mb, master, "updated")
    series.retire(state, mb, master, before)
    for target, found in copies:
        found_before = series.instance_ids(found)
        _mirror(found, master)
        if pattern_changed and not target.is_room:
            found.response, found.response_time, found.show_as = "notResponded", None, "tentative"
        state.touch(tenant, target, found, "updated")
        series.retire(state, target, found, found_before)
    return master


def _update_occurrence(state: SimState, tenant: Tenant, mb: Mailbox, inst: Event, payload: dict[str, Any]) -> Event:
    """PATCH on an occurrence id: it becomes an exception; the attendees' occurrence follows.
    Only the times are kept per occurrence here (subject and body changes stay on the series)."""
    master = mb.events[inst.series_master_id or ""]
    assert inst.original_start is not None
    k = series.key(inst.original_start)
    if "start" not in payload and "end" not in payload:
        master.overrides.setdefault(k, {})
        state.touch(tenant, mb, master, "updated")
        return series.resolve(mb, inst.id) or inst
    start, end, _tz, _end_tz = _new_times(payload, inst)
    if not master.is_organizer:
        mine = master.overrides.setdefault(k, {})
        mine["start"], mine["end"] = start, end
        state.touch(tenant, mb, master, "updated")
        return series.resolve(mb, inst.id) or inst
    current = [rec.Occurrence(i.original_start or i.start, i.start, i.end) for i in series.instances(master)]
    if rec.crosses_boundary(current, inst.original_start, start, series.zone_of(master)):
        raise GraphError(
            400,
            "ErrorOccurrenceCrossingBoundary",
            "Modified occurrence is crossing or overlapping adjacent occurrence.",
        )
    time_changed = (start, end) != (inst.start, inst.end)
    override = master.overrides.setdefault(k, {})
    override["start"], override["end"] = start, end
    if time_changed:
        attendees = copy.deepcopy(override.get("attendees", master.attendees))
        for att in attendees:
            att["status"] = {"response": "none", "time": NO_TIME}
            room = tenant.find(att["emailAddress"]["address"])
            if room is not None and room.is_room:
                free = room_free(room, master.ical_uid, start, end)
                att["status"] = {"response": "accepted" if free else "declined", "time": iso_z(now_utc())}
        override["attendees"] = attendees
    state.touch(tenant, mb, master, "updated")
    statuses = {
        a["emailAddress"]["address"].lower(): a["status"]["response"]
        for a in override.get("attendees", master.attendees)
    }
    for target, found in _copies(tenant, master):
        before = series.instance_ids(found)
        mine = found.overrides.setdefault(k, {})
        mine["start"], mine["end"] = start, end
        if target.is_room:
            if statuses.get(target.upn.lower()) == "declined":
                found.deleted.add(k)
            else:
                found.deleted.discard(k)
        elif time_changed:
            mine["response"], mine["showAs"] = "notResponded", "tentative"
        state.touch(tenant, target, found, "updated")
        series.retire(state, target, found, before)
    return series.resolve(mb, inst.id) or inst


def cancel_occurrence(state: SimState, tenant: Tenant, mb: Mailbox, inst: Event) -> None:
    """The organizer cancels one occurrence: gone from the series; attendees see it cancelled, rooms drop it."""
    master = mb.events[inst.series_master_id or ""]
    assert inst.original_start is not None
    k = series.key(inst.original_start)
    before = series.instance_ids(master)
    master.deleted.add(k)
    master.overrides.pop(k, None)
    state.touch(tenant, mb, master, "updated")
    series.retire(state, mb, master, before)
    for target, found in _copies(tenant, master):
        found_before = series.instance_ids(found)
        if target.is_room:
            found.deleted.add(k)
        else:
            found.overrides.setdefault(k, {})["cancelled"] = True
        state.touch(tenant, target, found, "updated")
        series.retire(state, target, found, found_before)


def _gone(state: SimState, tenant: Tenant, mb: Mailbox, ev: Event) -> None:
    """Delete a stored event; a master's occurrence ids are tombstoned too (calendarView delta)."""
    before = series.instance_ids(ev)
    state.touch(tenant, mb, ev, "deleted")
    series.retire(state, mb, ev, before)


# -- cancel / delete / respond --------------------------------------------------------
def cancel_event(state: SimState, tenant: Tenant, mb: Mailbox, ev: Event) -> None:
    """The organizer cancels: attendees' copies become cancelled, the organizer's event goes."""
    if not ev.is_organizer:
        raise GraphError(
            400,
            "ErrorInvalidRequest",
            "Your request can't be completed. You need to be an organizer to cancel a meeting.",
        )
    if ev.series_master_id is not None:
        cancel_occurrence(state, tenant, mb, ev)
        return
    for att in ev.attendees:
        _cancel_copy(state, tenant, att["emailAddress"]["address"], ev.ical_uid)
    _gone(state, tenant, mb, ev)


def delete_event(state: SimState, tenant: Tenant, mb: Mailbox, ev: Event) -> None:
    """DELETE: an organizer's delete also cancels the meeting; an attendee's only removes their copy."""
    if ev.series_master_id is not None:
        if ev.is_organizer:
            cancel_occurrence(state, tenant, mb, ev)
            return
        master = mb.events[ev.series_master_id]
        before = series.instance_ids(master)
        assert ev.original_start is not None
        master.deleted.add(series.key(ev.original_start))
        state.touch(tenant, mb, master, "updated")
        series.retire(state, mb, master, before)
        return
    if ev.is_organizer:
        for att in ev.attendees:
            _cancel_copy(state, tenant, att["emailAddress"]["address"], ev.ical_uid)
    _gone(state, tenant, mb, ev)


def _cancel_copy(state: SimState, tenant: Tenant, address: str, ical_uid: str) -> None:
    target = tenant.find(address)
    if target is None or not target.has_rest_mailbox:
        return
    existing = _copy_in(target, ical_uid)
    if existing is None or existing.is_organizer:
        return
    if target.is_room:
        _gone(state, tenant, target, existing)
        return
    existing.is_cancelled = True
    if not existing.subject.startswith("Canceled: "):
        existing.subject = "Canceled: " + existing.subject
    state.touch(tenant, target, existing, "updated")


def respond(state: SimState, tenant: Tenant, mb: Mailbox, ev: Event, response: str) -> None:
    """An attendee answers; the organizer's event shows the answer (and is notified)."""
    if response not in ("accepted", "declined", "tentativelyAccepted"):
        raise GraphError(400, "ErrorInvalidRequest", f"Unknown response '{response}'.")
    if ev.is_organizer:
        raise GraphError(
            400, "ErrorInvalidRequest", "Your request can't be completed. You can't respond to a meeting you organized."
        )
    if ev.is_cancelled:
        raise GraphError(400, "ErrorInvalidRequest", "Your request can't be completed. The meeting was cancelled.")
    now = now_utc()
    if ev.series_master_id is not None:
        _respond_to_occurrence(state, tenant, mb, ev, response)
        return
    organizer = tenant.find(ev.organizer_address)
    org_ev = _copy_in(organizer, ev.ical_uid) if organizer is not None else None
    if response == "declined":
        _gone(state, tenant, mb, ev)
    else:
        ev.response, ev.response_time = response, now
        ev.show_as = "busy" if response == "accepted" else "tentative"
        state.touch(tenant, mb, ev, "updated")
    if organizer is not None and org_ev is not None and org_ev.is_organizer:
        for att in org_ev.attendees:
            if att["emailAddress"]["address"].lower() in (mb.upn.lower(), mb.mail.lower()):
                att["status"] = {"response": response, "time": iso_z(now)}
        state.touch(tenant, organizer, org_ev, "updated")


def _respond_to_occurrence(state: SimState, tenant: Tenant, mb: Mailbox, inst: Event, response: str) -> None:
    """An attendee answers one occurrence: declining removes it from their calendar only; the organizer's
    series shows the answer on that occurrence."""
    copy_master = mb.events[inst.series_master_id or ""]
    assert inst.original_start is not None
    k = series.key(inst.original_start)
    now = now_utc()
    before = series.instance_ids(copy_master)
    if response == "declined":
        copy_master.deleted.add(k)
    else:
        mine = copy_master.overrides.setdefault(k, {})
        mine["response"], mine["showAs"] = response, "busy" if response == "accepted" else "tentative"
    state.touch(tenant, mb, copy_master, "updated")
    series.retire(state, mb, copy_master, before)
    organizer = tenant.find(copy_master.organizer_address)
    org_ev = _copy_in(organizer, copy_master.ical_uid) if organizer is not None else None
    if organizer is None or org_ev is None or not org_ev.is_organizer:
        return
    override = org_ev.overrides.setdefault(k, {})
    attendees = override.setdefault("attendees", copy.deepcopy(org_ev.attendees))
    for att in attendees:
        if att["emailAddress"]["address"].lower() in (mb.upn.lower(), mb.mail.lower()):
            att["status"] = {"response": response, "time": iso_z(now)}
    state.touch(tenant, organizer, org_ev, "updated")


def move_event(state: SimState, tenant: Tenant, mb: Mailbox, ev: Event, *, start: datetime, end: datetime) -> Event:
    """As if the organizer dragged the meeting in Outlook."""
    if not ev.is_organizer:
        raise GraphError(400, "ErrorInvalidRequest", "Only the organizer can move a meeting.")
    payload = {
        "start": {"dateTime": start.isoformat(), "timeZone": "UTC"},
        "end": {"dateTime": end.isoformat(), "timeZone": "UTC"},
    }
    return update_event(state, tenant, mb, ev, payload)


# -- free/busy ------------------------------------------------------------------------
def schedule(mb: Mailbox, address: str, *, start: datetime, end: datetime, interval: int, zone: Any) -> dict[str, Any]:
    """One ``scheduleInformation`` for a reachable mailbox (times rendered in ``zone``)."""
    tz, tz_name = zone.tz, zone.name
    cal = mb.default_calendar_id
    items = sorted(
        (
            e
            for e in series.expanded([e for e in mb.events.values() if e.calendar_id == cal], start, end)
            if not e.is_cancelled and e.show_as != "free"
        ),
        key=lambda e: (e.start, e.end),
    )
    slots = max(1, math.ceil((end - start) / timedelta(minutes=interval)))
    view = []
    for i in range(slots):
        s = start + timedelta(minutes=interval * i)
        e = min(end, s + timedelta(minutes=interval))
        digit = 0
        for item in items:
            if overlaps(item.start, item.end, s, e):
                d = _VIEW_DIGIT.get(item.show_as, 0)
                if _VIEW_RANK[d] > _VIEW_RANK[digit]:
                    digit = d
        view.append(str(digit))
    out_items = []
    for item in items:
        private = item.sensitivity in ("private", "confidential")
        entry: dict[str, Any] = {"isPrivate": private, "status": item.show_as}
        if not private:
            entry["subject"] = item.subject
            entry["location"] = item.location.get("displayName", "")
        entry["start"] = dttz(item.start, tz, tz_name)
        entry["end"] = dttz(item.end, tz, tz_name)
        out_items.append(entry)
    return {
        "scheduleId": address,
        "availabilityView": "".join(view),
        "scheduleItems": out_items,
        "workingHours": copy.deepcopy(mb.working_hours),
    }
