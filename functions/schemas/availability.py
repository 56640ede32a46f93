"""Availability and rooms."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, model_validator

from functions.schemas.common import (
    Email,
    IsoDateTime,
    Query,
    Reply,
    RequestBody,
    ResourceId,
    Slot,
    TimeZoneName,
    UserRef,
    check_window,
)

Duration = Annotated[int, Field(ge=5, le=480, description="Minutes.")]


class AvailabilityBody(RequestBody):
    """POST /api/availability: give ``pairingId`` or ``participants`` (the caller is always included)."""

    pairing_id: ResourceId | None = None
    participants: Annotated[list[UserRef], Field(min_length=1, max_length=19)] | None = None
    start: IsoDateTime
    end: IsoDateTime
    duration_minutes: Duration
    time_zone: TimeZoneName
    step_minutes: Annotated[int, Field(ge=5, le=120)] | None = None
    buffer_minutes: Annotated[int, Field(ge=0, le=120)] | None = None
    working_hours_only: bool = True

    @model_validator(mode="after")
    def _rules(self) -> Self:
        if (self.pairing_id is None) == (self.participants is None):
            raise ValueError("give exactly one of pairingId or participants")
        check_window(self.start, self.end)
        if (self.end - self.start).total_seconds() < self.duration_minutes * 60:
            raise ValueError("the window is shorter than durationMinutes")
        return self


ParticipantState = Annotated[
    str,
    Field(
        description=(
            "ok, or why the calendar could not be read: mailbox_on_premises_or_unlicensed, "
            "outside_app_scope, user_not_found, other."
        ),
        examples=["ok", "mailbox_on_premises_or_unlicensed", "outside_app_scope", "user_not_found"],
    ),
]


class ParticipantStatus(Reply):
    """One participant and whether their free/busy time could be read.

    The same objects appear in ``error.details.participants`` of the 422
    ``participant_unreachable`` error, which this route returns instead of slots when
    any participant's calendar cannot be read (an empty list would wrongly mean "no
    common time").
    """

    user: str = Field(description="The participant as the caller named them (object id or email).")
    address: str | None = None
    status: ParticipantState
    message: str | None = None


class Availability(Reply):
    """Free slots shared by every participant, in UTC; ``timeZone`` is the zone they were aligned in.

    Errors beyond the usual: 403 ``participants_not_allowed`` (the tenant's pairing policy
    is ``registered``: give a pairingId), 404 ``pairing_not_found``, 422
    ``participant_unreachable`` with ``details.participants`` as in ``participants`` here.
    """

    time_zone: str
    slots: list[Slot]
    participants: list[ParticipantStatus] = Field(default_factory=list)


class RoomsQuery(Query):
    room_list: Email | None = None


class Room(Reply):
    email: str
    display_name: str
    capacity: int | None = None
    building: str | None = None
    floor: str | None = None


class RoomsAvailabilityBody(RequestBody):
    """POST /api/rooms/availability."""

    rooms: Annotated[list[Email], Field(min_length=1, max_length=20)]
    start: IsoDateTime
    end: IsoDateTime
    duration_minutes: Duration
    time_zone: TimeZoneName

    @model_validator(mode="after")
    def _rules(self) -> Self:
        check_window(self.start, self.end)
        if (self.end - self.start).total_seconds() < self.duration_minutes * 60:
            raise ValueError("the window is shorter than durationMinutes")
        return self


class RoomSlots(Reply):
    """Free slots of one room; a room whose calendar cannot be read has ``status`` != ok and no slots."""

    email: str
    slots: list[Slot]
    status: ParticipantState = "ok"
    message: str | None = None


class RoomsAvailability(Reply):
    rooms: list[RoomSlots]
