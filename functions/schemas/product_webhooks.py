"""Webhook endpoints of the product (``/api/webhooks/endpoints``) and the payloads they receive.

Routes validate with the request models; the payload models (``*Webhook``) are only
published, as OpenAPI 3.1 ``webhooks`` (functions/openapi.py), and describe exactly what
``core/domain/product_events.py`` sends.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from functions.schemas.common import IsoDateTime, PathParams, Query, Reply, RequestBody

EndpointId = Annotated[str, StringConstraints(pattern=r"^ep_[0-9A-HJKMNP-TV-Z]{26}$")]
DeliveryId = Annotated[str, StringConstraints(pattern=r"^dlv_[0-9A-HJKMNP-TV-Z]{26}$")]
EventName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
WebhookUrl = Annotated[
    str,
    StringConstraints(min_length=8, max_length=4096),
    Field(description="https URL that receives the events (public addresses only; at most 2048 characters)."),
]
Description = Annotated[
    str,
    StringConstraints(max_length=4096),
    Field(description="Free text for the admins, at most 500 characters (422 description_too_long)."),
]
EventTypeName = Literal[
    "session.booked", "session.failed", "session.rescheduled", "session.cancelled", "session.response_changed",
    "series.booked", "series.failed", "series.rescheduled", "series.cancelled",
    "integration.status_changed", "connection.needs_reconnect", "access_test.completed",
    "availability_rules.changed", "ping",
]
Response = Literal["none", "organizer", "tentativelyAccepted", "accepted", "declined", "notResponded"]


class EndpointPath(PathParams):
    endpointId: EndpointId


class DeliveryPath(PathParams):
    endpointId: EndpointId
    deliveryId: DeliveryId


class CreateEndpointBody(RequestBody):
    """POST /api/webhooks/endpoints."""

    url: WebhookUrl
    events: list[EventName] | None = Field(
        default=None, max_length=20,
        description="Event types to receive; absent or empty: every type (422 unknown_event_type otherwise).",
    )
    description: Description | None = None
    enabled: bool = True


class UpdateEndpointBody(RequestBody):
    """PATCH /api/webhooks/endpoints/{endpointId}: only the fields given change (description null clears it)."""

    url: WebhookUrl | None = None
    events: list[EventName] | None = Field(default=None, max_length=20)
    description: Description | None = None
    enabled: bool | None = None


class ReplaySinceBody(RequestBody):
    """POST /api/webhooks/endpoints/{endpointId}/replay: every event since this time (at most 30 days ago)."""

    since: IsoDateTime


class DeliveriesQuery(Query):
    limit: int = Field(default=25, ge=1, le=100)
    before: DeliveryId | None = Field(default=None, description="The `next` cursor of the previous page.")


class EndpointView(Reply):
    """A webhook endpoint (never its secret)."""

    id: str
    url: str
    events: list[str] = Field(description="The types it receives; empty means every type.")
    description: str | None = None
    enabled: bool
    disabled_reason: Literal["by_request", "gone", "failing"] | None = None
    disabled_at: datetime | None = None
    failing_since: datetime | None = Field(default=None, description="Failing without a success since then.")
    last_success_at: datetime | None = None
    previous_secret_valid_until: datetime | None = Field(
        default=None, description="After a rotation, the old secret also signs until then.")
    created_at: datetime
    updated_at: datetime


class EndpointCreated(EndpointView):
    """201: the endpoint and its signing secret, shown only this once."""

    secret: str = Field(description="whsec_<base64>: verify signatures with it (Standard Webhooks).")


class SecretRotated(Reply):
    """The new secret (shown once); the old one keeps signing until ``previousSecretValidUntil``."""

    id: str
    secret: str
    previous_secret_valid_until: datetime


class EventQueued(Reply):
    """202: a ping or replay is queued; watch the delivery log."""

    event_id: str


class ReplayQueued(Reply):
    """202: the events since ``since`` are being queued to the endpoint."""

    since: datetime


class DeliveryView(Reply):
    """One delivery attempt (no payload, no secret)."""

    id: str
    at: datetime
    event_id: str
    type: str
    attempt: int
    outcome: Literal["delivered", "failed", "gave_up", "gone"]
    status_code: int | None = None
    latency_ms: int | None = None
    error: str | None = None


class DeliveryPage(Reply):
    """Newest first; pass ``next`` as ``before`` for the following page."""

    deliveries: list[DeliveryView]
    next: str | None = None


# --- payloads (published as OpenAPI webhooks) --------------------------------------------------------


class AttendeeResponse(Reply):
    user: str = Field(description="Entra object id, or the email address of a guest.")
    email: str | None = Field(default=None, description="The attendee's email address.")
    type: Literal["required", "optional"] = "required"
    guest: bool | None = Field(default=None, description="True for someone from outside the tenant (invited only; "
                                                         "their calendar is never read).")
    host: bool | None = Field(default=None, description="True for the host the service chose among candidates.")
    response: Response


class ResponseChange(Reply):
    """One answer that changed (session.response_changed): an attendee's (``user``) or the room's (``room``)."""

    user: str | None = None
    room: str | None = None
    email: str
    response: Response
    previous: Response


class Assigned(Reply):
    """What the service chose for a session booked with any-of rooms or hosts, and why."""

    room: str | None = None
    host: str | None = Field(default=None, description="The chosen host's Entra object id.")
    reason: str | None = None


class RoomResponse(Reply):
    email: str
    response: Response


class SessionEventData(Reply):
    session_id: str
    series_id: str | None = None
    tenant_id: str
    organizer: str = Field(description="The organizer's Entra object id.")
    start: datetime
    end: datetime
    time_zone: str
    status: Literal["pending", "booked", "cancelled", "failed"]
    source: Literal["platform", "outlook"]
    version: int = Field(description="Increases with every change of this session: discard what is not newer.")
    attendees: list[AttendeeResponse]
    room: RoomResponse | None = None
    pairing_id: str | None = None
    assigned: Assigned | None = None
    changes: list[ResponseChange] | None = Field(default=None, description="Only on session.response_changed: "
                                                                           "whose answer changed.")
    failure_reason: str | None = Field(default=None, description="Only on session.failed.")
    original_start: datetime | None = Field(default=None, description="An occurrence of a series: where its "
                                            "pattern put it (it identifies the occurrence after a move).")
    series_note: str | None = Field(default=None, description="An occurrence: skipped_clash, or "
                                    "exceptions_reset_by_pattern_change.")


class SeriesEventData(Reply):
    series_id: str
    tenant_id: str
    organizer: str = Field(description="The organizer's Entra object id.")
    start: datetime = Field(description="The first occurrence of the current rule.")
    end: datetime
    time_zone: str
    recurrence: dict[str, Any] = Field(description="Graph patternedRecurrence of the current Outlook series.")
    status: Literal["pending", "booked", "cancelled", "failed"]
    source: Literal["platform", "outlook"]
    version: int = Field(description="Increases with every change of this series: discard what is not newer.")
    attendees: list[AttendeeResponse] = Field(description="Answers to the whole series.")
    room: RoomResponse | None = None
    pairing_id: str | None = None
    failure_reason: str | None = Field(default=None, description="Only on series.failed.")
    series_note: str | None = None
    skipped: list[datetime] | None = Field(default=None, description="Occurrences booked cancelled (skipClashing).")
    cancelled_from: date | None = Field(default=None, description="Cancelled from this date on (series zone).")
    scope: Literal["all", "from"] | None = Field(default=None, description="series.cancelled: the whole series, "
                                                 "or from cancelledFrom on.")


class IntegrationStatusData(Reply):
    tenant_id: str
    status: Literal["not_configured", "consent_pending", "testing", "connected", "degraded", "failed",
                    "disconnected"]
    previous_status: str
    method: Literal["domainWide", "perUser", "serviceAccount"]
    enabled: bool
    reason: str | None = None


class ReconnectData(Reply):
    tenant_id: str
    user_id: str
    connection: Literal["user", "serviceAccount"]
    reason: str = Field(description="Why (an AADSTS number or OAuth error code).")


class AccessTestData(Reply):
    tenant_id: str
    test_id: str
    status: Literal["completed", "failed"]
    sampled: int
    accessible: int
    inaccessible: int
    by_reason: dict[str, int]
    finished_at: datetime | None = None
    error_code: str | None = None


class AvailabilityRulesData(Reply):
    tenant_id: str
    scope: Literal["user", "default"] = Field(description="A user's own offered hours, or the tenant default.")
    user_id: str | None = Field(default=None, description="Whose (scope user): an object id.")
    change: Literal["updated", "deleted"]
    updated_at: datetime = Field(description="When; discard an event older than one you already applied.")
    changed_by: str | None = Field(default=None, description="Who made the change (an object id).")
    app: str | None = Field(default=None, description="The app that acted for them (client id), if any.")


class PingData(Reply):
    tenant_id: str
    endpoint_id: str


class _Payload(Reply):
    timestamp: datetime = Field(description="When the change happened (UTC).")


class SessionWebhook(_Payload):
    """Body of session.* deliveries. Headers: webhook-id (same for retries and replays), webhook-timestamp,
    webhook-signature (Standard Webhooks)."""

    type: Literal["session.booked", "session.failed", "session.rescheduled", "session.cancelled",
                  "session.response_changed"]
    data: SessionEventData


class SeriesWebhook(_Payload):
    """Body of series.* deliveries; each occurrence's own changes arrive as session.* with seriesId."""

    type: Literal["series.booked", "series.failed", "series.rescheduled", "series.cancelled"]
    data: SeriesEventData


class IntegrationStatusWebhook(_Payload):
    type: Literal["integration.status_changed"]
    data: IntegrationStatusData


class ReconnectWebhook(_Payload):
    type: Literal["connection.needs_reconnect"]
    data: ReconnectData


class AccessTestWebhook(_Payload):
    type: Literal["access_test.completed"]
    data: AccessTestData


class AvailabilityRulesWebhook(_Payload):
    """Offered hours changed: ask for availability again (or read the rules); the rules are not in the event."""

    type: Literal["availability_rules.changed"]
    data: AvailabilityRulesData


class PingWebhook(_Payload):
    type: Literal["ping"]
    data: PingData


# (event types, payload model, summary) for the OpenAPI ``webhooks`` section.
WEBHOOKS: tuple[tuple[tuple[str, ...], type[Reply], str], ...] = (
    (("session.booked", "session.failed", "session.rescheduled", "session.cancelled", "session.response_changed"),
     SessionWebhook, "A session changed (booked, failed, moved, cancelled, or an RSVP)"),
    (("series.booked", "series.failed", "series.rescheduled", "series.cancelled"),
     SeriesWebhook, "A series changed (booked, failed, new times or rule, cancelled)"),
    (("integration.status_changed",), IntegrationStatusWebhook, "The organisation's integration status changed"),
    (("connection.needs_reconnect",), ReconnectWebhook, "A delegated calendar connection must be renewed"),
    (("access_test.completed",), AccessTestWebhook, "An access test finished"),
    (("availability_rules.changed",), AvailabilityRulesWebhook, "A user's offered hours (or the default) changed"),
    (("ping",), PingWebhook, "A test event, sent on request"),
)
