"""Sessions: the caller books as organizer; attendees may read; only the organizer changes.

Handlers parse, call ``BookingService`` once and map the session to the contract. Writes
answer 202 with ``Location: /api/sessions/{id}``: the Outlook event is written by the
event-write worker (``functions/event_jobs.py``); clients poll GET until ``status`` is
``booked`` (or ``failed``, with ``failureReason``). Reads are for the organizer and the
attendees; anyone else, in this tenant or another, gets 404 (never 403), so a session id
reveals nothing. Changes are organizer-only (attendees 403). A change that races another
one answers 409.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import azure.functions as func

from functions.auth import Auth
from functions.endpoint import Models, Reply, RequestContext, endpoint

if TYPE_CHECKING:  # services and schemas load on first use, not at import (cold start)
    from core.domain.sessions import Session as SessionValue
    from functions.schemas.common import NoQuery, WindowQuery
    from functions.schemas.sessions import (
        CancelBody,
        CreateSessionBody,
        RescheduleBody,
        SessionPath,
        SessionView,
    )
    pass

bp = func.Blueprint()
C = Models("functions.schemas.common")
M = Models("functions.schemas.sessions")





def session_view(s: SessionValue) -> SessionView:
    """A session as the API shows it: metadata only, times in UTC plus the zone it was booked in."""
    from core.services.booking import online_meeting_unavailable
    from functions.schemas.sessions import Attendee, RoomBooking, SessionView

    return SessionView(
        id=s.session_id,
        status=s.status.value,
        start=s.start,
        end=s.end,
        time_zone=s.time_zone,
        organizer=s.organizer_id,
        attendees=[Attendee(user=a.user_id or a.address, response=a.response.value) for a in s.attendees],
        room=RoomBooking(email=s.room.address, response=s.room.response.value) if s.room else None,
        join_url=s.join_url,
        source=s.source.value,
        updated_at=s.updated_at or s.created_at or s.start,
        pairing_id=s.pairing_id,
        failure_reason=s.failure_reason,
        pending_change=s.pending_op.value if s.pending_op else None,
        online_meeting_unavailable=True if online_meeting_unavailable(s) else None,
        scheduler_fallback=True if s.calendar_id else None,
    )


def _accepted(s: SessionValue) -> Reply:
    from functions.schemas.sessions import SessionAccepted

    body = SessionAccepted(id=s.session_id, status=s.status.value)
    return Reply(202, body, {"Location": f"/api/sessions/{s.session_id}"})


@endpoint(bp, "POST", "sessions", auth=Auth.USER, body=M.CreateSessionBody, response=M.SessionAccepted, status=202,
          rate_limit="session_writes", summary="Book a session (the caller is the organizer)", tags=("sessions",),
          extra_statuses=(404, 409))
def session_create(ctx: RequestContext[CreateSessionBody]) -> Any:
    """Stores a pending session, queues the Outlook write, answers 202 with Location."""
    b = ctx.body
    from core.services.booking import BookingRequest

    session = ctx.container.booking.create(
        ctx.caller,
        BookingRequest(start=b.start, end=b.end, time_zone=b.time_zone, pairing_id=b.pairing_id, partner=b.partner,
                       online_meeting=b.online_meeting, room=b.room, subject=b.subject),
    )
    return _accepted(session)


@endpoint(bp, "GET", "sessions/{id}", auth=Auth.USER, path=M.SessionPath, response=M.SessionView,
          summary="One session (organizer and attendees)", tags=("sessions",), extra_statuses=(404,))
def session_get(ctx: RequestContext[None, NoQuery, SessionPath]) -> Any:
    """Organizer and attendees only; another tenant's or a stranger's session is 404."""
    return session_view(ctx.container.booking.get(ctx.caller, ctx.path.id))


@endpoint(bp, "GET", "sessions", auth=Auth.USER, query=C.WindowQuery, response=M.SessionView.many,
          summary="The caller's sessions (as organizer or attendee)", tags=("sessions",))
def session_list(ctx: RequestContext[None, WindowQuery]) -> Any:
    """Within a window of at most 62 days."""
    return [session_view(s) for s in ctx.container.booking.list_for(ctx.caller, ctx.query.from_, ctx.query.to)]


@endpoint(bp, "PATCH", "sessions/{id}", auth=Auth.USER, path=M.SessionPath, body=M.RescheduleBody,
          response=M.SessionAccepted, status=202, rate_limit="session_writes",
          summary="Reschedule (organizer only)", tags=("sessions",), extra_statuses=(404, 409))
def session_reschedule(ctx: RequestContext[RescheduleBody, NoQuery, SessionPath]) -> Any:
    """Organizer only; attendees get 403, strangers and other tenants 404."""
    b = ctx.body
    session = ctx.container.booking.reschedule(ctx.caller, ctx.path.id, b.start, b.end, b.time_zone)
    return _accepted(session)


@endpoint(bp, "DELETE", "sessions/{id}", auth=Auth.USER, path=M.SessionPath, body=M.CancelBody, body_required=False,
          response=M.SessionAccepted, status=202, rate_limit="session_writes",
          summary="Cancel (organizer only; attendees get Outlook's cancellation)", tags=("sessions",),
          extra_statuses=(404, 409))
def session_cancel(ctx: RequestContext[CancelBody | None, NoQuery, SessionPath]) -> Any:
    """Organizer only; attendees get 403, strangers and other tenants 404."""
    comment = ctx.body.comment if ctx.body is not None else None
    return _accepted(ctx.container.booking.cancel(ctx.caller, ctx.path.id, comment))
