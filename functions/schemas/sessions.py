"""Sessions (the caller is the organizer)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Self

from pydantic import model_validator

from functions.schemas.common import (
    Comment,
    Email,
    IsoDateTime,
    PathParams,
    Reply,
    RequestBody,
    ResourceId,
    Subject,
    TimeZoneName,
    UserRef,
)

MIN_SESSION_MINUTES = 5
MAX_SESSION_MINUTES = 480
Response = Literal["none", "organizer", "tentativelyAccepted", "accepted", "declined", "notResponded"]


def _check_length(start: datetime, end: datetime) -> None:
    minutes = (end - start).total_seconds() / 60
    if minutes < MIN_SESSION_MINUTES or minutes > MAX_SESSION_MINUTES:
        raise ValueError(
            f"a session lasts {MIN_SESSION_MINUTES} to {MAX_SESSION_MINUTES} minutes, ending after it starts"
        )


class SessionPath(PathParams):
    id: ResourceId


class CreateSessionBody(RequestBody):
    """POST /api/sessions: give ``pairingId`` or ``partner``. ``subject`` goes to Outlook and is never stored."""

    pairing_id: ResourceId | None = None
    partner: UserRef | None = None
    start: IsoDateTime
    end: IsoDateTime
    time_zone: TimeZoneName
    online_meeting: bool = True
    room: Email | None = None
    subject: Subject | None = None

    @model_validator(mode="after")
    def _rules(self) -> Self:
        if (self.pairing_id is None) == (self.partner is None):
            raise ValueError("give exactly one of pairingId or partner")
        _check_length(self.start, self.end)
        return self


class RescheduleBody(RequestBody):
    """PATCH /api/sessions/{id}."""

    start: IsoDateTime
    end: IsoDateTime
    time_zone: TimeZoneName

    @model_validator(mode="after")
    def _rules(self) -> Self:
        _check_length(self.start, self.end)
        return self


class CancelBody(RequestBody):
    """DELETE /api/sessions/{id} (body optional)."""

    comment: Comment | None = None


class SessionAccepted(Reply):
    """202 for a session write: the change is queued; poll GET /api/sessions/{id}."""

    id: str
    status: Literal["pending", "booked", "cancelled", "failed"] = "pending"


class Attendee(Reply):
    user: str
    response: Response


class RoomBooking(Reply):
    email: str
    response: Response


class Session(Reply):
    """GET /api/sessions/{id}."""

    id: str
    status: Literal["pending", "booked", "cancelled", "failed"]
    start: datetime
    end: datetime
    time_zone: str
    organizer: str
    attendees: list[Attendee]
    room: RoomBooking | None = None
    join_url: str | None = None
    source: Literal["platform", "outlook"]
    updated_at: datetime


class SessionView(Session):
    """GET /api/sessions/{id}: the contract's session plus what the SPA needs to explain its state."""

    pairing_id: str | None = None
    failure_reason: str | None = None
    pending_change: Literal["create", "reschedule", "cancel"] | None = None
    online_meeting_unavailable: bool | None = None
    # Booked into the service account's "Scheduler" calendar because it may not write the
    # organizer's own (service-account method, no delegate right).
    scheduler_fallback: bool | None = None
