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


# Structural bounds only: the product's limits (50 attendees, 10 hosts, 20 rooms) are checked by the
# service with their own 422 codes (too_many_attendees...); these keep a request body bounded.
MAX_LISTED = 500  # Graph's limit of attendees per event
DisplayName = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$")]


class AttendeeIn(RequestBody):
    """One person to invite: ``user`` (a colleague: object id or email/UPN) or ``email`` (anyone: a
    colleague when the directory knows the address, otherwise a guest from outside the organisation).
    ``name`` is a guest's display name for the Outlook invitation: sent to Outlook only, never stored."""

    user: UserRef | None = None
    email: Annotated[str, StringConstraints(min_length=1, max_length=254)] | None = Field(
        default=None, json_schema_extra={"format": "email"},
        description="An email address (422 invalid_attendee_email when it is not one).")
    name: DisplayName | None = Field(default=None, description="A guest's display name (Outlook only; never stored).")
    type: Literal["required", "optional"] = Field(
        default="required", description="required: must be free for the slot; optional: invited, shown when free.")

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.user is None) == (self.email is None):
            raise ValueError("give exactly one of user or email")
        return self


class CreateSessionBody(RequestBody):
    """POST /api/sessions: give ``pairingId``, ``partner``, or a group (``attendees`` and/or ``hosts``).
    ``subject`` goes to Outlook and is never stored. Groups, guests and any-of rooms/hosts:
    docs/product-integration.md "Groups, guests and any-of"."""

    pairing_id: ResourceId | None = None
    partner: UserRef | None = None
    attendees: Annotated[list[AttendeeIn], Field(max_length=MAX_LISTED)] | None = Field(
        default=None, description="People besides the organizer (at most 50): colleagues and guests, each "
                                  "required or optional.")
    hosts: Annotated[list[UserRef], Field(min_length=1, max_length=MAX_LISTED)] | None = Field(
        default=None, description="Any one of these colleagues (at most 10): the service chooses the free one with "
                                  "the fewest sessions around the slot; they become a required attendee.")
    rooms: Annotated[list[Email], Field(min_length=1, max_length=MAX_LISTED)] | None = Field(
        default=None, description="Any one of these rooms (at most 20), chosen by roomChoice.")
    room_choice: Literal["first", "bestFit"] | None = Field(
        default=None, description="first (default): the first free room in the order given; bestFit: the free room "
                                  "with the smallest capacity that seats the party.")
    capacity: Annotated[int, Field(ge=1, le=1000)] | None = Field(
        default=None, description="Seats needed (default: the organizer, the attendees and one host).")
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
        group = self.attendees is not None or self.hosts is not None
        if (self.pairing_id is not None) + (self.partner is not None) + group != 1:
            raise ValueError("give exactly one of pairingId, partner, or attendees and/or hosts")
        if group and not (self.attendees or self.hosts):
            raise ValueError("give at least one attendee or host")
        if self.room is not None and self.rooms is not None:
            raise ValueError("give room or rooms, not both")
        if self.rooms is None and (self.room_choice is not None or self.capacity is not None):
            raise ValueError("roomChoice and capacity go with rooms")
        check_length(self.start, self.end)
        if self.recurrence is not None and (group or self.rooms is not None):
            raise ValueError("a series takes pairingId or partner and at most one room: attendees, hosts "
                             "and rooms are for single sessions")
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


class Assigned(Reply):
    """What the service chose among any-of rooms and hosts, and why."""

    room: str | None = Field(default=None, description="The chosen room's email address.")
    host: str | None = Field(default=None, description="The chosen host's Entra object id.")
    host_email: str | None = None
    reason: str | None = Field(default=None, description="Why: the rule and the counts that decided (no content).")


class SessionAccepted(Reply):
    """202 for a session write: the change is queued; poll GET /api/sessions/{id} (a series: GET /api/series/{id},
    ``id`` is then the series id and ``seriesId`` says so)."""

    id: str
    status: Literal["pending", "booked", "cancelled", "failed"] = "pending"
    assigned: Assigned | None = Field(default=None, description="Only for bookings with any-of rooms or hosts.")
    series_id: str | None = None


class Attendee(Reply):
    user: str = Field(description="Entra object id of a colleague; a guest's email address.")
    email: str | None = None
    type: Literal["required", "optional"] = "required"
    guest: bool | None = Field(default=None, description="True for a guest from outside the organisation (invited "
                                                         "only; their free/busy is never read).")
    host: bool | None = Field(default=None, description="True for the host chosen among the candidates.")
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
    assigned: Assigned | None = None
    online_meeting_unavailable: bool | None = None
    # Booked into the service account's "Scheduler" calendar because it may not write the
    # organizer's own (service-account method, no delegate right).
    scheduler_fallback: bool | None = None
    series_id: str | None = Field(default=None, description="An occurrence of this series (GET /api/series/{id}).")
    original_start: datetime | None = Field(default=None, description="An occurrence: where the pattern put it.")
    series_note: str | None = Field(default=None, description="An occurrence: skipped_clash or "
                                    "exceptions_reset_by_pattern_change (see GET /api/series/{id}).")
