"""Resync and reconciliation: heal whatever lost notifications missed.

* ``Reconciler.resync_mailbox`` re-reads one organizer's tracked upcoming sessions (in
  ``$batch`` groups of 20) and applies what changed: used after a ``missed`` or
  ``subscriptionRemoved`` lifecycle event.
* ``Reconciler.plan`` (timer, ``%RECONCILE_SCHEDULE%``) fans the same out for every active
  tenant's sessions starting within the next ``window`` (14 days by default), like the
  renewal fan-out: it pages the sessions' start-time index (``t~`` rows, no partition scan)
  and sends one ``reconcile`` message per group of 20 session ids (same Graph identity) to
  the lifecycle queue; ``Reconciler.handle_message`` re-reads a group with one ``$batch``.
  A change Graph never told us about is at worst one cycle late, never wrong forever. The
  timer also keeps subscriptions in step with need, from the same index: a mailbox that
  organizes sessions not yet over gets one (created or replaced when missing or lapsing);
  a mailbox with none left loses its own. ``Reconciler.run`` does all of it inline.
* Freshness bound: sessions starting within ``NEAR_WINDOW`` (24 h) are re-read by their
  own timer (``%RECONCILE_NEAR_SCHEDULE%``, every 15 minutes: ``plan(span=NEAR)``, no
  housekeeping, service-account tenants left to their own poll), and the two-hourly
  timer plans only the sessions after that (``span=FAR``, with housekeeping). So a
  change Graph never notified (dropped, or a ``missed`` lifecycle we could not act on)
  to a session of the next 24 h is applied within one near cycle (15 min plus queue
  time), and far-future sessions are not re-read that often. Graph cost: one ``$batch``
  per 20 sessions of one identity per cycle (docs/scaling.md, "Freshness bound").
* Series: occurrences are sessions, so the same ``$batch`` groups re-read them by id (the
  fewest calls: 20 occurrences of any series per request, instead of one ``/instances`` call
  per series). An occurrence Graph no longer finds by its id means its series changed shape
  (an occurrence deleted, or a new pattern or times: every occurrence gets a new id) and that
  series is re-read whole (``SeriesSync.refresh``: its master and ``/instances``, two calls),
  never cancelled blindly. A resync re-reads every series of the mailbox whole (a missed
  notification may have carried a new pattern or a longer range).
* Service-account tenants get no change notifications (Graph does not send them for
  shared calendars to delegated callers), so a second, shorter timer runs ``plan`` for
  them only (``methods``); sessions booked in the scheduling mailbox's "Scheduler"
  calendar (``calendar_id`` set) are re-read from that mailbox, never from the organizer's.
* ``LifecycleWorker`` handles the ``lifecycle`` queue (``reconcile`` messages go to the
  reconciler): ``reauthorizationRequired`` ->
  reauthorize (renew if that fails), ``subscriptionRemoved`` -> recreate then resync,
  ``missed`` -> resync. An item is acted on only when its subscription id and clientState
  nonce are those of the mailbox's current record (``core/services/client_state.py``): an
  item about any other subscription, forged with a leaked clientState or replayed, changes
  nothing and makes no Graph call. Work is deduplicated per mailbox, event and subscription
  for ``LIFECYCLE_DEDUP`` and resyncs are cooled down per mailbox (``RESYNC_COOLDOWN``: a
  ``missed`` inside it books one resync for when it ends; more are dropped), both through
  rows in the ``subscriptions`` table, so every instance shares them.

Re-reading by event id (never a delta query) means there is no delta token to expire:
a resync is always a full re-read of the sessions that matter. It is also the cheaper
choice here: a calendarView delta round costs at least one request per organizer
mailbox per cycle and returns every event of the window with all its properties
(``$select`` is not supported on calendarView delta: microsoftgraph/microsoft-graph-docs-contrib,
api-reference/v1.0/api/event-delta.md @ 028b8e35), while a ``$batch`` re-reads 20 sessions,
of any organizers sharing one identity, for one request and reads only our events'
metadata. Delta would only win for an organizer with more than 20 sessions in the window.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from core.domain.commands import RECONCILE, AlertKind, LifecycleItem, chunks, lifecycle_message, reconcile_message
from core.domain.errors import DependencyError, ItemNotFound, ServiceError, Throttled
from core.domain.integration import ConnectionMethod, Integration
from core.domain.sessions import Session, SessionStatus
from core.names import Queues
from core.ports import CalendarGateway, Clock, CommandQueue, TableStore
from core.services.alerts import OwnerAlerts
from core.services.identity import GraphIdentities
from core.services.notifications import SessionSync, SyncReport, is_active
from core.services.series_sync import SeriesSync
from core.services.stores.connections import ConnectionRepository
from core.services.stores.integrations import IntegrationRepository
from core.services.stores.sessions import SessionRepository
from core.services.subscriptions import ENSURE_MARGIN, SubscriptionService

log = logging.getLogger(__name__)

DEFAULT_WINDOW: Final = timedelta(days=14)
RECENT_PAST: Final = timedelta(hours=1)  # sessions that just started still get their last changes
RESYNC_AHEAD: Final = timedelta(days=400)
MAX_ATTEMPTS: Final = 5
LONGEST_SESSION: Final = timedelta(days=1)  # housekeeping looks this far back for sessions not yet over
LIFECYCLE_DEDUP: Final = timedelta(minutes=10)  # the same lifecycle work for a subscription, at most once per this
RESYNC_COOLDOWN: Final = timedelta(minutes=5)  # at most one resync per mailbox per this
SCHEDULER: Final = "~scheduler"  # grouping key of sessions read from the scheduling mailbox
NEAR_WINDOW: Final = timedelta(hours=24)  # sessions starting this soon are re-read every near cycle
# Tenants whose sessions the near timer re-reads: the ones that get change notifications
# (service-account tenants are polled over the whole window every few minutes anyway).
NOTIFIED_METHODS: Final = frozenset({ConnectionMethod.DOMAIN_WIDE, ConnectionMethod.PER_USER})


class Span(StrEnum):
    """Which upcoming sessions a plan re-reads (module docstring: freshness bound)."""

    ALL = "all"  # from an hour ago to the end of the window
    NEAR = "near"  # from an hour ago to NEAR_WINDOW from now
    FAR = "far"  # from NEAR_WINDOW from now to the end of the window


def is_upcoming_need(session: Session, now: datetime) -> bool:
    """Does this session still need its organizer's subscription (not over, not finally cancelled)?"""
    if session.end <= now:
        return False
    if session.status == SessionStatus.CANCELLED and session.pending_op is None:
        return False
    return not (session.status == SessionStatus.FAILED and session.event_id is None and session.pending_op is None)


@dataclass
class ReconcileReport:
    tenants: int = 0
    sync: SyncReport = field(default_factory=SyncReport)
    subscriptions_ensured: int = 0
    subscriptions_removed: int = 0
    errors: int = 0
    queued: int = 0  # reconcile messages enqueued (``plan``)

    def merge(self, other: ReconcileReport) -> None:
        self.tenants += other.tenants
        self.sync.merge(other.sync)
        self.subscriptions_ensured += other.subscriptions_ensured
        self.subscriptions_removed += other.subscriptions_removed
        self.errors += other.errors
        self.queued += other.queued




class Reconciler:
    """Re-reads tracked sessions and keeps subscriptions in step with need."""

    def __init__(
        self,
        tables: TableStore,
        gateway: CalendarGateway,
        clock: Clock,
        subscriptions: SubscriptionService,
        *,
        window: timedelta = DEFAULT_WINDOW,
        queues: CommandQueue | None = None,
    ) -> None:
        self.sessions = SessionRepository(tables)
        self.queues: CommandQueue = queues if queues is not None else subscriptions.queues
        self.integrations = IntegrationRepository(tables)
        self.gateway = gateway
        self.clock = clock
        self.subscriptions = subscriptions
        self.window = window
        self.connections = ConnectionRepository(tables)
        self.identities = GraphIdentities(self.integrations, self.connections)
        self.sync = SessionSync(self.sessions, gateway, clock, self.identities)
        self.series_sync = SeriesSync(tables, gateway, clock, self.identities)

    def integration(self, tenant_id: str) -> Integration | None:
        found = self.integrations.get(tenant_id)
        return found.value if found is not None else None

    def active(self, tenant_id: str) -> bool:
        return is_active(self.integration(tenant_id))

    def resync_mailbox(self, tenant_id: str, user_id: str) -> SyncReport:
        """Re-read every tracked upcoming session this mailbox organizes and apply changes."""
        now = self.clock.now()
        sessions = [
            s for s in self.sessions.list_for_user(tenant_id, user_id, now - RECENT_PAST, now + RESYNC_AHEAD)
            if s.organizer_id.lower() == user_id.lower() and not s.calendar_id
        ]
        report = self.sync.refresh(tenant_id, sessions, self.integration(tenant_id))
        # Series are re-read whole after a gap: a missed notification may have carried a new pattern or range.
        report.series |= {(tenant_id, s.series_id) for s in sessions if s.series_id and s.event_id}
        self._refresh_series(tenant_id, sessions, report)
        log.info("resync of a mailbox: %d read, %d changed, %d failed", report.read, report.changed, len(report.failed))
        return report

    def _refresh_series(self, tenant_id: str, sessions: Sequence[Session], report: SyncReport) -> None:
        """Re-read the series a sync found gaps in (``report.series``): the master and its instances.

        Reconciliation re-reads occurrences by id in the ``$batch`` groups of every session (the
        fewest calls); a series is read whole only when an occurrence is no longer found by its id
        (deleted in Outlook, or a new pattern gave every occurrence a new id), two calls then.
        Failures are reported under one of the series' occurrences, for the retry.
        """
        first: dict[str, str] = {}
        for s in sessions:
            if s.series_id:
                first.setdefault(s.series_id, s.session_id)
        for tid, series_id in sorted(report.series):
            if tid != tenant_id:
                continue
            if report.throttled is not None:
                report.unread.append(first.get(series_id, series_id))
                continue
            try:
                done = self.series_sync.refresh(tenant_id, series_id)
            except Throttled as exc:
                report.throttled = exc
                report.unread.append(first.get(series_id, series_id))
                continue
            except ServiceError as exc:
                report.failed[first.get(series_id, series_id)] = exc
                continue
            report.changed += done.folded.created + done.folded.changed + done.folded.cancelled
        report.series = {k for k in report.series if k[0] != tenant_id}

    def _tenants(self, methods: Collection[ConnectionMethod] | None) -> Iterator[tuple[str, Integration]]:
        for tenant_id in list(self.integrations.tenants()):
            integration = self.integration(tenant_id)
            if integration is None or not is_active(integration):
                continue
            if methods is not None and integration.method not in methods:
                continue
            yield tenant_id, integration

    def plan(self, methods: Collection[ConnectionMethod] | None = None, *, span: Span = Span.ALL,
             housekeeping: bool = True) -> ReconcileReport:
        """Timer: enqueue the re-reads (one ``reconcile`` message per group of 20) and do housekeeping.

        ``span`` picks the sessions by start (``Span``); ``housekeeping=False`` leaves the
        subscriptions alone (the near timer). The timer itself makes no ``$batch`` call: its cost
        is one index range query per tenant plus the housekeeping, so it fits the function
        timeout at any size.
        """
        total = ReconcileReport()
        for tenant_id, integration in self._tenants(methods):
            try:
                report = self._plan_tenant(tenant_id, integration, span, housekeeping=housekeeping)
            except ServiceError as exc:
                log.warning("reconciliation planning of a tenant failed: %s", exc.code)
                total.errors += 1
                continue
            total.merge(report)
        log.info("reconciliation planned: %d tenant(s), %d message(s), %d subscription(s) ensured, %d removed",
                 total.tenants, total.queued, total.subscriptions_ensured, total.subscriptions_removed)
        return total

    def plan_near(self) -> ReconcileReport:
        """The near timer: sessions starting within ``NEAR_WINDOW`` of notified tenants, no housekeeping."""
        return self.plan(NOTIFIED_METHODS, span=Span.NEAR, housekeeping=False)

    def span_bounds(self, span: Span, now: datetime) -> tuple[datetime, datetime]:
        """[start, end) of the session starts a span covers."""
        near = min(now + NEAR_WINDOW, now + self.window)
        if span is Span.NEAR:
            return now - RECENT_PAST, near
        if span is Span.FAR:
            return near, now + self.window
        return now - RECENT_PAST, now + self.window

    def _plan_tenant(self, tenant_id: str, integration: Integration, span: Span = Span.ALL, *,
                     housekeeping: bool = True) -> ReconcileReport:
        report = ReconcileReport(tenants=1)
        for group in self._groups(tenant_id, integration, span):
            self.queues.send(Queues.LIFECYCLE, reconcile_message(tenant_id, group))
            report.queued += 1
        if housekeeping:
            self._housekeeping(tenant_id, report)
        return report

    def run(self, methods: Collection[ConnectionMethod] | None = None) -> ReconcileReport:
        """Reconcile every active tenant (or those whose method is in ``methods``) in this call.

        The same groups ``plan`` enqueues, handled inline: for tests, local runs and small
        deployments. One tenant's failure does not stop the others.
        """
        total = ReconcileReport()
        for tenant_id, integration in self._tenants(methods):
            try:
                report = self.reconcile_tenant(tenant_id, integration)
            except ServiceError as exc:
                log.warning("reconciliation of a tenant failed: %s", exc.code)
                total.errors += 1
                continue
            total.merge(report)
        log.info(
            "reconciliation: %d tenant(s), %d session(s) read, %d healed, %d subscription(s) ensured, %d removed",
            total.tenants, total.sync.read, total.sync.changed, total.subscriptions_ensured,
            total.subscriptions_removed,
        )
        return total

    def reconcile_tenant(self, tenant_id: str, integration: Integration | None = None) -> ReconcileReport:
        """Heal one tenant's sessions starting within the window; subscriptions follow need."""
        integration = integration or self.integration(tenant_id)
        report = ReconcileReport(tenants=1)
        for group in self._groups(tenant_id, integration):
            report.sync.merge(self.reconcile_group(tenant_id, group, integration))
            if report.sync.throttled is not None:
                log.warning("reconciliation throttled; the next cycle continues")
                break
        self._housekeeping(tenant_id, report)
        return report

    def _groups(self, tenant_id: str, integration: Integration | None, span: Span = Span.ALL) -> list[list[str]]:
        """Session ids to re-read, in groups of 20 that each take one ``$batch`` (same Graph identity)."""
        if not self.sessions.has_start_index(tenant_id):
            written = self.sessions.backfill_start_index(tenant_id)  # one-off, for data older than the index
            log.info("reconciliation: start index backfilled (%d session(s))", written)
        start, end = self.span_bounds(span, self.clock.now())
        if end <= start:
            return []
        by_who: dict[object, list[str]] = {}
        identity_of = self.identities.for_users(tenant_id, integration=integration)
        for row in self.sessions.start_index(tenant_id, start, end):
            if not row.tracked:
                continue
            key: object = SCHEDULER if row.scheduler_calendar else identity_of(row.organizer_id)
            by_who.setdefault(key, []).append(row.session_id)
        return [list(group) for ids in by_who.values() for group in chunks(ids)]

    def reconcile_group(self, tenant_id: str, session_ids: Sequence[str],
                        integration: Integration | None = None) -> SyncReport:
        """Re-read one group's events (one ``$batch`` when planned by ``_groups``) and apply what changed."""
        integration = integration or self.integration(tenant_id)
        sessions = [f.value for f in (self.sessions.get(tenant_id, sid) for sid in dict.fromkeys(session_ids))
                    if f is not None]
        report = self.sync.refresh(tenant_id, [s for s in sessions if not s.calendar_id], integration)
        if report.throttled is None:
            report.merge(self._refresh_scheduler_calendar(tenant_id, [s for s in sessions if s.calendar_id],
                                                          integration))
        self._refresh_series(tenant_id, sessions, report)
        return report

    def handle_message(self, message: Mapping[str, Any]) -> SyncReport:
        """Worker: one ``reconcile`` message. Throttled -> the same ids again after ``Retry-After``;
        transient failures -> the failed ids again with back-off (``MAX_ATTEMPTS``). Idempotent."""
        tenant_id = str(message.get("tenantId") or "")
        ids = [str(x) for x in message.get("sessionIds") or []]
        attempt = int(message.get("attempt") or 0)
        integration = self.integration(tenant_id)
        if not tenant_id or not ids or not is_active(integration):
            return SyncReport()
        report = self.reconcile_group(tenant_id, ids, integration)
        correlation_id = message.get("correlationId")
        if report.throttled is not None:
            self.queues.send(Queues.LIFECYCLE, reconcile_message(tenant_id, ids, attempt=attempt,
                                                                 correlation_id=correlation_id),
                             delay_seconds=float(report.throttled.retry_after or 30))
        else:
            again = [sid for sid, exc in report.failed.items() if isinstance(exc, DependencyError)]
            if again and attempt + 1 < MAX_ATTEMPTS:
                self.queues.send(Queues.LIFECYCLE, reconcile_message(tenant_id, again, attempt=attempt + 1,
                                                                     correlation_id=correlation_id),
                                 delay_seconds=float(min(600, 15 * 2**attempt)))
        log.info("reconcile group: %d read, %d changed, %d failed", report.read, report.changed, len(report.failed))
        return report

    def _housekeeping(self, tenant_id: str, report: ReconcileReport) -> None:
        """Subscriptions follow the organizers of sessions not yet over, read from the start index."""
        now = self.clock.now()
        needed = {
            row.organizer_id.lower()
            for row in self.sessions.start_index(tenant_id, now - LONGEST_SESSION)
            if row.open and row.end > now
        }
        records = {r.user_id: r for r in self.subscriptions.mailboxes(tenant_id)}
        for user_id in sorted(needed):
            before = records.get(user_id)
            if before is not None and before.expires_at > now + ENSURE_MARGIN:
                continue  # live; the renewal fan-out keeps it so
            try:
                after = self.subscriptions.ensure_for_mailbox(tenant_id, user_id)
                if after is None:
                    continue  # a polled (service-account) tenant: no subscriptions
                if before is None or before.subscription_id != after.subscription_id:
                    report.subscriptions_ensured += 1
            except ServiceError as exc:
                log.warning("could not ensure a mailbox subscription: %s", exc.code)
                report.errors += 1
        for user_id in sorted(set(records) - needed):
            try:
                if self.subscriptions.remove_for_mailbox(tenant_id, user_id):
                    report.subscriptions_removed += 1
            except ServiceError as exc:
                log.warning("could not remove an unneeded subscription: %s", exc.code)
                report.errors += 1

    def _refresh_scheduler_calendar(self, tenant_id: str, sessions: Sequence[Session],
                                    integration: Integration | None) -> SyncReport:
        """Re-read sessions booked in the scheduling mailbox's Scheduler calendar, from that mailbox.

        Only while the tenant still uses the service-account method with a connected mailbox:
        reading them from the organizer's calendar would find nothing and wrongly cancel them.
        """
        report = SyncReport()
        tracked = [s for s in sessions if s.event_id and not s.is_final]
        if not tracked:
            return report
        account = self.identities.service_account_id(tenant_id)
        if integration is None or integration.method is not ConnectionMethod.SERVICE_ACCOUNT or account is None:
            log.warning("reconciliation: %d session(s) in a Scheduler calendar skipped (no service account)",
                        len(tracked))
            return report
        who = self.identities.for_tenant(tenant_id, integration=integration)
        self.sync.read_and_apply(who, tracked, report, mailbox=account)
        return report


@dataclass
class LifecycleOutcome:
    reauthorized: int = 0
    renewed: int = 0
    recreated: int = 0
    resynced: int = 0
    ignored: int = 0  # not the mailbox's current subscription (old, another mailbox's, forged, replayed)
    duplicates: int = 0  # the same work done a moment ago, or a resync already booked
    deferred: int = 0  # a resync booked for when the mailbox's cooldown ends
    retried: int = 0
    reconciled: int = 0  # sessions re-read for a ``reconcile`` message


class LifecycleWorker:
    """Handles ``lifecycle`` messages (see the module docstring)."""

    def __init__(
        self,
        queues: CommandQueue,
        gateway: CalendarGateway,
        subscriptions: SubscriptionService,
        reconciler: Reconciler,
        alerts: OwnerAlerts,
    ) -> None:
        self.queues = queues
        self.gateway = gateway
        self.subscriptions = subscriptions
        self.reconciler = reconciler
        self.alerts = alerts

    def handle_message(self, message: Mapping[str, Any]) -> LifecycleOutcome:
        """Dispatch one lifecycle-queue message: Graph lifecycle items, or a planned ``reconcile`` group."""
        if message.get("kind") == RECONCILE:
            return LifecycleOutcome(reconciled=self.reconciler.handle_message(message).read)
        items = []
        for raw in message.get("items") or []:
            try:
                items.append(LifecycleItem.from_json(raw))
            except (KeyError, TypeError):
                log.warning("skipped a malformed lifecycle item")
        return self.handle(items, attempt=int(message.get("attempt") or 0), correlation_id=message.get("correlationId"))

    def handle(self, items: Sequence[LifecycleItem], *, attempt: int = 0,
               correlation_id: str | None = None) -> LifecycleOutcome:
        outcome = LifecycleOutcome()
        retry: list[LifecycleItem] = []
        delay: float | None = None
        for item in dict.fromkeys(items):  # duplicates in one message: once
            if not self.reconciler.active(item.tenant_id):
                outcome.ignored += 1
                continue
            again = item
            try:
                try:
                    self._one(item, outcome)
                except _RetryAs as follow_up:
                    again = follow_up.item
                    raise follow_up.cause from None
            except Throttled as exc:
                retry.append(again)
                delay = max(delay or 0.0, float(exc.retry_after or 30))
            except DependencyError as exc:
                log.warning("lifecycle %s: %s; retrying", item.event, exc.code)
                retry.append(again)
            except ServiceError as exc:
                log.warning("lifecycle %s failed: %s", item.event, exc.code)
                self.alerts.notify(
                    item.tenant_id, AlertKind.SUBSCRIPTION_FAILURE,
                    detail=f"A change-notification subscription needs attention ({item.event}: {exc.code}).",
                )
        if retry:
            outcome.retried = len(retry)
            if delay is not None:
                self.queues.send(Queues.LIFECYCLE, lifecycle_message(retry, correlation_id=correlation_id,
                                                                     attempt=attempt), delay_seconds=delay)
            elif attempt + 1 < MAX_ATTEMPTS:
                self.queues.send(Queues.LIFECYCLE, lifecycle_message(retry, correlation_id=correlation_id,
                                                                     attempt=attempt + 1),
                                 delay_seconds=float(min(600, 15 * 2**attempt)))
            else:
                for tenant_id in sorted({i.tenant_id for i in retry}):
                    self.alerts.notify(tenant_id, AlertKind.SUBSCRIPTION_FAILURE,
                                       detail="A lifecycle event could not be handled after several attempts; "
                                       "the periodic reconciliation will catch up.")
        return outcome

    def _one(self, item: LifecycleItem, outcome: LifecycleOutcome) -> None:
        record = self.subscriptions.get(item.tenant_id, item.user_id)
        if record is None or record.subscription_id != item.subscription_id or record.nonce != item.nonce:
            # Not this mailbox's current subscription (an old one, another mailbox's, or an item forged with a
            # leaked clientState): nothing to do, and never a Graph call on a subscription an item names.
            outcome.ignored += 1
            return
        if item.event == "missed":
            self._missed(item, outcome)
            return
        if item.event not in ("reauthorizationRequired", "subscriptionRemoved"):
            outcome.ignored += 1
            return
        store, now = self.subscriptions.store, self.reconciler.clock.now()
        if not store.claim_lifecycle(item.tenant_id, item.user_id, item.event, item.subscription_id, now=now,
                                     window=LIFECYCLE_DEDUP):
            outcome.duplicates += 1
            return
        try:
            if item.event == "reauthorizationRequired":
                self._reauthorize(item, outcome)
            else:
                self._recreate_and_resync(item, outcome)
        except _RetryAs:
            raise  # the subscription was recreated: only its resync is left, as a "missed" of the new one
        except Exception:
            store.release_lifecycle(item.tenant_id, item.user_id, item.event)
            raise

    def _reauthorize(self, item: LifecycleItem, outcome: LifecycleOutcome) -> None:
        who = self.reconciler.identities.for_user(item.tenant_id, item.user_id,
                                                  integration=self.reconciler.integration(item.tenant_id))
        try:
            self.gateway.reauthorize_subscription(who, item.subscription_id)
            outcome.reauthorized += 1
        except ItemNotFound:
            self._recreate_and_resync(item, outcome)
        except DependencyError:
            raise
        except ServiceError as exc:
            log.info("reauthorize refused (%s); renewing instead", exc.code)
            try:
                self.subscriptions.renew_one(item.tenant_id, item.user_id)
                outcome.renewed += 1
            except ItemNotFound:
                self._recreate_and_resync(item, outcome)

    def _missed(self, item: LifecycleItem, outcome: LifecycleOutcome) -> None:
        """Resync now, or once when the mailbox's cooldown ends (booked across instances), or not again."""
        store = self.subscriptions.store
        decision, delay = store.resync_slot(item.tenant_id, item.user_id, self.reconciler.clock.now(),
                                            RESYNC_COOLDOWN)
        if decision == "later":
            self.queues.send(Queues.LIFECYCLE, lifecycle_message([item]), delay_seconds=max(1.0, delay))
            outcome.deferred += 1
            return
        if decision == "booked":
            outcome.duplicates += 1
            return
        try:
            self._resync(item.tenant_id, item.user_id)
        except (DependencyError, ServiceError):
            store.resync_failed(item.tenant_id, item.user_id)
            raise
        outcome.resynced += 1

    def _recreate_and_resync(self, item: LifecycleItem, outcome: LifecycleOutcome) -> None:
        fresh = self.subscriptions.recreate(item.tenant_id, item.user_id)
        outcome.recreated += 1
        self.subscriptions.store.resynced(item.tenant_id, item.user_id, self.reconciler.clock.now())
        try:
            self._resync(item.tenant_id, item.user_id)
        except DependencyError as exc:
            # The new subscription exists; only the resync is left to retry (as a "missed" of it).
            self.subscriptions.store.resync_failed(item.tenant_id, item.user_id)
            raise _RetryAs(LifecycleItem(item.tenant_id, item.user_id, fresh.subscription_id, "missed",
                                         nonce=fresh.nonce), exc) from exc
        outcome.resynced += 1

    def _resync(self, tenant_id: str, user_id: str) -> None:
        report = self.reconciler.resync_mailbox(tenant_id, user_id)
        if report.throttled is not None:
            raise report.throttled
        transient = [e for e in report.failed.values() if isinstance(e, DependencyError)]
        if transient:
            raise transient[0]


class _RetryAs(Exception):
    """Retry this follow-up item instead of the one that was being handled."""

    def __init__(self, item: LifecycleItem, cause: DependencyError) -> None:
        super().__init__(item.event)
        self.item = item
        self.cause = cause
