"""Rate limits per caller and per tenant, shared by every instance (Flex Consumption scales out).

Routes declare a policy by name (``@endpoint(..., rate_limit="graph_reads")``); each policy
has a token bucket per caller and, for routes that call Microsoft Graph, one per tenant, so
neither one user nor one tenant can spend the app's Graph budget (per app and tenant, and per
mailbox) for everyone:

    policy          per caller                      per tenant                       routes
    session_writes  20, then 1 per 3 s               600, then 10 per s               POST/PATCH/DELETE sessions
    graph_reads     60, then 1 per s                 1,200, then 20 per s             availability, rooms,
                                                                                     rooms/availability, me/events,
                                                                                     me/calendar-settings
    webhook_sends   20, then 1 per 3 s               -                                webhook ping and replays

The buckets live in table ``ratelimits`` (``core/services/stores/ratelimits.py``) so the
budget is the deployment's, not each instance's. To keep storage calls few, an instance
*leases* a few tokens at a time (``lease``: 2-40, one read and one ETag write per lease) and
spends them from memory for ``LEASE_SECONDS``; an empty bucket is remembered in memory until
its next token is due, so a client hammering the API costs no storage call at all. Unused
leased tokens lapse (a caller spread over many instances may get slightly less than the
budget, never more). When storage does not answer, each instance falls back to its own
in-memory bucket with the same numbers rather than refusing or letting everything through.

``RateLimited`` is 429 with ``Retry-After``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from core.domain.errors import ConcurrencyConflict, DependencyError, RateLimited
from core.ports import Clock
from core.services.authz import Caller
from core.services.stores.ratelimits import TENANT_SCOPE, RateLimitStore

log = logging.getLogger(__name__)

LEASE_SECONDS: Final = 5.0
MAX_LOCAL_ENTRIES: Final = 50_000


@dataclass(frozen=True, slots=True)
class Limit:
    """``burst`` requests at once, then one more every ``refill_seconds``; ``lease`` tokens taken per storage trip."""

    burst: int
    refill_seconds: float
    lease: int = 1


@dataclass(frozen=True, slots=True)
class Policy:
    per_caller: Limit
    per_tenant: Limit | None = None
    message: str = "Too many requests in a short time; try again shortly."


POLICIES: Final[dict[str, Policy]] = {
    "session_writes": Policy(
        per_caller=Limit(burst=20, refill_seconds=3.0, lease=2),
        per_tenant=Limit(burst=600, refill_seconds=0.1, lease=20),
        message="Too many changes in a short time; try again shortly.",
    ),
    "graph_reads": Policy(
        per_caller=Limit(burst=60, refill_seconds=1.0, lease=5),
        per_tenant=Limit(burst=1200, refill_seconds=0.05, lease=40),
        message="Too many calendar look-ups in a short time; try again shortly.",
    ),
    "webhook_sends": Policy(
        per_caller=Limit(burst=20, refill_seconds=3.0, lease=2),
        message="Too many pings or replays in a short time; try again shortly.",
    ),
}


@dataclass
class _Local:
    tokens: int = 0
    expires: float = 0.0
    denied_until: float = 0.0


class LocalBuckets:
    """Per-instance token buckets (the fallback when storage does not answer)."""

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._now = monotonic
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str, str], tuple[float, float]] = {}

    def take(self, key: tuple[str, str, str], limit: Limit) -> float:
        """0 when a token was taken, else the seconds until the next one."""
        rate = 1.0 / limit.refill_seconds
        now = self._now()
        with self._lock:
            tokens, at = self._buckets.get(key, (float(limit.burst), now))
            tokens = min(float(limit.burst), tokens + (now - at) * rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return (1.0 - tokens) / rate
            if len(self._buckets) >= MAX_LOCAL_ENTRIES:
                self._buckets.clear()
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0


class RateLimiter:
    """Takes one request's tokens from the caller's and the tenant's shared buckets (module docstring)."""

    def __init__(self, store: RateLimitStore, clock: Clock, *, policies: dict[str, Policy] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.clock = clock
        self.policies = dict(POLICIES if policies is None else policies)
        self._now = monotonic
        self._lock = threading.Lock()
        self._local: dict[tuple[str, str, str], _Local] = {}
        self._fallback = LocalBuckets(monotonic)

    def take(self, policy_name: str, caller: Caller) -> None:
        """Spend one request of ``caller`` under ``policy_name``; ``RateLimited`` (429) when a bucket is empty."""
        policy = self.policies[policy_name]
        tenant = caller.tenant_id
        buckets = [((tenant, policy_name, caller.object_id), policy.per_caller)]
        if policy.per_tenant is not None:
            buckets.append(((tenant, policy_name, TENANT_SCOPE), policy.per_tenant))
        for key, limit in buckets:
            wait = self._take(key, limit)
            if wait > 0:
                log.info("rate limited (%s, %s)", policy_name, "tenant" if key[2] == TENANT_SCOPE else "caller",
                         extra={"tenant": tenant})
                raise RateLimited(policy.message, retry_after=max(1, math.ceil(wait)))

    def reset(self) -> None:
        """Forget what this instance holds in memory (tests)."""
        with self._lock:
            self._local.clear()

    def _take(self, key: tuple[str, str, str], limit: Limit) -> float:
        now = self._now()
        with self._lock:
            local = self._local.get(key)
            if local is not None:
                if local.denied_until > now:
                    return local.denied_until - now
                if local.tokens > 0 and local.expires > now:
                    local.tokens -= 1
                    return 0.0
        try:
            lease = self.store.lease(key[0], f"{key[1]}~{key[2]}", burst=limit.burst,
                                     refill_seconds=limit.refill_seconds, want=limit.lease, now=self.clock.now())
        except (DependencyError, ConcurrencyConflict) as exc:
            log.warning("rate-limit storage unavailable (%s); this instance limits on its own", exc.code)
            return self._fallback.take(key, limit)
        with self._lock:
            if len(self._local) >= MAX_LOCAL_ENTRIES:
                self._local.clear()
            if lease.tokens == 0:
                self._local[key] = _Local(denied_until=now + lease.retry_after)
                return lease.retry_after
            self._local[key] = _Local(tokens=lease.tokens - 1, expires=now + LEASE_SECONDS)
            return 0.0
