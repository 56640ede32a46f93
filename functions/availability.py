"""Availability and rooms: free slots for a pairing or participants, the tenant's rooms, room free time.

Handlers only parse, call ``AvailabilityService`` once and map its values to the
contract's models; the service (one per process, with its caches) is the container's.
"""

from __future__ import annotations

from typing import Any

import azure.functions as func

from core.services.availability import AvailabilityQuery, TimeSlot
from functions.auth import Auth
from functions.endpoint import RequestContext, endpoint
from functions.schemas.availability import (
    Availability,
    AvailabilityBody,
    ParticipantStatus,
    Room,
    RoomsAvailability,
    RoomsAvailabilityBody,
    RoomSlots,
    RoomsQuery,
)
from functions.schemas.common import Slot

bp = func.Blueprint()


def slots_out(slots: tuple[TimeSlot, ...]) -> list[Slot]:
    return [Slot(start=s.start, end=s.end) for s in slots]


@endpoint(bp, "POST", "availability", auth=Auth.USER, body=AvailabilityBody, response=Availability,
          summary="Free slots shared by the caller and a pairing or participants", tags=("availability",),
          extra_statuses=(404,))
def availability(ctx: RequestContext[AvailabilityBody]) -> Any:
    """Free/busy only; never another person's event details."""
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


@endpoint(bp, "GET", "rooms", auth=Auth.USER, query=RoomsQuery, response=list[Room],
          summary="Meeting rooms (optionally of one room list)", tags=("availability",), extra_statuses=(404,))
def rooms(ctx: RequestContext[None, RoomsQuery]) -> Any:
    """Rooms of the caller's tenant, cached per process for a few minutes."""
    found = ctx.container.availability.rooms(ctx.caller, ctx.query.room_list)
    return [
        Room(email=r.address, display_name=r.display_name, capacity=r.capacity, building=r.building,
             floor=r.floor_label)
        for r in found
    ]


@endpoint(bp, "POST", "rooms/availability", auth=Auth.USER, body=RoomsAvailabilityBody,
          response=RoomsAvailability, summary="Free slots per room", tags=("availability",))
def rooms_availability(ctx: RequestContext[RoomsAvailabilityBody]) -> Any:
    """Free/busy of up to 20 rooms."""
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
