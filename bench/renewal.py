"""Benchmark (not a test): renewing 10,000 subscriptions against the simulator with 100 ms Graph latency.

The issue's figure: wall time and Graph calls made, where 10,000 / 20 = 500 ``$batch``
calls is the floor. What runs is the service's own renewal path: ``plan_renewals`` (the
timer: due buckets only, groups of 20 per tenant) and ``renew_message`` (the queue
worker: one ``renew_subscriptions`` = one ``$batch`` per group), with the real Graph
gateway, MSAL tokens and retries, against the simulator with ``latencyMs`` injected.
Tables and queues are in memory (to measure Graph, not the storage emulator) and W
threads stand in for W concurrent queue invocations (default 16, the local host's
batch size). Set-up seeds subscriptions straight into the simulator's state and our
tables (creating 10,000 would cost 10,000 validation handshakes); the seeding and
worker helpers are shared with ``bench/renewal_fanout.py`` (the 100,000 capacity run).

Run: ``.venv/bin/python bench/renewal.py [--subscriptions 10000] [--workers 16] [--latency-ms 100] [--quick]``.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_line, parser
from renewal_fanout import container_for, count_requests, run_workers, seed

from local.simulator import start_simulator


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--subscriptions", type=int, default=None, help="default 10,000 (quick: 1,000)")
    p.add_argument("--workers", type=int, default=16, help="concurrent renewal invocations")
    p.add_argument("--latency-ms", type=int, default=100, help="injected Graph latency (simulator latencyMs)")
    args = p.parse_args()
    count = args.subscriptions or (1_000 if args.quick else 10_000)
    logging.basicConfig(level=logging.ERROR)
    work = Path(tempfile.mkdtemp(prefix="bench-renewal-"))
    sim = start_simulator(port=0, ca_dir=work / "ca")
    try:
        container = container_for(sim, work)
        ids = seed(sim, container, count)
        before = {i: sim.state.subscriptions[i].expiration for i in ids}
        sim.state.faults = replace(sim.state.faults, latency_ms=args.latency_ms)
        calls = count_requests(sim)
        seconds, messages = run_workers(container, args.workers)
        renewed = sum(1 for i in ids if sim.state.subscriptions[i].expiration > before[i])
        http, batches, tokens = calls["http"], calls["batch"], calls["token"]
        print(machine_line())
        print(f"renewal of {count:,} subscriptions, {args.workers} workers, {args.latency_ms} ms latency: "
              f"wall {seconds:.1f} s ({count / seconds:.0f}/s), {messages} queue messages, "
              f"{renewed:,} renewed")
        print(f"Graph calls: {http:,} HTTP = {batches:,} $batch (floor {-(-count // 20):,}) + {tokens} token "
              f"+ {http - batches - tokens} other; {calls['parts']:,} batch parts")
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
