"""Availability and rooms."""

from __future__ import annotations

from typing import Annotated, Literal, Self

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
from functions.schemas.sessions import MAX_LISTED, AttendeeIn

Duration = Annotated[int, Field(ge=5, le=480, description="Minutes.")]


class AvailabilityBody(RequestBody):
    """POST /api/availability: give ``pairingId``, ``participants`` or a group (``attendees`` and/or ``hosts``);
    ``rooms`` (any one of them) goes with any of these or alone. The caller is always included."""

    pairing_id: ResourceId | None = None
    participants: Annotated[list[UserRef], Field(min_length=1, max_length=19)] | None = None
    attendees: Annotated[list[AttendeeIn], Field(max_length=MAX_LISTED)] | None = Field(
        default=None, description="A group (at most 50): required people must be free; for each slot the answer "
                                  "lists the optional people who are free; guests are never read (status unknown).")
    hosts: Annotated[list[UserRef], Field(min_length=1, max_length=MAX_LISTED)] | None = Field(
        default=None, description="Any one of these colleagues (at most 10) must be free; each slot lists the free "
                                  "ones and the one a booking would choose.")
    rooms: Annotated[list[Email], Field(min_length=1, max_length=MAX_LISTED)] | None = Field(
        default=None, description="Any one of these rooms (at most 20) must be free; each slot lists the free ones "
                                  "and the one a booking would choose.")
    room_choice: Literal["first", "bestFit"] | None = None
    capacity: Annotated[int, Field(ge=1, le=1000)] | None = None
    start: IsoDateTime
    end: IsoDateTime
    duration_minutes: Duration
    time_zone: TimeZoneName
    step_minutes: Annotated[int, Field(ge=5, le=120)] | None = None
    buffer_minutes: Annotated[int, Field(ge=0, le=120)] | None = None
    working_hours_only: bool = True

    @model_validator(mode="after")
    def _rules(self) -> Self:
        group = self.attendees is not None or self.hosts is not None
        given = (self.pairing_id is not None) + (self.participants is not None) + group
        if given > 1 or (given == 0 and self.rooms is None):
            raise ValueError("give exactly one of pairingId, participants, or attendees and/or hosts (rooms may go "
                             "with any of them or alone)")
        if group and not (self.attendees or self.hosts):
            raise ValueError("give at least one attendee or host")
        if self.rooms is None and (self.room_choice is not None or self.capacity is not None):
            raise ValueError("roomChoice and capacity go with rooms")
        check_window(self.start, self.end)
        if (self.end - self.start).total_seconds() < self.duration_minutes * 60:
            raise ValueError("the window is shorter than durationMinutes")
        return self


ParticipantState = Annotated[
    str,
    Field(
        description=(
            "ok, or why the calendar could not be read: mailbox_on_premises_or_unlicensed, "
            "outside_app_scope, user_not_found, other; unknown for a guest (never read)."
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
    role: Literal["optional", "host", "room", "guest"] | None = Field(
        default=None, description="Absent for required people. An optional person, host or room whose calendar "
                                  "cannot be read is reported here and never shown free; a guest is always "
                                  "\"unknown\".")


class SlotAssignment(Reply):
    """What booking this slot would choose among the any-of hosts and rooms, and why."""

    room: str | None = None
    host: str | None = Field(default=None, description="The host's Entra object id.")
    host_email: str | None = None
    reason: str | None = None


class GroupSlot(Slot):
    """A free slot; for groups also who and what is free then (email addresses)."""

    optional: list[str] | None = Field(default=None, description="The optional people free for this slot.")
    hosts: list[str] | None = Field(default=None, description="The candidate hosts free for this slot.")
    rooms: list[str] | None = Field(default=None, description="The candidate rooms free for this slot, best first.")
    assigned: SlotAssignment | None = None


class Availability(Reply):
    """Free slots shared by every participant, in UTC; ``timeZone`` is the zone they were aligned in.

    Errors beyond the usual: 403 ``participants_not_allowed`` (the tenant's pairing policy
    is ``registered``: give a pairingId), 404 ``pairing_not_found``, 422
    ``participant_unreachable`` with ``details.participants`` as in ``participants`` here.
    """

    time_zone: str
    slots: list[GroupSlot]
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
