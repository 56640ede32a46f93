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
          response=M.Availability, summary="Free slots shared by the caller and a pairing or participants",
          tags=("availability",), extra_statuses=(404,))
def availability(ctx: RequestContext[AvailabilityBody]) -> Any:
    """Free/busy only; never another person's event details."""
    from core.services.availability import AvailabilityQuery
    from functions.schemas.availability import Availability, ParticipantStatus

    body = ctx.body
    result = ctx.container.availability.free_slots(
        ctx.caller,
        AvailabilityQuery(
            start=body.start,
            end=body.end,
            duration_minutes=body.duration_minutes,
            time_zone=body.time_zone,
            pairing_id=body.pairing_id,
            participants=tuple(body.participants or ()),
            step_minutes=body.step_minutes,
            buffer_minutes=body.buffer_minutes or 0,
            working_hours_only=body.working_hours_only,
        ),
    )
    return Availability(
        time_zone=result.time_zone,
        slots=slots_out(result.slots),
        participants=[
            ParticipantStatus(user=p.user, address=p.address, status=p.status, message=p.message)
            for p in result.participants
        ],
    )


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
