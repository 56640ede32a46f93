"""Sync back from Outlook: apply what Graph says a tracked event looks like now.

The webhook (``functions/webhooks.py``) checks each change notification's clientState
and enqueues one ``notifications`` message per POST:

    {"kind": "notifications", "correlationId": ..., "attempt": 0,
     "items": [{"tenantId", "userId", "eventId", "changeType", "subscriptionId"}, ...]}

``NotificationWorker.handle`` then, per item:

* looks the event id up in the event -> session index: an event that is not one of our
  sessions costs that one table read and **zero** Graph calls;
* a series master (its index row names a ``seriesId``; Graph names the master for a change of
  any occurrence: a decline, a move, a deleted occurrence, a new pattern) re-reads that series
  once per message (``SeriesSync.refresh``: the master and its ``/instances``), as does an
  occurrence that was deleted or is no longer found by its id;
* for a tracked event, ``deleted`` cancels the session (source ``outlook``); otherwise it
  reads the event's metadata (one ``get_event``, or one ``$batch`` of up to 20 for several
  events of a tenant in the message; an event named twice is read once) and folds it in
  with ``Session.apply_observed``: moved -> new times, cancelled -> cancelled, attendee and
  room answers -> stored.

Idempotent and order-safe: the worker never trusts a notification's content, only the
event as Graph shows it now, and ``apply_observed`` ignores views older than the one
already applied, so duplicates (Graph sends up to 3) and late arrivals change nothing.
Saves use the session's ETag; a lost race re-reads and re-applies (bounded).
Failures: ``Throttled`` re-enqueues the affected items after ``retry_after`` (no attempt
spent); other transient errors re-enqueue them with back-off up to ``MAX_ATTEMPTS``;
definite errors (mailbox unreachable, consent gone) alert the owner. The reconciliation
timer heals anything a dropped notification missed within one cycle.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from core.domain.calendar import EventMetadata, GraphIdentity
from core.domain.commands import AlertKind, ChangeItem, backoff_seconds, chunks, notifications_message
from core.domain.errors import (
    ConcurrencyConflict,
    DependencyError,
    ItemNotFound,
    ServiceError,
    Throttled,
)
from core.domain.integration import ONBOARDED, Integration
from core.domain.sessions import Session
from core.names import Queues
from core.ports import CalendarGateway, Clock, CommandQueue, TableStore
from core.services.alerts import OwnerAlerts
from core.services.identity import GraphIdentities
from core.services.series_sync import SeriesSync
from core.services.stores.codec import Versioned
from core.services.stores.connections import ConnectionRepository
from core.services.stores.integrations import IntegrationRepository
from core.services.stores.series import SeriesRepository, index_entry
from core.services.stores.sessions import SessionRepository

log = logging.getLogger(__name__)
BATCH_SIZE: Final = 20  # Graph's $batch limit
MAX_ATTEMPTS: Final = 5
MAX_RACE_RETRIES: Final = 5
MAX_BACKOFF_SECONDS: Final = 300.0






def items_of(message: Mapping[str, Any]) -> list[ChangeItem]:
    """The items of a ``notifications`` message (malformed items are skipped, not fatal)."""
    out = []
    for raw in message.get("items") or []:
        try:
            out.append(ChangeItem.from_json(raw))
        except (KeyError, TypeError):
            log.warning("skipped a malformed notification item")
    return out


def is_active(integration: Integration | None) -> bool:
    """Does the tenant's integration allow calendar work (enabled and onboarded)?"""
    return integration is not None and integration.enabled and integration.status in ONBOARDED






@dataclass
class SyncReport:
    """What one pass changed; ``failed`` holds the error code per session id that could not be read."""

    read: int = 0
    changed: int = 0
    unchanged: int = 0
    failed: dict[str, ServiceError] = field(default_factory=dict)
    throttled: Throttled | None = None
    unread: list[str] = field(default_factory=list)  # not tried: a group was throttled first
    # Series to re-read whole: an occurrence Graph no longer knows by its id (deleted, or its series got a
    # new pattern and every occurrence a new id): (tenant id, series id), for SeriesSync.refresh.
    series: set[tuple[str, str]] = field(default_factory=set)

    def merge(self, other: SyncReport) -> None:
        self.read += other.read
        self.changed += other.changed
        self.unchanged += other.unchanged
        self.failed.update(other.failed)
        self.throttled = self.throttled or other.throttled
        self.unread.extend(other.unread)
        self.series |= other.series


class SessionSync:
    """Folds observed event metadata into sessions, ETag-safe. Shared by the worker, resync and reconciliation."""

    def __init__(self, sessions: SessionRepository, gateway: CalendarGateway, clock: Clock,
                 identities: GraphIdentities) -> None:
        self.sessions = sessions
        self.gateway = gateway
        self.clock = clock
        self.identities = identities

    def update(self, tenant_id: str, session_id: str, change: Callable[[Session], Session | None],
               current: Versioned[Session] | None = None) -> bool:
        """Apply ``change`` to the stored session and save with its ETag; re-read and retry on a lost race.

        Returns True when something was saved, False when ``change`` found nothing to do.
        """
        found = current or self.sessions.get(tenant_id, session_id)
        for _ in range(MAX_RACE_RETRIES):
            if found is None:
                return False
            updated = change(found.value)
            if updated is None:
                return False
            try:
                self.sessions.save(updated, found.etag, previous=found.value)
                return True
            except ConcurrencyConflict:
                found = self.sessions.get(tenant_id, session_id)
        raise ConcurrencyConflict("The session kept changing while an Outlook change was applied.")

    def observe(self, session: Session, seen: EventMetadata | ServiceError,
                current: Versioned[Session] | None = None) -> bool | None:
        """Fold one read result in: True changed, False unchanged, None when it could not be read."""
        now = self.clock.now()
        if isinstance(seen, ItemNotFound):
            return self.update(session.tenant_id, session.session_id, lambda s: s.mark_deleted_in_outlook(now), current)
        if isinstance(seen, ServiceError):
            return None
        if current is None and session.apply_observed(seen, now) is None:
            return False  # nothing to do: no need to read the row again for its ETag
        return self.update(session.tenant_id, session.session_id, lambda s: s.apply_observed(seen, now), current)

    def refresh(self, tenant_id: str, sessions: Sequence[Session],
                integration: Integration | None = None) -> SyncReport:
        """Re-read tracked sessions' events in ``$batch`` groups of 20 and apply what changed.

        Stops at the first throttled group (``report.throttled``); the caller decides when to retry.
        """
        report = SyncReport()
        by_who: dict[GraphIdentity, list[Session]] = {}
        identity_of = self.identities.for_users(tenant_id, integration=integration)
        for s in sessions:
            if s.event_id and not s.is_final:
                by_who.setdefault(identity_of(s.organizer_id), []).append(s)
        for who, tracked in by_who.items():
            self.read_and_apply(who, tracked, report)
            if report.throttled is not None:
                break
        return report

    def read_and_apply(self, who: GraphIdentity, sessions: Sequence[Session], report: SyncReport, *,
                       mailbox: str | None = None,
                       current: Mapping[str, Versioned[Session]] | None = None) -> None:
        """The one ``$batch`` read-and-apply loop: read the sessions' events as ``who`` and fold them in.

        One ``get_event`` for a lone event, else ``$batch`` groups of 20. Events are read from each
        organizer's calendar, or from ``mailbox`` (a Scheduler calendar in the service account's
        mailbox). ``current`` gives rows already read with their ETag (no second read). Results go
        into ``report``: counts, ``failed`` per session (the group's or the item's error), and after
        the first throttled group, ``throttled`` plus every session not tried in ``unread``.
        """
        for group in chunks(sessions):
            if report.throttled is not None:
                report.unread.extend(s.session_id for s in group)
                continue
            refs = [(mailbox or s.organizer_id, str(s.event_id)) for s in group]
            try:
                seen = self._read(who, refs)
            except Throttled as exc:
                report.throttled = exc
                report.unread.extend(s.session_id for s in group)
                continue
            except ServiceError as exc:
                for s in group:
                    report.failed[s.session_id] = exc
                continue
            for s, ref in zip(group, refs, strict=True):
                result = seen.get(ref)
                if result is None:
                    continue
                report.read += 1
                if isinstance(result, ItemNotFound) and s.series_id:
                    report.series.add((s.tenant_id, s.series_id))  # the series decides (SeriesSync.refresh)
                    continue
                outcome = self.observe(s, result, current.get(s.session_id) if current else None)
                if outcome is None:
                    assert isinstance(result, ServiceError)
                    report.failed[s.session_id] = result
                elif outcome:
                    report.changed += 1
                else:
                    report.unchanged += 1

    def _read(self, who: GraphIdentity,
              refs: Sequence[tuple[str, str]]) -> Mapping[tuple[str, str], EventMetadata | ServiceError]:
        """One ``get_event`` for a single event, one ``$batch`` for several."""
        if len(refs) == 1:
            try:
                return {refs[0]: self.gateway.get_event(who, *refs[0])}
            except ItemNotFound as exc:
                return {refs[0]: exc}
        return self.gateway.get_events(who, refs)


@dataclass
class NotificationOutcome:
    """Counts of one message's items, for logs and tests."""

    untracked: int = 0
    changed: int = 0
    unchanged: int = 0
    skipped: int = 0
    retried: int = 0
    failed: int = 0


class NotificationWorker:
    """Handles ``notifications`` queue messages (see the module docstring)."""

    def __init__(
        self,
        tables: TableStore,
        queues: CommandQueue,
        gateway: CalendarGateway,
        clock: Clock,
        alerts: OwnerAlerts | None = None,
    ) -> None:
        self.sessions = SessionRepository(tables)
        self.integrations = IntegrationRepository(tables)
        self.queues = queues
        self.gateway = gateway
        self.clock = clock
        self.alerts = alerts or OwnerAlerts(tables, queues, clock)
        self.identities = GraphIdentities(self.integrations, ConnectionRepository(tables))
        self.sync = SessionSync(self.sessions, gateway, clock, self.identities)
        self.series = SeriesRepository(tables)
        self.series_sync = SeriesSync(tables, gateway, clock, self.identities)

    def handle_message(self, message: Mapping[str, Any]) -> NotificationOutcome:
        attempt = int(message.get("attempt") or 0)
        return self.handle(items_of(message), attempt=attempt, correlation_id=message.get("correlationId"))

    def handle(
        self, items: Sequence[ChangeItem], *, attempt: int = 0, correlation_id: str | None = None
    ) -> NotificationOutcome:
        """Apply a message's items; see the module docstring for the failure rules."""
        outcome = NotificationOutcome()
        active: dict[str, Integration | None] = {}
        deleted: dict[tuple[str, str], tuple[ChangeItem, Versioned[Session]]] = {}
        to_read: dict[tuple[str, str], tuple[ChangeItem, Versioned[Session]]] = {}
        series: dict[tuple[str, str], ChangeItem] = {}  # series to re-read whole, and an item that named each
        seen: set[tuple[str, str]] = set()
        for item in items:
            key = (item.tenant_id, item.event_id)
            if key in seen:  # the same event again in this message: handled once
                if item.change_type == "deleted" and key in to_read:
                    deleted[key] = to_read.pop(key)
                continue
            seen.add(key)
            session_id, series_id = index_entry(self.sessions.tables, item.tenant_id, item.event_id)
            if series_id is not None:  # a series master: Graph names it for any occurrence's change
                if not self._series_of(item, series_id):
                    outcome.untracked += 1
                elif not self._active(item.tenant_id, active):
                    outcome.skipped += 1
                else:
                    series.setdefault((item.tenant_id, series_id), item)
                continue
            found = self.sessions.get(item.tenant_id, session_id) if session_id else None
            if found is None or found.value.organizer_id.lower() != item.user_id.lower():
                outcome.untracked += 1
                continue
            if not self._active(item.tenant_id, active):
                outcome.skipped += 1
                continue
            if found.value.series_id and item.change_type == "deleted":
                series.setdefault((item.tenant_id, found.value.series_id), item)  # deleted, or a new pattern
                continue
            (deleted if item.change_type == "deleted" else to_read)[key] = (item, found)

        now = self.clock.now()
        for (tenant_id, _), (_, found) in deleted.items():
            changed = self.sync.update(
                tenant_id, found.value.session_id, lambda s: s.mark_deleted_in_outlook(now), found
            )
            outcome.changed += changed
            outcome.unchanged += not changed

        by_who: dict[GraphIdentity, list[Versioned[Session]]] = {}
        resolvers: dict[str, Callable[[str], GraphIdentity]] = {}
        for (tenant_id, _), (_, found) in to_read.items():
            if tenant_id not in resolvers:
                resolvers[tenant_id] = self.identities.for_users(tenant_id, integration=active.get(tenant_id))
            by_who.setdefault(resolvers[tenant_id](found.value.organizer_id), []).append(found)
        report = SyncReport()
        for who, rows in by_who.items():
            self.sync.read_and_apply(who, [r.value for r in rows], report,
                                     current={r.value.session_id: r for r in rows})
        outcome.changed += report.changed
        outcome.unchanged += report.unchanged
        item_of = {found.value.session_id: item for item, found in to_read.values()}
        retry = [item_of[sid] for sid in report.unread]
        throttled = report.throttled
        definite: dict[str, list[ServiceError]] = {}
        by_series = {found.value.series_id: item for item, found in to_read.values() if found.value.series_id}
        for tenant_id, series_id in sorted(report.series):
            named = by_series.get(series_id)
            if named is not None:
                series.setdefault((tenant_id, series_id), named)
        for (tenant_id, series_id), item in series.items():
            if throttled is not None:
                retry.append(item)
                continue
            try:
                refreshed = self.series_sync.refresh(tenant_id, series_id)
            except Throttled as slow:
                throttled = slow
                retry.append(item)
                continue
            except DependencyError:
                retry.append(item)
                continue
            except ServiceError as failure:
                definite.setdefault(tenant_id, []).append(failure)
                continue
            folded = refreshed.folded
            changes = folded.created + folded.changed + folded.cancelled
            outcome.changed += changes
            outcome.unchanged += not changes
        for sid, exc in report.failed.items():
            if isinstance(exc, DependencyError):  # throttled or transient: try again later
                retry.append(item_of[sid])
                if isinstance(exc, Throttled):
                    throttled = throttled or exc
            else:
                definite.setdefault(item_of[sid].tenant_id, []).append(exc)
        for tenant_id, errors in definite.items():
            self._definite_failure(tenant_id, errors[0], len(errors))
            outcome.failed += len(errors)
        if retry:
            outcome.retried = len(retry)
            self._retry(retry, attempt, throttled, correlation_id)
        log.info(
            "notifications: %d changed, %d unchanged, %d untracked, %d skipped, %d retried, %d failed",
            outcome.changed, outcome.unchanged, outcome.untracked, outcome.skipped, outcome.retried, outcome.failed,
        )
        return outcome

    # --- internals -------------------------------------------------------------------

    def _series_of(self, item: ChangeItem, series_id: str) -> bool:
        """Is this a series the notified mailbox organizes?"""
        found = self.series.get(item.tenant_id, series_id)
        return found is not None and found.value.organizer_id.lower() == item.user_id.lower()

    def _active(self, tenant_id: str, cache: dict[str, Integration | None]) -> bool:
        """Is the tenant's integration enabled and onboarded (read once per message)?"""
        if tenant_id not in cache:
            found = self.integrations.get(tenant_id)
            cache[tenant_id] = found.value if found is not None else None
        return is_active(cache[tenant_id])


    def _retry(self, items: list[ChangeItem], attempt: int, throttled: Throttled | None, cid: str | None) -> None:
        if throttled is not None:
            delay = float(throttled.retry_after or 30.0)
            self.queues.send(Queues.NOTIFICATIONS, notifications_message(items, correlation_id=cid, attempt=attempt),
                             delay_seconds=delay)
            return
        if attempt + 1 >= MAX_ATTEMPTS:
            for tenant_id in sorted({i.tenant_id for i in items}):
                self.alerts.notify(
                    tenant_id, AlertKind.SUBSCRIPTION_FAILURE,
                    detail="Changes made in Outlook could not be read after several attempts; "
                    "the periodic reconciliation will retry.",
                )
            log.error("notifications: gave up on %d item(s) after %d attempts", len(items), attempt + 1)
            return
        self.queues.send(Queues.NOTIFICATIONS, notifications_message(items, correlation_id=cid, attempt=attempt + 1),
                         delay_seconds=backoff_seconds(attempt))

    def _definite_failure(self, tenant_id: str, exc: ServiceError, count: int) -> None:
        log.warning("notifications: %d tracked event(s) could not be read: %s", count, exc.code)
        self.alerts.notify(
            tenant_id, AlertKind.SUBSCRIPTION_FAILURE,
            detail=f"Changes made in Outlook could not be read ({exc.code}).",
        )
