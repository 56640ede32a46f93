"""Any-of at booking time and in the event-write worker: loads, choices and their claims.

The rules are pure (``core/domain/assignment.py``); this module feeds them what they
need and makes a choice stick:

* **Loads** come from the session index (``u~`` rows of each candidate, then the
  sessions themselves): one range query per candidate and one point read per session
  of theirs within ``LOAD_WINDOW`` of the slot. No Graph call.
* **Claims.** Free/busy shows a booking only once its event exists, so two bookings
  choosing at the same moment could take the same host or room. A choice is therefore
  claimed like the organizer's time (``core/services/slot_guard.py`` ``SlotClaims``,
  keyed by the host's object id, or by a hash of the room's address): a candidate
  another live booking holds is skipped and the next one is taken. With
  ``allowConflicts`` the claim is recorded but refuses nothing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection, Sequence
from datetime import datetime

from core.domain.assignment import (
    LOAD_WINDOW,
    Choice,
    HostCandidate,
    Load,
    RoomChoice,
    RoomOption,
    load_at,
    pick_host,
    pick_room,
)
from core.domain.errors import SlotTaken
from core.domain.sessions import PendingOp, Session, SessionStatus
from core.ports import Clock, TableStore
from core.services.slot_guard import SlotClaims
from core.services.stores.sessions import SessionRepository

log = logging.getLogger(__name__)

History = list[tuple[datetime, datetime | None]]  # (start, created at) of a candidate's sessions


def room_claim_key(address: str) -> str:
    """The claim key of a room (a row-key-safe hash of its address; rooms have no object id here)."""
    return "room-" + hashlib.sha256(address.strip().lower().encode()).hexdigest()[:40]


def holds_time(s: Session) -> bool:
    """Pending or booked and not being cancelled: the session counts towards a load."""
    if s.status in (SessionStatus.CANCELLED, SessionStatus.FAILED) and s.pending_op is None:
        return False
    return s.pending_op is not PendingOp.CANCEL and s.status is not SessionStatus.CANCELLED


class AnyOfChooser:
    """Chooses hosts and rooms for sessions and claims them (module docstring)."""

    def __init__(self, tables: TableStore, clock: Clock) -> None:
        self.sessions = SessionRepository(tables)
        self.claims = SlotClaims(tables, clock)

    # --- loads ------------------------------------------------------------------------

    def histories(self, tenant_id: str, user_ids: Sequence[str], start: datetime, end: datetime,
                  *, exclude: str | None = None) -> dict[str, History]:
        """(start, created at) of each user's sessions that hold time and start within ``LOAD_WINDOW``
        of [start, end], by lower-case id; ``exclude`` is the session being booked."""
        out: dict[str, History] = {}
        for user_id in dict.fromkeys(u.lower() for u in user_ids):
            found = self.sessions.list_for_user(tenant_id, user_id, start - LOAD_WINDOW, end + LOAD_WINDOW)
            out[user_id] = sorted((s.start, s.created_at) for s in found
                                  if s.session_id != exclude and holds_time(s))
        return out

    @staticmethod
    def loads(histories: dict[str, History], at: datetime) -> dict[str, Load]:
        return {uid: load_at(h, at) for uid, h in histories.items()}

    # --- choosing and claiming --------------------------------------------------------

    def choose_host(self, tenant_id: str, session_id: str, hosts: Sequence[HostCandidate], *, start: datetime,
                    end: datetime, free: Collection[str] | None, allow_conflicts: bool = False) -> Choice | None:
        """The least-loaded free host whose time could be claimed for ``session_id`` (None: none)."""
        loads = self.loads(self.histories(tenant_id, [h.user_id for h in hosts], start, start,
                                          exclude=session_id), start)
        remaining = list(hosts)
        while remaining:
            choice = pick_host(remaining, loads, start, free)
            if choice is None:
                return None
            assert choice.user_id is not None
            try:
                self.claims.claim(tenant_id, choice.user_id, session_id, start, end, allow_conflicts=allow_conflicts)
            except SlotTaken:
                log.info("any-of: a host is held by another booking; next candidate",
                         extra={"tenant": tenant_id, "event": "host_claimed"})
                remaining = [h for h in remaining if h.user_id != choice.user_id]
                continue
            return choice
        return None

    def choose_room(self, tenant_id: str, session_id: str, rooms: Sequence[RoomOption], *, choice: RoomChoice,
                    need: int | None, start: datetime, end: datetime, free: Collection[str] | None,
                    allow_conflicts: bool = False) -> Choice | None:
        """The best free room (``rooms`` already ranked) that could be claimed for ``session_id``."""
        remaining = list(rooms)
        while remaining:
            picked = pick_room(remaining, choice, need, free, given=len(rooms))
            if picked is None:
                return None
            try:
                self.claims.claim(tenant_id, room_claim_key(picked.address), session_id, start, end,
                                  allow_conflicts=allow_conflicts)
            except SlotTaken:
                log.info("any-of: a room is held by another booking; next candidate",
                         extra={"tenant": tenant_id, "event": "room_claimed"})
                remaining = [r for r in remaining if r.address.lower() != picked.address.lower()]
                continue
            return picked
        return None

    def release_host(self, tenant_id: str, user_id: str, session_id: str, start: datetime, end: datetime) -> None:
        self.claims.release(tenant_id, user_id, session_id, start, end)

    def release_room(self, tenant_id: str, address: str, session_id: str, start: datetime, end: datetime) -> None:
        self.claims.release(tenant_id, room_claim_key(address), session_id, start, end)


__all__ = ["AnyOfChooser", "holds_time", "room_claim_key"]
