"""Offered hours: users' own rules and the tenant default, and what they mean for slots and bookings.

**Precedence: replace, not merge.** A user's own rules replace the tenant default
entirely; the default applies only to users with no rules of their own; with neither,
nothing is restricted. Merging (say, the default's cap as a floor under a user's windows)
would put constraints on people that their own editor does not show them and that they
cannot change; with replacement what a user sees in "My offered hours" is exactly what
applies, and the admin's default is a starting point, not a hidden policy.

**Who is bound by whose rules.**

* Availability (``AvailabilityService.free_slots``): every participant's rules apply,
  the caller's included, so the slots are times everyone offers. Others only ever see
  the resulting slots, never which rule removed a time.
* Booking (``require_offered``): the attendees' rules apply; the organizer's own do not.
  Rules protect their owner from others; the owner booking a session themselves (or the
  product's server acting for them, which is the same caller) decides about their own
  time. A refusal is 422 ``outside_offered_hours`` with no reason (window, notice, cap or
  buffer), so a booker learns nothing about someone else's calendar. At booking time
  buffers and caps are checked against the sessions this service booked for the rule
  owner (no Graph call); buffers around other calendar items are applied when slots are
  computed.
* A rule change never touches sessions already booked: rules only decide what may be
  booked next.

**Concurrency.** Reads give an ETag; writes honour ``If-Match`` (that version, or ``*``:
any existing one) and ``If-None-Match: *`` (create only) with 412 ``precondition_failed``;
without either the last writer wins. Admin writes (the default, another user's rules)
are audited.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

from core.domain.errors import (
    ConcurrencyConflict,
    Conflict,
    DependencyError,
    NotFound,
    OutsideOfferedHours,
    PreconditionFailed,
)
from core.domain.offered_hours import OfferedHours, clear_of_buffers, covers, offered_intervals, validate
from core.domain.sessions import PendingOp, Session, SessionStatus
from core.domain.slots import Interval
from core.ports import CalendarGateway, Clock, TableStore
from core.services.authz import Caller
from core.services.identity import GraphIdentities
from core.services.stores.audit import AuditTrail
from core.services.stores.availability_rules import AvailabilityRulesRepository, StoredRules
from core.services.stores.codec import Versioned
from core.services.stores.connections import ConnectionRepository
from core.services.stores.integrations import IntegrationRepository
from core.services.stores.sessions import SessionRepository

log = logging.getLogger(__name__)

# Sessions read around a booking or a window to count caps (a whole week either side) and buffers.
_CAP_MARGIN: Final = timedelta(days=8)
_FIRST: Final = datetime(1, 1, 1, tzinfo=UTC) + _CAP_MARGIN
_LAST: Final = datetime(9999, 12, 31, tzinfo=UTC) - _CAP_MARGIN
ANY: Final = "*"


class RulesSource(StrEnum):
    """Where the rules that apply to a user come from."""

    OWN = "own"
    DEFAULT = "default"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class RulesView:
    """Rules as a route shows them: their source, the rules (None when there are none) and the ETag
    of the row they were read from (the user's own row on /me, the default's on the default route)."""

    source: RulesSource
    rules: OfferedHours | None = None
    etag: str | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Constraint:
    """What one participant's rules mean for the slot engine over a window."""

    offered: tuple[Interval, ...]
    buffer_before_minutes: int
    buffer_after_minutes: int
    within_working_hours: bool


@dataclass(frozen=True, slots=True)
class Preview:
    """The offered time of a user's rules over a window (before busy time is taken out)."""

    source: RulesSource
    time_zone: str | None
    offered: tuple[Interval, ...]


class OfferedHoursService:
    """Users' rules and the tenant default (see the module docstring)."""

    def __init__(
        self, tables: TableStore, clock: Clock, gateway: Callable[[], CalendarGateway] | None = None
    ) -> None:
        self.clock = clock
        self._gateway = gateway
        self.rules = AvailabilityRulesRepository(tables)
        self.sessions = SessionRepository(tables)
        self.audit = AuditTrail(tables, clock)
        self.identities = GraphIdentities(IntegrationRepository(tables), ConnectionRepository(tables))

    # --- reading ----------------------------------------------------------------------------

    def view(self, tenant_id: str, user_id: str) -> RulesView:
        """What applies to a user: their own rules, else the default, else none. The ETag is that of
        the user's own row (absent when they have none: create with ``If-None-Match: *``)."""
        own = self.rules.get(tenant_id, user_id)
        if own is not None:
            return RulesView(RulesSource.OWN, own.value.rules, own.etag, own.value.updated_at)
        default = self.rules.get(tenant_id, None)
        if default is not None:
            return RulesView(RulesSource.DEFAULT, default.value.rules, None, default.value.updated_at)
        return RulesView(RulesSource.NONE)

    def default_view(self, tenant_id: str) -> RulesView:
        """The tenant default with its ETag, or source ``none``."""
        found = self.rules.get(tenant_id, None)
        if found is None:
            return RulesView(RulesSource.NONE)
        return RulesView(RulesSource.DEFAULT, found.value.rules, found.etag, found.value.updated_at)

    def effective(self, tenant_id: str, user_id: str) -> OfferedHours | None:
        """The rules that bind a user (their own, else the tenant default), or None."""
        return self._effective(tenant_id, user_id, self._default(tenant_id))

    def _default(self, tenant_id: str) -> OfferedHours | None:
        found = self.rules.get(tenant_id, None)
        return found.value.rules if found is not None else None

    def _effective(self, tenant_id: str, user_id: str, default: OfferedHours | None) -> OfferedHours | None:
        own = self.rules.get(tenant_id, user_id)
        return own.value.rules if own is not None else default

    def any_rules(self, tenant_id: str) -> bool:
        """Whether anyone in the tenant (or its default) has rules: lets callers skip all rule work."""
        return self.rules.has_any(tenant_id)

    # --- writing ----------------------------------------------------------------------------

    def put_for_user(
        self,
        actor: Caller,
        user_id: str,
        rules: OfferedHours,
        *,
        if_match: Sequence[str] | None = None,
        if_none_match: bool = False,
    ) -> RulesView:
        """Set a user's own rules (the user, or an admin: audited). 422 for unusable rules, 412 for a stale ETag."""
        saved = self._write(actor.tenant_id, user_id.lower(), validate(rules), actor,
                            if_match=if_match, if_none_match=if_none_match)
        if not actor.is_user(user_id):
            self.audit.record(actor.tenant_id, actor.object_id, "availability_rules.put",
                              {"user": [None, user_id.lower()]})
        log.info("offered hours saved", extra={"tenant": actor.tenant_id, "event": "offered_hours_saved"})
        return RulesView(RulesSource.OWN, saved.value.rules, saved.etag, saved.value.updated_at)

    def delete_for_user(self, actor: Caller, user_id: str, *, if_match: Sequence[str] | None = None) -> None:
        """Remove a user's own rules (the default applies again). Booked sessions stay as they are."""
        self._delete(actor.tenant_id, user_id.lower(), if_match, actor)
        if not actor.is_user(user_id):
            self.audit.record(actor.tenant_id, actor.object_id, "availability_rules.delete",
                              {"user": [user_id.lower(), None]})

    def put_default(
        self, admin: Caller, rules: OfferedHours, *, if_match: Sequence[str] | None = None, if_none_match: bool = False
    ) -> RulesView:
        """Set the tenant default (admins; audited)."""
        saved = self._write(admin.tenant_id, None, validate(rules), admin,
                            if_match=if_match, if_none_match=if_none_match)
        self.audit.record(admin.tenant_id, admin.object_id, "availability_rules.default.put")
        return RulesView(RulesSource.DEFAULT, saved.value.rules, saved.etag, saved.value.updated_at)

    def delete_default(self, admin: Caller, *, if_match: Sequence[str] | None = None) -> None:
        """Remove the tenant default (admins; audited)."""
        self._delete(admin.tenant_id, None, if_match, admin)
        self.audit.record(admin.tenant_id, admin.object_id, "availability_rules.default.delete")

    def _write(
        self,
        tenant_id: str,
        user_id: str | None,
        rules: OfferedHours,
        actor: Caller,
        *,
        if_match: Sequence[str] | None,
        if_none_match: bool,
    ) -> Versioned[StoredRules]:
        stored = StoredRules(rules, self.clock.now(), actor.object_id)
        app = actor.acting_app
        if if_match is None and not if_none_match:
            return self.rules.save(tenant_id, user_id, stored, app=app)
        current = self.rules.get(tenant_id, user_id)
        _check_preconditions(current, if_match, if_none_match)
        try:
            if current is None:
                return self.rules.save(tenant_id, user_id, stored, create_only=True, app=app)
            assert current.etag is not None
            return self.rules.save(tenant_id, user_id, stored, etag=current.etag, app=app)
        except (ConcurrencyConflict, Conflict, NotFound) as exc:  # someone wrote between our read and write
            raise PreconditionFailed() from exc

    def _delete(self, tenant_id: str, user_id: str | None, if_match: Sequence[str] | None, actor: Caller) -> None:
        now, by, app = self.clock.now(), actor.object_id, actor.acting_app
        if if_match is None:
            self.rules.delete(tenant_id, user_id, at=now, by=by, app=app)
            return
        current = self.rules.get(tenant_id, user_id)
        _check_preconditions(current, if_match, False)
        assert current is not None
        try:
            self.rules.delete(tenant_id, user_id, current.etag, at=now, by=by, app=app)
        except ConcurrencyConflict as exc:
            raise PreconditionFailed() from exc

    # --- admin: naming a user ---------------------------------------------------------------

    def resolve_user(self, admin: Caller, ref: str) -> str:
        """A user of the admin's tenant named by object id or email: their object id (404 ``user_not_found``)."""
        if self._gateway is None:
            raise DependencyError("Microsoft Graph is not configured for this process.")
        who = self.identities.for_tenant(admin.tenant_id)
        return self._gateway().get_user(who, ref).user_id.lower()

    # --- what the rules allow ---------------------------------------------------------------

    def constraints(
        self, tenant_id: str, user_ids: Sequence[str], start: datetime, end: datetime, now: datetime
    ) -> dict[str, Constraint]:
        """Per user with rules (by lower-case id): offered intervals over [start, end] and buffers."""
        default = self._default(tenant_id)
        out: dict[str, Constraint] = {}
        for user_id in dict.fromkeys(u.lower() for u in user_ids):
            rules = self._effective(tenant_id, user_id, default)
            if rules is None:
                continue
            booked = self._counted_starts(tenant_id, user_id, rules, start, end)
            offered = offered_intervals(rules, start, end, now=now, booked_starts=booked)
            out[user_id] = Constraint(tuple(offered), rules.buffer_before_minutes, rules.buffer_after_minutes,
                                      rules.within_working_hours)
        if out:
            log.info("availability: offered hours apply to %d participant(s)", len(out))
        return out

    def require_offered(
        self,
        tenant_id: str,
        user_ids: Sequence[str],
        start: datetime,
        end: datetime,
        *,
        exclude_session: str | None = None,
    ) -> None:
        """Booking: 422 ``outside_offered_hours`` unless [start, end) is offered by each of ``user_ids``
        (notice and caps included) and keeps their buffers around the sessions they already have.
        ``exclude_session`` is the session being moved (it neither counts nor blocks)."""
        ids = [u.lower() for u in user_ids if u]
        if not ids or not self.rules.has_any(tenant_id):
            return
        now = self.clock.now()
        default = self._default(tenant_id)
        for user_id in dict.fromkeys(ids):
            rules = self._effective(tenant_id, user_id, default)
            if rules is None:
                continue
            others = self._counted_sessions(tenant_id, user_id, start, end, exclude_session)
            offered = covers(rules, start, end, now=now, booked_starts=[s.start for s in others])
            if not offered or not clear_of_buffers(rules, start, end, [(s.start, s.end) for s in others]):
                log.info("booking refused: outside offered hours",
                         extra={"tenant": tenant_id, "event": "outside_offered_hours"})
                raise OutsideOfferedHours()

    def occurrences_offered(
        self, tenant_id: str, user_id: str, spans: Sequence[tuple[datetime, datetime]], *,
        exclude_series: str | None = None,
    ) -> list[bool] | None:
        """A series' occurrences (in order) against one person's rules: whether each is offered (notice,
        caps counting the earlier occurrences of the same series, buffers around their other sessions).
        None when no rules bind the person. ``exclude_series`` is a series being rescheduled: its own
        occurrences neither count nor block. One read of the person's sessions over the whole span."""
        if not spans or not self.rules.has_any(tenant_id):
            return None
        rules = self.effective(tenant_id, user_id.lower())
        if rules is None:
            return None
        now = self.clock.now()
        low, high = min(s for s, _ in spans), max(e for _, e in spans)
        others = [s for s in self._counted_sessions(tenant_id, user_id.lower(), low, high, None)
                  if exclude_series is None or s.series_id != exclude_series]
        booked = [s.start for s in others]
        taken = [(s.start, s.end) for s in others]
        out = []
        for start, end in spans:
            ok = covers(rules, start, end, now=now, booked_starts=booked) and clear_of_buffers(rules, start, end, taken)
            out.append(ok)
            if ok:
                booked.append(start)
        return out

    def preview(self, tenant_id: str, user_id: str, start: datetime, end: datetime) -> Preview:
        """The offered time of the user's rules over [start, end] (notice and caps applied)."""
        view = self.view(tenant_id, user_id)
        if view.rules is None:
            return Preview(RulesSource.NONE, None, ())
        booked = self._counted_starts(tenant_id, user_id, view.rules, start, end)
        offered = offered_intervals(view.rules, start, end, now=self.clock.now(), booked_starts=booked)
        return Preview(view.source, view.rules.time_zone, tuple(offered))

    def _counted_starts(
        self, tenant_id: str, user_id: str, rules: OfferedHours, start: datetime, end: datetime
    ) -> list[datetime]:
        if not rules.has_caps:
            return []  # no sessions read when nothing is capped
        return [s.start for s in self._counted_sessions(tenant_id, user_id, start, end, None)]

    def _counted_sessions(
        self, tenant_id: str, user_id: str, start: datetime, end: datetime, exclude: str | None
    ) -> list[Session]:
        """The user's sessions that hold time: pending or booked, not being cancelled, not ``exclude``."""
        low, high = max(start, _FIRST) - _CAP_MARGIN, min(end, _LAST) + _CAP_MARGIN
        found = self.sessions.list_for_user(tenant_id, user_id, low, high)
        return [s for s in found if _holds_time(s) and s.session_id != exclude]


def _holds_time(session: Session) -> bool:
    if session.status in (SessionStatus.CANCELLED, SessionStatus.FAILED):
        return False
    return session.pending_op is not PendingOp.CANCEL


def _check_preconditions(current: Versioned[StoredRules] | None, if_match: Sequence[str] | None,
                         if_none_match: bool) -> None:
    if if_none_match and current is not None:
        raise PreconditionFailed("These rules already exist; read them and send If-Match to replace them.")
    if if_match is not None:
        if current is None:
            raise PreconditionFailed("These rules no longer exist; reload and try again.")
        if ANY not in if_match and current.etag not in if_match:
            raise PreconditionFailed()


__all__ = ["Constraint", "OfferedHoursService", "Preview", "RulesSource", "RulesView"]
