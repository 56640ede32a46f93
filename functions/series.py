"""Recurring sessions (API 1.1): the series resource and the availability of a series.

A series is booked through ``POST /api/sessions`` with a ``recurrence``
(``functions/sessions.py``); its occurrences are sessions. Here:

* ``POST /api/availability/series``: every occurrence checked against the organizer's, the
  partner's and the room's free/busy (and offered hours), which clash and with whom, and
  the same series moved on the same days where that clashes less;
* ``GET /api/series`` (the caller's) and ``GET /api/series/{id}`` (the rule and every
  occurrence: status, times, responses): organizer and attendees; the product's server
  reads any series of its tenant;
* ``PATCH /api/series/{id}`` (new times and/or rule from the first occurrence not yet
  started) and ``DELETE /api/series/{id}`` (every occurrence not yet started, or
  ``?from=<date>`` on): organizer only (attendees 403, anyone else 404), 202, through the
  event-write queue, ``Idempotency-Key`` honoured.

The product's server calls them for a user with ``X-On-Behalf-Of`` like the session routes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import azure.functions as func

from functions.auth import Auth
from functions.endpoint import Models, Reply, RequestContext, endpoint
from functions.ratelimit import GRAPH_READS

if TYPE_CHECKING:  # services and schemas load on first use, not at import (cold start)
    from core.domain.series import Series as SeriesValue
    from core.domain.sessions import Session as SessionValue
    from core.services.series import SeriesView as SeriesViewValue
    from functions.schemas.common import NoQuery
    from functions.schemas.series import (
        Occurrence,
        RescheduleSeriesBody,
        SeriesAvailabilityBody,
        SeriesCancelBody,
        SeriesCancelQuery,
        SeriesPath,
        SeriesSummary,
        SeriesView,
    )

bp = func.Blueprint()
M = Models("functions.schemas.series")


def _accepted(s: SeriesValue) -> Reply:
    from functions.schemas.series import SeriesAccepted

    return Reply(202, SeriesAccepted(id=s.series_id, status=s.status.value, series_id=s.series_id),
                 {"Location": f"/api/series/{s.series_id}"})


def _occurrence(index: int, s: SessionValue) -> Occurrence:
    from functions.schemas.series import Occurrence
    from functions.schemas.sessions import Attendee, RoomBooking

    return Occurrence(
        id=s.session_id, index=index, status=s.status.value, start=s.start, end=s.end,
        original_start=s.original_start or s.start,
        attendees=[Attendee(user=a.user_id or a.address, response=a.response.value) for a in s.attendees],
        room=RoomBooking(email=s.room.address, response=s.room.response.value) if s.room else None,
        source=s.source.value, series_note=s.series_note,
        pending_change=s.pending_op.value if s.pending_op else None, failure_reason=s.failure_reason,
    )


def series_view(view: SeriesViewValue) -> SeriesView:
    """A series as the API shows it: the current rule as Graph JSON, and every occurrence by original start."""
    from core.domain.recurrence import to_graph
    from functions.schemas.series import Occurrence, SeriesView
    from functions.schemas.sessions import Attendee, RoomBooking

    s = view.series
    occurrences = [_occurrence(i + 1, o) for i, o in enumerate(view.occurrences)]
    if not occurrences:
        occurrences = [Occurrence(index=i + 1, status="pending", start=o.start, end=o.end,
                                  original_start=o.original_start)
                       for i, o in enumerate(view.expected)]
    return SeriesView(
        id=s.series_id, status=s.status.value, organizer=s.organizer_id,
        attendees=[Attendee(user=a.user_id or a.address, response=a.response.value) for a in s.attendees],
        room=RoomBooking(email=s.room.address, response=s.room.response.value) if s.room else None,
        recurrence=to_graph(s.current.recurrence), time_zone=s.time_zone, start=s.current.start,
        end=s.current.end, join_url=s.join_url, source=s.source.value, pairing_id=s.pairing_id,
        on_conflict=s.on_conflict.value, failure_reason=s.failure_reason,
        pending_change=s.pending_op.value if s.pending_op else None, series_note=s.note,
        cancelled_from=s.cancel_from if s.pending_op is None else None, occurrences=occurrences,
        updated_at=s.updated_at or s.created_at or s.start,
    )


def _summary(s: SeriesValue) -> SeriesSummary:
    from core.domain.recurrence import to_graph
    from functions.schemas.series import SeriesSummary
    from functions.schemas.sessions import Attendee

    return SeriesSummary(
        id=s.series_id, status=s.status.value, organizer=s.organizer_id,
        attendees=[Attendee(user=a.user_id or a.address, response=a.response.value) for a in s.attendees],
        recurrence=to_graph(s.current.recurrence), time_zone=s.time_zone, start=s.current.start, end=s.current.end,
        pending_change=s.pending_op.value if s.pending_op else None,
        cancelled_from=s.cancel_from if s.pending_op is None else None,
        updated_at=s.updated_at or s.created_at or s.start,
    )


@endpoint(bp, "POST", "availability/series", auth=Auth.SESSION_USER, rate_limit=GRAPH_READS,
          body=M.SeriesAvailabilityBody, response=M.SeriesAvailability,
          summary="Which occurrences of a series clash, with whom, and moved starts that clash less",
          tags=("availability",), extra_statuses=(404,))
def series_availability(ctx: RequestContext[SeriesAvailabilityBody]) -> Any:
    """Free/busy across the whole span (getSchedule windows under 62 days) and offered hours; never event details."""
    from core.domain.recurrence import from_graph
    from core.services.series import SeriesRequest
    from functions.schemas.series import ClashWith, MovedStart, OccurrenceAvailability, SeriesAvailability

    b = ctx.body
    result = ctx.container.series.check(
        ctx.caller,
        SeriesRequest(start=b.start, end=b.end, time_zone=b.time_zone, recurrence=from_graph(b.recurrence.graph_json()),
                      pairing_id=b.pairing_id, partner=b.partner, room=b.room),
        suggest=b.suggest,
    )
    return SeriesAvailability(
        time_zone=result.time_zone,
        occurrences=[OccurrenceAvailability(index=o.index, start=o.start, end=o.end, free=not o.clashes,
                                            clashes_with=[ClashWith(role=p.role, user=p.user) for p in o.clashes])
                     for o in result.occurrences],
        clashing=len(result.clashing),
        schedule_calls=result.schedule_calls,
        suggestions=[MovedStart(start=m.start, end=m.end, shift_minutes=m.shift_minutes, clashing=m.clashing)
                     for m in result.suggestions],
    )


@endpoint(bp, "GET", "series", auth=Auth.SESSION_USER, response=M.SeriesSummary.many,
          summary="The caller's series (organizer or attendee), newest first", tags=("series",))
def series_list(ctx: RequestContext[None]) -> Any:
    """Every series the caller organizes or attends (without occurrences: GET /api/series/{id})."""
    return [_summary(s) for s in ctx.container.series.list_for(ctx.caller)]


@endpoint(bp, "GET", "series/{id}", auth=Auth.SESSION_READER, path=M.SeriesPath, response=M.SeriesView,
          summary="A series: its rule and every occurrence (status, times, responses)", tags=("series",),
          extra_statuses=(404,))
def series_get(ctx: RequestContext[None, NoQuery, SeriesPath]) -> Any:
    """Organizer and attendees; the product's server reads any of its tenant; anyone else 404."""
    return series_view(ctx.container.series.get(ctx.caller, ctx.path.id))


@endpoint(bp, "PATCH", "series/{id}", auth=Auth.SESSION_USER, path=M.SeriesPath, body=M.RescheduleSeriesBody,
          response=M.SeriesAccepted, status=202, rate_limit="session_writes",
          summary="Reschedule a series from its first occurrence not yet started (organizer only)",
          tags=("series",), extra_statuses=(404, 409), idempotent=True)
def series_reschedule(ctx: RequestContext[RescheduleSeriesBody, NoQuery, SeriesPath]) -> Any:
    """Organizer only (attendees 403, strangers 404); 409 slot_taken when new occurrences clash."""
    from core.domain.recurrence import from_graph

    b = ctx.body
    series = ctx.container.series.reschedule(
        ctx.caller, ctx.path.id, b.start, b.end, time_zone=b.time_zone,
        recurrence=from_graph(b.recurrence.graph_json()) if b.recurrence else None,
        allow_conflicts=b.allow_conflicts, subject=b.subject,
    )
    return _accepted(series)


@endpoint(bp, "DELETE", "series/{id}", auth=Auth.SESSION_USER, path=M.SeriesPath, query=M.SeriesCancelQuery,
          body=M.SeriesCancelBody, body_required=False, response=M.SeriesAccepted, status=202,
          rate_limit="session_writes",
          summary="Cancel a series: every occurrence not yet started, or from a date on (organizer only)",
          tags=("series",), extra_statuses=(404, 409), idempotent=True)
def series_cancel(ctx: RequestContext[SeriesCancelBody | None, SeriesCancelQuery, SeriesPath]) -> Any:
    """Organizer only; ``from`` in the query or the body (the same date if both)."""
    from core.domain.errors import ValidationFailed

    body_from = ctx.body.from_ if ctx.body is not None else None
    if body_from is not None and ctx.query.from_ is not None and body_from != ctx.query.from_:
        raise ValidationFailed("Give the date once (query or body).",
                               details={"fields": [{"loc": ["body", "from"], "msg": "differs from ?from"}]})
    comment = ctx.body.comment if ctx.body is not None else None
    series = ctx.container.series.cancel(ctx.caller, ctx.path.id, ctx.query.from_ or body_from, comment)
    return _accepted(series)
