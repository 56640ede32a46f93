"""Per-caller rate limits (token buckets) for expensive writes.

Each bucket is keyed by (limit name, tid, oid) and lives in this worker's memory:
the limit holds per instance, so with N instances a caller could get up to N times
the budget. That is enough to stop a runaway client or a double-clicking SPA from
flooding Outlook with bookings; a deployment-wide quota would need shared storage.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from core.domain.errors import RateLimited


@dataclass(frozen=True, slots=True)
class Limit:
    """``burst`` requests at once, then one more every ``refill_seconds``."""

    burst: int
    refill_seconds: float


LIMITS: Final[dict[str, Limit]] = {
    "session_writes": Limit(burst=20, refill_seconds=3.0),
    "webhook_sends": Limit(burst=20, refill_seconds=3.0),  # ping and replay (each queues deliveries)
}
MAX_BUCKETS: Final = 50_000


class RateLimiter:
    """In-memory token buckets; ``take`` raises ``RateLimited`` (429 + Retry-After) when a bucket is empty."""

    def __init__(
        self, limits: dict[str, Limit] | None = None, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._limits = dict(LIMITS if limits is None else limits)
        self._now = monotonic
        self._buckets: dict[tuple[str, str, str], tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, name: str, key: tuple[str, str]) -> None:
        limit = self._limits[name]
        rate = 1.0 / limit.refill_seconds
        now = self._now()
        bucket_key = (name, *key)
        with self._lock:
            tokens, at = self._buckets.get(bucket_key, (float(limit.burst), now))
            tokens = min(float(limit.burst), tokens + (now - at) * rate)
            if tokens < 1.0:
                self._buckets[bucket_key] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / rate)
                raise RateLimited("Too many changes in a short time; try again shortly.", retry_after=max(1, wait))
            if len(self._buckets) >= MAX_BUCKETS:
                self._buckets.clear()
            self._buckets[bucket_key] = (tokens - 1.0, now)

    def reset(self) -> None:
        """Forget every bucket (tests)."""
        with self._lock:
            self._buckets.clear()


limiter = RateLimiter()
