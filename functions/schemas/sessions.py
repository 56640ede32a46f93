"""Sessions (the caller is the organizer)."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from functions.schemas.common import (
    Comment,
    Email,
    IsoDateTime,
    PathParams,
    Query,
    Reply,
    RequestBody,
    ResourceId,
    Subject,
    TimeZoneName,
    UserRef,
    check_window,
)
from functions.schemas.recurrence import Recurrence

MIN_SESSION_MINUTES = 5
MAX_SESSION_MINUTES = 480
Response = Literal["none", "organizer", "tentativelyAccepted", "accepted", "declined", "notResponded"]


def check_length(start: datetime, end: datetime) -> None:
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
    allow_conflicts: bool = Field(
        default=False,
        description="Book even if the organizer, the partner or the room is busy then (no 409 slot_taken, "
                    "no slot_taken failure).",
    )
    recurrence: Recurrence | None = Field(
        default=None,
        description="Book a series (API 1.1): one Outlook series from start/end (the first occurrence), in "
                    "timeZone; the reply's id is then the series id (Location /api/series/{id}).",
    )
    on_conflict: Literal["fail", "skipClashing", "bookAnyway"] | None = Field(
        default=None,
        description="A series only: occurrences someone is busy in (or outside the partner's offered hours) "
                    "refuse the series (fail, the default; 409 slot_taken with details.occurrences), become "
                    "cancelled occurrences (skipClashing) or are booked anyway (bookAnyway; allowConflicts: "
                    "true means the same). Offered hours still bind with bookAnyway (422 outside_offered_hours).",
    )

    @model_validator(mode="after")
    def _rules(self) -> Self:
        if (self.pairing_id is None) == (self.partner is None):
            raise ValueError("give exactly one of pairingId or partner")
        check_length(self.start, self.end)
        if self.on_conflict is not None and self.recurrence is None:
            raise ValueError("onConflict applies to a series: give a recurrence")
        return self


class RescheduleBody(RequestBody):
    """PATCH /api/sessions/{id}."""

    start: IsoDateTime
    end: IsoDateTime
    time_zone: TimeZoneName
    allow_conflicts: bool = Field(
        default=False, description="Move even if someone is busy at the new times (no 409 slot_taken).",
    )

    @model_validator(mode="after")
    def _rules(self) -> Self:
        check_length(self.start, self.end)
        return self


Cursor = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,200}$")]
MAX_LIST_LIMIT = 500


def encode_cursor(start: datetime, session_id: str) -> str:
    """The opaque ``cursor`` of the next page: after this (start, id)."""
    raw = f"{start.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}~{session_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """(start, session id) of a cursor this service gave; ``ValueError`` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("not a cursor of this service") from exc
    when, sep, session_id = raw.partition("~")
    if not sep or not session_id or len(session_id) > 64:
        raise ValueError("not a cursor of this service")
    return datetime.strptime(when, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC), session_id


class SessionListQuery(Query):
    """GET /api/sessions: all optional. Without ``from``/``to``: sessions starting from now for 62 days."""

    from_: IsoDateTime | None = Field(default=None, alias="from",
                                      description="Start of the window (default: now).")
    to: IsoDateTime | None = Field(default=None, description="End of the window (default: from + 62 days; at most "
                                                             "62 days after from).")
    pairing_id: ResourceId | None = Field(default=None, description="Only this pairing's sessions.")
    limit: int = Field(default=200, ge=1, le=MAX_LIST_LIMIT, description="Page size (at most 500), earliest first.")
    cursor: Cursor | None = Field(default=None, description="The X-Next-Cursor of the previous page.")

    @model_validator(mode="after")
    def _window(self) -> Self:
        if self.from_ is not None and self.to is not None:
            check_window(self.from_, self.to)
        if self.cursor is not None:
            decode_cursor(self.cursor)
        return self


class CancelBody(RequestBody):
    """DELETE /api/sessions/{id} (body optional)."""

    comment: Comment | None = None


class SessionAccepted(Reply):
    """202 for a session write: the change is queued; poll GET /api/sessions/{id} (a series: GET /api/series/{id},
    ``id`` is then the series id and ``seriesId`` says so)."""

    id: str
    status: Literal["pending", "booked", "cancelled", "failed"] = "pending"
    series_id: str | None = None


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
    failure_reason: str | None = Field(
        default=None,
        description="Why the session failed: \"slot_taken\" when the organizer, an attendee or the room was busy "
                    "when its event was about to be written; otherwise a plain sentence.",
    )
    pending_change: Literal["create", "reschedule", "cancel"] | None = None
    online_meeting_unavailable: bool | None = None
    # Booked into the service account's "Scheduler" calendar because it may not write the
    # organizer's own (service-account method, no delegate right).
    scheduler_fallback: bool | None = None
    series_id: str | None = Field(default=None, description="An occurrence of this series (GET /api/series/{id}).")
    original_start: datetime | None = Field(default=None, description="An occurrence: where the pattern put it.")
    series_note: str | None = Field(default=None, description="An occurrence: skipped_clash or "
                                    "exceptions_reset_by_pattern_change (see GET /api/series/{id}).")
