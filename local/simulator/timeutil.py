"""Graph's date/time conventions: ``dateTimeTimeZone`` values, Windows zone names, Prefer headers."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import win_tz

_FRACTION = re.compile(r"(\.\d{6})\d+")
_PREFER_TZ = re.compile(r'outlook\.timezone\s*=\s*"([^"]+)"', re.IGNORECASE)
_PREFER_PAGE = re.compile(r"odata\.maxpagesize\s*=\s*(\d+)", re.IGNORECASE)


class BadTime(ValueError):
    """A date/time or time-zone value Graph would refuse."""


def zone(name: str | None) -> tzinfo:
    """Resolve a Windows or IANA zone name; raise ``BadTime`` if neither."""
    if not name or name.upper() in ("UTC", "ETC/UTC", "Z", "COORDINATED UNIVERSAL TIME"):
        return UTC
    iana = win_tz.get(name)
    try:
        return ZoneInfo(iana or name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BadTime(
            f"A valid TimeZone value must be specified. The following TimeZone value is not supported: '{name}'."
        ) from exc


def zone_or_utc(name: str | None) -> tuple[tzinfo, str]:
    """The zone for a Prefer header: unknown names fall back to UTC (as Graph does)."""
    try:
        return zone(name), (name or "UTC")
    except BadTime:
        return UTC, "UTC"


def parse_local(value: str, tz: tzinfo) -> datetime:
    """Parse an ISO date-time; naive values are read in ``tz``; the result is in UTC."""
    text = _FRACTION.sub(r"\1", value.strip())
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise BadTime(f"Cannot convert the literal '{value}' to the expected type 'Edm.DateTimeOffset'.") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC)


def parse_dttz(value: Any) -> datetime:
    """Parse a Graph ``dateTimeTimeZone`` dict (or an ISO string with offset) to UTC."""
    if isinstance(value, str):
        return parse_local(value, UTC)
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        raise BadTime("A dateTimeTimeZone value with a dateTime is required.")
    return parse_local(value["dateTime"], zone(value.get("timeZone")))


def graph_datetime(moment: datetime, tz: tzinfo) -> str:
    """Graph's seven-digit fraction form, without offset, in the given zone."""
    local = moment.astimezone(tz)
    return local.strftime("%Y-%m-%dT%H:%M:%S") + f".{local.microsecond * 10:07d}"


def dttz(moment: datetime, tz: tzinfo, tz_name: str) -> dict[str, str]:
    """A ``dateTimeTimeZone`` value."""
    return {"dateTime": graph_datetime(moment, tz), "timeZone": tz_name}


def iso_z(moment: datetime) -> str:
    """UTC with a ``Z`` suffix and seven fraction digits, like Graph's DateTimeOffset values."""
    return graph_datetime(moment, UTC) + "Z"


def prefer_timezone(prefer: str | None) -> tuple[tzinfo, str, bool]:
    """The zone asked for by ``Prefer: outlook.timezone="..."``; UTC when absent."""
    match = _PREFER_TZ.search(prefer or "")
    if not match:
        return UTC, "UTC", False
    tz, name = zone_or_utc(match.group(1))
    return tz, name, True


def prefer_page_size(prefer: str | None) -> int | None:
    """``Prefer: odata.maxpagesize=N`` if present."""
    match = _PREFER_PAGE.search(prefer or "")
    return int(match.group(1)) if match else None


def overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    """Half-open interval overlap."""
    return a_start < b_end and b_start < a_end


def now_utc() -> datetime:
    """The current time (one place, so the clock could be replaced)."""
    return datetime.now(UTC)


def floor_minutes(moment: datetime, minutes: int) -> datetime:
    """Round down to a whole number of minutes (used by the seed)."""
    return moment - timedelta(minutes=moment.minute % minutes, seconds=moment.second, microseconds=moment.microsecond)
