"""Any-of choices: one room of several, one host of several (pure rules, no I/O).

Interview and group bookings often do not name *the* room or *the* interviewer: any of
these rooms will do, any one of these interviewers or mentors will do. The service
chooses, at request time and again in the event-write worker (a choice taken meanwhile
is replaced), and says why. The rules, so every caller and test can rely on them:

* **Rooms** (``rooms`` with ``roomChoice``). A room whose directory capacity is known
  and smaller than the party (``capacity``, by default the number of people invited,
  organizer included) is never chosen. ``first``: the first free room in the order the
  caller gave. ``bestFit``: the free room with the smallest known capacity that seats
  the party (ties: the caller's order); rooms with unknown capacity come after every
  room with a known one.
* **Hosts** (``hosts``). The free candidate with the lowest *load* is chosen and
  becomes a required attendee. A candidate's load at a slot is the number of sessions
  of theirs (organizer or attendee; pending or booked, not cancelled) starting within
  ``LOAD_WINDOW`` before or after the slot's start: round robin by load, so bookings
  spread over the pool and a host who is busy elsewhere in the service is not piled
  on. Ties go to the candidate booked least recently (the newest ``created_at`` of
  those sessions; never booked counts as longest ago), then to the smallest SHA-256 of
  (slot start, candidate id): deterministic (the same inputs give the same host, so
  availability's suggestion is what booking does), and fair (no candidate wins every
  tie by being first in the list).

Nothing here knows who is free: callers pass the set of free addresses, or ``None``
when free/busy was not read (``allowConflicts``, or Graph could not answer: the worker
checks again before the event is written).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

LOAD_WINDOW: Final = timedelta(days=14)  # each side of the slot's start
MAX_ROOM_CANDIDATES: Final = 20  # one getSchedule group of rooms
MAX_HOST_CANDIDATES: Final = 10
_LONG_AGO: Final = datetime(1900, 1, 1, tzinfo=UTC)


class RoomChoice(StrEnum):
    FIRST = "first"
    BEST_FIT = "bestFit"


@dataclass(frozen=True, slots=True)
class HostCandidate:
    """A colleague who may host: object id and SMTP address."""

    user_id: str
    address: str


@dataclass(frozen=True, slots=True)
class RoomOption:
    """A candidate room and its capacity from the room directory (None: not published)."""

    address: str
    capacity: int | None = None


@dataclass(frozen=True, slots=True)
class AnyOf:
    """What a session may choose from (kept on the session so the worker can choose again)
    and why the current choices were made (metadata only: addresses, counts, rules).
    ``rooms`` are the candidates that seat the party, already in the order of preference
    (``rank_rooms``), so choosing again needs no room directory."""

    rooms: tuple[RoomOption, ...] = ()
    room_choice: RoomChoice = RoomChoice.FIRST
    capacity: int | None = None
    hosts: tuple[HostCandidate, ...] = ()
    room_reason: str | None = None
    host_reason: str | None = None

    @property
    def reason(self) -> str | None:
        parts = [r for r in (self.host_reason, self.room_reason) if r]
        return " ".join(parts) or None


@dataclass(frozen=True, slots=True)
class Load:
    """A host candidate's load at one slot: sessions within the window, and the newest booking time."""

    count: int = 0
    last_booked: datetime | None = None


@dataclass(frozen=True, slots=True)
class Choice:
    """The chosen room or host and the sentence that explains it."""

    address: str
    reason: str
    user_id: str | None = None


def fits(room: RoomOption, need: int | None) -> bool:
    """Can the room seat ``need`` people (unknown capacities are not ruled out)?"""
    return need is None or room.capacity is None or room.capacity >= need


def rank_rooms(options: Sequence[RoomOption], choice: RoomChoice, need: int | None) -> list[RoomOption]:
    """The rooms that may be chosen, best first (module docstring)."""
    fitting = [r for r in options if fits(r, need)]
    if choice is RoomChoice.FIRST:
        return fitting
    order = {r.address.lower(): i for i, r in enumerate(options)}
    known = sorted((r for r in fitting if r.capacity is not None),
                   key=lambda r: (r.capacity or 0, order[r.address.lower()]))
    return known + [r for r in fitting if r.capacity is None]


def pick_room(options: Sequence[RoomOption], choice: RoomChoice, need: int | None,
              free: Collection[str] | None, *, given: int | None = None) -> Choice | None:
    """The room to book: the best-ranked one that is free (``free``: lower-case addresses;
    None: free/busy unknown, the best-ranked one). None when no room can be chosen.
    ``given`` is how many rooms the caller offered (for the reason; default: ``options``)."""
    for room in rank_rooms(options, choice, need):
        if free is None or room.address.lower() in free:
            count = given if given is not None else len(options)
            return Choice(room.address, _room_reason(room, choice, need, count, checked=free is not None))
    return None


def _room_reason(room: RoomOption, choice: RoomChoice, need: int | None, count: int, *, checked: bool) -> str:
    seats = f" that seats {need}" if need else ""
    free = "free " if checked else ""
    if choice is RoomChoice.FIRST:
        text = f"Room {room.address}: the first {free}room{seats} of the {count} given."
    elif room.capacity is not None:
        text = f"Room {room.address}: the smallest {free}room{seats} ({room.capacity} seats) of the {count} given."
    else:
        text = (f"Room {room.address}: no {free}room with a published capacity{seats}; "
                f"the first {free}one without a published capacity.")
    return text if checked else text[:-1] + " (free/busy not read; checked again before the event is written)."


def load_at(history: Sequence[tuple[datetime, datetime | None]], at: datetime) -> Load:
    """The load at slot start ``at`` from (start, created at) of the candidate's sessions."""
    low, high = at - LOAD_WINDOW, at + LOAD_WINDOW
    within = [created for start, created in history if low <= start < high]
    stamps = [c for c in within if c is not None]
    return Load(len(within), max(stamps) if stamps else None)


def _tie_hash(at: datetime, user_id: str) -> str:
    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return hashlib.sha256(f"{stamp}|{user_id.lower()}".encode()).hexdigest()


def rank_hosts(candidates: Sequence[HostCandidate], loads: Mapping[str, Load], at: datetime) -> list[HostCandidate]:
    """Candidates by (load, least recently booked, hash of slot and id): the module docstring's order."""

    def key(c: HostCandidate) -> tuple[int, datetime, str]:
        load = loads.get(c.user_id.lower(), Load())
        return (load.count, load.last_booked or _LONG_AGO, _tie_hash(at, c.user_id))

    return sorted(candidates, key=key)


def pick_host(candidates: Sequence[HostCandidate], loads: Mapping[str, Load], at: datetime,
              free: Collection[str] | None) -> Choice | None:
    """The host to book among the free candidates (``free``: lower-case addresses; None: unknown)."""
    ranked = [c for c in rank_hosts(candidates, loads, at) if free is None or c.address.lower() in free]
    if not ranked:
        return None
    chosen = ranked[0]

    def load_of(c: HostCandidate) -> Load:
        return loads.get(c.user_id.lower(), Load())

    count = load_of(chosen).count
    others = ", ".join(str(load_of(c).count) for c in ranked[1:])
    text = f"Host {chosen.address}: the fewest sessions within {LOAD_WINDOW.days} days of the slot ({count}"
    text += f"; the other {'free ' if free is not None else ''}candidates {others})" if others else ")"
    tied = [c for c in ranked[1:] if load_of(c).count == count]
    if tied and all(load_of(c).last_booked is None for c in (chosen, *tied)):
        text += ", tied and none booked before: the tie broken by a hash of the slot time"
    elif tied:
        text += ", tied: booked least recently"
    text += "." if free is not None else " (free/busy not read; checked again before the event is written)."
    return Choice(chosen.address, text, chosen.user_id)


__all__ = [
    "LOAD_WINDOW",
    "MAX_HOST_CANDIDATES",
    "MAX_ROOM_CANDIDATES",
    "AnyOf",
    "Choice",
    "HostCandidate",
    "Load",
    "RoomChoice",
    "RoomOption",
    "fits",
    "load_at",
    "pick_host",
    "pick_room",
    "rank_hosts",
    "rank_rooms",
]
