"""Microsoft Graph v1.0, the parts the service uses, stateful and in the documented shapes.

Pipeline for every request (and every ``$batch`` part): outage fault -> bearer token
check (signature, expiry, audience, tenant, consent not revoked) -> per-mailbox
concurrency slot (4, else 429 ``ApplicationThrottled``) -> injected latency ->
injected throttling / failures -> the handler under the state lock.

Deliberate limits (see README): ``$filter`` only where the service uses it, ``$select``
honoured, ``$orderby``/``$search`` ignored. Recurring series are expanded on read
(``series.py``): calendarView, its delta, getSchedule and ``/events/{id}/instances``.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import urlencode

import jwt

from local.simulator import events as ev_ops
from local.simulator import series
from local.simulator.entra import Entra, Keys
from local.simulator.notifier import Notifier, is_allowed_url, validate_endpoint
from local.simulator.state import Calendar, Event, Mailbox, SimState, Subscription, Tenant, new_id
from local.simulator.timeutil import (
    BadTime,
    iso_z,
    now_utc,
    overlaps,
    parse_dttz,
    parse_local,
    prefer_page_size,
    prefer_timezone,
)
from local.simulator.web import GraphError, Request, Response, empty, graph_error_response, json_response

_SUB_RESOURCE = re.compile(r"^/?(?:users/([^/]+)|me)/(?:calendar/|calendars/[^/]+/)?events$", re.IGNORECASE)
_FILTER_ENABLED = re.compile(r"^\s*accountEnabled\s+eq\s+(true|false)\s*$", re.IGNORECASE)
_FILTER_EQ = re.compile(r"^\s*(iCalUId|transactionId|subject)\s+eq\s+'([^']*)'\s*$")
_USER_DEFAULT = [
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
]
_EVENT_PAGE = 10
SUBSCRIPTION_PAGE = 100
_UNREACHABLE_MSG = "The mailbox is either inactive, soft-deleted, or is hosted on-premise."


SHARED_SCOPE = "Calendars.ReadWrite.Shared"
_SHARED_CALENDAR_SEGMENTS = frozenset({"calendar", "calendars", "events", "calendarView"})


@dataclass(frozen=True, slots=True)
class Zone:
    """The time zone a response renders times in (``Prefer: outlook.timezone``) and its reply header."""

    tz: tzinfo
    name: str
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling Graph: the tenant from the token, and the user for delegated tokens."""

    tenant: Tenant
    app_only: bool
    user_id: str | None
    app_id: str
    scopes: frozenset[str] = frozenset()


class Graph:
    """The Graph handlers plus the fault/throttling pipeline."""

    def __init__(self, state: SimState, keys: Keys, entra: Entra, notifier: Notifier, verify: str | bool) -> None:
        self.state = state
        self.keys = keys
        self.entra = entra
        self.notifier = notifier
        self.verify = verify

    @property
    def root(self) -> str:
        return f"{self.state.base_url}/v1.0"

    # -- pipeline --------------------------------------------------------------------
    def handle(self, req: Request, *, in_batch: bool = False) -> tuple[Response, str | None]:
        """Run one Graph request through the pipeline; returns the response and tenant id."""
        client_rid = req.headers.get("client-request-id")
        segs = req.segments[1:]  # drop "v1.0"
        tenant_id: str | None = None
        try:
            if segs == ["$batch"] and req.method == "POST" and not in_batch:
                caller = self._authenticate(req)
                return self._batch(req, caller), caller.tenant.id
            if self.state.faults.in_outage():
                raise GraphError(
                    503,
                    "ServiceNotAvailable",
                    "Service unavailable.",
                    {"Retry-After": str(self.state.faults.retry_after_seconds)},
                )
            caller = self._authenticate(req)
            tenant_id = caller.tenant.id
            key = self._mailbox_key(caller, segs)
            if key is not None and not self.state.acquire_slot(key):
                raise GraphError(
                    429,
                    "ApplicationThrottled",
                    "Application is over its MailboxConcurrency limit.",
                    {"Retry-After": str(self.state.faults.retry_after_seconds)},
                )
            try:
                self._inject_faults()
                resp = self._route(caller, req, segs)
            finally:
                if key is not None:
                    self.state.release_slot(key)
        except GraphError as err:
            resp = graph_error_response(err, client_rid)
        resp.headers.setdefault("request-id", str(uuid.uuid4()))
        if client_rid:
            resp.headers["client-request-id"] = client_rid
        return resp, tenant_id

    def _inject_faults(self) -> None:
        faults = self.state.faults
        rng = self.state.rng
        delay = faults.latency_ms
        if faults.latency_spike_rate and rng.random() < faults.latency_spike_rate:
            delay += faults.latency_spike_ms
        if delay > 0:
            time.sleep(delay / 1000)
        retry = {"Retry-After": str(faults.retry_after_seconds)}
        if faults.throttle_rate and rng.random() < faults.throttle_rate:
            raise GraphError(429, "ApplicationThrottled", "Application is over its RequestRate limit.", retry)
        if faults.fail_rate and rng.random() < faults.fail_rate:
            raise GraphError(503, "ServiceNotAvailable", "Service unavailable.", retry)

    def _authenticate(self, req: Request) -> Caller:
        header = req.headers.get("authorization", "")
        if not header.lower().startswith("bearer ") or not header[7:].strip():
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        token = header[7:].strip()
        try:
            claims = self.keys.verify(token, audience=self.entra.graph_audiences())
        except jwt.ExpiredSignatureError as exc:
            raise GraphError(
                401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired."
            ) from exc
        except jwt.InvalidAudienceError as exc:
            raise GraphError(
                401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."
            ) from exc
        except (jwt.InvalidTokenError, ValueError) as exc:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.") from exc
        with self.state.lock:
            tenant = self.state.tenants.get(str(claims.get("tid", "")))
            if tenant is None or claims.get("jti") in self.state.revoked_jtis:
                raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.")
            app_only = claims.get("idtyp") == "app"
            user_id = None if app_only else str(claims.get("oid"))
            if user_id is not None and tenant.mailboxes.get(user_id) is None:
                raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.")
        scopes = frozenset(str(claims.get("scp") or "").split())
        return Caller(tenant, app_only, user_id, str(claims.get("appid") or claims.get("azp") or ""), scopes)

    def _mailbox_key(self, caller: Caller, segs: list[str]) -> tuple[str, str] | None:
        if len(segs) >= 2 and segs[0].lower() == "users":
            with self.state.lock:
                mb = caller.tenant.find(segs[1])
            return (caller.tenant.id, mb.id if mb else segs[1].lower())
        if segs and segs[0].lower() == "me" and caller.user_id:
            return (caller.tenant.id, caller.user_id)
        return None

    # -- routing ---------------------------------------------------------------------
    def _route(self, caller: Caller, req: Request, segs: list[str]) -> Response:
        if not segs:
            return json_response(200, {"@odata.context": f"{self.root}/$metadata", "value": []})
        head = segs[0]
        if head.lower() == "me":
            if caller.app_only or caller.user_id is None:
                raise GraphError(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
            segs = ["users", caller.user_id, *segs[1:]]
            head = "users"
        if head == "subscriptions" and req.method == "POST" and len(segs) == 1:
            return self._create_subscription(caller, req)
        with self.state.lock:
            if head == "users":
                return self._users(caller, req, segs[1:])
            if head == "places":
                return self._places(caller, req, segs[1:])
            if head == "subscriptions":
                return self._subscriptions(caller, req, segs[1:])
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{head}'.")

    # -- users -----------------------------------------------------------------------
    def _users(self, caller: Caller, req: Request, rest: list[str]) -> Response:
        tenant = caller.tenant
        if not rest:
            _method(req, "GET")
            return self._list_users(tenant, req)
        ref = rest[0]
        if len(rest) == 1:
            _method(req, "GET")
            mb = tenant.find(ref)
            if mb is None:
                raise GraphError(
                    404,
                    "Request_ResourceNotFound",
                    f"Resource '{ref}' does not exist or one of its queried reference-property objects "
                    "are not present.",
                )
            body = _select_user(_render_user(mb), req.query.get("$select"))
            body["@odata.context"] = f"{self.root}/$metadata#users/$entity"
            return json_response(200, body)
        tail = rest[1:]
        mb = self._mailbox(caller, ref, shared=bool(tail) and tail[0] in _SHARED_CALENDAR_SEGMENTS)
        if tail == ["mailboxSettings"]:
            _method(req, "GET")
            return json_response(
                200,
                {
                    "@odata.context": f"{self.root}/$metadata#users('{mb.id}')/mailboxSettings",
                    **ev_ops.select(_mailbox_settings(mb), req.query.get("$select"), ()),
                },
            )
        if tail == ["calendars"]:
            if req.method == "POST":
                return self._create_calendar(mb, req)
            _method(req, "GET")
            return json_response(
                200,
                {
                    "@odata.context": f"{self.root}/$metadata#users('{mb.id}')/calendars",
                    "value": [_render_calendar(mb, c) for c in mb.calendars.values()],
                },
            )
        if tail and tail[0] == "calendar":
            cal, tail = mb.calendars[mb.default_calendar_id], tail[1:]
        elif tail and tail[0] == "calendars" and len(tail) >= 2:
            found = mb.calendars.get(tail[1])
            if found is None:
                raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
            cal, tail = found, tail[2:]
        else:
            cal = mb.calendars[mb.default_calendar_id]
        return self._calendar_routes(caller, req, mb, cal, tail)

    def _list_users(self, tenant: Tenant, req: Request) -> Response:
        top = _int_param(req.query.get("$top"), 100, 1, 999, "$top")
        offset = _decode_skip(req.query.get("$skiptoken"))
        people = sorted(tenant.mailboxes.values(), key=lambda m: (m.is_room, m.upn))
        flt = req.query.get("$filter")
        if flt:
            match = _FILTER_ENABLED.match(flt)
            if not match:
                raise GraphError(400, "Request_UnsupportedQuery", "Unsupported Query.")
            wanted = match.group(1).lower() == "true"
            people = [m for m in people if m.account_enabled == wanted]
        page = people[offset : offset + top]
        select = req.query.get("$select")
        body: dict[str, Any] = {
            "@odata.context": f"{self.root}/$metadata#users",
            "value": [_select_user(_render_user(m), select) for m in page],
        }
        if offset + top < len(people):
            params = {k: v for k, v in req.query.items() if k in ("$select", "$filter", "$top")}
            params["$skiptoken"] = _encode_skip(offset + top)
            body["@odata.nextLink"] = f"{self.root}/users?{urlencode(params)}"
        return json_response(200, body)

    def _mailbox(self, caller: Caller, ref: str, *, shared: bool = False) -> Mailbox:
        """The mailbox behind /users/{ref}/..., or the error Graph gives for it.

        A delegated token reaches only its own mailbox, except a shared calendar path
        (``shared``) of a mailbox that made the caller a delegate, with
        ``Calendars.ReadWrite.Shared`` in the token. Subscriptions never pass ``shared``:
        Graph delivers no change notifications for shared calendars to delegated callers.
        """
        mb = caller.tenant.find(ref)
        if mb is None:
            raise GraphError(404, "ErrorInvalidUser", f"The requested user '{ref}' is invalid.")
        if not caller.app_only and mb.id != caller.user_id:
            delegate = shared and caller.user_id in mb.delegates and SHARED_SCOPE in caller.scopes
            if not delegate:
                raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        if not mb.has_rest_mailbox:
            raise GraphError(404, "MailboxNotEnabledForRESTAPI", _UNREACHABLE_MSG)
        if mb.kind == "outsideScope" and caller.app_only:
            raise GraphError(403, "ErrorAccessDenied", "Access to OData is disabled.")
        return mb

    def _create_calendar(self, mb: Mailbox, req: Request) -> Response:
        payload = req.json()
        name = payload.get("name") if isinstance(payload, dict) else None
        if not name:
            raise GraphError(400, "ErrorInvalidRequest", "A calendar needs a name.")
        if any(c.name.lower() == str(name).lower() for c in mb.calendars.values()):
            raise GraphError(409, "ErrorFolderExists", "A folder with the specified name already exists.")
        cal = Calendar(id=new_id("AAMkAGCal"), name=str(name), is_default=False)
        mb.calendars[cal.id] = cal
        return json_response(
            201,
            {
                "@odata.context": f"{self.root}/$metadata#users('{mb.id}')/calendars/$entity",
                **_render_calendar(mb, cal),
            },
        )

    # -- calendar --------------------------------------------------------------------
    def _calendar_routes(self, caller: Caller, req: Request, mb: Mailbox, cal: Calendar, tail: list[str]) -> Response:
        tenant = caller.tenant
        tz, tz_name, applied = prefer_timezone(req.headers.get("prefer"))
        pref = {"Preference-Applied": f'outlook.timezone="{tz_name}"'} if applied else {}
        zone = Zone(tz, tz_name, pref)
        if not tail:
            _method(req, "GET")
            return json_response(
                200,
                {
                    "@odata.context": f"{self.root}/$metadata#users('{mb.id}')/calendar/$entity",
                    **ev_ops.select(_render_calendar(mb, cal), req.query.get("$select"), ("id",)),
                },
            )
        if tail == ["getSchedule"]:
            _method(req, "POST")
            return self._get_schedule(caller, req, zone)
        if tail == ["calendarView"]:
            _method(req, "GET")
            return self._calendar_view(req, mb, cal, zone)
        if tail == ["calendarView", "delta"]:
            _method(req, "GET")
            return self._delta(req, mb, cal, zone)
        if tail == ["events"]:
            if req.method == "POST":
                event, _created = ev_ops.create_event(self.state, tenant, mb, cal.id, req.json())
                body = ev_ops.render_event(event, tz, tz_name)
                body["@odata.context"] = f"{self.root}/$metadata#users('{mb.id}')/events/$entity"
                return json_response(201, body, {**pref, "Location": f"{self.root}/users/{mb.id}/events/{event.id}"})
            _method(req, "GET")
            return self._list_events(req, mb, cal, zone)
        if tail[0] == "events" and len(tail) in (2, 3):
            found_event = series.resolve(mb, tail[1])
            if found_event is None:
                raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
            event = found_event
            if tail[2:] == ["instances"]:
                _method(req, "GET")
                return self._instances(req, mb, event, zone)
            if len(tail) == 3:
                return self._event_action(req, tenant, mb, event, tail[2])
            if req.method == "GET":
                body = ev_ops.select(ev_ops.render_event(event, tz, tz_name), req.query.get("$select"))
                return json_response(
                    200, {"@odata.context": f"{self.root}/$metadata#users('{mb.id}')/events/$entity", **body}, pref
                )
            if req.method == "PATCH":
                updated = ev_ops.update_event(self.state, tenant, mb, event, req.json())
                return json_response(200, ev_ops.render_event(updated, tz, tz_name), pref)
            if req.method == "DELETE":
                ev_ops.delete_event(self.state, tenant, mb, event)
                return empty(204)
            raise GraphError(405, "ErrorInvalidRequest", "The HTTP method is not allowed for this resource.")
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{tail[0]}'.")

    def _event_action(self, req: Request, tenant: Tenant, mb: Mailbox, event: Event, action: str) -> Response:
        _method(req, "POST")
        if action == "cancel":
            ev_ops.cancel_event(self.state, tenant, mb, event)
            return empty(202)
        responses = {"accept": "accepted", "decline": "declined", "tentativelyAccept": "tentativelyAccepted"}
        if action in responses:
            ev_ops.respond(self.state, tenant, mb, event, responses[action])
            return empty(202)
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{action}'.")

    def _list_events(self, req: Request, mb: Mailbox, cal: Calendar, zone: Zone) -> Response:
        items = [e for e in mb.events.values() if e.calendar_id == cal.id]
        flt = req.query.get("$filter")
        if flt:
            match = _FILTER_EQ.match(flt)
            if not match:
                raise GraphError(
                    400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes."
                )
            attr = {"iCalUId": "ical_uid", "transactionId": "transaction_id", "subject": "subject"}[match.group(1)]
            items = [e for e in items if getattr(e, attr) == match.group(2)]
        items.sort(key=lambda e: (e.start, e.id))
        return self._page(req, items, f"users/{mb.id}/events", zone)

    def _page(
        self,
        req: Request,
        items: list[Event],
        path: str,
        zone: Zone,
        extra: dict[str, str] | None = None,
    ) -> Response:
        size = prefer_page_size(req.headers.get("prefer")) or _EVENT_PAGE
        top = _int_param(req.query.get("$top"), size, 1, 1000, "$top")
        skip = _int_param(req.query.get("$skip"), 0, 0, 10**9, "$skip")
        page = items[skip : skip + top]
        select = req.query.get("$select")
        body: dict[str, Any] = {
            "@odata.context": f"{self.root}/$metadata#users/events",
            "value": [ev_ops.select(ev_ops.render_event(e, zone.tz, zone.name), select) for e in page],
        }
        if skip + top < len(items):
            params = {**(extra or {}), **{k: v for k, v in req.query.items() if k in ("$select", "$filter", "$top")}}
            params["$skip"] = str(skip + top)
            body["@odata.nextLink"] = f"{self.root}/{path}?{urlencode(params)}"
        return json_response(200, body, zone.headers)

    def _window(self, req: Request) -> tuple[datetime, datetime]:
        start_raw, end_raw = req.query.get("startDateTime"), req.query.get("endDateTime")
        if not start_raw or not end_raw:
            raise GraphError(
                400,
                "ErrorInvalidParameter",
                "This request requires a time window specified by the query string parameters "
                "StartDateTime and EndDateTime.",
            )
        try:
            from datetime import UTC

            return parse_local(start_raw, UTC), parse_local(end_raw, UTC)
        except BadTime as exc:
            raise GraphError(400, "ErrorInvalidParameter", str(exc)) from exc

    def _instances(self, req: Request, mb: Mailbox, event: Event, zone: Zone) -> Response:
        """GET /events/{id}/instances (api-reference/v1.0/api/event-list-instances.md): a master's
        occurrences and exceptions in the window; other events have none."""
        start, end = self._window(req)
        items = series.instances(event, start, end) if series.is_master(event) else []
        extra = {"startDateTime": req.query["startDateTime"], "endDateTime": req.query["endDateTime"]}
        return self._page(req, items, f"users/{mb.id}/events/{event.id}/instances", zone, extra)

    def _calendar_view(self, req: Request, mb: Mailbox, cal: Calendar, zone: Zone) -> Response:
        start, end = self._window(req)
        items = series.expanded([e for e in mb.events.values() if e.calendar_id == cal.id], start, end)
        extra = {"startDateTime": req.query["startDateTime"], "endDateTime": req.query["endDateTime"]}
        return self._page(req, items, f"users/{mb.id}/calendarView", zone, extra)

    def _delta(self, req: Request, mb: Mailbox, cal: Calendar, zone: Zone) -> Response:
        """calendarView delta: keyset over the change sequence, tombstones for removals."""
        token = req.query.get("$deltatoken") or req.query.get("$skiptoken")
        if token:
            try:
                data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
                start, end = datetime.fromisoformat(data["s"]), datetime.fromisoformat(data["e"])
                since, cursor, initial = int(data["v"]), int(data["c"]), bool(data["i"])
                if data["m"] != mb.id:
                    raise ValueError("token for another mailbox")
            except (ValueError, KeyError, TypeError) as exc:
                raise GraphError(400, "ErrorInvalidUrlQuery", "The sync state is invalid.") from exc
        else:
            start, end = self._window(req)
            since, cursor, initial = 0, 0, True
        size = prefer_page_size(req.headers.get("prefer")) or _EVENT_PAGE
        changes: list[tuple[int, str, Event | None]] = []
        for e in mb.events.values():
            if e.calendar_id != cal.id or e.seq <= cursor:
                continue
            if series.is_master(e):
                # a changed series shows as its occurrences in the window (never the master)
                changes += [(e.seq, i.id, i) for i in series.instances(e, start, end)]
            else:
                changes.append((e.seq, e.id, e))
        if not initial:
            changes += [(seq, eid, None) for seq, eid in mb.tombstones if seq > cursor]
        changes.sort(key=lambda c: c[0])
        out: list[dict[str, Any]] = []
        last = cursor
        exhausted = True
        for seq, eid, event in changes:
            if len(out) >= size and seq != last:  # never split one change (a series' occurrences) over pages
                exhausted = False
                break
            last = seq
            if event is not None and overlaps(event.start, event.end, start, end):
                out.append(ev_ops.render_event(event, zone.tz, zone.name))
            elif not initial:
                out.append({"@odata.type": "#microsoft.graph.event", "id": eid, "@removed": {"reason": "deleted"}})
        body: dict[str, Any] = {"@odata.context": f"{self.root}/$metadata#Collection(event)", "value": out}
        state = {"m": mb.id, "s": start.isoformat(), "e": end.isoformat(), "i": initial}
        if exhausted:
            state.update(v=self.state.seq, c=self.state.seq, i=False)
            body["@odata.deltaLink"] = f"{self.root}/users/{mb.id}/calendarView/delta?$deltatoken={_b64(state)}"
        else:
            state.update(v=since, c=last)
            body["@odata.nextLink"] = f"{self.root}/users/{mb.id}/calendarView/delta?$skiptoken={_b64(state)}"
        return json_response(200, body, zone.headers)

    def _get_schedule(self, caller: Caller, req: Request, zone: Zone) -> Response:
        body = req.json()
        if not isinstance(body, dict):
            raise GraphError(400, "ErrorInvalidRequest", "The request body is required.")
        schedules = body.get("schedules")
        if not isinstance(schedules, list) or not schedules or not all(isinstance(s, str) for s in schedules):
            raise GraphError(400, "ErrorInvalidParameter", "The 'schedules' parameter must list SMTP addresses.")
        if len(schedules) > 20:
            raise GraphError(
                400, "ErrorInvalidParameter", "The number of schedules requested exceeds the maximum of 20."
            )
        try:
            start = parse_dttz(body.get("startTime"))
            end = parse_dttz(body.get("endTime"))
        except BadTime as exc:
            raise GraphError(400, "ErrorInvalidParameter", str(exc)) from exc
        interval = body.get("availabilityViewInterval", 30)
        if not isinstance(interval, int) or not 5 <= interval <= 1440:
            raise GraphError(
                400, "ErrorInvalidParameter", "availabilityViewInterval must be between 5 and 1440 minutes."
            )
        if end <= start:
            raise GraphError(400, "ErrorInvalidParameter", "The end time must be after the start time.")
        if end - start >= timedelta(days=62):
            raise GraphError(400, "ErrorInvalidParameter", "The requested time window must be shorter than 62 days.")
        out = []
        for address in schedules:
            target = caller.tenant.find(address)
            if target is None:
                out.append(
                    {
                        "scheduleId": address,
                        "error": {
                            "message": f"Unable to resolve e-mail address {address} to an Active Directory object.",
                            "responseCode": "5009",
                        },
                    }
                )
            elif not target.has_free_busy:
                out.append(
                    {
                        "scheduleId": address,
                        "error": {"message": _UNREACHABLE_MSG, "responseCode": "MailboxNotEnabledForRESTAPI"},
                    }
                )
            elif target.kind == "outsideScope" and caller.app_only:
                out.append(
                    {
                        "scheduleId": address,
                        "error": {"message": "Access to OData is disabled.", "responseCode": "ErrorAccessDenied"},
                    }
                )
            else:
                out.append(ev_ops.schedule(target, address, start=start, end=end, interval=interval, zone=zone))
        return json_response(
            200,
            {"@odata.context": f"{self.root}/$metadata#Collection(microsoft.graph.scheduleInformation)", "value": out},
            zone.headers,
        )

    # -- places ----------------------------------------------------------------------
    def _places(self, caller: Caller, req: Request, rest: list[str]) -> Response:
        _method(req, "GET")
        tenant = caller.tenant
        if rest == ["microsoft.graph.room"]:
            rooms = sorted(tenant.rooms, key=lambda r: r.upn)
            return self._page_places(req, [_render_room(tenant, r) for r in rooms], "places/microsoft.graph.room")
        if rest == ["microsoft.graph.roomlist"]:
            return self._page_places(
                req, [_render_room_list(rl) for rl in tenant.room_lists], "places/microsoft.graph.roomlist"
            )
        if len(rest) == 3 and rest[1] == "microsoft.graph.roomlist" and rest[2] == "rooms":
            room_list = next((rl for rl in tenant.room_lists if rl.email.lower() == rest[0].lower()), None)
            if room_list is None:
                raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
            rooms = [r for r in (tenant.find(e) for e in room_list.room_emails) if r is not None]
            return self._page_places(
                req,
                [_render_room(tenant, r) for r in rooms],
                f"places/{room_list.email}/microsoft.graph.roomlist/rooms",
            )
        raise GraphError(400, "BadRequest", "Resource not found for the segment 'places'.")

    def _page_places(self, req: Request, items: list[dict[str, Any]], path: str) -> Response:
        top = _int_param(req.query.get("$top"), 100, 1, 100, "$top")
        offset = _decode_skip(req.query.get("$skiptoken"))
        select = req.query.get("$select")
        body: dict[str, Any] = {
            "@odata.context": f"{self.root}/$metadata#places",
            "value": [ev_ops.select(i, select, ("id", "@odata.type")) for i in items[offset : offset + top]],
        }
        if offset + top < len(items):
            body["@odata.nextLink"] = (
                f"{self.root}/{path}?{urlencode({'$top': top, '$skiptoken': _encode_skip(offset + top)})}"
            )
        return json_response(200, body)

    # -- subscriptions ---------------------------------------------------------------
    def _subscriptions(self, caller: Caller, req: Request, rest: list[str]) -> Response:
        self.state.purge_expired()
        if not rest:
            _method(req, "GET")
            return self._list_subscriptions(caller, req)
        sub = self.state.subscriptions.get(rest[0])
        if sub is None or sub.tenant_id != caller.tenant.id:
            raise GraphError(404, "ResourceNotFound", f"The object '{rest[0]}' was not found.")
        if len(rest) == 2 and rest[1] == "reauthorize":
            _method(req, "POST")
            sub.needs_reauthorization = False
            return empty(204)
        if len(rest) != 1:
            raise GraphError(400, "BadRequest", f"Resource not found for the segment '{rest[-1]}'.")
        if req.method == "GET":
            return json_response(200, self.render_subscription(sub))
        if req.method == "DELETE":
            del self.state.subscriptions[sub.id]
            return empty(204)
        if req.method == "PATCH":
            payload = req.json()
            if not isinstance(payload, dict) or "expirationDateTime" not in payload:
                raise GraphError(400, "InvalidRequest", "expirationDateTime is required.")
            sub.expiration = self._expiry(payload["expirationDateTime"])
            return json_response(200, self.render_subscription(sub))
        raise GraphError(405, "BadRequest", "The HTTP method is not allowed for this resource.")

    def _list_subscriptions(self, caller: Caller, req: Request) -> Response:
        """GET /subscriptions (api-reference/v1.0/api/subscription-list.md): this app's subscriptions in
        the caller's tenant, all of them app-only, only the signed-in user's when delegated; no
        ``clientState`` ("not returned for security purposes"); pages of ``SUBSCRIPTION_PAGE``
        with ``@odata.nextLink`` (the page size is not documented; this is the simulator's)."""
        subs = sorted(
            (
                s
                for s in self.state.subscriptions.values()
                if s.tenant_id == caller.tenant.id
                and s.app_id == caller.app_id
                and (caller.app_only or s.creator_id == caller.user_id)
            ),
            key=lambda s: s.id,
        )
        offset = _decode_skip(req.query.get("$skiptoken"))
        page = subs[offset : offset + SUBSCRIPTION_PAGE]
        body: dict[str, Any] = {
            "@odata.context": f"{self.root}/$metadata#subscriptions",
            "value": [{**self.render_subscription(s), "clientState": None} for s in page],
        }
        if offset + SUBSCRIPTION_PAGE < len(subs):
            body["@odata.nextLink"] = f"{self.root}/subscriptions?$skiptoken={_encode_skip(offset + SUBSCRIPTION_PAGE)}"
        return json_response(200, body)

    def _expiry(self, raw: Any) -> datetime:
        from datetime import UTC

        try:
            when = parse_local(str(raw), UTC)
        except BadTime as exc:
            raise GraphError(400, "InvalidRequest", str(exc)) from exc
        now = now_utc()
        limit = self.state.faults.max_subscription_minutes or self.state.config.max_subscription_minutes
        if when <= now:
            raise GraphError(400, "InvalidRequest", "Subscription expiration must be in the future.")
        if when > now + timedelta(minutes=limit):
            # Graph refuses, it does not shorten: 400 ExtensionError with this message
            # (microsoftgraph/microsoft-graph-docs-contrib#7726; the lifetime table's note: "any
            # requests to create or renew a subscription beyond the maximum value will fail").
            raise GraphError(
                400, "ExtensionError", f"Subscription expiration can only be {limit} minutes in the future."
            )
        return when

    def _create_subscription(self, caller: Caller, req: Request) -> Response:
        payload = req.json()
        if not isinstance(payload, dict):
            raise GraphError(400, "InvalidRequest", "A subscription body is required.")
        change_types = tuple(c.strip() for c in str(payload.get("changeType", "")).split(",") if c.strip())
        if not change_types or not set(change_types) <= {"created", "updated", "deleted"}:
            raise GraphError(400, "InvalidRequest", "changeType must be a combination of created, updated, deleted.")
        client_state = payload.get("clientState")
        if client_state is not None and (not isinstance(client_state, str) or len(client_state) > 128):
            raise GraphError(400, "InvalidRequest", "clientState must be a string of at most 128 characters.")
        resource = str(payload.get("resource", ""))
        match = _SUB_RESOURCE.match(resource.split("?", maxsplit=1)[0])
        if not match:
            raise GraphError(400, "InvalidRequest", f"Resource '{resource}' is not supported for subscriptions.")
        url = str(payload.get("notificationUrl") or "")
        lifecycle = payload.get("lifecycleNotificationUrl")
        for candidate in [url] + ([str(lifecycle)] if lifecycle else []):
            if not candidate.startswith("https://") and not (
                candidate.startswith("http://") and is_allowed_url(candidate)
            ):
                raise GraphError(400, "InvalidRequest", "The notification URL must use https.")
        with self.state.lock:
            expiration = self._expiry(payload.get("expirationDateTime"))
            ref = match.group(1) or caller.user_id or ""
            mb = self._mailbox(caller, ref)
        # the handshake happens outside the lock: the receiver may call Graph while validating
        timeout = self.state.config.validation_timeout
        for candidate in [url] + ([str(lifecycle)] if lifecycle else []):
            if not is_allowed_url(candidate) or not validate_endpoint(candidate, timeout=timeout, verify=self.verify):
                raise GraphError(
                    400,
                    "ValidationError",
                    "Subscription validation request failed. Notification endpoint must respond with "
                    "200 OK to validation request.",
                )
        sub = Subscription(
            id=str(uuid.uuid4()),
            tenant_id=caller.tenant.id,
            app_id=caller.app_id,
            resource=resource,
            mailbox_id=mb.id,
            change_types=change_types,
            notification_url=url,
            lifecycle_url=str(lifecycle) if lifecycle else None,
            client_state=client_state,
            expiration=expiration,
            creator_id=caller.user_id or caller.tenant.app_sp_id,
        )
        with self.state.lock:
            self.state.subscriptions[sub.id] = sub
        body = {"@odata.context": f"{self.root}/$metadata#subscriptions/$entity", **self.render_subscription(sub)}
        return json_response(201, body)

    def render_subscription(self, sub: Subscription) -> dict[str, Any]:
        """The Graph ``subscription`` resource."""
        return {
            "id": sub.id,
            "resource": sub.resource,
            "applicationId": sub.app_id,
            "changeType": ",".join(sub.change_types),
            "clientState": sub.client_state,
            "notificationUrl": sub.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": sub.lifecycle_url,
            "expirationDateTime": iso_z(sub.expiration),
            "creatorId": sub.creator_id,
            "includeResourceData": False,
            "latestSupportedTlsVersion": "v1_2",
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": None,
        }

    def lifecycle(self, sub: Subscription, event: str) -> bool:
        """Queue a lifecycle notification; False when the subscription has no lifecycle URL."""
        if event == "reauthorizationRequired":
            sub.needs_reauthorization = True
        if not sub.lifecycle_url:
            return False
        self.notifier.enqueue(
            sub.lifecycle_url,
            {
                "subscriptionId": sub.id,
                "subscriptionExpirationDateTime": iso_z(sub.expiration),
                "tenantId": sub.tenant_id,
                "clientState": sub.client_state,
                "lifecycleEvent": event,
            },
            "lifecycle",
        )
        return True

    # -- $batch ----------------------------------------------------------------------
    def _batch(self, req: Request, caller: Caller) -> Response:
        payload = req.json()
        parts = payload.get("requests") if isinstance(payload, dict) else None
        if not isinstance(parts, list) or not parts:
            raise GraphError(400, "BadRequest", "Invalid batch payload format.")
        if len(parts) > 20:
            raise GraphError(400, "BadRequest", "The number of requests in the batch exceeds the limit of 20.")
        ids = [str(p.get("id")) if isinstance(p, dict) else "" for p in parts]
        if "" in ids or len(set(ids)) != len(ids):
            raise GraphError(400, "BadRequest", "Batch request ids must be present and unique.")
        for part in parts:
            for dep in part.get("dependsOn") or []:
                if str(dep) not in ids:
                    raise GraphError(400, "BadRequest", f"dependsOn refers to an unknown request id '{dep}'.")
            url = str(part.get("url", ""))
            if "://" in url:
                raise GraphError(400, "BadRequest", "Batch request URLs must be relative.")
        statuses: dict[str, int] = {}
        responses = []
        for part in parts:
            pid = str(part["id"])
            failed = [str(d) for d in part.get("dependsOn") or [] if not 200 <= statuses.get(str(d), 0) < 300]
            if failed:
                statuses[pid] = 424
                responses.append(
                    {
                        "id": pid,
                        "status": 424,
                        "headers": {"Content-Type": "application/json"},
                        "body": {
                            "error": {"code": "FailedDependency", "message": f"Dependent request {failed[0]} failed."}
                        },
                    }
                )
                continue
            url = str(part.get("url", ""))
            url = url if url.startswith("/") else "/" + url
            headers = {str(k).lower(): str(v) for k, v in (part.get("headers") or {}).items()}
            headers["authorization"] = req.headers.get("authorization", "")
            body_obj = part.get("body")
            body = json.dumps(body_obj).encode() if body_obj is not None else b""
            sub_req = Request.from_target(str(part.get("method", "GET")), "/v1.0" + url, headers, body)
            resp, tid = self.handle(sub_req, in_batch=True)
            self.state.log_request(sub_req.method, sub_req.path, resp.status, tid, batch=True)
            statuses[pid] = resp.status
            out_headers = {k: v for k, v in resp.headers.items() if k.lower() != "content-length"}
            entry: dict[str, Any] = {"id": pid, "status": resp.status, "headers": out_headers}
            if resp.json_body is not None:
                entry["body"] = resp.json_body
            responses.append(entry)
        return json_response(200, {"responses": responses})


# -- renderers & small helpers -------------------------------------------------------
def _method(req: Request, expected: str) -> None:
    if req.method != expected:
        raise GraphError(405, "BadRequest", f"The HTTP method '{req.method}' is not allowed for this resource.")


def _int_param(raw: str | None, default: int, low: int, high: int, name: str) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise GraphError(400, "BadRequest", f"Invalid value '{raw}' for query parameter {name}.") from exc
    if not low <= value <= high:
        raise GraphError(
            400, "BadRequest", f"Invalid page size specified: '{value}'. Must be between {low} and {high} inclusive."
        )
    return value


def _encode_skip(offset: int) -> str:
    return base64.urlsafe_b64encode(f"sim-offset:{offset}".encode()).decode().rstrip("=")


def _decode_skip(token: str | None) -> int:
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        return int(raw.removeprefix("sim-offset:"))
    except ValueError as exc:
        raise GraphError(400, "BadRequest", "Invalid skip token.") from exc


def _b64(obj: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode().rstrip("=")


def _render_user(mb: Mailbox) -> dict[str, Any]:
    return {
        "id": mb.id,
        "businessPhones": [],
        "displayName": mb.display_name,
        "givenName": mb.given_name,
        "jobTitle": "Room" if mb.is_room else mb.job_title,
        "mail": mb.mail,
        "mobilePhone": None,
        "officeLocation": mb.building if mb.is_room else mb.office_location,
        "preferredLanguage": mb.preferred_language,
        "surname": mb.surname,
        "userPrincipalName": mb.upn,
        "accountEnabled": mb.account_enabled,
        "department": mb.department,
        "usageLocation": mb.usage_location,
        "userType": "Member",
        "mailNickname": mb.upn.split("@")[0],
        "onPremisesSyncEnabled": True if mb.kind == "onPremises" else None,
        "assignedLicenses": []
        if mb.kind == "unlicensed" or mb.is_room
        else [{"disabledPlans": [], "skuId": "05e9a617-0261-4cee-bb44-138d3ef5d965"}],
        "isResourceAccount": mb.is_room or None,
        "createdDateTime": "2023-01-01T00:00:00Z",
    }


def _select_user(user: dict[str, Any], select: str | None) -> dict[str, Any]:
    if not select:
        return {k: user[k] for k in _USER_DEFAULT}
    wanted = [s.strip() for s in select.split(",") if s.strip()]
    for name in wanted:
        if name not in user:
            raise GraphError(
                400, "Request_BadRequest", f"Could not find a property named '{name}' on type 'microsoft.graph.user'."
            )
    return {k: user[k] for k in ["id", *wanted] if k in user}


def _mailbox_settings(mb: Mailbox) -> dict[str, Any]:
    return {
        "archiveFolder": "AQMkAGArchive",
        "timeZone": mb.time_zone,
        "delegateMeetingMessageDeliveryOptions": "sendToDelegateAndInformationToPrincipal",
        "dateFormat": "M/d/yyyy",
        "timeFormat": "h:mm tt",
        "userPurpose": "user",
        "automaticRepliesSetting": {
            "status": "disabled",
            "externalAudience": "all",
            "internalReplyMessage": "",
            "externalReplyMessage": "",
            "scheduledStartDateTime": {"dateTime": "2024-01-01T00:00:00.0000000", "timeZone": "UTC"},
            "scheduledEndDateTime": {"dateTime": "2024-01-02T00:00:00.0000000", "timeZone": "UTC"},
        },
        "language": {"locale": mb.preferred_language or "en-US", "displayName": "English (United States)"},
        "workingHours": json.loads(json.dumps(mb.working_hours)),
    }


def _render_calendar(mb: Mailbox, cal: Calendar) -> dict[str, Any]:
    return {
        "id": cal.id,
        "name": cal.name,
        "color": cal.color,
        "hexColor": "",
        "isDefaultCalendar": cal.is_default,
        "changeKey": base64.b64encode(cal.id[-12:].encode()).decode(),
        "canShare": True,
        "canViewPrivateItems": True,
        "canEdit": True,
        "allowedOnlineMeetingProviders": list(mb.allowed_providers),
        "defaultOnlineMeetingProvider": mb.default_provider,
        "isTallyingResponses": True,
        "isRemovable": not cal.is_default,
        "owner": {"name": mb.display_name, "address": mb.upn},
    }


def _address(city: str) -> dict[str, Any]:
    country = {"Seattle": "US", "London": "GB", "Dublin": "IE"}.get(city, "US")
    return {"street": "1 Example Way", "city": city, "state": "", "countryOrRegion": country, "postalCode": "00000"}


def _render_room(tenant: Tenant, room: Mailbox) -> dict[str, Any]:
    city = next((rl.city for rl in tenant.room_lists if rl.email == room.room_list_email), "Seattle")
    return {
        "@odata.type": "#microsoft.graph.room",
        "id": room.place_id,
        "emailAddress": room.upn,
        "displayName": room.display_name,
        "address": _address(city),
        "geoCoordinates": None,
        "phone": None,
        "nickname": room.display_name.split(" (")[0],
        "label": None,
        "capacity": room.capacity,
        "building": room.building,
        "floorLabel": None,
        "floorNumber": room.floor,
        "isWheelChairAccessible": False,
        "bookingType": "standard",
        "tags": [],
        "audioDeviceName": None,
        "videoDeviceName": None,
        "displayDeviceName": None,
    }


def _render_room_list(rl: Any) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.roomList",
        "id": rl.id,
        "displayName": rl.display_name,
        "address": _address(rl.city),
        "geoCoordinates": None,
        "phone": None,
        "emailAddress": rl.email,
    }
