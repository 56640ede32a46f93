"""Series: the API side of recurring sessions (book, check, read, reschedule, cancel).

A series is booked through ``POST /api/sessions`` with a ``recurrence`` (Graph's
``patternedRecurrence``, in the organizer's zone = the request's ``timeZone``): one Outlook
series master in the organizer's calendar (one invitation, one RSVP for the series), with
the Teams link and the room, written by the event-write worker
(``core/services/series_writer.py``) exactly like a session: validated and stored here
(``pending``, ``version`` 1), queued as a ``SeriesWriteCommand``, answered 202.

**Who and what**: the same rules as one session (``BookingService``: pairing policy,
mailboxes an access test found unreachable, the tenant's rooms, a connected organizer),
plus the series rules of ``core/domain/recurrence.py`` (422 with the domain's codes: a
pattern Graph would refuse, more than 104 occurrences or two years, a first start that is
not the first occurrence...).

**Clashes**: every occurrence is checked against the organizer's, the partner's and the
room's free/busy across the whole span, in the fewest getSchedule calls (windows under
Graph's 62 days, ``occurrence_windows``; 52 weekly occurrences of two people and a room:
6 calls), and against the partner's offered hours (caps count the series' own earlier
occurrences). ``onConflict`` decides: ``fail`` refuses (409 ``slot_taken`` naming the
occurrences and with whom, never what they are busy with), ``skipClashing`` books the
others and makes the clashing ones cancelled occurrences of the series (Outlook cannot
create a series with exceptions: the master is written, then those occurrences are
cancelled, so attendees see them cancelled), ``bookAnyway`` books every one (offered hours
still bind: a person's rules are not a calendar that may be overbooked). When Graph
cannot answer now the request is accepted and the worker checks before writing.

**Slot claims: per occurrence.** Each occurrence claims its own time range in the
organizer's claim rows (``SlotClaims``, under the id its row will have), so a single
booking racing the series for one of those times is refused, and nothing else in the
series' span is held: a claim over the span would block the organizer's every other
booking for months. It costs one ETag write per occurrence day at request time.

**One occurrence or the whole series**: ``PATCH``/``DELETE /api/sessions/{occurrenceId}``
are session changes (``BookingService``) guarded here (``check_occurrence_change``): not
while the series itself is being changed, and a move may not reach a neighbour's day
(``crosses_boundary``, Outlook's ``ErrorOccurrenceCrossingBoundary``: 422
``occurrence_crossing_boundary``). ``PATCH /api/series/{id}`` gives new times and/or a new
rule from the first occurrence that has not started on; ``DELETE`` cancels every
occurrence that has not started, or those from a date on. Only the organizer (or the
product's server acting for them) changes a series; attendees get 403, anyone else 404.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Final

from core.domain.calendar import BusyInterval, GraphIdentity, PatternedRecurrence, RecurrencePatternType, Weekday
from core.domain.commands import SeriesWriteCommand
from core.domain.errors import (
    AuthorizationError,
    Conflict,
    DependencyError,
    GraphError,
    NotFound,
    OutsideOfferedHours,
    ParticipantUnreachable,
    SlotTaken,
    ValidationFailed,
)
from core.domain.recurrence import (
    Occurrence,
    at_wall_time,
    occurrence_windows,
    on_day,
    validate_series,
)
from core.domain.series import (
    OnConflict,
    Segment,
    Series,
    SeriesOp,
    SeriesStatus,
    cut_date,
    occurrence_session_id,
    require_organizer,
)
from core.domain.sessions import AttendeeState, Session, SessionStatus, validate_times
from core.domain.slots import blocks
from core.log import correlation_id
from core.names import Queues
from core.ports import CalendarGateway, Clock, CommandQueue, Sealer, TableStore
from core.services.authz import Caller, require_sessions_app
from core.services.booking import BookingRequest, BookingService
from core.services.event_writer import seal_texts
from core.services.offered_hours import OfferedHoursService
from core.services.pairings import require_enabled_integration
from core.services.slot_guard import SlotClaims
from core.services.stores.codec import Versioned, on_latest
from core.services.stores.integrations import IntegrationRepository
from core.services.stores.series import SeriesRepository
from core.services.stores.sessions import SessionRepository

log = logging.getLogger(__name__)

SCHEDULE_INTERVAL: Final = 60  # getSchedule's view interval: only the items are read, so the coarsest is cheapest
SUGGEST_SPAN: Final = timedelta(hours=4)  # moved starts are looked for this far either side of the asked time
SUGGEST_STEP: Final = timedelta(minutes=15)
MAX_SUGGESTIONS: Final = 3
REASON_NOT_QUEUED: Final = "The series could not be queued; please try again."

ROLE_ORGANIZER: Final = "organizer"
ROLE_ATTENDEE: Final = "attendee"
ROLE_ROOM: Final = "room"


# --- values -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeriesRequest:
    """A series as ``POST /api/sessions`` (with ``recurrence``) or ``POST /api/availability/series`` gives it."""

    start: datetime
    end: datetime
    time_zone: str
    recurrence: PatternedRecurrence
    pairing_id: str | None = None
    partner: str | None = None
    room: str | None = None
    online_meeting: bool = True
    subject: str | None = None
    on_conflict: OnConflict = OnConflict.FAIL


@dataclass(frozen=True, slots=True)
class SeriesParty:
    """Who takes part in a series, with the role a clash is reported under and how the caller knows them
    (not ``core.services.party.Party``, a booking's invitees)."""

    role: str
    user: str  # object id, or the room's address
    address: str


@dataclass(frozen=True, slots=True)
class OccurrenceCheck:
    """One occurrence and who is not available then (roles and users; never why)."""

    index: int
    start: datetime
    end: datetime
    clashes: tuple[SeriesParty, ...] = ()


@dataclass(frozen=True, slots=True)
class Suggestion:
    """The same series moved by ``shift`` (every occurrence), and how many occurrences would still clash."""

    start: datetime
    end: datetime
    shift_minutes: int
    clashing: int


@dataclass(frozen=True, slots=True)
class SeriesCheck:
    """Every occurrence of a series checked; the Graph calls it took; moved starts that clash less."""

    time_zone: str
    occurrences: tuple[OccurrenceCheck, ...]
    schedule_calls: int = 0
    suggestions: tuple[Suggestion, ...] = ()

    @property
    def clashing(self) -> list[OccurrenceCheck]:
        return [o for o in self.occurrences if o.clashes]


@dataclass(frozen=True, slots=True)
class SeriesView:
    """A series with its occurrence rows (by original start); a pending one has none yet."""

    series: Series
    occurrences: tuple[Session, ...]
    expected: tuple[Occurrence, ...] = ()  # what the rule gives, while the rows are not written yet


def occurrence_details(checks: Iterable[OccurrenceCheck]) -> list[dict[str, object]]:
    """The ``details.occurrences`` of a 409 / 422 about occurrences: index, times and with whom."""
    return [
        {"index": c.index, "start": c.start.astimezone(UTC).isoformat().replace("+00:00", "Z"),
         "end": c.end.astimezone(UTC).isoformat().replace("+00:00", "Z"),
         "with": [{"role": p.role, "user": p.user} for p in c.clashes]}
        for c in checks
    ]


def _seconds(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)


# --- free/busy over a series (also the worker's re-check) ------------------------------------------


def read_busy(
    gateway: CalendarGateway, who: GraphIdentity, anchor: str, addresses: Sequence[str],
    occurrences: Sequence[Occurrence], *, time_zone: str, whole_days: bool = False,
) -> tuple[dict[str, list[BusyInterval]], set[str], int]:
    """Busy items of ``addresses`` around every occurrence, in the fewest getSchedule calls.

    Windows come from ``occurrence_windows`` (each under 62 days, gaps between them never
    read); with ``whole_days`` each occurrence's whole local day is read (suggestions look
    for moved starts that day), which on a weekly series costs no extra window. Returns the
    busy items per lower-case address, the addresses Graph gave no schedule for, and the
    number of calls.
    """
    unique = list(dict.fromkeys(a for a in addresses if a))
    spans = list(occurrences)
    if whole_days:
        spans = [Occurrence(o.original_start, at_wall_time(on_day(o.start, time_zone), time(0), time_zone),
                            at_wall_time(on_day(o.start, time_zone) + timedelta(days=1), time(0), time_zone))
                 for o in occurrences]
    busy: dict[str, list[BusyInterval]] = {a.lower(): [] for a in unique}
    unreadable: set[str] = set()
    calls = 0
    for start, end in occurrence_windows(spans):
        for i in range(0, len(unique), 20):
            calls += 1
            for schedule in gateway.get_schedule(who, anchor, unique[i:i + 20], start, end,
                                                 interval_minutes=SCHEDULE_INTERVAL):
                if not schedule.ok:
                    unreadable.add(schedule.address.lower())
                    continue
                busy.setdefault(schedule.address.lower(), []).extend(schedule.busy)
    return busy, unreadable, calls


def series_parties(s: Series) -> list[SeriesParty]:
    """A stored series' organizer, attendees and room, as its free/busy checks name them."""
    parties = [SeriesParty(ROLE_ORGANIZER, s.organizer_id, s.organizer_address)]
    parties += [SeriesParty(ROLE_ATTENDEE, a.user_id or a.address, a.address) for a in s.attendees]
    if s.room is not None:
        parties.append(SeriesParty(ROLE_ROOM, s.room.address, s.room.address))
    return parties


def clashing_parties(parties: Sequence[SeriesParty], busy: dict[str, list[BusyInterval]], start: datetime,
                     end: datetime,
                     ignore: frozenset[tuple[datetime, datetime]] = frozenset()) -> tuple[SeriesParty, ...]:
    """The parties with a blocking item overlapping [start, end) (items exactly at ``ignore`` times are the
    series' own occurrences, which a reschedule must not count against itself)."""
    out = []
    for party in parties:
        for item in busy.get(party.address.lower(), ()):
            if (item.start, item.end) in ignore:
                continue
            if blocks(item.status) and item.start < end and start < item.end:
                out.append(party)
                break
    return tuple(out)


# --- the service -------------------------------------------------------------------------------


class SeriesService:
    """Recurring sessions through the event-write queue (module docstring)."""

    def __init__(self, booking: BookingService, tables: TableStore, queues: CommandQueue, clock: Clock,
                 sealer: Sealer, *, offered: OfferedHoursService | None = None) -> None:
        self.booking = booking
        self.tables = tables
        self.queues = queues
        self.clock = clock
        self.sealer = sealer
        self.series = SeriesRepository(tables)
        self.sessions = SessionRepository(tables)
        self.integrations = IntegrationRepository(tables)
        self.offered = offered or booking.offered
        self.claims = SlotClaims(tables, clock)

    @property
    def gateway(self) -> CalendarGateway:
        return self.booking.gateway

    # --- who takes part -----------------------------------------------------------------------

    def _parties(self, caller: Caller, request: SeriesRequest) -> tuple[GraphIdentity, list[SeriesParty], str | None]:
        """(organizer's identity, parties, pairing id) by the booking rules."""
        integration = require_enabled_integration(self.integrations, caller.tenant_id)
        who = self.booking.writable_identity(integration, caller)
        partner = self.booking.resolve_partner(
            caller, integration,
            BookingRequest(start=request.start, end=request.end, time_zone=request.time_zone,
                           pairing_id=request.pairing_id, partner=request.partner),
        )
        parties = [SeriesParty(ROLE_ORGANIZER, caller.object_id, partner.organizer_address),
                   SeriesParty(ROLE_ATTENDEE, partner.user_id, partner.address)]
        if request.room:
            room = self.booking.room_address(integration, request.room)
            parties.append(SeriesParty(ROLE_ROOM, room, room))
        return who, parties, partner.pairing_id

    def _occurrences(self, request: SeriesRequest) -> list[Occurrence]:
        start, end = _seconds(request.start), _seconds(request.end)
        validate_times(start, end, self.clock.now())
        return validate_series(request.recurrence, start, end, request.time_zone)

    # --- checking ------------------------------------------------------------------------------

    def check(self, caller: Caller, request: SeriesRequest, *, suggest: bool = True) -> SeriesCheck:
        """``POST /api/availability/series``: which occurrences clash, with whom, and moved starts that clash less.

        Everyone's offered hours apply here (the caller's too, as in availability); a calendar Graph
        cannot read is 422 ``participant_unreachable`` (an empty answer would wrongly say "no clash").
        """
        occurrences = self._occurrences(request)
        who, parties, _ = self._parties(caller, request)
        anchor = who.user_id or caller.object_id
        busy, unreadable, calls = read_busy(self.gateway, who, anchor, [p.address for p in parties], occurrences,
                                            time_zone=request.time_zone, whole_days=suggest)
        if unreadable:
            raise ParticipantUnreachable([
                {"user": p.user, "address": p.address,
                 "status": "other" if p.address.lower() in unreadable else "ok"} for p in parties
            ])
        rules = self._rule_clashes(caller.tenant_id, [p for p in parties if p.role != ROLE_ROOM], occurrences)
        checks = self._checks(occurrences, parties, busy, rules)
        suggestions: tuple[Suggestion, ...] = ()
        if suggest and any(c.clashes for c in checks):
            suggestions = self._suggest(caller.tenant_id, occurrences, parties, busy,
                                        clashing=sum(bool(c.clashes) for c in checks), zone=request.time_zone)
        log.info("series availability: %d occurrences, %d clashing, %d getSchedule call(s)",
                 len(checks), sum(bool(c.clashes) for c in checks), calls, extra={"tenant": caller.tenant_id})
        return SeriesCheck(request.time_zone, tuple(checks), calls, suggestions)

    def _rule_clashes(self, tenant_id: str, people: Sequence[SeriesParty], occurrences: Sequence[Occurrence],
                      exclude_series: str | None = None) -> dict[int, list[SeriesParty]]:
        """Per occurrence position, the people whose offered hours leave it out."""
        out: dict[int, list[SeriesParty]] = {}
        spans = [(o.start, o.end) for o in occurrences]
        for party in people:
            offered = self.offered.occurrences_offered(tenant_id, party.user, spans, exclude_series=exclude_series)
            if offered is None:
                continue
            for i, ok in enumerate(offered):
                if not ok:
                    out.setdefault(i, []).append(party)
        return out

    @staticmethod
    def _checks(occurrences: Sequence[Occurrence], parties: Sequence[SeriesParty], busy: dict[str, list[BusyInterval]],
                rules: dict[int, list[SeriesParty]], ignore: frozenset[tuple[datetime, datetime]] = frozenset(),
                ) -> list[OccurrenceCheck]:
        out = []
        for i, o in enumerate(occurrences):
            hit = list(clashing_parties(parties, busy, o.start, o.end, ignore))
            hit += [p for p in rules.get(i, []) if p not in hit]
            ordered = tuple(p for p in parties if p in hit)
            out.append(OccurrenceCheck(i + 1, o.start, o.end, ordered))
        return out

    def _suggest(self, tenant_id: str, occurrences: Sequence[Occurrence], parties: Sequence[SeriesParty],
                 busy: dict[str, list[BusyInterval]], *, clashing: int, zone: str) -> tuple[Suggestion, ...]:
        """The same series moved by a few minutes to a few hours on the same days (each occurrence by the
        same shift), fewest clashes first, nearest first; only shifts that clash less. No Graph call: the
        occurrences' whole days were read."""
        people = [p for p in parties if p.role != ROLE_ROOM]
        found: list[Suggestion] = []
        steps = int(SUGGEST_SPAN / SUGGEST_STEP)
        days = [on_day(o.start, zone) for o in occurrences]
        for n in sorted(range(-steps, steps + 1), key=abs):
            shift = SUGGEST_STEP * n
            if n == 0:
                continue
            moved = [Occurrence(o.original_start, o.start + shift, o.end + shift) for o in occurrences]
            if moved[0].start < self.clock.now():
                continue
            if any(on_day(o.start, zone) != d or on_day(o.end - timedelta(seconds=1), zone) != d
                   for o, d in zip(moved, days, strict=True)):
                continue  # only the occurrences' own days were read
            hits = sum(1 for o in moved if clashing_parties(parties, busy, o.start, o.end))
            if hits >= clashing:
                continue
            rule_hits = len(self._rule_clashes(tenant_id, people, moved))
            total = max(hits, rule_hits) if rule_hits else hits
            if total < clashing:
                found.append(Suggestion(moved[0].start, moved[0].end, int(shift.total_seconds() // 60), total))
            if len([s for s in found if s.clashing == 0]) >= MAX_SUGGESTIONS:
                break
        found.sort(key=lambda s: (s.clashing, abs(s.shift_minutes)))
        return tuple(found[:MAX_SUGGESTIONS])

    # --- booking -------------------------------------------------------------------------------

    def book(self, caller: Caller, request: SeriesRequest) -> Series:
        """Validate, check every occurrence (``on_conflict``), claim them, store a pending series, queue it."""
        occurrences = self._occurrences(request)
        who, parties, pairing_id = self._parties(caller, request)
        tenant = caller.tenant_id
        skipped: set[datetime] = set()
        attendees = [p for p in parties if p.role == ROLE_ATTENDEE]
        rules = self._rule_clashes(tenant, attendees, occurrences)
        checks = self._checks(occurrences, parties, {}, rules)
        if request.on_conflict is not OnConflict.BOOK_ANYWAY:
            try:
                busy, _, _ = read_busy(self.gateway, who, who.user_id or caller.object_id,
                                       [p.address for p in parties], occurrences, time_zone=request.time_zone)
                checks = self._checks(occurrences, parties, busy, rules)
            except (GraphError, DependencyError, AuthorizationError) as exc:
                log.info("series slot check deferred to the worker (%s)", exc.code, extra={"tenant": tenant})
        clashing = [c for c in checks if c.clashes]
        if clashing and request.on_conflict is OnConflict.BOOK_ANYWAY:
            raise OutsideOfferedHours(details={"occurrences": occurrence_details(clashing)})
        if clashing and request.on_conflict is OnConflict.FAIL:
            log.info("series refused: occurrences clash", extra={"tenant": tenant, "event": "slot_taken"})
            raise SlotTaken("Some occurrences are not free; pick another time, or skip or book them anyway.",
                            details={"occurrences": occurrence_details(clashing), "busy": []})
        skipped = {occurrences[c.index - 1].original_start for c in clashing}
        if len(skipped) >= len(occurrences):
            raise SlotTaken("No occurrence of the series is free.",
                            details={"occurrences": occurrence_details(clashing), "busy": []})
        series_id = uuid.uuid4().hex
        lost = self._claim_all(caller, series_id, occurrences, skipped=skipped, on_conflict=request.on_conflict,
                               organizer_address=parties[0].address)
        now = self.clock.now()
        partner = attendees[0]
        room = next((p for p in parties if p.role == ROLE_ROOM), None)
        series = Series(
            tenant_id=tenant,
            series_id=series_id,
            organizer_id=caller.object_id,
            organizer_address=parties[0].address,
            attendees=(AttendeeState(partner.address, user_id=partner.user),),
            segments=(Segment(request.recurrence, occurrences[0].start, occurrences[0].end, request.time_zone),),
            room=AttendeeState(room.address) if room else None,
            online_meeting=request.online_meeting,
            pairing_id=pairing_id,
            on_conflict=request.on_conflict,
            skipped=tuple(sorted(skipped | lost)),
            created_at=now,
            updated_at=now,
        )
        sealed = seal_texts(self.sealer, tenant, series_id, subject=request.subject)
        try:
            stored = self.series.add(series)
        except Exception:
            self._release(caller, series_id, occurrences)
            raise
        self._enqueue(stored, SeriesOp.CREATE, sealed, undo=None)
        log.info("series requested: %d occurrences, %d skipped", len(occurrences), len(series.skipped),
                 extra={"tenant": tenant, "event": "series_requested"})
        return stored.value

    def _claim_all(self, caller: Caller, series_id: str, occurrences: Sequence[Occurrence], *,
                   skipped: set[datetime], on_conflict: OnConflict, organizer_address: str) -> set[datetime]:
        """Claim each occurrence's time range (module docstring); a claim held by another booking is a clash
        (skipped with ``skipClashing``). Returns the original starts lost that way."""
        lost: set[datetime] = set()
        done: list[Occurrence] = []
        for o in occurrences:
            if o.original_start in skipped:
                continue
            try:
                self.claims.claim(caller.tenant_id, caller.object_id,
                                  occurrence_session_id(series_id, o.original_start), o.start, o.end,
                                  allow_conflicts=on_conflict is OnConflict.BOOK_ANYWAY)
                done.append(o)
            except SlotTaken:
                if on_conflict is OnConflict.SKIP:
                    lost.add(o.original_start)
                    continue
                self._release(caller, series_id, done)
                index = list(occurrences).index(o) + 1
                clash = OccurrenceCheck(index, o.start, o.end, (SeriesParty(ROLE_ORGANIZER, caller.object_id,
                                                                      organizer_address),))
                raise SlotTaken("An occurrence overlaps another booking of yours being made right now.",
                                details={"occurrences": occurrence_details([clash]), "busy": [organizer_address]},
                                ) from None
        if len(lost) + len(skipped) >= len(occurrences):
            self._release(caller, series_id, done)
            raise SlotTaken("No occurrence of the series is free.", details={"busy": [organizer_address]})
        return lost

    def _release(self, caller: Caller, series_id: str, occurrences: Iterable[Occurrence]) -> None:
        for o in occurrences:
            self.claims.release(caller.tenant_id, caller.object_id, occurrence_session_id(series_id, o.original_start),
                                o.start, o.end)

    def _enqueue(self, stored: Versioned[Series], op: SeriesOp, sealed: str | None, *, undo: Series | None) -> None:
        """Queue the Outlook write; if the queue is down: a new series fails, a change is rolled back (503)."""
        s = stored.value
        command = SeriesWriteCommand(s.tenant_id, s.series_id, op, s.version, correlation_id.get(), sealed)
        try:
            self.queues.send(Queues.EVENT_WRITES, command.to_message())
        except DependencyError:
            back = s.mark_failed(REASON_NOT_QUEUED, self.clock.now()) if undo is None else undo
            try:
                self.series.save(back, stored.etag)
            except Exception:  # the 503 below is what matters
                log.warning("series could not be restored after a queue outage", extra={"tenant": s.tenant_id})
            raise

    # --- reading ---------------------------------------------------------------------------------

    def _read(self, caller: Caller, series_id: str) -> Versioned[Series]:
        found = self.series.get(caller.tenant_id, series_id)
        if found is None:
            raise NotFound("No such series.", code="series_not_found")
        s = found.value
        if caller.is_app:
            require_sessions_app(caller)
            return found
        if not s.involves(caller.object_id):
            raise NotFound("No such series.", code="series_not_found")
        return found

    def get(self, caller: Caller, series_id: str) -> SeriesView:
        """A series with its occurrences: organizer and attendees (the product's server: any of its tenant)."""
        s = self._read(caller, series_id).value
        rows = tuple(r.value for r in self.sessions.occurrences(caller.tenant_id, series_id))
        expected: tuple[Occurrence, ...] = ()
        if not rows and s.status is SeriesStatus.PENDING:
            expected = tuple(o for g in s.segments for o in g.occurrences())
        return SeriesView(s, rows, expected)

    def list_for(self, caller: Caller) -> list[Series]:
        """The caller's series (organizer or attendee), newest first."""
        found = self.series.list_for_user(caller.tenant_id, caller.object_id)
        return sorted(found, key=lambda s: (s.created_at or s.start, s.series_id), reverse=True)

    def _for_organizer(self, caller: Caller, series_id: str) -> Versioned[Series]:
        found = self._read(caller, series_id)
        if caller.is_app:
            raise NotFound("No such series.", code="series_not_found")  # an app changes only as a user
        require_organizer(found.value, caller.object_id)
        return found

    # --- changing the whole series ---------------------------------------------------------------

    def reschedule(self, caller: Caller, series_id: str, start: datetime, end: datetime, *,
                   time_zone: str | None = None, recurrence: PatternedRecurrence | None = None,
                   allow_conflicts: bool = False, subject: str | None = None) -> Series:
        """New times and/or a new rule from the first occurrence that has not started on (module docstring);
        made on the latest version of the series (``on_latest``)."""
        return on_latest(lambda: self._reschedule(caller, series_id, start, end, time_zone=time_zone,
                                                  recurrence=recurrence, allow_conflicts=allow_conflicts,
                                                  subject=subject))

    def _reschedule(self, caller: Caller, series_id: str, start: datetime, end: datetime, *,
                    time_zone: str | None, recurrence: PatternedRecurrence | None,
                    allow_conflicts: bool, subject: str | None) -> Series:
        integration = require_enabled_integration(self.integrations, caller.tenant_id)
        read = self._for_organizer(caller, series_id)
        who = self.booking.writable_identity(integration, caller)
        s = read.value
        s.require_changeable()
        rows = [r.value for r in self.sessions.occurrences(caller.tenant_id, series_id)]
        if any(r.pending_op is not None for r in rows):
            raise Conflict("An occurrence of this series is being changed; try again shortly.",
                           code="occurrence_change_pending")
        now = self.clock.now()
        zone = time_zone or s.time_zone
        start, end = _seconds(start), _seconds(end)
        validate_times(start, end, now)
        current = s.current
        started = [r for r in rows if r.start <= now and (r.original_start or r.start) >= current.start]
        started_originals = [o.original_start for o in current.occurrences() if o.start <= now]
        split_from: datetime | None = None
        if started or started_originals:
            last = max([r.end for r in started] + [o.end for o in current.occurrences() if o.start <= now])
            if start < last or on_day(start, zone) <= on_day(last - timedelta(seconds=1), zone):
                raise ValidationFailed(
                    "A running series changes from a day after its last occurrence that has started.",
                    code="series_change_in_past",
                    details={"fields": [{"loc": ["body", "start"], "msg": "on or before an occurrence that started"}]},
                )
            later = [o.original_start for o in current.occurrences() if o.start > now]
            if not later:
                raise Conflict("Every occurrence of this series has started; book a new series instead.",
                               code="series_over")
            split_from = later[0]
        rule = recurrence or _carried_rule(current, start, zone, remaining=len([
            o for o in current.occurrences() if split_from is None or o.original_start >= split_from]))
        occurrences = validate_series(rule, start, end, zone)
        target = Segment(rule, occurrences[0].start, occurrences[0].end, zone)
        parties = series_parties(s)
        own = frozenset((r.start, r.end) for r in rows if r.status is not SessionStatus.CANCELLED)
        rules = self._rule_clashes(caller.tenant_id, [p for p in parties if p.role == ROLE_ATTENDEE], occurrences,
                                   exclude_series=series_id)
        checks = self._checks(occurrences, parties, {}, rules)
        if not allow_conflicts:
            try:
                busy, _, _ = read_busy(self.gateway, who, who.user_id or caller.object_id,
                                       [p.address for p in parties], occurrences, time_zone=zone)
                checks = self._checks(occurrences, parties, busy, rules, own)
            except (GraphError, DependencyError, AuthorizationError) as exc:
                log.info("series reschedule: slot check not possible (%s)", exc.code, extra={"tenant": s.tenant_id})
        clashing = [c for c in checks if c.clashes]
        if clashing and allow_conflicts:
            raise OutsideOfferedHours(details={"occurrences": occurrence_details(clashing)})
        if clashing:
            raise SlotTaken("Some new occurrences are not free; pick another time or allow conflicts.",
                            details={"occurrences": occurrence_details(clashing), "busy": []})
        changed = s.request_reschedule(target, split_from, now)
        saved = self.series.save(changed, read.etag)
        sealed = seal_texts(self.sealer, s.tenant_id, s.series_id, subject=subject)
        self._enqueue(saved, SeriesOp.RESCHEDULE, sealed, undo=s)
        return saved.value

    def cancel(self, caller: Caller, series_id: str, from_date: date | None = None,
               comment: str | None = None) -> Series:
        """Cancel every occurrence not yet started, or those from ``from_date`` (series zone) on; made on
        the latest version of the series (``on_latest``)."""
        return on_latest(lambda: self._cancel(caller, series_id, from_date, comment))

    def _cancel(self, caller: Caller, series_id: str, from_date: date | None, comment: str | None) -> Series:
        integration = require_enabled_integration(self.integrations, caller.tenant_id)
        read = self._for_organizer(caller, series_id)
        self.booking.writable_identity(integration, caller)
        s = read.value
        rows = [r.value for r in self.sessions.occurrences(caller.tenant_id, series_id)]
        if any(r.pending_op is not None for r in rows):
            raise Conflict("An occurrence of this series is being changed; try again shortly.",
                           code="occurrence_change_pending")
        now = self.clock.now()
        cut = cut_date(s, now)
        last = max(on_day(o.start, s.time_zone) for g in s.segments for o in g.occurrences())
        if from_date is not None:
            if cut is not None and from_date < cut:
                raise ValidationFailed("Occurrences on or after that date have already started.",
                                       code="cancel_from_started",
                                       details={"fields": [{"loc": ["query", "from"], "msg": f"from {cut} on"}]})
            if from_date > last:
                raise ValidationFailed("The series has no occurrence on or after that date.",
                                       code="cancel_from_after_series",
                                       details={"fields": [{"loc": ["query", "from"], "msg": f"on or before {last}"}]})
        elif cut is not None and cut > last:
            raise Conflict("Every occurrence of this series has started.", code="series_over")
        effective = from_date or cut
        first = on_day(s.start, s.time_zone)
        if effective is not None and effective <= first:
            effective = None
        changed = s.request_cancel(effective, now, whole=from_date is None)
        saved = self.series.save(changed, read.etag)
        sealed = seal_texts(self.sealer, s.tenant_id, s.series_id, comment=comment)
        self._enqueue(saved, SeriesOp.CANCEL, sealed, undo=s)
        return saved.value


def _carried_rule(current: Segment, start: datetime, zone: str, *, remaining: int) -> PatternedRecurrence:
    """The current rule moved to a new first start: a weekly rule on one day follows the new start's
    day; the range starts on the new start's date and keeps its end date, or its count of occurrences
    still to come."""
    rule = current.recurrence
    pattern = rule.pattern
    if pattern.type is RecurrencePatternType.WEEKLY and len(pattern.days_of_week) == 1:
        pattern = replace(pattern, days_of_week=(_WEEKDAYS[on_day(start, zone).isoweekday()],))
    rng = replace(rule.range, start_date=on_day(start, zone), recurrence_time_zone=None)
    if rng.number_of_occurrences is not None:
        rng = replace(rng, number_of_occurrences=max(1, remaining))
    return PatternedRecurrence(pattern, rng)


_WEEKDAYS: Final = {w.iso: w for w in Weekday}
