"""Entity values in and out of Table Storage, one rule each: the only place that decodes a stored time.

``Versioned`` pairs a value with the ETag it was read with (pass it back to save);
``on_latest`` makes a caller's change again on the latest version when its ETag save lost.
``as_datetime`` reads what any adapter or an older row gave back: ``None`` and ``""``
are "no value"; an aware datetime is kept (a naive one is UTC, as Table Storage stores
it); an ISO 8601 string is parsed (``Z`` allowed); anything else is a ``TypeError``,
because it means the row was written by something other than a store here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from core.domain.errors import ConcurrencyConflict
from core.ports import EntityValue

T = TypeVar("T")

# The highest code point: ``prefix + END`` is the exclusive upper bound of a prefix range query.
END = "\U0010ffff"


@dataclass(frozen=True, slots=True)
class Versioned(Generic[T]):
    """A value with the ETag it was read with (pass it back to save)."""

    value: T
    etag: str | None


# How many times a caller's change is re-read and re-applied when the row moved under it.
CHANGE_ATTEMPTS = 4


def on_latest(change: Callable[[], T], attempts: int = CHANGE_ATTEMPTS) -> T:
    """Run ``change`` (read, check, save by ETag) again when its save met a newer version.

    A user's reschedule or cancel is an intent, not an edit of a version they saw: when a
    background sync (a change notification, reconciliation, the event writer recording the
    Outlook answer) saved the row between our read and our write, the change is made again on
    the row as it now is, every check included. Only when the row keeps changing is the
    caller told (409 ``concurrent_update``)."""
    for _ in range(attempts - 1):
        try:
            return change()
        except ConcurrencyConflict:
            continue
    return change()


def as_datetime(value: EntityValue) -> datetime | None:
    """A stored time as an aware datetime, or None when there is none (see the module docstring)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    raise TypeError(f"not a stored time: {type(value).__name__}")


def require_datetime(value: EntityValue) -> datetime:
    """``as_datetime`` for a property every row has; ``ValueError`` when it is missing."""
    found = as_datetime(value)
    if found is None:
        raise ValueError("a required time is missing from the stored row")
    return found


def opt_str(value: EntityValue) -> str | None:
    """A stored optional text: absent and empty are both None."""
    return None if value is None or value == "" else str(value)


def as_int(value: EntityValue, default: int = 0) -> int:
    """A stored count; absent (or empty) is ``default``."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return int(value)
    return int(str(value))


def iso_utc(value: datetime) -> str:
    """A time as a sortable key part: ``yyyy-MM-ddTHH:mm:ssZ`` in UTC."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
