"""Graph's ``patternedRecurrence`` as the API takes it (POST /api/sessions, the series routes).

Checked for shape here (types and names) and for meaning by the domain
(``core/domain/recurrence.py``), whose 422 codes name each problem (``unknown_pattern_type``,
``interval_not_positive``, ``days_of_week_required``, ``too_many_occurrences``,
``series_too_long``, ``start_not_in_pattern``...): enum values and numbers are plain
strings and integers here, so the domain, not the schema, names what is wrong.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import Field, Strict, StringConstraints

from functions.schemas.common import RequestBody

Name = Annotated[str, StringConstraints(min_length=1, max_length=32)]
DateText = Annotated[date, Strict(False)]


class RecurrencePattern(RequestBody):
    """How often (Graph ``recurrencePattern``): only the properties the type uses."""

    type: Name = Field(description="daily, weekly, absoluteMonthly, relativeMonthly, absoluteYearly or "
                                   "relativeYearly.", examples=["weekly"])
    interval: int = Field(default=1, description="Every N days, weeks, months or years (1-99).")
    days_of_week: list[Name] | None = Field(
        default=None, max_length=7,
        description="weekly and relative patterns: sunday ... saturday (relativeMonthly with index last and "
                    "[friday] is the last Friday of the month).")
    day_of_month: int | None = Field(default=None, description="Absolute patterns: 1-31 (the 31st falls on a "
                                                               "shorter month's last day).")
    month: int | None = Field(default=None, description="Yearly patterns: 1-12.")
    index: Name | None = Field(default=None, description="Relative patterns: first, second, third, fourth or last.")
    first_day_of_week: Name | None = Field(default=None, description="Weekly patterns: where a week starts "
                                                                     "(default sunday).")


class RecurrenceRange(RequestBody):
    """For how long (Graph ``recurrenceRange``): an end date or a number of occurrences (a series must end)."""

    type: Name = Field(description="endDate or numbered (noEnd is refused: no_end_not_allowed).",
                       examples=["numbered"])
    start_date: DateText = Field(description="The first start's date in the series' time zone.")
    end_date: DateText | None = Field(default=None, description="endDate: the last day (inclusive).")
    number_of_occurrences: int | None = Field(default=None, description="numbered: 1-104.")
    recurrence_time_zone: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        default=None, description="Defaults to the request's timeZone (the organizer's zone).")


class Recurrence(RequestBody):
    """Graph's ``patternedRecurrence``: at most 104 occurrences over at most two years."""

    pattern: RecurrencePattern
    range_: RecurrenceRange = Field(alias="range")

    def graph_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
