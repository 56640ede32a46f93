"""Per-user and service-account connections."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import StringConstraints

from functions.schemas.common import Email, Query, Reply, RequestBody

_Param = Annotated[str, StringConstraints(max_length=4096)]
ShowAs = Literal["free", "tentative", "busy", "oof", "workingElsewhere", "unknown"]


class AuthorizeUrl(Reply):
    authorize_url: str


class ConnectionCallbackQuery(Query):
    """What Microsoft appends to the sign-in redirect (other parameters are ignored)."""

    model_config = Query.model_config | {"extra": "ignore", "alias_generator": None}

    code: _Param | None = None
    state: _Param | None = None
    session_state: _Param | None = None
    error: _Param | None = None
    error_description: _Param | None = None


class Connection(Reply):
    """GET /api/me/connection."""

    connected: bool
    method: Literal["domainWide", "perUser", "serviceAccount"] | None = None
    needs_reconnect: bool = False
    reason: str | None = None


class WorkingHours(Reply):
    days_of_week: list[Literal["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]]
    start_time: str
    end_time: str
    time_zone: str


class CalendarSettings(Reply):
    """GET /api/me/calendar-settings."""

    time_zone: str
    working_hours: WorkingHours | None = None


class MyEvent(Reply):
    """One entry of the caller's own calendar (subject shown to its owner only, never stored)."""

    start: datetime
    end: datetime
    show_as: ShowAs
    subject: str | None = None
    is_session: bool = False


class ConnectionStartBody(RequestBody):
    """Optional body of POST /api/me/connection: what to connect (default: the caller's own calendar)."""

    purpose: Literal["user", "serviceAccount"] = "user"
    mailbox: Email | None = None
