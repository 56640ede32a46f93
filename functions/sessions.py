"""Sessions: the caller books as organizer; attendees may read; only the organizer changes.

Handlers parse, call ``BookingService`` once and map the session to the contract. Writes
answer 202 with ``Location: /api/sessions/{id}``: the Outlook event is written by the
event-write worker (``functions/event_jobs.py``); clients poll GET until ``status`` is
``booked`` (or ``failed``, with ``failureReason``). Reads are for the organizer and the
attendees; anyone else, in this tenant or another, gets 404 (never 403), so a session id
reveals nothing. Changes are organizer-only (attendees 403). A change that races another
one answers 409; a slot someone is busy in answers 409 ``slot_taken`` (unless
``allowConflicts``).

Groups (API 1.1): ``attendees`` (colleagues and guests, required or optional), any of
``hosts``, any of ``rooms``; the 202 and GET carry ``assigned`` (what was chosen and why) and
every attendee's type, guest and host marks and answer (docs/product-integration.md
"Groups, guests and any-of").

The product's server calls the same routes with an app-only token (Sessions.ReadWrite.All)
and ``X-On-Behalf-Of: <user>``; that user is then the caller and the organizer
(``Auth.SESSION_USER``). Reads also work for the app as itself across its tenant
(``Auth.SESSION_READER``): one session by id, or lists by window or pairing. Writes take
an ``Idempotency-Key`` (``idempotent=True``: the route framework handles it).

A body with a ``recurrence`` books a series (API 1.1, ``functions/series.py`` for the series
routes): one Outlook series; the 202's ``id`` is the series id (``seriesId`` says so,
``Location: /api/series/{id}``). Occurrences are sessions carrying ``seriesId``: they list
here, and ``PATCH``/``DELETE /api/sessions/{occurrenceId}`` change one occurrence alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import azure.functions as func

from functions.auth import Auth
from functions.endpoint import Models, Reply, RequestContext, endpoint

if TYPE_CHECKING:  # services and schemas load on first use, not at import (cold start)
    from core.domain.sessions import Session as SessionValue
    from functions.schemas.common import NoQuery
    from functions.schemas.sessions import (
        Assigned,
        CancelBody,
        CreateSessionBody,
        RescheduleBody,
        SessionListQuery,
        SessionPath,
        SessionView,
    )

bp = func.Blueprint()
C = Models("functions.schemas.common")
M = Models("functions.schemas.sessions")





def session_view(s: SessionValue) -> SessionView:
    """A session as the API shows it: metadata only, times in UTC plus the zone it was booked in."""
    from core.services.booking import online_meeting_unavailable
    from functions.schemas.sessions import Attendee, RoomBooking, SessionView

    return SessionView(
        assigned=assigned_view(s),
        id=s.session_id,
        status=s.status.value,
        start=s.start,
        end=s.end,
        time_zone=s.time_zone,
        organizer=s.organizer_id,
        attendees=[Attendee(user=a.user_id or a.address, email=a.address, type=a.type.value,
                            guest=True if a.guest else None, host=True if a.host else None,
                            response=a.response.value) for a in s.attendees],
        room=RoomBooking(email=s.room.address, response=s.room.response.value) if s.room else None,
        join_url=s.join_url,
        source=s.source.value,
        updated_at=s.updated_at or s.created_at or s.start,
        pairing_id=s.pairing_id,
        failure_reason=s.failure_reason,
        pending_change=s.pending_op.value if s.pending_op else None,
        online_meeting_unavailable=True if online_meeting_unavailable(s) else None,
        scheduler_fallback=True if s.calendar_id else None,
        series_id=s.series_id,
        original_start=s.original_start,
        series_note=s.series_note,
    )


def assigned_view(s: SessionValue) -> Assigned | None:
    """What an any-of booking chose (room, host) and why; None for other sessions."""
    from functions.schemas.sessions import Assigned

    if s.any_of is None:
        return None
    host = s.host
    return Assigned(room=s.room.address if s.room and s.any_of.rooms else None,
                    host=host.user_id if host else None, host_email=host.address if host else None,
                    reason=s.any_of.reason)


def _book_series(ctx: RequestContext[CreateSessionBody]) -> Reply:
    """POST /api/sessions with a recurrence: one Outlook series (core/services/series.py); 202 with the series id."""
    from core.domain.recurrence import from_graph
    from core.domain.series import OnConflict
    from core.services.series import SeriesRequest
    from functions.schemas.sessions import SessionAccepted

    b = ctx.body
    assert b.recurrence is not None
    on_conflict = OnConflict(b.on_conflict) if b.on_conflict else (
        OnConflict.BOOK_ANYWAY if b.allow_conflicts else OnConflict.FAIL)
    series = ctx.container.series.book(
        ctx.caller,
        SeriesRequest(start=b.start, end=b.end, time_zone=b.time_zone, recurrence=from_graph(b.recurrence.graph_json()),
                      pairing_id=b.pairing_id, partner=b.partner, room=b.room, online_meeting=b.online_meeting,
                      subject=b.subject, on_conflict=on_conflict),
    )
    body = SessionAccepted(id=series.series_id, status=series.status.value, series_id=series.series_id)
    return Reply(202, body, {"Location": f"/api/series/{series.series_id}"})


def _accepted(s: SessionValue) -> Reply:
    from functions.schemas.sessions import SessionAccepted

    body = SessionAccepted(id=s.session_id, status=s.status.value, assigned=assigned_view(s))
    return Reply(202, body, {"Location": f"/api/sessions/{s.session_id}"})


@endpoint(bp, "POST", "sessions", auth=Auth.SESSION_USER, body=M.CreateSessionBody, response=M.SessionAccepted,
          status=202, rate_limit="session_writes", summary="Book a session (the caller is the organizer)",
          tags=("sessions",), extra_statuses=(404, 409), idempotent=True)
def session_create(ctx: RequestContext[CreateSessionBody]) -> Any:
    """Stores a pending session, queues the Outlook write, answers 202 with Location; 409 slot_taken when
    the organizer, a required attendee or the room is busy then, or no any-of host or room is free (unless
    allowConflicts). Groups: attendees (colleagues and guests, required or optional), any of hosts, any of
    rooms; the answer's ``assigned`` says what was chosen and why."""
    b = ctx.body
    if b.recurrence is not None:
        return _book_series(ctx)
    from core.domain.assignment import RoomChoice
    from core.domain.sessions import AttendeeType
    from core.services.booking import BookingRequest
    from core.services.party import AttendeeRequest

    session = ctx.container.booking.create(
        ctx.caller,
        BookingRequest(start=b.start, end=b.end, time_zone=b.time_zone, pairing_id=b.pairing_id, partner=b.partner,
                       online_meeting=b.online_meeting, room=b.room, subject=b.subject,
                       allow_conflicts=b.allow_conflicts,
                       attendees=tuple(AttendeeRequest(a.user, a.email, a.name, AttendeeType(a.type))
                                       for a in b.attendees or ()),
                       hosts=tuple(b.hosts or ()), rooms=tuple(b.rooms or ()),
                       room_choice=RoomChoice(b.room_choice or "first"), capacity=b.capacity),
    )
    return _accepted(session)


@endpoint(bp, "GET", "sessions/{id}", auth=Auth.SESSION_READER, path=M.SessionPath, response=M.SessionView,
          summary="One session (organizer and attendees; the product's server: any of its tenant)",
          tags=("sessions",), extra_statuses=(404,))
def session_get(ctx: RequestContext[None, NoQuery, SessionPath]) -> Any:
    """Organizer and attendees only; another tenant's or a stranger's session is 404."""
    return session_view(ctx.container.booking.get(ctx.caller, ctx.path.id))


@endpoint(bp, "GET", "sessions", auth=Auth.SESSION_READER, query=M.SessionListQuery, response=M.SessionView.many,
          summary="Sessions: the caller's (organizer or attendee), or for the product's server a pairing's or the "
                  "tenant's; without a window, the next 62 days; pages of at most 500, earliest first",
          tags=("sessions",), extra_statuses=(404,),
          response_headers=(("X-Next-Cursor", "Present when more sessions follow: pass it as ?cursor= "
                                              "(with the same other parameters) for the next page."),))
def session_list(ctx: RequestContext[None, SessionListQuery]) -> Any:
    """Within a window of at most 62 days (default: from now for 62 days), by start."""
    from core.services.booking import SessionQuery
    from functions.schemas.sessions import decode_cursor, encode_cursor

    q = ctx.query
    page = ctx.container.booking.list_sessions(
        ctx.caller,
        SessionQuery(start=q.from_, end=q.to, pairing_id=q.pairing_id, limit=q.limit,
                     after=decode_cursor(q.cursor) if q.cursor else None),
    )
    headers = {"X-Next-Cursor": encode_cursor(*page.next_after)} if page.next_after else {}
    return Reply(200, [session_view(s) for s in page.sessions], headers)


@endpoint(bp, "PATCH", "sessions/{id}", auth=Auth.SESSION_USER, path=M.SessionPath, body=M.RescheduleBody,
          response=M.SessionAccepted, status=202, rate_limit="session_writes",
          summary="Reschedule (organizer only)", tags=("sessions",), extra_statuses=(404, 409), idempotent=True)
def session_reschedule(ctx: RequestContext[RescheduleBody, NoQuery, SessionPath]) -> Any:
    """Organizer only; attendees get 403, strangers and other tenants 404; 409 slot_taken when someone is
    busy at the new times (the session's own event aside) unless allowConflicts."""
    b = ctx.body
    session = ctx.container.booking.reschedule(ctx.caller, ctx.path.id, b.start, b.end, b.time_zone,
                                               allow_conflicts=b.allow_conflicts)
    return _accepted(session)


@endpoint(bp, "DELETE", "sessions/{id}", auth=Auth.SESSION_USER, path=M.SessionPath, body=M.CancelBody,
          body_required=False, response=M.SessionAccepted, status=202, rate_limit="session_writes",
          summary="Cancel (organizer only; attendees get Outlook's cancellation)", tags=("sessions",),
          extra_statuses=(404, 409), idempotent=True)
def session_cancel(ctx: RequestContext[CancelBody | None, NoQuery, SessionPath]) -> Any:
    """Organizer only; attendees get 403, strangers and other tenants 404."""
    comment = ctx.body.comment if ctx.body is not None else None
    return _accepted(ctx.container.booking.cancel(ctx.caller, ctx.path.id, comment))
