"""Shared field types and base classes of the HTTP contract."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Final, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    model_validator,
)
from pydantic.alias_generators import to_camel

from core.domain.timezones import is_valid_iana

MAX_WINDOW: Final = timedelta(days=62)  # Graph's getSchedule / calendarView window
GUID_PATTERN: Final = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_PATTERN: Final = rf"^[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]{{1,64}}@{_LABEL}(?:\.{_LABEL})+$"
ID_PATTERN: Final = r"^[A-Za-z0-9_-]{1,64}$"
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?(?:[Zz]|[+-]\d{2}:\d{2})$")
# In a query string an unencoded "+" arrives as a space: "10:00:00 01:00" meant "+01:00".
_SPACE_OFFSET = re.compile(r"^(.*\d) (\d{2}:\d{2})$")


def _iso_datetime(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date-time string with an offset, like 2025-03-01T09:00:00+01:00")
    text = value.strip()
    fixed = _SPACE_OFFSET.match(text)
    if fixed:
        text = f"{fixed.group(1)}+{fixed.group(2)}"
    if len(text) > 40 or not _ISO.match(text):
        raise ValueError("must be an ISO 8601 date-time with an offset, like 2025-03-01T09:00:00+01:00")
    return text


MIN_YEAR: Final = 1900  # times a calendar product books; also keeps UTC conversions of far offsets in range
MAX_YEAR: Final = 2199


def _in_range(value: datetime) -> datetime:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"must be a date-time between the years {MIN_YEAR} and {MAX_YEAR}")
    return value


def _iana(value: str) -> str:
    if not is_valid_iana(value):
        raise ValueError("must be an IANA time zone name, like Europe/Paris")
    return value


IsoDateTime = Annotated[AwareDatetime, Strict(False), BeforeValidator(_iso_datetime), AfterValidator(_in_range)]
TimeZoneName = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_iana)]
Email = Annotated[str, StringConstraints(min_length=3, max_length=254, pattern=EMAIL_PATTERN)]
Guid = Annotated[str, StringConstraints(pattern=GUID_PATTERN)]
UserRef = Annotated[
    str,
    StringConstraints(min_length=3, max_length=254, pattern=f"(?:{GUID_PATTERN})|(?:{EMAIL_PATTERN})"),
    Field(description="A user of the caller's tenant: Entra object id (GUID) or email/UPN."),
]
ResourceId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Subject = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Comment = Annotated[str, StringConstraints(max_length=1000)]


class RequestBody(BaseModel):
    """A JSON request body: camelCase names only, no unknown fields, strict JSON types."""

    model_config = ConfigDict(
        alias_generator=to_camel, extra="forbid", strict=True, frozen=True, str_strip_whitespace=False,
        defer_build=True,
    )


class Query(BaseModel):
    """Query-string parameters: strings converted to the declared types, no unknown names."""

    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", frozen=True, defer_build=True)


class PathParams(BaseModel):
    """Route parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Reply(BaseModel):
    """A JSON response: built with Python names, serialized with the contract's camelCase."""

    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, frozen=True,
                              defer_build=True)


def check_window(start: datetime, end: datetime, *, what: str = "window") -> None:
    """End after start and at most 62 days later (Graph's limit for schedules and calendar views)."""
    if end <= start:
        raise ValueError(f"the {what} must end after it starts")
    if end - start > MAX_WINDOW:
        raise ValueError(f"the {what} may span at most 62 days")


class WindowQuery(Query):
    """``?from&to`` of list routes."""

    from_: IsoDateTime = Field(alias="from")
    to: IsoDateTime

    @model_validator(mode="after")
    def _window(self) -> Self:
        check_window(self.from_, self.to)
        return self


class NoQuery(Query):
    """A route that takes no query parameters."""


class Slot(Reply):
    """A free interval, in UTC."""

    start: datetime
    end: datetime
