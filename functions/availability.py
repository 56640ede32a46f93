"""Availability and rooms: free slots for a pairing or participants, the tenant's rooms, room free time.

Handlers only parse, call ``AvailabilityService`` once and map its values to the
contract's models; the service (one per process, with its caches) is the container's.
The product's server calls them for a user with ``X-On-Behalf-Of`` (``Auth.SESSION_USER``):
that user is the caller, so "the caller is always a participant" holds for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import azure.functions as func

from functions.auth import Auth
from functions.endpoint import Models, RequestContext, endpoint
from functions.ratelimit import GRAPH_READS

if TYPE_CHECKING:  # services and schemas load on first use, not at import (cold start)
    from core.services.availability import TimeSlot
    from functions.schemas.availability import (
        AvailabilityBody,
        GroupSlot,
        RoomsAvailabilityBody,
        RoomsQuery,
    )
    from functions.schemas.common import Slot

bp = func.Blueprint()
M = Models("functions.schemas.availability")
C = Models("functions.schemas.common")


def slots_out(slots: tuple[TimeSlot, ...]) -> list[Slot]:
    from functions.schemas.common import Slot

    return [Slot(start=s.start, end=s.end) for s in slots]


@endpoint(bp, "POST", "availability", auth=Auth.SESSION_USER, rate_limit=GRAPH_READS, body=M.AvailabilityBody,
          response=M.Availability,
          summary="Free slots shared by the caller and a pairing, participants or a group (any-of hosts and rooms)",
          tags=("availability",), extra_statuses=(404,))
def availability(ctx: RequestContext[AvailabilityBody]) -> Any:
    """Free/busy only; never another person's event details. A group (attendees, hosts, rooms) reads at most
    ceil(schedules / 20) getSchedule calls per window and spends one graph_reads token per call."""
    from core.domain.assignment import RoomChoice
    from core.domain.sessions import AttendeeType
    from core.services.availability import AvailabilityQuery, Role
    from core.services.party import AttendeeRequest
    from functions.schemas.availability import Availability, ParticipantStatus

    body = ctx.body
    query = AvailabilityQuery(
        start=body.start,
        end=body.end,
        duration_minutes=body.duration_minutes,
        time_zone=body.time_zone,
        pairing_id=body.pairing_id,
        participants=tuple(body.participants or ()),
        step_minutes=body.step_minutes,
        buffer_minutes=body.buffer_minutes or 0,
        working_hours_only=body.working_hours_only,
        attendees=tuple(AttendeeRequest(a.user, a.email, None, AttendeeType(a.type)) for a in body.attendees or ()),
        hosts=tuple(body.hosts or ()),
        rooms=tuple(body.rooms or ()),
        room_choice=RoomChoice(body.room_choice or "first"),
        capacity=body.capacity,
    )
    for _ in range(query.schedule_calls() - 1):  # the route's own token paid for the first call
        ctx.container.rate_limiter.take(GRAPH_READS, ctx.caller)
    result = ctx.container.availability.free_slots(ctx.caller, query)
    return Availability(
        time_zone=result.time_zone,
        slots=group_slots_out(result.slots),
        participants=[
            ParticipantStatus(user=p.user, address=p.address, status=p.status, message=p.message,
                              role=None if p.role is Role.REQUIRED else p.role.value)
            for p in result.participants
        ],
    )


def group_slots_out(slots: tuple[TimeSlot, ...]) -> list[GroupSlot]:
    from functions.schemas.availability import GroupSlot, SlotAssignment

    out = []
    for s in slots:
        assigned = None
        if s.host is not None or s.room is not None:
            reason = " ".join(c.reason for c in (s.host, s.room) if c is not None)
            assigned = SlotAssignment(room=s.room.address if s.room else None,
                                      host=s.host.user_id if s.host else None,
                                      host_email=s.host.address if s.host else None, reason=reason)
        out.append(GroupSlot(start=s.start, end=s.end, optional=list(s.optional) if s.optional is not None else None,
                             hosts=list(s.hosts) if s.hosts is not None else None,
                             rooms=list(s.rooms) if s.rooms is not None else None, assigned=assigned))
    return out


@endpoint(bp, "GET", "rooms", auth=Auth.SESSION_USER, rate_limit=GRAPH_READS, query=M.RoomsQuery,
          response=M.Room.many,
          summary="Meeting rooms (optionally of one room list)", tags=("availability",), extra_statuses=(404,))
def rooms(ctx: RequestContext[None, RoomsQuery]) -> Any:
    """Rooms of the caller's tenant, cached per process for a few minutes."""
    from functions.schemas.availability import Room

    found = ctx.container.availability.rooms(ctx.caller, ctx.query.room_list)
    return [
        Room(email=r.address, display_name=r.display_name, capacity=r.capacity, building=r.building,
             floor=r.floor_label)
        for r in found
    ]


@endpoint(bp, "POST", "rooms/availability", auth=Auth.SESSION_USER, rate_limit=GRAPH_READS,
          body=M.RoomsAvailabilityBody,
          response=M.RoomsAvailability, summary="Free slots per room", tags=("availability",))
def rooms_availability(ctx: RequestContext[RoomsAvailabilityBody]) -> Any:
    """Free/busy of up to 20 rooms."""
    from functions.schemas.availability import RoomsAvailability, RoomSlots

    body = ctx.body
    result = ctx.container.availability.room_availability(
        ctx.caller,
        body.rooms,
        start=body.start,
        end=body.end,
        duration_minutes=body.duration_minutes,
        time_zone=body.time_zone,
    )
    return RoomsAvailability(
        rooms=[
            RoomSlots(email=r.address, slots=slots_out(r.slots), status=r.status, message=r.message)
            for r in result
        ]
    )
