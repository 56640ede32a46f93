"""Events to the product: what changed, derived from (previous, current) state; pure rules only.

The scheduling product hears about every change through signed webhooks (Standard
Webhooks). This module decides *which* events a saved change produces and what they
carry; it performs no I/O. The repositories that own the state call it and write the
events into a transactional outbox with the state row (core/services/stores/outbox.py);
the dispatcher and the delivery worker (core/services/product_events/) do the rest.

Events carry ids and metadata only (never subject, body, location or other event
content). Session events carry the session's state after the change plus ``version``,
the session's event version, which increases with every saved change: a receiver keeps
the highest version it has applied per session and discards anything lower or equal
(stale or repeated). One save may produce several session events (an Outlook move that
also carries a new RSVP gives ``session.rescheduled`` then ``session.response_changed``);
they get consecutive versions in that order.

    session.booked             the event exists in Outlook (pending -> booked, or back to booked)
    session.failed             the last attempt to write a booking, move or cancellation failed
    session.rescheduled        start/end changed (a platform reschedule applied, or moved in Outlook)
    session.cancelled          cancelled (through the API or in Outlook)
    session.response_changed   an attendee's or the room's RSVP changed (always observed in Outlook);
                               ``changes`` names each attendee (and the room) whose answer changed
    series.booked              a series' Outlook master exists and its occurrences are tracked
    series.failed              writing a series (or a change of it) failed for good
    series.rescheduled         a series' rule or times changed (through the API, or edited in Outlook)
    series.cancelled           a series was cancelled: ``scope`` ``all``, or ``from`` a date on
    integration.status_changed the tenant's integration status changed
    connection.needs_reconnect a user's (or the scheduling mailbox's) delegated connection died
    access_test.completed      an access test finished (completed or failed)
    availability_rules.changed a user's offered hours (or the tenant default) were set or removed
    ping                       sent on request to one endpoint, to test it

Also here: the endpoint limits and URL rules that need no network (the address check
against private ranges is ``blocked_address``; resolving the host is the adapter's job),
the retry schedule, and the id formats.
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final
from urllib.parse import urlsplit

from core.domain.access_test import AccessTestReport, RunStatus
from core.domain.calendar import ResponseType
from core.domain.errors import ValidationFailed
from core.domain.integration import Integration
from core.domain.recurrence import to_graph as recurrence_to_graph
from core.domain.series import Series, SeriesOp, SeriesStatus
from core.domain.sessions import AttendeeState, Session, SessionStatus


class EventType(StrEnum):
    SESSION_BOOKED = "session.booked"
    SESSION_FAILED = "session.failed"
    SESSION_RESCHEDULED = "session.rescheduled"
    SESSION_CANCELLED = "session.cancelled"
    SESSION_RESPONSE_CHANGED = "session.response_changed"
    SERIES_BOOKED = "series.booked"
    SERIES_FAILED = "series.failed"
    SERIES_RESCHEDULED = "series.rescheduled"
    SERIES_CANCELLED = "series.cancelled"
    INTEGRATION_STATUS_CHANGED = "integration.status_changed"
    CONNECTION_NEEDS_RECONNECT = "connection.needs_reconnect"
    ACCESS_TEST_COMPLETED = "access_test.completed"
    AVAILABILITY_RULES_CHANGED = "availability_rules.changed"
    PING = "ping"


# What an endpoint may subscribe to (``ping`` is only ever sent on request, to the endpoint asked).
SUBSCRIBABLE: Final = tuple(t for t in EventType if t is not EventType.PING)
SESSION_TYPES: Final = frozenset(t for t in EventType if t.value.startswith("session."))
SERIES_TYPES: Final = frozenset(t for t in EventType if t.value.startswith("series."))

# --- limits (documented in docs/product-integration.md; 422 with the code named here) ---------
MAX_ENDPOINTS_PER_TENANT: Final = 20  # too_many_endpoints
MAX_DESCRIPTION_CHARS: Final = 500  # description_too_long
MAX_URL_CHARS: Final = 2048  # url_too_long
MAX_EVENT_FILTER: Final = len(SUBSCRIBABLE)

# --- retries (docs/product-integration.md "Retries") -------------------------------------------
RETRY_BASE: Final = timedelta(seconds=5)
RETRY_FACTOR: Final = 3
RETRY_CAP: Final = timedelta(hours=3)
RETRY_FOR: Final = timedelta(hours=24)  # keep retrying a delivery at least this long
DISABLE_AFTER: Final = timedelta(hours=24)  # an endpoint failing this long (no success) is disabled
JITTER: Final = 0.2  # +/- 20 % on every delay
SECRET_OVERLAP: Final = timedelta(hours=24)  # a rotated-out secret still signs this long
EVENT_RETENTION: Final = timedelta(days=30)  # event log (replay) and delivery log
MAX_DELAY_PER_HOP: Final = timedelta(days=7)  # the queue's longest visibility delay


def retry_delay(attempts: int, jitter: float) -> timedelta:
    """How long to wait after the ``attempts``-th failed attempt (1-based): 5 s, 15 s, 45 s,
    2.25 min, 6.75 min, 20 min, 1 h, then every 3 h, each +/- 20 % (``jitter`` in [0, 1)
    picks where in that band)."""
    if attempts < 1:
        return timedelta(0)
    base = min(RETRY_BASE.total_seconds() * RETRY_FACTOR ** min(attempts - 1, 20), RETRY_CAP.total_seconds())
    spread = 1 + JITTER * (2 * min(max(jitter, 0.0), 1.0) - 1)
    return timedelta(seconds=base * spread)


def gives_up(first_attempt_at: datetime, now: datetime) -> bool:
    """After a failed attempt: is this delivery out of retries (failing for at least ``RETRY_FOR``)?"""
    return now - first_attempt_at >= RETRY_FOR


# --- ids ------------------------------------------------------------------------------------------
_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid(at: datetime, entropy: bytes) -> str:
    """A ULID (26 Crockford base32 characters, time-ordered) for ``at`` and 10 bytes of ``entropy``."""
    if len(entropy) != 10:
        raise ValueError("a ULID needs 10 bytes of entropy")
    millis = max(0, int(at.timestamp() * 1000))
    value = (millis << 80) | int.from_bytes(entropy, "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def ulid_time(text: str) -> datetime:
    """The time a ULID was made for (``ValueError`` when ``text`` is not one)."""
    if len(text) != 26 or any(c not in _CROCKFORD for c in text) or text[0] > "7":
        raise ValueError("not a ULID")
    value = 0
    for c in text:
        value = value * 32 + _CROCKFORD.index(c)
    return datetime.fromtimestamp((value >> 80) / 1000, UTC)


EVENT_ID_PREFIX: Final = "evt_"
ENDPOINT_ID_PREFIX: Final = "ep_"
DELIVERY_ID_PREFIX: Final = "dlv_"


def parse_prefixed_ulid(value: str, prefix: str) -> str | None:
    """The ULID of ``<prefix><ULID>``, or None when ``value`` is not such an id."""
    if not value.startswith(prefix):
        return None
    body = value[len(prefix):]
    try:
        ulid_time(body)
    except ValueError:
        return None
    return body


# --- events ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProductEvent:
    """One event to the product. ``stream`` and ``seq`` order deliveries: the events of one
    session are one stream ordered by ``seq`` (the session's event version); other events
    are each their own stream."""

    event_id: str
    type: EventType
    tenant_id: str
    occurred_at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)
    stream: str = ""
    seq: int = 0

    @property
    def ordering_stream(self) -> str:
        return self.stream or f"e:{self.event_id}"

    def payload(self) -> dict[str, Any]:
        """The body a receiver gets: ``{type, timestamp, data}`` (Standard Webhooks' payload shape)."""
        return {"type": self.type.value, "timestamp": iso_z(self.occurred_at), "data": dict(self.data)}

    def body(self) -> str:
        """The exact JSON text that is signed and sent (compact, stable key order)."""
        return json.dumps(self.payload(), separators=(",", ":"), ensure_ascii=False)


def iso_z(value: datetime) -> str:
    """UTC with ``Z`` and millisecond precision at most."""
    text = value.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class EventDraft:
    """An event before it has an id and time: what a state change produced."""

    type: EventType
    data: Mapping[str, Any]
    stream: str = ""
    seq: int = 0


def session_stream(session_id: str) -> str:
    return f"s:{session_id}"


def session_data(s: Session, version: int) -> dict[str, Any]:
    """A session's metadata as events carry it (the shape of GET /api/sessions/{id}, minus the join URL)."""
    data: dict[str, Any] = {
        "sessionId": s.session_id,
        "tenantId": s.tenant_id,
        "organizer": s.organizer_id,
        "start": iso_z(s.start),
        "end": iso_z(s.end),
        "timeZone": s.time_zone,
        "status": s.status.value,
        "source": s.source.value,
        "version": version,
        "attendees": [_attendee_data(a) for a in s.attendees],
    }
    if s.series_id:  # occurrences of a series (API 1.1) carry it
        data["seriesId"] = s.series_id
        if s.original_start is not None:
            data["originalStart"] = iso_z(s.original_start)
        if s.series_note:
            data["seriesNote"] = s.series_note
    if s.room is not None:
        data["room"] = {"email": s.room.address, "response": s.room.response.value}
    if s.pairing_id:
        data["pairingId"] = s.pairing_id
    if s.any_of is not None:
        host = s.host
        data["assigned"] = {k: v for k, v in (("room", s.room.address if s.room else None),
                                              ("host", host.user_id if host else None),
                                              ("reason", s.any_of.reason)) if v}
    if s.status is SessionStatus.FAILED and s.failure_reason:
        data["failureReason"] = s.failure_reason
    return data


def _attendee_data(a: AttendeeState) -> dict[str, Any]:
    """One attendee as events carry it: ``user`` (object id; a guest's address), ``email``, ``type``,
    ``response``; ``guest``/``host`` only when true."""
    out: dict[str, Any] = {"user": a.user_id or a.address, "email": a.address, "type": a.type.value,
                           "response": a.response.value}
    if a.guest:
        out["guest"] = True
    if a.host:
        out["host"] = True
    return out


def _answer(response: ResponseType) -> ResponseType:
    """``none`` (the organizer's copy before any answer) and ``notResponded`` both mean "no answer yet"."""
    return ResponseType.NOT_RESPONDED if response is ResponseType.NONE else response


def response_changes(previous: Session, current: Session) -> list[dict[str, Any]]:
    """The attendees (and the room) whose answer differs between two states of a session."""
    before = {a.address.lower(): a.response for a in previous.attendees}
    out = [{"user": a.user_id or a.address, "email": a.address, "response": a.response.value,
            "previous": before[a.address.lower()].value}
           for a in current.attendees
           if a.address.lower() in before and _answer(before[a.address.lower()]) != _answer(a.response)]
    if previous.room is not None and current.room is not None \
            and _answer(previous.room.response) != _answer(current.room.response) \
            and previous.room.address.lower() == current.room.address.lower():
        out.append({"room": current.room.address, "email": current.room.address,
                    "response": current.room.response.value, "previous": previous.room.response.value})
    return out


def session_event_types(previous: Session | None, current: Session) -> list[EventType]:
    """The session events one saved change produces, in delivery order (module docstring).

    Requested changes produce nothing until they are applied: a reschedule or cancel
    waiting for the worker (``pending_op``) is not yet true in Outlook.
    """
    prev_status = previous.status if previous is not None else None
    status = current.status
    out: list[EventType] = []
    if status is SessionStatus.BOOKED and prev_status is not SessionStatus.BOOKED:
        out.append(EventType.SESSION_BOOKED)
    elif status is SessionStatus.FAILED and prev_status is not SessionStatus.FAILED:
        out.append(EventType.SESSION_FAILED)
    elif status is SessionStatus.CANCELLED and prev_status is not SessionStatus.CANCELLED:
        out.append(EventType.SESSION_CANCELLED)
    if previous is None or status is not SessionStatus.BOOKED or prev_status is not SessionStatus.BOOKED:
        return out  # booked/failed/cancelled carry the full state; moves and RSVPs matter while booked
    if current.pending_op is None and (
        (previous.pending_op is not None and previous.pending_op.value == "reschedule")
        or (previous.pending_op is None and (previous.start, previous.end) != (current.start, current.end))
    ):
        out.append(EventType.SESSION_RESCHEDULED)
    if _responses(previous) != _responses(current):
        out.append(EventType.SESSION_RESPONSE_CHANGED)
    return out


def _responses(s: Session) -> tuple[tuple[str, str], ...]:
    answers = tuple((a.address.lower(), _answer(a.response).value) for a in s.attendees)
    room = ((s.room.address.lower(), _answer(s.room.response).value),) if s.room is not None else ()
    return answers + room


def session_drafts(previous: Session | None, current: Session, first_version: int) -> list[EventDraft]:
    """The drafts of ``session_event_types``, versions ``first_version``, ``first_version + 1``...

    ``session.response_changed`` always has source ``outlook`` (answers are only given there).
    """
    drafts: list[EventDraft] = []
    for offset, kind in enumerate(session_event_types(previous, current)):
        version = first_version + offset
        data = session_data(current, version)
        if kind is EventType.SESSION_RESPONSE_CHANGED:
            data["source"] = "outlook"
            if previous is not None:
                data["changes"] = response_changes(previous, current)
        drafts.append(EventDraft(kind, data, session_stream(current.session_id), version))
    return drafts


def series_stream(series_id: str) -> str:
    return f"r:{series_id}"


def series_data(s: Series, version: int) -> dict[str, Any]:
    """A series' metadata as events carry it (the shape of GET /api/series/{id} without the occurrences)."""
    current = s.current
    data: dict[str, Any] = {
        "seriesId": s.series_id,
        "tenantId": s.tenant_id,
        "organizer": s.organizer_id,
        "start": iso_z(current.start),
        "end": iso_z(current.end),
        "timeZone": current.time_zone,
        "recurrence": recurrence_to_graph(current.recurrence),
        "status": s.status.value,
        "source": s.source.value,
        "version": version,
        "attendees": [{"user": a.user_id or a.address, "response": a.response.value} for a in s.attendees],
    }
    if s.room is not None:
        data["room"] = {"email": s.room.address, "response": s.room.response.value}
    if s.pairing_id:
        data["pairingId"] = s.pairing_id
    if s.status is SeriesStatus.FAILED and s.failure_reason:
        data["failureReason"] = s.failure_reason
    if s.note:
        data["seriesNote"] = s.note
    if s.skipped:
        data["skipped"] = [iso_z(moment) for moment in s.skipped]
    if s.cancel_from is not None and s.pending_op is None:
        data["cancelledFrom"] = s.cancel_from.isoformat()
    return data


def series_event_types(previous: Series | None, current: Series) -> list[EventType]:
    """The series events one saved change produces (requested changes produce nothing until applied)."""
    prev_status = previous.status if previous is not None else None
    status = current.status
    if status is SeriesStatus.BOOKED and prev_status is not SeriesStatus.BOOKED:
        return [EventType.SERIES_BOOKED]
    if status is SeriesStatus.FAILED and prev_status is not SeriesStatus.FAILED:
        return [EventType.SERIES_FAILED]
    if status is SeriesStatus.CANCELLED and prev_status is not SeriesStatus.CANCELLED:
        return [EventType.SERIES_CANCELLED]
    if previous is None or status is not SeriesStatus.BOOKED or current.pending_op is not None:
        return []
    if previous.pending_op is SeriesOp.CANCEL or (current.cancel_from != previous.cancel_from
                                                  and current.cancel_from is not None):
        return [EventType.SERIES_CANCELLED]  # cancelled from a date on: the series runs until then
    rules = [(g.recurrence, g.start, g.end) for g in current.segments]
    if previous.pending_op is SeriesOp.RESCHEDULE or rules != [(g.recurrence, g.start, g.end)
                                                                 for g in previous.segments]:
        return [EventType.SERIES_RESCHEDULED]
    return []


def series_drafts(previous: Series | None, current: Series, first_version: int) -> list[EventDraft]:
    """The drafts of ``series_event_types``; ``series.cancelled`` says its ``scope`` (``all`` or ``from``)."""
    drafts: list[EventDraft] = []
    for offset, kind in enumerate(series_event_types(previous, current)):
        version = first_version + offset
        data = series_data(current, version)
        if kind is EventType.SERIES_CANCELLED:
            data["scope"] = "all" if current.status is SeriesStatus.CANCELLED else "from"
        drafts.append(EventDraft(kind, data, series_stream(current.series_id), version))
    return drafts


def integration_drafts(previous: Integration | None, current: Integration) -> list[EventDraft]:
    """``integration.status_changed`` when the status moved (a first save counts from ``not_configured``)."""
    before = previous.status.value if previous is not None else "not_configured"
    if before == current.status.value:
        return []
    data: dict[str, Any] = {
        "tenantId": current.tenant_id,
        "status": current.status.value,
        "previousStatus": before,
        "method": current.method.value,
        "enabled": current.enabled,
    }
    if current.status_reason:
        data["reason"] = current.status_reason
    return [EventDraft(EventType.INTEGRATION_STATUS_CHANGED, data)]


def reconnect_draft(tenant_id: str, user_id: str, purpose: str, reason: str) -> EventDraft:
    """``connection.needs_reconnect``: whose connection died (object id), which kind, the AADSTS reason."""
    return EventDraft(
        EventType.CONNECTION_NEEDS_RECONNECT,
        {"tenantId": tenant_id, "userId": user_id, "connection": purpose, "reason": reason},
    )


def access_test_drafts(previous: AccessTestReport | None, current: AccessTestReport) -> list[EventDraft]:
    """``access_test.completed`` when a report becomes finished (completed or failed)."""
    was_finished = previous is not None and previous.status is not RunStatus.RUNNING
    if current.status is RunStatus.RUNNING or was_finished:
        return []
    data: dict[str, Any] = {
        "tenantId": current.tenant_id,
        "testId": current.test_id,
        "status": current.status.value,
        "sampled": current.sampled,
        "accessible": current.accessible,
        "inaccessible": current.inaccessible,
        "byReason": {reason.value: count for reason, count in sorted(current.by_reason.items())},
    }
    if current.finished_at is not None:
        data["finishedAt"] = iso_z(current.finished_at)
    if current.error_code:
        data["errorCode"] = current.error_code
    return [EventDraft(EventType.ACCESS_TEST_COMPLETED, data)]


def rules_stream(user_id: str | None) -> str:
    """One stream per rules row: a user's changes reach the product in the order they were made."""
    return f"r:{user_id or 'default'}"


def rules_draft(tenant_id: str, user_id: str | None, *, deleted: bool, at: datetime, by: str | None,
                app: str | None) -> EventDraft:
    """``availability_rules.changed``: whose offered hours (a user's, or the tenant default) were set or
    removed, when, by whom (an object id) and through which app. Not the rules themselves: the product
    reads them (``GET /api/users/{user}/availability-rules``) or just asks for availability again."""
    data: dict[str, Any] = {
        "tenantId": tenant_id,
        "scope": "default" if user_id is None else "user",
        "change": "deleted" if deleted else "updated",
        "updatedAt": iso_z(at),
    }
    if user_id is not None:
        data["userId"] = user_id
    if by:
        data["changedBy"] = by
    if app:
        data["app"] = app
    # seq: the change's second (writes to one row are ETag-serialized, so seconds only grow); the
    # deliveries of one stream then go out in that order. ``updatedAt`` orders what one second holds.
    return EventDraft(EventType.AVAILABILITY_RULES_CHANGED, data, rules_stream(user_id), int(at.timestamp()))


def ping_draft(tenant_id: str, endpoint_id: str) -> EventDraft:
    return EventDraft(EventType.PING, {"tenantId": tenant_id, "endpointId": endpoint_id})


def wants(filter_types: Sequence[str], kind: EventType) -> bool:
    """Does an endpoint with this filter receive ``kind``? An empty filter means every subscribable type."""
    if kind is EventType.PING:
        return False
    return not filter_types or kind.value in filter_types


# --- endpoint rules that need no network ------------------------------------------------------------


def check_event_filter(types: Iterable[str]) -> list[str]:
    """The filter, de-duplicated in catalogue order; 422 ``unknown_event_type`` naming the unknown ones."""
    wanted = list(types)
    known = {t.value for t in SUBSCRIBABLE}
    unknown = sorted({t for t in wanted if t not in known})
    if unknown:
        raise ValidationFailed(
            "Unknown event types: " + ", ".join(repr(t)[:60] for t in unknown[:5])
            + ". Known types: " + ", ".join(sorted(known)) + ".",
            code="unknown_event_type",
            details={"known": sorted(known)},
        )
    return [t.value for t in SUBSCRIBABLE if t.value in wanted]


def check_description(text: str | None) -> str | None:
    if text is not None and len(text) > MAX_DESCRIPTION_CHARS:
        raise ValidationFailed(
            f"The description may hold at most {MAX_DESCRIPTION_CHARS} characters.",
            code="description_too_long",
            details={"max": MAX_DESCRIPTION_CHARS},
        )
    return text


@dataclass(frozen=True, slots=True)
class UrlParts:
    scheme: str
    host: str
    port: int


def check_url_shape(url: str, *, local_mode: bool) -> UrlParts:
    """The rules a URL must meet before any DNS lookup (422 with a code):

    https only (``url_not_https``); plain http only to a loopback address and only in local
    mode; no user info (``url_has_credentials``) and no fragment; at most 2048 characters.
    """
    if len(url) > MAX_URL_CHARS:
        raise ValidationFailed(f"The URL may hold at most {MAX_URL_CHARS} characters.", code="url_too_long")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValidationFailed("The URL cannot be read.", code="url_invalid") from exc
    host = (parts.hostname or "").rstrip(".").lower()
    if parts.scheme not in ("https", "http") or not host:
        raise ValidationFailed("The URL must be an absolute https:// URL.", code="url_not_https")
    if parts.username is not None or parts.password is not None:
        raise ValidationFailed("The URL may not carry a user name or password.", code="url_has_credentials")
    if parts.fragment:
        raise ValidationFailed("The URL may not carry a #fragment.", code="url_invalid")
    if any(ch.isspace() or ord(ch) < 0x21 for ch in url):
        raise ValidationFailed("The URL may not contain spaces or control characters.", code="url_invalid")
    if parts.scheme == "http" and not (local_mode and is_loopback_host(host)):
        raise ValidationFailed(
            "The URL must use https (plain http is accepted only for a loopback address in local mode).",
            code="url_not_https",
        )
    return UrlParts(parts.scheme, host, port or (443 if parts.scheme == "https" else 80))


def is_loopback_host(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    address = _ip(host)
    return address is not None and address.is_loopback


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


_METADATA: Final = (
    ipaddress.ip_network("169.254.169.254/32"),  # Azure IMDS, AWS, GCP metadata
    ipaddress.ip_network("168.63.129.16/32"),  # Azure's wire server / platform DNS
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud metadata
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS IMDS over IPv6
)
_CGNAT: Final = ipaddress.ip_network("100.64.0.0/10")
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")
_SIX_TO_FOUR: Final = ipaddress.ip_network("2002::/16")


def blocked_address(text: str, *, local_mode: bool) -> str | None:
    """Why a resolved address may not receive webhooks, or None when it may.

    Refused: loopback (allowed in local mode only), private (RFC 1918, fc00::/7), link-local,
    CGNAT (100.64.0.0/10), multicast, unspecified, reserved, cloud metadata addresses, and the
    same hidden inside IPv4-mapped, NAT64 or 6to4 IPv6 addresses.
    """
    address = _ip(text)
    if address is None:
        return "address_invalid"
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is None and address in _SIX_TO_FOUR:
            embedded = ipaddress.IPv4Address((int(address) >> 80) & 0xFFFFFFFF)
        if embedded is not None:
            return blocked_address(str(embedded), local_mode=local_mode)
    if any(address in net for net in _METADATA if net.version == address.version):
        return "address_metadata"
    if address.is_loopback:
        return None if local_mode else "address_loopback"
    if address.is_unspecified:
        return "address_unspecified"
    if address.is_multicast:
        return "address_multicast"
    if address.is_link_local:
        return "address_link_local"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "address_cgnat"
    if address.is_private or address.is_reserved or not address.is_global:
        return "address_private"
    return None


def address_problem(code: str) -> ValidationFailed:
    """The 422 for a URL whose host resolves to a refused address (``blocked_address``'s code)."""
    words = {
        "address_loopback": "a loopback address",
        "address_private": "a private or reserved address",
        "address_link_local": "a link-local address",
        "address_cgnat": "a carrier-grade NAT address",
        "address_multicast": "a multicast address",
        "address_unspecified": "an unspecified address",
        "address_metadata": "a cloud metadata address",
        "address_invalid": "an address that cannot be used",
    }
    return ValidationFailed(
        f"The URL's host resolves to {words.get(code, 'an address that cannot be used')}; webhooks go to "
        "public addresses only.",
        code="url_address_not_allowed",
        details={"reason": code},
    )


def delay_seconds(until: datetime, now: datetime) -> float:
    """Seconds from ``now`` to ``until`` for a delayed queue message, within the queue's 7-day limit."""
    seconds = (until - now).total_seconds()
    return float(min(max(0.0, math.ceil(seconds * 10) / 10), MAX_DELAY_PER_HOP.total_seconds()))
