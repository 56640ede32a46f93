"""Recurring sessions (API 1.1): the recurrence in Graph's ``patternedRecurrence`` terms, series and occurrences.

The recurrence is checked for shape here (types and names) and for meaning by the domain
(``core/domain/recurrence.py``), whose 422 codes name each problem (``interval_not_positive``,
``days_of_week_required``, ``too_many_occurrences``, ``series_too_long``,
``start_not_in_pattern``...), so enum values and numbers are plain strings and integers here.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal, Self

from pydantic import Field, model_validator

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
)
from functions.schemas.recurrence import DateText, Recurrence
from functions.schemas.sessions import Attendee, RoomBooking, check_length

OnConflict = Literal["fail", "skipClashing", "bookAnyway"]
Status = Literal["pending", "booked", "cancelled", "failed"]


class SeriesPath(PathParams):
    id: ResourceId


class SeriesCancelQuery(Query):
    """DELETE /api/series/{id}?from=yyyy-mm-dd: cancel from that date (series time zone) on."""

    from_: DateText | None = Field(default=None, alias="from", description="Cancel the occurrences on and after "
                                   "this date (the series' time zone); without it, every occurrence not yet started.")


class SeriesCancelBody(RequestBody):
    """DELETE /api/series/{id} (body optional): a comment for Outlook's cancellation, ``from`` as in the query."""

    comment: Comment | None = None
    from_: DateText | None = Field(default=None, alias="from")


class RescheduleSeriesBody(RequestBody):
    """PATCH /api/series/{id}: new times (the first changed occurrence's) and/or a new rule, from the first
    occurrence that has not started on. Without ``recurrence`` the rule carries over (a weekly rule on one
    day follows the new start's day; a numbered range keeps the count still to come)."""

    start: IsoDateTime
    end: IsoDateTime
    time_zone: TimeZoneName | None = None
    recurrence: Recurrence | None = None
    allow_conflicts: bool = Field(default=False, description="Move even if someone is busy at new times.")
    subject: Subject | None = Field(default=None, description="For the new Outlook series a running series "
                                    "continues as (never stored); default: the service's template.")

    @model_validator(mode="after")
    def _rules(self) -> Self:
        check_length(self.start, self.end)
        return self


class SeriesAvailabilityBody(RequestBody):
    """POST /api/availability/series: the series you would book (same fields as POST /api/sessions)."""

    pairing_id: ResourceId | None = None
    partner: UserRef | None = None
    start: IsoDateTime
    end: IsoDateTime
    time_zone: TimeZoneName
    recurrence: Recurrence
    room: Email | None = None
    suggest: bool = Field(default=True, description="Look for the same series moved on the same days (no extra "
                                                    "Graph call).")

    @model_validator(mode="after")
    def _rules(self) -> Self:
        if (self.pairing_id is None) == (self.partner is None):
            raise ValueError("give exactly one of pairingId or partner")
        check_length(self.start, self.end)
        return self


# --- replies ----------------------------------------------------------------------------------------


class ClashWith(Reply):
    role: Literal["organizer", "attendee", "room"]
    user: str = Field(description="The organizer's or attendee's object id, or the room's address.")


class OccurrenceAvailability(Reply):
    index: int = Field(description="1 for the first occurrence.")
    start: datetime
    end: datetime
    free: bool
    clashes_with: list[ClashWith] = Field(default_factory=list, description="Who is not available then (busy "
                                          "or outside their offered hours; never why, never event details).")


class MovedStart(Reply):
    start: datetime = Field(description="The first occurrence, moved.")
    end: datetime
    shift_minutes: int = Field(description="Every occurrence moved by this much, on its own day.")
    clashing: int


class SeriesAvailability(Reply):
    """Every occurrence of the series checked; ``suggestions`` move the whole series on the same days."""

    time_zone: str
    occurrences: list[OccurrenceAvailability]
    clashing: int
    schedule_calls: int = Field(description="getSchedule calls this answer took.")
    suggestions: list[MovedStart] = Field(default_factory=list)


class SeriesAccepted(Reply):
    """202 for a series write: poll GET /api/series/{id}."""

    id: str
    status: Status = "pending"
    series_id: str


class Occurrence(Reply):
    """One occurrence of a series (a session: PATCH/DELETE /api/sessions/{id} change it alone)."""

    id: str | None = Field(default=None, description="The occurrence's session id (none while the series is "
                                                     "being booked).")
    index: int
    status: Status
    start: datetime
    end: datetime
    original_start: datetime = Field(description="Where the pattern put it (a moved occurrence keeps this).")
    attendees: list[Attendee] = Field(default_factory=list)
    room: RoomBooking | None = None
    source: Literal["platform", "outlook"] = "platform"
    series_note: str | None = Field(default=None, description="skipped_clash (booked cancelled: onConflict "
                                    "skipClashing), exceptions_reset_by_pattern_change (its own change was dropped "
                                    "when the series got a new pattern or times, as Outlook does).")
    pending_change: Literal["create", "reschedule", "cancel"] | None = None
    failure_reason: str | None = None


class SeriesView(Reply):
    """GET /api/series/{id}: the rule (Graph JSON) of the current Outlook series, and every occurrence."""

    id: str
    status: Status
    organizer: str
    attendees: list[Attendee]
    room: RoomBooking | None = None
    recurrence: dict[str, Any] = Field(description="Graph patternedRecurrence of the current series.")
    time_zone: str
    start: datetime = Field(description="The first occurrence of the current rule.")
    end: datetime
    join_url: str | None = None
    source: Literal["platform", "outlook"]
    pairing_id: str | None = None
    on_conflict: OnConflict
    failure_reason: str | None = None
    pending_change: Literal["create", "reschedule", "cancel"] | None = None
    series_note: str | None = Field(default=None, description="exceptions_reset_by_pattern_change when a new "
                                    "pattern or new times dropped changes made to single occurrences.")
    cancelled_from: date | None = None
    occurrences: list[Occurrence]
    updated_at: datetime


class SeriesSummary(Reply):
    """GET /api/series: one of the caller's series (without its occurrences)."""

    id: str
    status: Status
    organizer: str
    attendees: list[Attendee]
    recurrence: dict[str, Any]
    time_zone: str
    start: datetime
    end: datetime
    pending_change: Literal["create", "reschedule", "cancel"] | None = None
    cancelled_from: date | None = None
    updated_at: datetime
