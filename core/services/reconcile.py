"""Resync and reconciliation: heal whatever lost notifications missed.

* ``Reconciler.resync_mailbox`` re-reads one organizer's tracked upcoming sessions (in
  ``$batch`` groups of 20) and applies what changed: used after a ``missed`` or
  ``subscriptionRemoved`` lifecycle event.
* ``Reconciler.run`` (timer, ``%RECONCILE_SCHEDULE%``) does the same for every active
  tenant's sessions starting within the next ``window`` (14 days by default), so a change
  Graph never told us about is at worst one cycle late, never wrong forever. It also keeps
  subscriptions in step with need: a mailbox that organizes upcoming sessions gets one
  (created or replaced when missing or lapsing); a mailbox with none left loses its own.
* Service-account tenants get no change notifications (Graph does not send them for
  shared calendars to delegated callers), so a second, shorter timer runs ``run`` for
  them only (``methods``); sessions booked in the scheduling mailbox's "Scheduler"
  calendar (``calendar_id`` set) are re-read from that mailbox, never from the organizer's.
* ``LifecycleWorker`` handles the ``lifecycle`` queue: ``reauthorizationRequired`` ->
  reauthorize (renew if that fails), ``subscriptionRemoved`` -> recreate then resync,
  ``missed`` -> resync.

Re-reading by event id (never a delta query) means there is no delta token to expire:
a resync is always a full re-read of the sessions that matter.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from core.domain.calendar import GraphIdentity
from core.domain.errors import DependencyError, ItemNotFound, ServiceError, Throttled
from core.domain.integration import ConnectionMethod, Integration
from core.domain.sessions import Session, SessionStatus
from core.names import Queues
from core.ports import CalendarGateway, Clock, CommandQueue, TableStore
from core.services.alerts import AlertKind, OwnerAlerts
from core.services.connections import ConnectionRepository
from core.services.notifications import SessionSync, SyncReport, chunks, graph_identity, is_active
from core.services.repositories import IntegrationRepository, SessionRepository
from core.services.subscriptions import LifecycleItem, SubscriptionService, lifecycle_message

log = logging.getLogger(__name__)

DEFAULT_WINDOW: Final = timedelta(days=14)
RECENT_PAST: Final = timedelta(hours=1)  # sessions that just started still get their last changes
RESYNC_AHEAD: Final = timedelta(days=400)
MAX_ATTEMPTS: Final = 5


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
    ) -> None:
        self.sessions = SessionRepository(tables)
        self.integrations = IntegrationRepository(tables)
        self.gateway = gateway
        self.clock = clock
        self.subscriptions = subscriptions
        self.window = window
        self.sync = SessionSync(self.sessions, gateway, clock)
        self.connections = ConnectionRepository(tables)

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
        log.info("resync of a mailbox: %d read, %d changed, %d failed", report.read, report.changed, len(report.failed))
        return report

    def run(self, methods: Collection[ConnectionMethod] | None = None) -> ReconcileReport:
        """Timer: reconcile every active tenant (or those whose connection method is in ``methods``).
        One tenant's failure does not stop the others."""
        total = ReconcileReport()
        for tenant_id in list(self.integrations.tenants()):
            integration = self.integration(tenant_id)
            if not is_active(integration):
                continue
            if methods is not None and (integration is None or integration.method not in methods):
                continue
            try:
                report = self.reconcile_tenant(tenant_id, integration)
            except ServiceError as exc:
                log.warning("reconciliation of a tenant failed: %s", exc.code)
                total.errors += 1
                continue
            total.tenants += 1
            total.sync.merge(report.sync)
            total.subscriptions_ensured += report.subscriptions_ensured
            total.subscriptions_removed += report.subscriptions_removed
            total.errors += report.errors
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
        now = self.clock.now()
        sessions = list(self.sessions.list_tenant(tenant_id))
        due = [s for s in sessions if now - RECENT_PAST <= s.start < now + self.window]
        report.sync = self.sync.refresh(tenant_id, [s for s in due if not s.calendar_id], integration)
        report.sync.merge(self._refresh_scheduler_calendar(tenant_id, [s for s in due if s.calendar_id],
                                                           integration))
        if report.sync.throttled is not None:
            log.warning("reconciliation throttled; the next cycle continues")
        # Housekeeping: subscriptions follow the organizers of upcoming sessions.
        refreshed = {s.session_id: s for s in self.sessions.list_tenant(tenant_id)} if report.sync.changed else {}
        needed = {
            s.organizer_id.lower()
            for s in (refreshed.get(x.session_id, x) for x in sessions)
            if is_upcoming_need(s, now)
        }
        for user_id in sorted(needed):
            try:
                before = self.subscriptions.get(tenant_id, user_id)
                after = self.subscriptions.ensure_for_mailbox(tenant_id, user_id)
                if after is None:
                    continue  # a polled (service-account) tenant: no subscriptions
                if before is None or before.subscription_id != after.subscription_id:
                    report.subscriptions_ensured += 1
            except ServiceError as exc:
                log.warning("could not ensure a mailbox subscription: %s", exc.code)
                report.errors += 1
        for record in self.subscriptions.mailboxes(tenant_id):
            if record.user_id not in needed:
                try:
                    if self.subscriptions.remove_for_mailbox(tenant_id, record.user_id):
                        report.subscriptions_removed += 1
                except ServiceError as exc:
                    log.warning("could not remove an unneeded subscription: %s", exc.code)
                    report.errors += 1
        return report

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
        account = self.connections.service_account_id(tenant_id)
        if integration is None or integration.method is not ConnectionMethod.SERVICE_ACCOUNT or account is None:
            log.warning("reconciliation: %d session(s) in a Scheduler calendar skipped (no service account)",
                        len(tracked))
            return report
        who = GraphIdentity(tenant_id.lower(), account.lower())
        for group in chunks(tracked):
            refs = [(account, str(s.event_id)) for s in group]
            try:
                seen = self.gateway.get_events(who, refs)
            except Throttled as exc:
                report.throttled = exc
                return report
            except ServiceError as exc:
                for s in group:
                    report.failed[s.session_id] = exc
                continue
            for s, ref in zip(group, refs, strict=True):
                result = seen.get(ref)
                if result is None:
                    continue
                report.read += 1
                outcome = self.sync.observe(s, result)
                if outcome is None:
                    assert isinstance(result, ServiceError)
                    report.failed[s.session_id] = result
                elif outcome:
                    report.changed += 1
                else:
                    report.unchanged += 1
        return report


@dataclass
class LifecycleOutcome:
    reauthorized: int = 0
    renewed: int = 0
    recreated: int = 0
    resynced: int = 0
    ignored: int = 0
    retried: int = 0


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
        current = record is not None and record.subscription_id == item.subscription_id
        who = graph_identity(self.reconciler.integration(item.tenant_id), item.tenant_id, item.user_id)
        if item.event == "reauthorizationRequired":
            if not current:
                # Not (or no longer) ours to keep: make sure it does not linger.
                if item.subscription_id:
                    self.gateway.delete_subscription(who, item.subscription_id)
                outcome.ignored += 1
                return
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
            return
        if item.event == "subscriptionRemoved":
            if record is not None and not current:
                outcome.ignored += 1  # an old subscription's removal: the mailbox already has a new one
                return
            if record is None:
                outcome.ignored += 1  # not a mailbox we keep a subscription for (any more)
                return
            self._recreate_and_resync(item, outcome)
            return
        if item.event == "missed":
            if record is None:
                outcome.ignored += 1
                return
            self._resync(item.tenant_id, item.user_id)
            outcome.resynced += 1
            return
        outcome.ignored += 1

    def _recreate_and_resync(self, item: LifecycleItem, outcome: LifecycleOutcome) -> None:
        fresh = self.subscriptions.recreate(item.tenant_id, item.user_id)
        outcome.recreated += 1
        try:
            self._resync(item.tenant_id, item.user_id)
        except DependencyError as exc:
            # The new subscription exists; only the resync is left to retry (as a "missed" of it).
            raise _RetryAs(LifecycleItem(item.tenant_id, item.user_id, fresh.subscription_id, "missed"), exc) from exc
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
