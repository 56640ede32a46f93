"""Offered hours (availability rules): a user's own, the tenant default, and their preview.

Shapes are checked here (422 ``validation_failed``); meaning is checked by the domain
(core/domain/offered_hours.py) with its own 422 codes (``inverted_window``,
``overlapping_windows``, ``too_many_windows``, ``invalid_cap``, ``notice_out_of_range``,
``buffer_out_of_range``, ``unknown_time_zone``, ...), so a client can tell what to fix.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from core.domain.calendar import Weekday
from core.domain.offered_hours import (
    MAX_BUFFER_MINUTES,
    MAX_NOTICE_MINUTES,
    MAX_OVERRIDE_WINDOWS,
    MAX_OVERRIDES,
    MAX_PER_DAY,
    MAX_PER_WEEK,
    MAX_WINDOWS_PER_DAY,
    DateOverride,
    OfferedHours,
    OverrideMode,
    WeeklyWindow,
    Window,
)
from functions.schemas.common import PathParams, Reply, RequestBody, Slot, TimeZoneName, UserRef, WindowQuery

DayName = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
ClockTime = Annotated[
    str,
    StringConstraints(pattern=r"^(?:(?:[01]\d|2[0-3]):[0-5]\d|24:00)$"),
    Field(description="Wall-clock time HH:MM in the rules' time zone; 24:00 is the midnight ending the day.",
          examples=["14:00"]),
]
Mode = Literal["off", "replace", "add"]
Source = Literal["own", "default", "none"]
PREVIEW_FIRST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
PREVIEW_LAST = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)
# Shape bounds only (a request cannot be huge); the documented limits are the domain's, with their own codes.
_MAX_LIST = 200


def _range(low: int, high: int, text: str) -> dict[str, Any]:
    """Bounds published in the schema; the domain enforces them with a specific 422 code."""
    return {"minimum": low, "maximum": high, "description": text}


class WindowBody(RequestBody):
    """A window on one day: ``start`` to ``end``; ``endsNextDay`` for one that crosses midnight
    (``22:00``-``02:00``). It lasts 5 minutes to 24 hours."""

    start: ClockTime
    end: ClockTime
    ends_next_day: bool = False


class WeeklyWindowBody(WindowBody):
    """A window offered every week on ``day`` (the day it starts on)."""

    day: DayName


class OverrideBody(RequestBody):
    """One local date: ``off`` (nothing that day), ``replace`` (these windows instead of the weekly ones)
    or ``add`` (these windows as well). ``off`` and ``replace`` own the whole date."""

    date: dt.date = Field(description="A local date in the rules' time zone, YYYY-MM-DD.")
    mode: Mode
    windows: Annotated[list[WindowBody], Field(max_length=_MAX_LIST)] = Field(
        default_factory=list, description=f"At most {MAX_OVERRIDE_WINDOWS}; none for off.")


class AvailabilityRulesBody(RequestBody):
    """PUT of offered hours: the whole document (what is left out takes its default).

    Send ``If-Match: <etag>`` (the ETag header or ``etag`` of your last read) to replace exactly
    that version, ``If-None-Match: *`` to create only; either failing answers 412
    ``precondition_failed``. Without them the last writer wins.
    """

    time_zone: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="IANA time zone of every window and date (422 unknown_time_zone if it does not exist).",
        examples=["Europe/Berlin"])
    weekly: Annotated[list[WeeklyWindowBody], Field(max_length=_MAX_LIST)] = Field(
        default_factory=list,
        description=f"Weekly windows, at most {MAX_WINDOWS_PER_DAY} per day, none overlapping (across midnight too).")
    overrides: Annotated[list[OverrideBody], Field(max_length=_MAX_LIST)] = Field(
        default_factory=list, description=f"Date overrides, at most {MAX_OVERRIDES}, one per date.")
    min_notice_minutes: int = Field(0, json_schema_extra=_range(
        0, MAX_NOTICE_MINUTES, "Nothing starting sooner than this (422 notice_out_of_range outside 0-43200)."))
    buffer_before_minutes: int = Field(0, json_schema_extra=_range(
        0, MAX_BUFFER_MINUTES, "Free time kept before each session (422 buffer_out_of_range)."))
    buffer_after_minutes: int = Field(0, json_schema_extra=_range(
        0, MAX_BUFFER_MINUTES, "Free time kept after each session (422 buffer_out_of_range)."))
    max_per_day: int | None = Field(None, json_schema_extra=_range(
        1, MAX_PER_DAY, "At most this many sessions a local day; null for no cap (422 invalid_cap for 0)."))
    max_per_week: int | None = Field(None, json_schema_extra=_range(
        1, MAX_PER_WEEK, "At most this many sessions a week (weeks start Monday, local); null for no cap."))
    within_working_hours: bool = Field(
        True, description="Also limit to the mailbox's working hours (false: these hours stand on their own).")


class WindowView(Reply):
    start: str
    end: str
    ends_next_day: bool = False


class WeeklyWindowView(WindowView):
    day: str


class OverrideView(Reply):
    date: dt.date
    mode: str
    windows: list[WindowView] = Field(default_factory=list)


class AvailabilityRules(Reply):
    """Offered hours and where they come from: ``own`` (the user's), ``default`` (the tenant's, for
    users without their own) or ``none`` (no rules: every free time in working hours is offered).

    ``etag`` (also the ``ETag`` header) is the version to send back in ``If-Match``; on
    ``/me`` and ``/users/{user}`` it is present only for ``own`` rules.
    """

    source: Source
    etag: str | None = None
    time_zone: str | None = None
    weekly: list[WeeklyWindowView] | None = None
    overrides: list[OverrideView] | None = None
    min_notice_minutes: int | None = None
    buffer_before_minutes: int | None = None
    buffer_after_minutes: int | None = None
    max_per_day: int | None = None
    max_per_week: int | None = None
    within_working_hours: bool | None = None
    updated_at: dt.datetime | None = None


class PreviewQuery(WindowQuery):
    """``?from&to`` (at most 62 days); ``durationMinutes`` also asks for bookable slots of that length."""

    duration_minutes: Annotated[int, Field(ge=5, le=480)] | None = None
    time_zone: TimeZoneName | None = Field(None, description="Zone the slots align to (default: the rules' zone).")

    @model_validator(mode="after")
    def _length(self) -> Self:
        if not (self.from_ >= PREVIEW_FIRST and self.to <= PREVIEW_LAST):
            raise ValueError("the window must lie between the years 2000 and 2199")
        if self.duration_minutes is not None and (self.to - self.from_).total_seconds() < self.duration_minutes * 60:
            raise ValueError("the window is shorter than durationMinutes")
        return self


class OfferedPreview(Reply):
    """What the rules offer in the window (UTC), before busy time is taken out; with ``durationMinutes``,
    also ``slots``: what a partner with a free calendar could book now (offered minus the user's own
    busy time, buffers, and working hours unless the rules stand on their own)."""

    source: Source
    time_zone: str | None = None
    offered: list[Slot]
    slots: list[Slot] | None = None


class UserPath(PathParams):
    user: UserRef


def rules_of(body: AvailabilityRulesBody) -> OfferedHours:
    """The domain rules a PUT body describes (not yet validated: the service does that)."""
    def window(w: WindowBody) -> Window:
        return Window.of(w.start, w.end, ends_next_day=w.ends_next_day)

    return OfferedHours(
        time_zone=body.time_zone,
        weekly=tuple(WeeklyWindow(Weekday(w.day), window(w)) for w in body.weekly),
        overrides=tuple(
            DateOverride(o.date, OverrideMode(o.mode), tuple(window(w) for w in o.windows)) for o in body.overrides
        ),
        min_notice_minutes=body.min_notice_minutes,
        buffer_before_minutes=body.buffer_before_minutes,
        buffer_after_minutes=body.buffer_after_minutes,
        max_per_day=body.max_per_day,
        max_per_week=body.max_per_week,
        within_working_hours=body.within_working_hours,
    )


def window_view(w: Window) -> WindowView:
    return WindowView(start=w.start_text(), end=w.end_text(), ends_next_day=w.ends_next_day)


def rules_view(source: str, rules: OfferedHours | None, etag: str | None,
               updated_at: dt.datetime | None) -> AvailabilityRules:
    """The reply for rules (``etag`` already in its HTTP form)."""
    if rules is None:
        return AvailabilityRules(source="none")
    return AvailabilityRules(
        source="own" if source == "own" else "default",
        etag=etag,
        time_zone=rules.time_zone,
        weekly=[
            WeeklyWindowView(day=str(w.day), start=w.window.start_text(), end=w.window.end_text(),
                             ends_next_day=w.window.ends_next_day)
            for w in sorted(rules.weekly, key=lambda w: (w.day.iso, w.window))
        ],
        overrides=[
            OverrideView(date=o.day, mode=o.mode.value, windows=[window_view(w) for w in o.windows])
            for o in sorted(rules.overrides, key=lambda o: o.day)
        ],
        min_notice_minutes=rules.min_notice_minutes,
        buffer_before_minutes=rules.buffer_before_minutes,
        buffer_after_minutes=rules.buffer_after_minutes,
        max_per_day=rules.max_per_day,
        max_per_week=rules.max_per_week,
        within_working_hours=rules.within_working_hours,
        updated_at=updated_at,
    )
