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
"""

from __future__ import annotations

import copy
import math
import re
import uuid
from datetime import datetime, timedelta, tzinfo
from typing import Any

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
        "seriesMasterId": None,
        "showAs": ev.show_as,
        "type": "singleInstance",
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
        "recurrence": None,
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
    for att in ev.attendees:
        room = tenant.find(att["emailAddress"]["address"])
        if room is None or not room.is_room or att["emailAddress"]["address"].lower() not in wanted:
            continue
        free = not any(
            not other.is_cancelled
            and other.ical_uid != ev.ical_uid
            and other.show_as in ("busy", "tentative", "oof")
            and overlaps(other.start, other.end, ev.start, ev.end)
            for other in room.events.values()
        )
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
                state.touch(tenant, target, existing, "deleted")
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
    return (copy_ev.subject, copy_ev.start, copy_ev.end, copy_ev.location, copy_ev.join_url, copy_ev.is_cancelled) != (
        org.subject,
        org.start,
        org.end,
        org.location,
        org.join_url,
        org.is_cancelled,
    )


def _mirror(copy_ev: Event, org: Event) -> None:
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


# -- cancel / delete / respond --------------------------------------------------------
def cancel_event(state: SimState, tenant: Tenant, mb: Mailbox, ev: Event) -> None:
    """The organizer cancels: attendees' copies become cancelled, the organizer's event goes."""
    if not ev.is_organizer:
        raise GraphError(
            400,
            "ErrorInvalidRequest",
            "Your request can't be completed. You need to be an organizer to cancel a meeting.",
        )
    for att in ev.attendees:
        _cancel_copy(state, tenant, att["emailAddress"]["address"], ev.ical_uid)
    state.touch(tenant, mb, ev, "deleted")


def delete_event(state: SimState, tenant: Tenant, mb: Mailbox, ev: Event) -> None:
    """DELETE: an organizer's delete also cancels the meeting; an attendee's only removes their copy."""
    if ev.is_organizer:
        for att in ev.attendees:
            _cancel_copy(state, tenant, att["emailAddress"]["address"], ev.ical_uid)
    state.touch(tenant, mb, ev, "deleted")


def _cancel_copy(state: SimState, tenant: Tenant, address: str, ical_uid: str) -> None:
    target = tenant.find(address)
    if target is None or not target.has_rest_mailbox:
        return
    existing = _copy_in(target, ical_uid)
    if existing is None or existing.is_organizer:
        return
    if target.is_room:
        state.touch(tenant, target, existing, "deleted")
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
    organizer = tenant.find(ev.organizer_address)
    org_ev = _copy_in(organizer, ev.ical_uid) if organizer is not None else None
    if response == "declined":
        state.touch(tenant, mb, ev, "deleted")
    else:
        ev.response, ev.response_time = response, now
        ev.show_as = "busy" if response == "accepted" else "tentative"
        state.touch(tenant, mb, ev, "updated")
    if organizer is not None and org_ev is not None and org_ev.is_organizer:
        for att in org_ev.attendees:
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
            for e in mb.events.values()
            if e.calendar_id == cal
            and not e.is_cancelled
            and e.show_as != "free"
            and overlaps(e.start, e.end, start, end)
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
