"""Rate limits per caller and per tenant, shared across instances through table rows, with few storage calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.domain.errors import RateLimited, StorageUnavailable
from core.names import Tables
from core.ports import Entity
from core.services.authz import Caller
from core.services.ratelimits import LEASE_SECONDS, Limit, Policy, RateLimiter
from core.services.stores.ratelimits import RateLimitStore
from tests.support.memory import FixedClock, InMemoryTableStore

T1 = "aaaaaaaa-0000-4000-8000-00000000000a"
T2 = "bbbbbbbb-0000-4000-8000-00000000000b"
ALICE = Caller(T1, "a0000000-0000-4000-8000-000000000001")
BOB = Caller(T1, "a0000000-0000-4000-8000-000000000002")
CAROL = Caller(T2, "b0000000-0000-4000-8000-000000000003")
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
POLICY = {"reads": Policy(per_caller=Limit(burst=10, refill_seconds=1.0, lease=3),
                          per_tenant=Limit(burst=15, refill_seconds=1.0, lease=5))}


class CountingTables(InMemoryTableStore):
    """The in-memory table store, counting calls to the rate-limit table (and able to be down)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.down = False

    def _touch(self, table: str) -> None:
        if table == Tables.RATE_LIMITS:
            if self.down:
                raise StorageUnavailable()
            self.calls += 1

    def get(self, table: str, partition_key: str, row_key: str) -> Entity | None:
        self._touch(table)
        return super().get(table, partition_key, row_key)

    def insert(self, table: str, entity: Entity) -> Entity:
        self._touch(table)
        return super().insert(table, entity)

    def update(self, table: str, entity: Entity) -> Entity:
        self._touch(table)
        return super().update(table, entity)


class World:
    def __init__(self) -> None:
        self.tables = CountingTables()
        self.clock = FixedClock(NOW)
        self.mono = [0.0]

    def instance(self) -> RateLimiter:
        """One Flex instance: its own memory, the deployment's table."""
        return RateLimiter(RateLimitStore(self.tables), self.clock, policies=POLICY, monotonic=lambda: self.mono[0])

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds=seconds)
        self.mono[0] += seconds


def allowed(limiter: RateLimiter, caller: Caller, n: int) -> int:
    ok = 0
    for _ in range(n):
        try:
            limiter.take("reads", caller)
            ok += 1
        except RateLimited:
            pass
    return ok


def test_a_callers_budget_is_shared_by_every_instance() -> None:
    """Alice spread over three instances gets her burst of 10 in all, not 10 per instance."""
    w = World()
    instances = [w.instance() for _ in range(3)]
    total = sum(allowed(instances[i % 3], ALICE, 1) for i in range(30))
    assert total <= 10
    assert total >= 10 - 2 * 2  # leased tokens left on the other instances are the only loss


def test_the_tenant_budget_caps_all_its_callers_and_spares_other_tenants() -> None:
    """Alice and Bob together stop at the tenant's 15; Carol in another tenant is untouched."""
    w = World()
    limiter = w.instance()
    assert allowed(limiter, ALICE, 10) + allowed(limiter, BOB, 10) == 15
    assert allowed(limiter, CAROL, 5) == 5


def test_a_refused_request_says_when_to_retry_and_the_budget_refills() -> None:
    """An empty bucket is 429 with Retry-After of at least a second; after that time requests pass again."""
    w = World()
    limiter = w.instance()
    assert allowed(limiter, ALICE, 10) == 10
    with pytest.raises(RateLimited) as caught:
        limiter.take("reads", ALICE)
    assert caught.value.retry_after is not None and caught.value.retry_after >= 1
    w.advance(caught.value.retry_after + LEASE_SECONDS)
    limiter.take("reads", ALICE)


def test_storage_calls_stay_few_and_a_flood_of_refused_requests_costs_none() -> None:
    """Leases of 3 (caller) and 5 (tenant) tokens: 10 requests cost at most 2 x (4 + 2) table calls; the next 1,000
    refused requests inside the wait cost no table call at all."""
    w = World()
    limiter = w.instance()
    assert allowed(limiter, ALICE, 10) == 10
    assert w.tables.calls <= 2 * (4 + 2)
    before = w.tables.calls
    assert allowed(limiter, ALICE, 1000) == 0
    assert w.tables.calls - before <= 2


def test_when_storage_is_down_each_instance_limits_on_its_own() -> None:
    """Storage unavailable: requests are neither all refused nor unlimited; each instance keeps the same numbers."""
    w = World()
    w.tables.down = True
    limiter = w.instance()
    assert allowed(limiter, ALICE, 50) == 10


def test_buckets_hold_counts_and_times_only_under_the_tenant_partition() -> None:
    """Rows are keyed tenant first, then policy and caller; they hold tokens and times, nothing else."""
    w = World()
    w.instance().take("reads", ALICE)
    rows: list[Any] = w.tables.all(Tables.RATE_LIMITS)
    assert {(r.partition_key, r.row_key) for r in rows} == {(T1, f"reads~{ALICE.object_id}"), (T1, "reads~~tenant")}
    assert all(set(r.data) == {"tokens", "at", "updatedAt"} for r in rows)
    assert all(r.data["at"] == NOW and r.data["updatedAt"] == NOW + timedelta(0) for r in rows)
