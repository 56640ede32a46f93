"""Is the slot still free? The free/busy re-check and the organizer's slot claims.

Two questions, asked before a booking (or a move) is accepted and again before its
event is written:

* **Free/busy** (``busy_addresses``, ``free_busy``): one ``getSchedule`` per 20 addresses
  for the organizer, the required colleagues and the room (and a group's candidate hosts
  and rooms) over exactly the session's times. A blocking item (busy, out
  of office, unknown, tentative: the slot engine's rule, ``core.domain.slots.blocks``)
  overlapping the times makes that address busy. When a session is *moved*, its own
  event is still in those calendars at the old times: one item per address exactly at
  the old times is ignored (getSchedule items carry no event id). A schedule Graph
  could not give (per-address error) is not counted: the write decides.
* **Claims** (``SlotClaims``): Graph shows a booking only once its event exists, so two
  requests for the same organizer and time, milliseconds apart, would both see a free
  slot. Each booking therefore claims its organizer's time range in
  ``core/services/stores/slot_claims.py`` (ETag-guarded rows per organizer and day):
  the second request finds the first one's claim and is refused. Claims are released
  lazily: a claim whose session is cancelled, failed, being cancelled, or was moved
  away from those times stops counting; a claim whose session is not stored (or not
  saved) yet holds for ``GRACE``, so a request still in flight keeps its hold. A series claims
  each occurrence under the id its occurrence row will have (``<seriesId>-<start>``): until
  the worker has read the rows back from Outlook, such a claim holds while its series is
  being booked (core/services/series.py: why per occurrence and not per span).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Final

from core.domain.calendar import GET_SCHEDULE_MAX_ADDRESSES, GraphIdentity
from core.domain.errors import ConcurrencyConflict, Conflict, NotFound, SlotTaken
from core.domain.series import SeriesOp, SeriesStatus, series_of_session_id
from core.domain.sessions import PendingOp, SessionStatus
from core.domain.slots import blocks
from core.ports import CalendarGateway, Clock, TableStore
from core.services.stores.series import SeriesRepository
from core.services.stores.sessions import SessionRepository
from core.services.stores.slot_claims import SlotClaim, SlotClaimStore, claim_days

log = logging.getLogger(__name__)

GRACE: Final = timedelta(seconds=60)  # a claim whose session is not stored (yet) holds this long
MAX_TRIES: Final = 8
CHECK_INTERVAL_MINUTES: Final = 5  # getSchedule's smallest availabilityViewInterval (only items are read)
SLOT_TAKEN: Final = "slot_taken"  # the session's failureReason when the worker's re-check finds a clash


def busy_addresses(
    gateway: CalendarGateway,
    who: GraphIdentity,
    anchor: str,
    addresses: Sequence[str],
    *,
    start: datetime,
    end: datetime,
    ignore: tuple[datetime, datetime] | None = None,
) -> list[str]:
    """The addresses (of ``addresses``) with a blocking item in [start, end): one getSchedule call per 20."""
    states = free_busy(gateway, who, anchor, addresses, start=start, end=end, ignore=ignore)
    return [a for a in dict.fromkeys(a for a in addresses if a) if states.get(a.lower()) is False]


def free_busy(
    gateway: CalendarGateway,
    who: GraphIdentity,
    anchor: str,
    addresses: Sequence[str],
    *,
    start: datetime,
    end: datetime,
    ignore: tuple[datetime, datetime] | None = None,
) -> dict[str, bool | None]:
    """Lower-case address -> True (free over [start, end)), False (busy) or None (Graph gave no
    schedule for it); getSchedule in groups of 20 (a group with its candidate hosts and rooms)."""
    unique = list(dict.fromkeys(a for a in addresses if a))
    states: dict[str, bool | None] = {}
    for first in range(0, len(unique), GET_SCHEDULE_MAX_ADDRESSES):
        group = unique[first:first + GET_SCHEDULE_MAX_ADDRESSES]
        for schedule in gateway.get_schedule(who, anchor, group, start, end, interval_minutes=CHECK_INTERVAL_MINUTES):
            if not schedule.ok:
                states.setdefault(schedule.address.lower(), None)
                continue
            items = list(schedule.busy)
            if ignore is not None:
                own = next((i for i in items if (i.start, i.end) == ignore), None)
                if own is not None:
                    items.remove(own)
            busy = any(blocks(i.status) and i.start < end and start < i.end for i in items)
            states[schedule.address.lower()] = not busy
    return states


def slot_taken(busy: Sequence[str]) -> SlotTaken:
    return SlotTaken(details={"busy": list(busy)})


class SlotClaims:
    """Claims of organizers' time ranges by sessions (module docstring)."""

    def __init__(self, tables: TableStore, clock: Clock) -> None:
        self.store = SlotClaimStore(tables)
        self.sessions = SessionRepository(tables)
        self.clock = clock

    def claim(self, tenant_id: str, organizer_id: str, session_id: str, start: datetime, end: datetime,
              *, allow_conflicts: bool = False) -> None:
        """Hold [start, end) of the organizer's calendar for ``session_id``; 409 ``slot_taken`` when another
        live claim overlaps (recorded anyway with ``allow_conflicts``). A session's earlier claim on the
        same day is replaced."""
        done: list[date] = []
        try:
            for day in claim_days(start, end):
                self._claim_day(tenant_id, organizer_id, day, session_id, start=start, end=end,
                                allow_conflicts=allow_conflicts)
                done.append(day)
        except SlotTaken:
            for day in done:
                self._release_day(tenant_id, organizer_id, day, session_id)
            raise

    def release(self, tenant_id: str, organizer_id: str, session_id: str, start: datetime, end: datetime) -> None:
        """Drop the session's claims of these times (a refused or failed booking); best effort."""
        for day in claim_days(start, end):
            self._release_day(tenant_id, organizer_id, day, session_id)

    def purge_past(self, tenant_id: str) -> int:
        """Delete the tenant's rows of days before today; how many."""
        today = self.clock.now().date()
        rows = list(self.store.past_rows(tenant_id, today))
        for row_key in rows:
            self.store.delete(tenant_id, row_key)
        return len(rows)

    # --- one day ---------------------------------------------------------------------

    def _claim_day(self, tenant_id: str, organizer_id: str, day: date, session_id: str, *, start: datetime,
                   end: datetime, allow_conflicts: bool) -> None:
        for _ in range(MAX_TRIES):
            now = self.clock.now()
            found = self.store.get(tenant_id, organizer_id, day)
            current = found.value if found is not None else ()
            kept = [c for c in current if c.session_id != session_id and c.end > now]
            others = [c for c in kept if c.overlaps(start, end)]
            if others:
                stale = {c.session_id for c in others if not self._live(tenant_id, c, now)}
                kept = [c for c in kept if c.session_id not in stale]
                if not allow_conflicts and any(c.session_id not in stale for c in others):
                    raise SlotTaken(details={"busy": []})
            kept.append(SlotClaim(session_id, start, end, now))
            try:
                self.store.put(tenant_id, organizer_id, day, tuple(kept), found.etag if found else None,
                               exists=found is not None)
                return
            except (ConcurrencyConflict, NotFound):
                continue
            except Conflict:
                continue  # another request created the day's row first: read it and decide again
        raise ConcurrencyConflict("The organizer's calendar kept changing; try again.")

    def _release_day(self, tenant_id: str, organizer_id: str, day: date, session_id: str) -> None:
        for _ in range(MAX_TRIES):
            found = self.store.get(tenant_id, organizer_id, day)
            if found is None or all(c.session_id != session_id for c in found.value):
                return
            kept = tuple(c for c in found.value if c.session_id != session_id)
            try:
                self.store.put(tenant_id, organizer_id, day, kept, found.etag, exists=True)
                return
            except (ConcurrencyConflict, NotFound):
                continue
        log.warning("a slot claim could not be released (kept changing); it lapses with its session")

    def _series_holds(self, tenant_id: str, session_id: str) -> bool | None:
        """An occurrence of a series whose row is not written yet (rows are read back from Outlook after
        the master): held while its series is still being booked; None when no series is stored (yet)."""
        series_id = series_of_session_id(session_id)
        if series_id is None:
            return None
        found = SeriesRepository(self.sessions.tables).get(tenant_id, series_id)
        if found is None:
            return None
        return found.value.status is SeriesStatus.PENDING and found.value.pending_op is SeriesOp.CREATE

    def _live(self, tenant_id: str, claim: SlotClaim, now: datetime) -> bool:
        """Does this claim still hold its times? (module docstring: lazy release)"""
        found = self.sessions.get(tenant_id, claim.session_id)
        if found is None:
            held = self._series_holds(tenant_id, claim.session_id)
            if held is not None:
                return held
        if found is not None:
            s = found.value
            final = s.status in (SessionStatus.CANCELLED, SessionStatus.FAILED) and s.pending_op is None
            if final or s.pending_op is PendingOp.CANCEL:
                return False
            if claim.overlaps(s.start, s.end):
                return True
            if s.updated_at is not None and s.updated_at >= claim.claimed_at:
                return False  # the session changed since: it moved away from these times
        return claim.claimed_at > now - GRACE
