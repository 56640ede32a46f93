"""Sessions (booked meetings) and their state machine.

A session is the service's record of one meeting it booked: metadata only (ids,
times, status, attendee and room responses, join URL, where the last change came
from). Never subject, body or any free text.

    status   pending --(worker created event)--> booked --(cancel done / cancelled in Outlook)--> cancelled
                │                                  │
                └──(last attempt failed)──> failed <┘ (a reschedule or cancel that could not be written)

Groups: a session has one organizer and up to ``MAX_ATTENDEES`` attendees, each
``required`` or ``optional``; colleagues carry their object id, guests (people outside
the tenant) only their address (their display name goes to Outlook sealed, never stored).
A session booked with any-of choices keeps its candidates and reasons (``any_of``,
core/domain/assignment.py); the chosen host is a required attendee marked ``host``.

Changes requested through the API bump ``version`` and set ``pending_op``; the worker
carries the version it was asked to apply, so a redelivered or stale command is
recognised and changes nothing (at-least-once delivery without double effects).
Changes observed in Outlook are applied only when they are newer than what we know
(``last_modified``), so duplicate and out-of-order notifications change nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from core.domain.assignment import AnyOf, HostCandidate
from core.domain.calendar import EventMetadata, ResponseType
from core.domain.errors import Conflict, Forbidden, ValidationFailed


class SessionStatus(StrEnum):
    PENDING = "pending"
    BOOKED = "booked"
    CANCELLED = "cancelled"
    FAILED = "failed"


class PendingOp(StrEnum):
    CREATE = "create"
    RESCHEDULE = "reschedule"
    CANCEL = "cancel"


class ChangeSource(StrEnum):
    PLATFORM = "platform"
    OUTLOOK = "outlook"


MAX_SESSION_LENGTH = timedelta(hours=8)
MIN_SESSION_LENGTH = timedelta(minutes=5)
# People besides the organizer (docs/product-integration.md "Groups, guests and any-of"): Graph
# allows 500 attendees per event, but every colleague's free/busy is read (one getSchedule per
# 20 people and window), every colleague gets a session index row written in the booking's
# entity-group transaction (100 operations), and the session row keeps them all (64 KiB per
# property): 50 keeps a booking one transaction and a group's availability 3 calls per window.
MAX_ATTENDEES = 50
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# The same address shape the HTTP schemas accept (functions/schemas/common.py EMAIL_PATTERN).
_EMAIL = re.compile(rf"^[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]{{1,64}}@{_LABEL}(?:\.{_LABEL})+$")


def is_email(text: str) -> bool:
    """An SMTP address as invitations need it (local part @ a dotted domain), at most 254 characters."""
    return 3 <= len(text) <= 254 and _EMAIL.match(text) is not None


class AttendeeType(StrEnum):
    """Graph ``attendee.type`` for people (rooms are ``resource``)."""

    REQUIRED = "required"
    OPTIONAL = "optional"


@dataclass(frozen=True, slots=True)
class AttendeeState:
    """An invited person or room and their latest answer.

    ``user_id`` is set for colleagues (people of the tenant); a ``guest`` is someone from
    outside it, known by address only, whose calendar is never read. ``host`` marks the
    attendee the service chose among the session's host candidates.
    """

    address: str
    response: ResponseType = ResponseType.NOT_RESPONDED
    user_id: str | None = None
    type: AttendeeType = AttendeeType.REQUIRED
    guest: bool = False
    host: bool = False

    @property
    def required(self) -> bool:
        return self.type is AttendeeType.REQUIRED

    def answered(self, response: ResponseType) -> AttendeeState:
        return replace(self, response=response)


@dataclass(frozen=True, slots=True)
class Session:
    tenant_id: str
    session_id: str
    organizer_id: str
    organizer_address: str
    attendees: tuple[AttendeeState, ...]
    start: datetime
    end: datetime
    time_zone: str
    status: SessionStatus = SessionStatus.PENDING
    pending_op: PendingOp | None = PendingOp.CREATE
    version: int = 1
    room: AttendeeState | None = None
    online_meeting: bool = True
    online_provider: str | None = None
    join_url: str | None = None
    event_id: str | None = None
    ical_uid: str | None = None
    change_key: str | None = None
    last_modified: datetime | None = None
    source: ChangeSource = ChangeSource.PLATFORM
    failure_reason: str | None = None
    pairing_id: str | None = None
    calendar_id: str | None = None  # set when booked into a secondary (fallback) calendar
    allow_conflicts: bool = False  # the requested times may clash (no slot re-check before writing)
    any_of: AnyOf | None = None  # the rooms/hosts it may choose from, and why it chose (API 1.1 groups)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # An occurrence of a series (core/domain/series.py): its series, the start the pattern gave it
    # (which identifies it in Outlook even after a move) and what happened to it as part of the series.
    series_id: str | None = None
    original_start: datetime | None = None
    series_note: str | None = None

    # --- questions ---------------------------------------------------------------

    @property
    def is_final(self) -> bool:
        return self.status in (SessionStatus.CANCELLED, SessionStatus.FAILED) and self.pending_op is None

    def involves(self, user_id: str, address: str | None = None) -> bool:
        """Is this user the organizer or an attendee (by object id, or by address)?"""
        if user_id == self.organizer_id:
            return True
        low = address.lower() if address else None
        return any(a.user_id == user_id or (low is not None and a.address.lower() == low) for a in self.attendees)

    @property
    def host(self) -> AttendeeState | None:
        """The attendee chosen among the host candidates, if any."""
        return next((a for a in self.attendees if a.host), None)

    def checked_addresses(self) -> list[str]:
        """Whose free/busy decides whether the time is still free: the organizer, the required
        colleagues (the chosen host included) and the room; never optional people or guests."""
        people = [a.address for a in self.attendees if a.required and not a.guest]
        return [self.organizer_address, *people, *([self.room.address] if self.room else [])]

    def reassigned(self, now: datetime, *, room: str | None = None, room_reason: str | None = None,
                   host: HostCandidate | None = None, host_reason: str | None = None) -> Session:
        """The session with another room and/or host chosen from its candidates (before its event exists)."""
        assert self.any_of is not None
        any_of, attendees, chosen_room = self.any_of, self.attendees, self.room
        if room is not None:
            chosen_room = AttendeeState(room)
            any_of = replace(any_of, room_reason=room_reason)
        if host is not None:
            attendees = (*(a for a in attendees if not a.host),
                         AttendeeState(host.address, user_id=host.user_id, host=True))
            any_of = replace(any_of, host_reason=host_reason)
        return replace(self, attendees=attendees, room=chosen_room, any_of=any_of, updated_at=now)

    def require_organizer(self, user_id: str) -> None:
        if user_id != self.organizer_id:
            raise Forbidden("Only the organizer can change this session.", code="not_organizer")

    # --- requested through the API -----------------------------------------------

    def request_reschedule(
        self, start: datetime, end: datetime, time_zone: str, now: datetime, *, allow_conflicts: bool = False
    ) -> Session:
        validate_times(start, end, now)
        if self.status in (SessionStatus.CANCELLED, SessionStatus.FAILED) and self.event_id is None:
            raise Conflict("This session is no longer active.", code="session_not_active")
        if self.status == SessionStatus.CANCELLED or self.pending_op == PendingOp.CANCEL:
            raise Conflict("This session has been cancelled.", code="session_cancelled")
        op = PendingOp.CREATE if self.event_id is None else PendingOp.RESCHEDULE
        return replace(
            self,
            start=start,
            end=end,
            time_zone=time_zone,
            pending_op=op,
            status=SessionStatus.PENDING if op == PendingOp.CREATE else self.status,
            version=self.version + 1,
            source=ChangeSource.PLATFORM,
            failure_reason=None,
            allow_conflicts=allow_conflicts,
            updated_at=now,
        )

    def request_cancel(self, now: datetime) -> Session:
        if self.status == SessionStatus.CANCELLED and self.pending_op is None:
            raise Conflict("This session is already cancelled.", code="session_cancelled")
        if self.event_id is None and self.pending_op == PendingOp.CREATE:
            # Nothing may exist in Outlook yet, but a create may be in flight: the worker
            # looks the event up by transactionId before deciding nothing is there.
            pass
        return replace(
            self,
            pending_op=PendingOp.CANCEL,
            version=self.version + 1,
            source=ChangeSource.PLATFORM,
            failure_reason=None,
            updated_at=now,
        )

    # --- applied by the event-write worker ---------------------------------------

    def command_is_current(self, version: int, op: PendingOp) -> bool:
        """Should a worker still apply command (version, op)? False for stale or already applied ones."""
        return self.pending_op == op and self.version == version

    def mark_created(
        self,
        *,
        event_id: str,
        ical_uid: str | None,
        join_url: str | None,
        online_provider: str | None,
        change_key: str | None,
        now: datetime,
        calendar_id: str | None = None,
    ) -> Session:
        return replace(
            self,
            status=SessionStatus.BOOKED,
            pending_op=None,
            event_id=event_id,
            ical_uid=ical_uid,
            join_url=join_url,
            online_provider=online_provider,
            change_key=change_key,
            calendar_id=calendar_id,
            failure_reason=None,
            updated_at=now,
        )

    def mark_rescheduled(self, meta: EventMetadata | None, now: datetime) -> Session:
        return replace(
            self,
            status=SessionStatus.BOOKED,
            pending_op=None,
            change_key=meta.change_key if meta else self.change_key,
            last_modified=meta.last_modified if meta and meta.last_modified else self.last_modified,
            failure_reason=None,
            updated_at=now,
        )

    def mark_cancelled(self, now: datetime, source: ChangeSource = ChangeSource.PLATFORM) -> Session:
        return replace(
            self, status=SessionStatus.CANCELLED, pending_op=None, source=source, failure_reason=None, updated_at=now
        )

    def mark_failed(self, reason: str, now: datetime) -> Session:
        """The last attempt failed. A booked session whose change failed keeps its event id."""
        return replace(self, status=SessionStatus.FAILED, pending_op=None, failure_reason=reason[:200], updated_at=now)

    # --- observed in Outlook -----------------------------------------------------

    def apply_observed(self, meta: EventMetadata, now: datetime) -> Session | None:
        """Fold what Graph says the event looks like now into the session.

        Returns the changed session, or None when nothing changed (duplicate or stale
        notification). A change we requested ourselves and have not yet applied keeps
        priority: while ``pending_op`` is set, observed times are not applied.
        """
        if self.status == SessionStatus.CANCELLED and self.pending_op is None:
            return None
        if meta.last_modified and self.last_modified and meta.last_modified < self.last_modified:
            return None  # an older view than one we already applied
        changed = replace(self, last_modified=meta.last_modified or self.last_modified, change_key=meta.change_key)
        if meta.is_cancelled:
            return changed.mark_cancelled(now, ChangeSource.OUTLOOK)
        attendees = _merge_responses(self.attendees, meta)
        room = self.room
        if room is not None:
            for a in meta.attendees:
                if a.address.lower() == room.address.lower():
                    room = room.answered(a.response)
        changed = replace(changed, attendees=attendees, room=room)
        moved = self.pending_op is None and (meta.start != self.start or meta.end != self.end)
        if moved:
            changed = replace(changed, start=meta.start, end=meta.end, source=ChangeSource.OUTLOOK)
        if self.status == SessionStatus.FAILED and self.event_id is not None and self.pending_op is None:
            changed = replace(changed, status=SessionStatus.BOOKED, failure_reason=None)
        if _same_observable(changed, self):
            return None
        return replace(changed, updated_at=now)

    def mark_deleted_in_outlook(self, now: datetime) -> Session | None:
        if self.status == SessionStatus.CANCELLED and self.pending_op is None:
            return None
        return self.mark_cancelled(now, ChangeSource.OUTLOOK)


def _merge_responses(current: tuple[AttendeeState, ...], meta: EventMetadata) -> tuple[AttendeeState, ...]:
    by_address = {a.address.lower(): a.response for a in meta.attendees}
    return tuple(a.answered(by_address.get(a.address.lower(), a.response)) for a in current)


def _same_observable(a: Session, b: Session) -> bool:
    return (
        a.status == b.status
        and a.start == b.start
        and a.end == b.end
        and a.attendees == b.attendees
        and a.room == b.room
        and a.change_key == b.change_key
        and a.last_modified == b.last_modified
    )


def validate_times(start: datetime, end: datetime, now: datetime) -> None:
    """Bookable times: aware, end after start, 5 min to 8 h, not in the past."""
    problems = []
    if start.tzinfo is None or end.tzinfo is None:
        problems.append({"loc": ["start"], "msg": "times need a UTC offset"})
    elif end <= start:
        problems.append({"loc": ["end"], "msg": "end must be after start"})
    elif not (MIN_SESSION_LENGTH <= end - start <= MAX_SESSION_LENGTH):
        problems.append({"loc": ["end"], "msg": "a session lasts between 5 minutes and 8 hours"})
    elif start < now - timedelta(minutes=1):
        problems.append({"loc": ["start"], "msg": "start is in the past"})
    if problems:
        raise ValidationFailed(details={"fields": problems})
