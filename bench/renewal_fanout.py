"""Simulation for the capacity plan: renewing 100,000 subscriptions through the real renewal code.

What runs is the service's own ``SubscriptionService`` (``plan_renewals`` on the timer,
``renew_message`` in the queue workers) and the real Graph gateway and client (MSAL
tokens, ``$batch`` of 20, retries), against the simulator with an injected Graph latency
(default 100 ms per request, applied to every ``$batch`` part: the simulator runs parts
one after another, where Graph runs them 4 at a time, so this is pessimistic). What is
replaced, to isolate Graph from the storage emulator: tables and queues are the
in-memory adapters, and W worker threads take the place of W concurrent queue
invocations across Flex Consumption instances. Subscriptions are seeded straight into
the simulator and the subscription tables (one per mailbox, all due now, split over
the simulator's two tenants), as creating 100,000 would mean 100,000 validation handshakes.

Figures: wall time, Graph HTTP calls (the floor is N / 20 ``$batch`` calls plus one
token per tenant), renewals confirmed in the simulator (every expiry moved forward).

Run: ``.venv/bin/python bench/renewal_fanout.py [--subscriptions 100000] [--workers 64] [--latency-ms 100] [--quick]``.
"""

from __future__ import annotations

import logging
import queue
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_line, parser

from core.adapters.local_secrets import LocalFileSecretStore
from core.bootstrap import Container, build_container
from core.names import Queues, Tables
from core.ports import Entity
from core.services.stores.subscriptions import OUTLOOK_MAX_MINUTES, SubscriptionRecord, SubscriptionStore
from core.settings import Settings
from local.simulator import SimulatorHandle, start_simulator
from local.simulator.seed import CONTOSO, FABRIKAM
from local.simulator.state import DEFAULT_CLIENT_ID, Subscription
from tests.support.memory import InMemoryCommandQueue, InMemoryTableStore

TENANTS = (CONTOSO, FABRIKAM)


def container_for(sim: SimulatorHandle, work: Path) -> Container:
    """The real gateway wired as in local mode, with in-memory tables and queues."""
    LocalFileSecretStore(str(work / "secrets")).set("entra-client-secret", "local-dev-secret")
    env = {
        "AzureWebJobsStorage": "UseDevelopmentStorage=true", "LOCAL_MODE": "true", "LOCAL_CA_BUNDLE": str(sim.ca_path),
        "AUTHORITY_HOST": sim.url, "GRAPH_BASE_URL": f"{sim.url}/v1.0", "ENTRA_CLIENT_ID": DEFAULT_CLIENT_ID,
        "ENTRA_CREDENTIAL": "secret", "PUBLIC_BASE_URL": "http://127.0.0.1:9", "APP_URL": "http://127.0.0.1:9",
        "LOCAL_SECRETS_DIR": str(work / "secrets"), "LOCAL_OUTBOX_DIR": str(work / "outbox"), "LOG_LEVEL": "WARNING",
    }
    settings = Settings.from_env(env)
    real = build_container(settings)
    return Container(settings=settings, tables=InMemoryTableStore(), queues=InMemoryCommandQueue(),
                     secrets=real.secrets, clock=real.clock, tokens=real.tokens, graph=real.graph)


def seed(sim: SimulatorHandle, container: Container, count: int) -> list[str]:
    """``count`` subscriptions (one per mailbox) in the simulator and in our tables, all due for renewal now."""
    now = datetime.now(UTC)
    expires = now + timedelta(hours=30)  # inside the 56 h renewal margin: due
    store = SubscriptionStore(container.tables)
    state = sim.state
    ids = []
    for tenant in TENANTS:
        container.tables.upsert(Tables.INTEGRATIONS, Entity(tenant, "integration", {
            "vendor": "outlook365", "method": "domainWide", "ownerEmail": "owner@example.test",
            "enabled": True, "status": "connected", "pairingPolicy": "registered",
        }))
    with state.lock:
        for t in TENANTS:
            state.tenants[t].consent_granted = True
        for i in range(count):
            tenant = TENANTS[i % len(TENANTS)]
            user = str(uuid.UUID(int=i + 1))
            sub_id = str(uuid.uuid4())
            state.subscriptions[sub_id] = Subscription(
                id=sub_id, tenant_id=tenant, app_id=DEFAULT_CLIENT_ID, resource=f"/users/{user}/events",
                mailbox_id=user, change_types=("created", "updated", "deleted"),
                notification_url="http://127.0.0.1:9/api/graph/notifications", lifecycle_url=None,
                client_state=None, expiration=expires, creator_id=user,
            )
            record = SubscriptionRecord(tenant, user, sub_id, expires, now - timedelta(minutes=1),
                                        now - timedelta(days=5), OUTLOOK_MAX_MINUTES)
            store.save(record, None)
            ids.append(sub_id)
    return ids


def run_workers(container: Container, workers: int) -> tuple[float, int]:
    """Timer, then ``workers`` threads draining ``renewals`` (delayed re-queues honoured); (seconds, messages)."""
    service = container.subscriptions
    queues = container.queues
    assert isinstance(queues, InMemoryCommandQueue)
    work: queue.Queue[dict[str, object] | None] = queue.Queue()
    busy = [0]
    lock = threading.Lock()
    handled = [0]

    def worker() -> None:
        while (body := work.get()) is not None:
            try:
                service.renew_message(body)
            finally:
                with lock:
                    busy[0] -= 1
                    handled[0] += 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    began = time.perf_counter()
    service.plan_renewals()
    while True:
        ready = queues.take(Queues.RENEWALS)
        with lock:
            busy[0] += len(ready)
        for message in ready:
            work.put(message.body)
        with lock:
            idle = busy[0] == 0
        if idle and not queues.pending(Queues.RENEWALS):
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - began
    for _ in threads:
        work.put(None)
    return elapsed, handled[0]


def cheap_purge(sim: SimulatorHandle, every: float = 1.0) -> None:
    """The simulator scans every subscription for expiry on each subscription request (O(N) per call,
    O(N^2) per run at this size); scan at most once per ``every`` seconds so the figure is the service's."""
    original = sim.state.purge_expired
    last = [0.0]

    def purge() -> None:
        now = time.monotonic()
        if now - last[0] >= every:
            last[0] = now
            original()

    sim.state.purge_expired = purge  # type: ignore[method-assign]


def count_requests(sim: SimulatorHandle) -> Counter[str]:
    """Count what the simulator logs (its own request log keeps only the newest 20,000 entries)."""
    counts: Counter[str] = Counter()
    original = sim.state.log_request

    def counting(method: str, path: str, status: int, tenant: str | None, *, batch: bool = False) -> None:
        if batch:
            counts["parts"] += 1
        else:
            counts["http"] += 1
            counts["batch"] += path.endswith("/$batch")
            counts["token"] += "/oauth2/" in path
        original(method, path, status, tenant, batch=batch)

    sim.state.log_request = counting  # type: ignore[method-assign]
    return counts


def main(doc: str | None = __doc__, *, default_count: int = 100_000, quick_count: int = 2_000,
         default_workers: int = 64, label: str = "renewal fan-out") -> None:
    """One renewal run; ``bench/renewal.py`` is this with the issue's 10,000-subscription defaults."""
    p = parser(doc)
    p.add_argument("--subscriptions", type=int, default=None,
                   help=f"default {default_count:,} (quick: {quick_count:,})")
    p.add_argument("--workers", type=int, default=default_workers, help="concurrent renewal invocations")
    p.add_argument("--latency-ms", type=int, default=100, help="injected Graph latency per request / batch part")
    args = p.parse_args()
    count = args.subscriptions or (quick_count if args.quick else default_count)
    logging.basicConfig(level=logging.ERROR)
    work = Path(tempfile.mkdtemp(prefix="bench-renewal-"))
    sim = start_simulator(port=0, ca_dir=work / "ca")
    try:
        container = container_for(sim, work)
        ids = seed(sim, container, count)
        before = {i: sim.state.subscriptions[i].expiration for i in ids}
        sim.state.faults = replace(sim.state.faults, latency_ms=args.latency_ms)
        cheap_purge(sim)
        calls = count_requests(sim)
        seconds, messages = run_workers(container, args.workers)
        renewed = sum(1 for i in ids if sim.state.subscriptions[i].expiration > before[i])
        top, batches, tokens = calls["http"], calls["batch"], calls["token"]
        floor = -(-count // 20)
        print(machine_line())
        print(f"{label} of {count:,} subscriptions, {args.workers} workers, "
              f"{args.latency_ms} ms Graph latency: wall {seconds:.1f} s "
              f"({count / seconds:.0f}/s), {messages} queue messages")
        print(f"Graph calls: {top:,} HTTP requests = {batches:,} $batch (floor {floor:,}) + {tokens} token "
              f"+ {top - batches - tokens} other; {calls['parts']:,} batch parts; {count - renewed} not renewed")
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
