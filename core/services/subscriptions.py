"""Change-notification subscriptions: one per organizer mailbox, created on first need, kept alive.

Storage (PartitionKey first):

    subscriptions        <tenantId> / m~<userId>          the mailbox's subscription: id, granted expiry,
                                                          renew-at, lifetime, consecutive failures
    subscriptions        <tenantId> / id~<subscriptionId> -> userId (lifecycle events name the subscription)
    subscriptionexpiry   <yyyyMMddHH of renew-at> / <tenantId>~<userId>   the renewal index

The renewal timer reads only the hourly buckets from ``lookback`` ago up to ``horizon``
ahead (never the whole table), groups what is due by tenant into groups of 20 and
enqueues one ``renewals`` message per group; the renewal worker renews each group with
one ``$batch`` (``renew_subscriptions``). A renewal Graph answers 404 (it removed the
subscription) recreates it and resyncs the mailbox (through the lifecycle queue);
``Throttled`` re-enqueues after ``retry_after``; other failures retry with back-off and,
after ``MAX_ATTEMPTS``, alert the integration owner.

Lifetime: Outlook subscriptions last at most 10,080 minutes (newest docs) or 4,230
(older docs). Graph refuses an expiry beyond its maximum rather than capping it: 400
``ExtensionError`` "Subscription expiration can only be N minutes in the future."
(microsoftgraph/microsoft-graph-docs-contrib#7726). Only that answer (the code in any case,
with the documented message, whose N the gateway puts in ``details``) is a refused lifetime:
the service retries once with N and keeps N per tenant in the ``~lifetime`` row, so every
instance and every restart asks for N at once (read through a 10-minute per-process cache);
after ``RELEARN_AFTER`` (7 days) it asks for the documented maximum again, in case the limit
was raised. Any other 400 (a URL validation failure, a bad request) is not retried with a
shorter lifetime. The expiry Graph granted is always what is stored. Renew-at is
``granted - max(lifetime / 3, 6 h)``: 56 h early for 7-day subscriptions, 23.5 h for 70.5-hour ones.

A subscription Graph no longer has must not go unnoticed (Graph can drop one without a
``subscriptionRemoved`` lifecycle event reaching us: a lost POST, an endpoint that was down).
Every ``AUDIT_MINUTES`` (15) a timer plans one ``audit_subscriptions`` message per tenant (per
group of 20 mailboxes in per-user tenants); the worker lists what Graph has for each Graph
identity (``GET /subscriptions``, every page: app-only once per domain-wide tenant, each
organizer's own token in per-user tenants) and hands every record Graph does not list (or lists
as expired) to the lifecycle worker as ``subscriptionRemoved``, which recreates it and resyncs
the mailbox. Records younger than ``AUDIT_MARGIN`` are left for the next round (a listing may
not show a subscription created a moment ago). Staleness bound: a vanished subscription is
recreated, and its mailbox re-read, within about 15 minutes plus the queue's latency.

Subscriptions carry a clientState the webhook can check without storage
(``core/services/client_state.py``). Housekeeping (reconciliation) deletes the
subscription of a mailbox with no upcoming sessions; ``remove_all_for_tenant`` is called
when an integration is disconnected.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final

from core.domain.calendar import GraphIdentity, SubscriptionInfo
from core.domain.commands import (
    AUDIT_SUBSCRIPTIONS,
    AlertKind,
    LifecycleItem,
    RenewalItem,
    audit_message,
    backoff_seconds,
    chunks,
    lifecycle_message,
    renewal_message,
)
from core.domain.errors import (
    ConcurrencyConflict,
    Conflict,
    DependencyError,
    GraphError,
    GraphRequestRejected,
    InvalidMessage,
    ItemNotFound,
    ServiceError,
    Throttled,
)
from core.domain.integration import ONBOARDED, ConnectionMethod, Integration, SyncMode, sync_policy
from core.names import Queues
from core.ports import CalendarGateway, Clock, CommandQueue, TableStore
from core.services.alerts import OwnerAlerts
from core.services.client_state import ClientStateKeyCache, new_nonce
from core.services.identity import GraphIdentities
from core.services.stores.codec import Versioned
from core.services.stores.connections import ConnectionRepository
from core.services.stores.integrations import IntegrationRepository
from core.services.stores.subscriptions import OUTLOOK_MAX_MINUTES, SubscriptionRecord, SubscriptionStore

log = logging.getLogger(__name__)

LEGACY_MAX_MINUTES: Final = 4230
CHANGE_TYPES: Final = "created,updated,deleted"
CLOCK_SKEW: Final = timedelta(minutes=1)  # ask a little under the maximum: our clock may run ahead of Graph's
MIN_RENEW_MARGIN: Final = timedelta(hours=6)
ENSURE_MARGIN: Final = timedelta(hours=1)  # an existing subscription closer than this to expiry is replaced
DEFAULT_HORIZON: Final = timedelta(hours=1)
DEFAULT_LOOKBACK: Final = timedelta(hours=72)
GROUP_SIZE: Final = 20
MAX_ATTEMPTS: Final = 5
RELEARN_AFTER: Final = timedelta(days=7)  # then ask for the documented maximum again
LIFETIME_CACHE_SECONDS: Final = 600.0
AUDIT_MINUTES: Final = 15  # the timer (functions/sync_jobs.py SUBSCRIPTION_AUDIT_SCHEDULE) runs this often
AUDIT_MARGIN: Final = timedelta(minutes=2)
MAX_LIFETIME_DETAIL: Final = "max_lifetime_minutes"  # set by the gateway on Graph's documented refusal




def renew_at(granted: datetime, now: datetime) -> datetime:
    """When to renew a subscription Graph granted until ``granted``: well before it lapses."""
    lifetime = max(granted - now, timedelta(0))
    return max(now, granted - max(lifetime / 3, MIN_RENEW_MARGIN))




















@dataclass
class AuditOutcome:
    listed: int = 0  # GET /subscriptions calls (identities listed)
    checked: int = 0
    missing: int = 0
    too_young: int = 0
    skipped: int = 0
    errors: int = 0


@dataclass
class RenewalOutcome:
    renewed: int = 0
    recreated: int = 0
    stale: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0




class SubscriptionService:
    """Creates, renews and removes mailbox subscriptions (see the module docstring)."""

    def __init__(
        self,
        tables: TableStore,
        queues: CommandQueue,
        gateway: CalendarGateway,
        clock: Clock,
        keys: ClientStateKeyCache,
        *,
        public_base_url: str,
        url_code: str | None = None,
        alerts: OwnerAlerts | None = None,
        horizon: timedelta = DEFAULT_HORIZON,
        lookback: timedelta = DEFAULT_LOOKBACK,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = SubscriptionStore(tables)
        self.integrations = IntegrationRepository(tables)
        self.identities = GraphIdentities(self.integrations, ConnectionRepository(tables))
        self.queues = queues
        self.gateway = gateway
        self.clock = clock
        self.keys = keys
        self.alerts = alerts or OwnerAlerts(tables, queues, clock)
        self.horizon = horizon
        self.lookback = lookback
        base = public_base_url.rstrip("/")
        suffix = f"?code={url_code}" if url_code else ""
        self.notification_url = f"{base}/api/graph/notifications{suffix}"
        self.lifecycle_url = f"{base}/api/graph/lifecycle{suffix}"
        self._monotonic = monotonic
        self._lifetimes: dict[str, tuple[float, int]] = {}  # tenant -> (cache expiry, minutes)
        self._lifetime_lock = threading.Lock()

    # --- per mailbox -------------------------------------------------------------------

    def ensure_for_mailbox(self, tenant_id: str, user_id: str) -> SubscriptionRecord | None:
        """The mailbox's live subscription, created if there is none (or it is about to lapse). Idempotent.

        Raises the gateway's errors (``DependencyError`` to retry later; a definite
        ``GraphError`` also alerts the owner). The booking flow calls this after a first booking.
        None in service-account tenants: Graph delivers no change notifications for shared
        calendars to delegated callers, so those tenants are polled by reconciliation instead
        (``core.services.graph_identity.sync_policy``).
        """
        tenant_id, user_id = tenant_id.lower(), user_id.lower()
        if sync_policy(self._method(tenant_id)).mode is SyncMode.POLLING:
            return None
        found = self.store.get(tenant_id, user_id)
        if found is not None and found.value.expires_at > self.clock.now() + ENSURE_MARGIN:
            return found.value
        return self._create(tenant_id, user_id, found)

    def recreate(self, tenant_id: str, user_id: str) -> SubscriptionRecord:
        """A new subscription for the mailbox (after Graph removed the old one)."""
        tenant_id, user_id = tenant_id.lower(), user_id.lower()
        return self._create(tenant_id, user_id, self.store.get(tenant_id, user_id))

    def get(self, tenant_id: str, user_id: str) -> SubscriptionRecord | None:
        found = self.store.get(tenant_id.lower(), user_id.lower())
        return None if found is None else found.value

    def mailboxes(self, tenant_id: str) -> list[SubscriptionRecord]:
        return self.store.records(tenant_id.lower())

    def remove_for_mailbox(self, tenant_id: str, user_id: str) -> bool:
        """Delete the mailbox's subscription at Graph and our rows; False when there was none.

        ``DependencyError`` propagates (rows kept, so a later pass retries); a definite Graph
        or token error still removes our rows (Graph drops an unrenewed subscription itself).
        """
        tenant_id, user_id = tenant_id.lower(), user_id.lower()
        found = self.store.get(tenant_id, user_id)
        if found is None:
            return False
        try:
            self.gateway.delete_subscription(self._who(tenant_id, user_id), found.value.subscription_id)
        except DependencyError:
            raise
        except ServiceError as exc:
            log.warning("subscription delete at Graph failed (%s); forgetting it anyway", exc.code)
        self.store.delete(found.value)
        return True

    def remove_all_for_tenant(self, tenant_id: str) -> int:
        """Remove every subscription of a tenant (integration disconnected). Returns how many were removed.

        A transient Graph failure does not stop the others; the rows of those are still
        removed so nothing renews them and Graph lets them lapse within days.
        """
        tenant_id = tenant_id.lower()
        integration = self._integration(tenant_id)
        removed = 0
        for record in self.store.records(tenant_id):
            try:
                self.gateway.delete_subscription(self._who(tenant_id, record.user_id, integration),
                                                 record.subscription_id)
            except ServiceError as exc:
                log.warning("subscription delete at Graph failed (%s); it will lapse on its own", exc.code)
            self.store.delete(record)
            removed += 1
        return removed

    # --- audit against Graph ---------------------------------------------------------------

    def plan_audits(self) -> int:
        """Timer: one ``audit_subscriptions`` message per tenant with subscriptions (per group of 20 mailboxes in
        per-user tenants, where each mailbox is its own Graph identity). Returns messages sent."""
        sent = 0
        for tenant_id in self.integrations.tenants():
            integration = self._integration(tenant_id)
            if integration is None or not integration.active:
                continue
            if sync_policy(integration.method).mode is SyncMode.POLLING:
                continue
            if integration.method is ConnectionMethod.PER_USER:
                users = sorted({r.user_id for r in self.store.records(tenant_id)})
                for group in chunks(users):
                    self.queues.send(Queues.RENEWALS, audit_message(tenant_id, group))
                    sent += 1
            else:
                self.queues.send(Queues.RENEWALS, audit_message(tenant_id))
                sent += 1
        log.info("subscription audit timer: %d message(s)", sent)
        return sent

    def audit_message(self, message: Mapping[str, Any]) -> AuditOutcome:
        """Worker: one ``audit_subscriptions`` message (see the module docstring)."""
        tenant_id = message.get("tenantId")
        if not isinstance(tenant_id, str) or not tenant_id:
            raise InvalidMessage("an audit_subscriptions message needs tenantId")
        users = message.get("users")
        if users is not None and not (isinstance(users, list) and all(isinstance(u, str) for u in users)):
            raise InvalidMessage("users must be a list of user ids")
        return self.audit_tenant(tenant_id.lower(), users, attempt=int(message.get("attempt") or 0))

    def audit_tenant(self, tenant_id: str, users: Sequence[str] | None = None, *, attempt: int = 0) -> AuditOutcome:
        """Compare the tenant's records (of ``users``, if given) with ``GET /subscriptions`` per Graph identity and
        queue a recreate-and-resync for each one Graph does not have."""
        outcome = AuditOutcome()
        integration = self._integration(tenant_id)
        if integration is None or not integration.active or sync_policy(integration.method).mode is SyncMode.POLLING:
            return outcome
        wanted = {u.lower() for u in users} if users is not None else None
        by_who: dict[GraphIdentity, list[SubscriptionRecord]] = {}
        for record in self.store.records(tenant_id):
            if wanted is None or record.user_id in wanted:
                by_who.setdefault(self._who(tenant_id, record.user_id, integration), []).append(record)
        missing: list[LifecycleItem] = []
        for who, records in by_who.items():
            started = self.clock.now()
            try:
                listed = {s.subscription_id: s for s in self.gateway.list_subscriptions(who)}
            except Throttled as exc:
                self.queues.send(Queues.RENEWALS, audit_message(tenant_id, sorted({r.user_id for r in records}),
                                                                attempt=attempt),
                                 delay_seconds=float(exc.retry_after or 30))
                outcome.skipped += len(records)
                continue
            except ServiceError as exc:
                # A per-user token that died is the connection's problem (flagged elsewhere); the next round retries.
                log.warning("subscription audit: listing failed (%s)", exc.code)
                outcome.errors += 1
                continue
            outcome.listed += 1
            for record in records:
                if record.created_at > started - AUDIT_MARGIN:
                    outcome.too_young += 1
                    continue
                outcome.checked += 1
                found = listed.get(record.subscription_id)
                if found is None or found.expiration <= started:
                    missing.append(LifecycleItem(tenant_id, record.user_id, record.subscription_id,
                                                 "subscriptionRemoved", nonce=record.nonce))
        for group in chunks(missing):
            # Recreate + resync in the lifecycle worker, exactly as for a subscriptionRemoved event.
            self.queues.send(Queues.LIFECYCLE, lifecycle_message(group))
        outcome.missing = len(missing)
        if missing:
            log.warning("subscription audit: %d subscription(s) Graph no longer has; recreating", len(missing),
                        extra={"tenant": tenant_id})
        return outcome

    # --- renewal -------------------------------------------------------------------------

    def plan_renewals(self) -> int:
        """Timer: enqueue one ``renewals`` message per tenant group of 20 due subscriptions. Returns messages sent."""
        now = self.clock.now()
        by_tenant: dict[str, list[RenewalItem]] = {}
        for _, tenant_id, item in self.store.due(now - self.lookback, now + self.horizon):
            by_tenant.setdefault(tenant_id, []).append(item)
        sent = 0
        for tenant_id in sorted(by_tenant):
            for group in chunks(by_tenant[tenant_id]):
                self.queues.send(Queues.RENEWALS, renewal_message(tenant_id, group))
                sent += 1
        log.info("renewal timer: %d subscription(s) due in %d tenant(s), %d message(s)",
                 sum(len(v) for v in by_tenant.values()), len(by_tenant), sent)
        return sent

    def renew_message(self, message: Mapping[str, Any]) -> RenewalOutcome:
        """Worker: one ``renewals`` message; ``InvalidMessage`` when it names no tenant or its items are broken.
        (``audit_subscriptions`` messages on the same queue go to ``audit_message``.)"""
        if message.get("kind") == AUDIT_SUBSCRIPTIONS:
            audit = self.audit_message(message)
            return RenewalOutcome(recreated=audit.missing, skipped=audit.skipped)
        tenant_id = message.get("tenantId")
        if not isinstance(tenant_id, str) or not tenant_id:
            raise InvalidMessage("a renewals message needs tenantId")
        try:
            items = [RenewalItem.from_json(raw) for raw in message.get("items") or []]
        except (KeyError, TypeError) as exc:
            raise InvalidMessage("a renewals item needs userId and subscriptionId") from exc
        return self.renew_group(tenant_id.lower(), items, attempt=int(message.get("attempt") or 0))

    def renew_group(self, tenant_id: str, items: Sequence[RenewalItem], *, attempt: int = 0) -> RenewalOutcome:
        """Worker: renew up to 20 subscriptions of one tenant with one ``$batch``."""
        outcome = RenewalOutcome()
        integration = self._integration(tenant_id)
        if integration is None or not integration.enabled or integration.status not in ONBOARDED:
            outcome.skipped = len(items)
            return outcome
        current: dict[GraphIdentity, dict[str, tuple[Versioned[SubscriptionRecord], RenewalItem]]] = {}
        signer = self.keys.require()
        for item in items:
            found = self.store.get(tenant_id, item.user_id)
            if found is None or found.value.subscription_id != item.subscription_id:
                if item.bucket and (found is None or found.value.bucket != item.bucket):
                    self.store.drop_index(item.bucket, tenant_id, item.user_id)
                outcome.stale += 1
                continue
            if self._rebind(found, signer.key_id):
                outcome.recreated += 1
                continue
            who = self._who(tenant_id, found.value.user_id, integration)
            current.setdefault(who, {})[item.subscription_id] = (found, item)
        for who, group in current.items():
            self._renew_for(who, group, attempt, outcome)
        return outcome

    def _rebind(self, found: Versioned[SubscriptionRecord], current_key: str) -> bool:
        """A subscription whose clientState has no nonce (made before binding) or an older key is replaced by a
        bound one under the current key instead of renewed (Graph cannot change a clientState). True when
        replaced; a failure leaves it to the normal renewal, so it never lapses for this."""
        record = found.value
        if record.nonce and record.key_id == current_key:
            return False
        try:
            self._create(record.tenant_id, record.user_id, found)
        except ServiceError as exc:
            log.warning("could not re-sign a subscription's clientState (%s); renewing it as it is", exc.code)
            return False
        log.info("subscription re-created under clientState key %s", current_key)
        return True

    def _renew_for(self, who: GraphIdentity, current: dict[str, tuple[Versioned[SubscriptionRecord], RenewalItem]],
                   attempt: int, outcome: RenewalOutcome) -> None:
        """One ``$batch`` renewal of up to 20 subscriptions that share an identity; results stored."""
        tenant_id = who.tenant_id
        try:
            results = self._renew_at_graph(who, list(current))
        except Throttled as exc:
            self.queues.send(Queues.RENEWALS, renewal_message(tenant_id, [i for _, i in current.values()], attempt),
                             delay_seconds=float(exc.retry_after or 30))
            outcome.retried += len(current)
            return
        except ServiceError as exc:
            results = {sub_id: (exc, 0) for sub_id in current}
        now = self.clock.now()
        throttled: list[RenewalItem] = []
        failed: list[tuple[Versioned[SubscriptionRecord], RenewalItem, ServiceError]] = []
        removed: list[LifecycleItem] = []
        delay = 30.0
        for sub_id, (found, item) in current.items():
            result, minutes = results.get(sub_id, (None, 0))
            if isinstance(result, SubscriptionInfo):
                self._store_renewal(found, result, now, minutes)
                outcome.renewed += 1
            elif isinstance(result, ItemNotFound):
                removed.append(LifecycleItem(tenant_id, found.value.user_id, sub_id, "subscriptionRemoved",
                                             nonce=found.value.nonce))
            elif isinstance(result, Throttled):
                throttled.append(item)
                delay = max(delay, float(result.retry_after or 30))
            else:
                error = result if isinstance(result, ServiceError) else ServiceError("no answer for this renewal")
                failed.append((found, item, error))
        if removed:
            # Recreate + resync happen in the lifecycle worker, exactly as for a subscriptionRemoved event.
            self.queues.send(Queues.LIFECYCLE, lifecycle_message(removed))
            outcome.recreated += len(removed)
        if throttled:
            self.queues.send(Queues.RENEWALS, renewal_message(tenant_id, throttled, attempt), delay_seconds=delay)
            outcome.retried += len(throttled)
        if failed:
            self._renewal_failed(tenant_id, failed, attempt, outcome)

    def renew_one(self, tenant_id: str, user_id: str) -> SubscriptionRecord | None:
        """Renew one mailbox's subscription now (lifecycle fallback); ``ItemNotFound`` if Graph removed it."""
        found = self.store.get(tenant_id.lower(), user_id.lower())
        if found is None:
            return None
        result = self._renew_at_graph(self._who(tenant_id.lower(), user_id.lower()), [found.value.subscription_id])
        answer, minutes = result[found.value.subscription_id]
        if isinstance(answer, ServiceError):
            raise answer
        return self._store_renewal(found, answer, self.clock.now(), minutes)

    # --- internals -------------------------------------------------------------------------

    def _integration(self, tenant_id: str) -> Integration | None:
        found = self.integrations.get(tenant_id)
        return found.value if found is not None else None

    def _method(self, tenant_id: str) -> ConnectionMethod | None:
        integration = self._integration(tenant_id)
        return integration.method if integration is not None else None

    def _who(self, tenant_id: str, user_id: str, integration: Integration | None = None) -> GraphIdentity:
        """The identity for the mailbox's subscription (``core.services.identity``)."""
        return self.identities.for_user(tenant_id, user_id, integration=integration or self._integration(tenant_id))

    def _expiry(self, minutes: int) -> datetime:
        return self.clock.now() + timedelta(minutes=minutes) - CLOCK_SKEW

    def lifetime_minutes(self, tenant_id: str) -> int:
        """The lifetime to ask for: what Graph last told this tenant (``~lifetime`` row, cached per process),
        or the documented maximum when nothing is known or what is known is older than ``RELEARN_AFTER``."""
        with self._lifetime_lock:
            cached = self._lifetimes.get(tenant_id)
            if cached is not None and cached[0] > self._monotonic():
                return cached[1]
        learned = self.store.lifetime(tenant_id)
        fresh = learned is not None and self.clock.now() - learned.learned_at < RELEARN_AFTER
        minutes = learned.minutes if fresh and learned is not None else OUTLOOK_MAX_MINUTES
        with self._lifetime_lock:
            self._lifetimes[tenant_id] = (self._monotonic() + LIFETIME_CACHE_SECONDS, minutes)
        return minutes

    def _learn(self, tenant_id: str, asked: int, granted_at: int) -> None:
        """Graph accepted ``granted_at`` minutes after refusing ``asked``: keep it for every instance."""
        log.info("Graph refused %d-minute subscriptions for a tenant; using %d minutes from now on", asked,
                 granted_at)
        self.store.set_lifetime(tenant_id, granted_at, self.clock.now())
        with self._lifetime_lock:
            self._lifetimes[tenant_id] = (self._monotonic() + LIFETIME_CACHE_SECONDS, granted_at)

    @staticmethod
    def _refused_lifetime(exc: ServiceError) -> bool:
        """Graph's documented refusal of an expiry beyond its maximum: 400 ``ExtensionError`` (any case) with
        "Subscription expiration can only be N minutes in the future." (the gateway keeps N in ``details``)."""
        return (
            isinstance(exc, GraphRequestRejected)
            and exc.status in (400, None)
            and (exc.graph_code or "").lower() == "extensionerror"
            and SubscriptionService._allowed_minutes(exc) is not None
        )

    @staticmethod
    def _allowed_minutes(exc: ServiceError) -> int | None:
        value = exc.details.get(MAX_LIFETIME_DETAIL)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

    def _shorter(self, exc: ServiceError, asked: int) -> int | None:
        """The lifetime to retry with after ``exc``, or None when ``exc`` is not a refused lifetime."""
        if not self._refused_lifetime(exc):
            return None
        allowed = self._allowed_minutes(exc)
        return allowed if allowed is not None and allowed < asked else None

    def _create_at_graph(self, tenant_id: str, user_id: str) -> tuple[SubscriptionInfo, int, str, str]:
        """Create at Graph; (granted info, lifetime asked, the clientState's nonce, the key id it was signed with)."""
        signer = self.keys.require()
        nonce = new_nonce()
        client_state = signer.sign(tenant_id, user_id, nonce)
        first = minutes = self.lifetime_minutes(tenant_id)
        while True:
            try:
                info = self.gateway.create_subscription(
                    self._who(tenant_id, user_id),
                    resource=f"/users/{user_id}/events",
                    change_type=CHANGE_TYPES,
                    notification_url=self.notification_url,
                    lifecycle_url=self.lifecycle_url,
                    client_state=client_state,
                    expiration=self._expiry(minutes),
                )
            except GraphRequestRejected as exc:
                shorter = self._shorter(exc, minutes) if minutes == first else None
                if shorter is None:
                    raise
                minutes = shorter
                continue
            if minutes != first:
                self._learn(tenant_id, first, minutes)
            return info, minutes, nonce, signer.key_id

    def _renew_at_graph(self, who: GraphIdentity,
                        sub_ids: Sequence[str]) -> dict[str, tuple[SubscriptionInfo | ServiceError, int]]:
        """Each subscription's renewal result and the lifetime (minutes) that was asked for."""
        asked = self.lifetime_minutes(who.tenant_id)
        first = self.gateway.renew_subscriptions(who, [(s, self._expiry(asked)) for s in sub_ids])
        results = {s: (r, asked) for s, r in first.items()}
        allowed = [m for r in first.values() if isinstance(r, ServiceError) and (m := self._shorter(r, asked))]
        if allowed:
            minutes = min(allowed)
            refused = [s for s, r in first.items() if isinstance(r, ServiceError) and self._shorter(r, asked)]
            retry = self.gateway.renew_subscriptions(who, [(s, self._expiry(minutes)) for s in refused])
            if any(isinstance(r, SubscriptionInfo) for r in retry.values()):
                self._learn(who.tenant_id, asked, minutes)
            results.update({s: (r, minutes) for s, r in retry.items()})
        return results

    def _create(self, tenant_id: str, user_id: str,
                found: Versioned[SubscriptionRecord] | None) -> SubscriptionRecord:
        who = self._who(tenant_id, user_id)
        try:
            info, minutes, nonce, key_id = self._create_at_graph(tenant_id, user_id)
        except GraphError as exc:
            self.alerts.notify(
                tenant_id, AlertKind.SUBSCRIPTION_FAILURE,
                detail=f"Outlook change notifications could not be set up for a mailbox ({exc.code}); "
                "changes made in Outlook are picked up by the periodic reconciliation only.",
            )
            raise
        now = self.clock.now()
        record = SubscriptionRecord(
            tenant_id=tenant_id, user_id=user_id, subscription_id=info.subscription_id,
            expires_at=info.expiration, renew_at=renew_at(info.expiration, now), created_at=now,
            lifetime_minutes=minutes, nonce=nonce, key_id=key_id,
        )
        try:
            self.store.save(record, found)
        except (Conflict, ConcurrencyConflict):
            # Another worker set the mailbox up at the same moment: keep theirs, drop ours.
            self._delete_quietly(who, info.subscription_id)
            winner = self.store.get(tenant_id, user_id)
            if winner is None:
                raise
            return winner.value
        if found is not None and found.value.subscription_id != info.subscription_id:
            self._delete_quietly(who, found.value.subscription_id)
        log.info("subscription created for a mailbox, %d-minute lifetime, renew in %s",
                 minutes, record.renew_at - now)
        return record

    def _delete_quietly(self, who: GraphIdentity, subscription_id: str) -> None:
        try:
            self.gateway.delete_subscription(who, subscription_id)
        except ServiceError as exc:
            log.info("could not delete a superseded subscription (%s); it will lapse", exc.code)

    def _store_renewal(self, found: Versioned[SubscriptionRecord], info: SubscriptionInfo,
                       now: datetime, minutes: int) -> SubscriptionRecord:
        record = replace(found.value, expires_at=info.expiration, renew_at=renew_at(info.expiration, now),
                         lifetime_minutes=minutes, failures=0, last_error=None)
        try:
            return self.store.save(record, found)
        except (ConcurrencyConflict, Conflict):
            return record  # someone recreated or renewed it meanwhile: theirs is newer

    def _renewal_failed(
        self,
        tenant_id: str,
        failed: list[tuple[Versioned[SubscriptionRecord], RenewalItem, ServiceError]],
        attempt: int,
        outcome: RenewalOutcome,
    ) -> None:
        codes = sorted({e.code for _, _, e in failed})
        if attempt + 1 < MAX_ATTEMPTS:
            self.queues.send(Queues.RENEWALS, renewal_message(tenant_id, [i for _, i, _ in failed], attempt + 1),
                             delay_seconds=backoff_seconds(attempt, base=30.0, cap=900.0))
            outcome.retried += len(failed)
            log.warning("renewal of %d subscription(s) failed (%s); retry %d", len(failed), ",".join(codes),
                        attempt + 1)
            return
        for found, _, error in failed:
            record = replace(found.value, failures=found.value.failures + 1, last_error=error.code[:100])
            with contextlib.suppress(ConcurrencyConflict, Conflict):
                self.store.save(record, found)
        outcome.failed += len(failed)
        log.error("renewal of %d subscription(s) failed %d times (%s)", len(failed), MAX_ATTEMPTS, ",".join(codes))
        self.alerts.notify(
            tenant_id, AlertKind.SUBSCRIPTION_FAILURE,
            detail=f"{len(failed)} Outlook change subscription(s) could not be renewed ({', '.join(codes)}); "
            "the next renewal run tries again.",
        )


