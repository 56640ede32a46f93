"""Benchmark (not a test): renewing 10,000 subscriptions against the simulator with 100 ms Graph latency.

The issue's figure: wall time and Graph calls made, where 10,000 / 20 = 500 ``$batch``
calls is the floor. What runs is the service's own renewal path: ``plan_renewals`` (the
timer: due buckets only, groups of 20 per tenant) and ``renew_message`` (the queue
worker: one ``renew_subscriptions`` = one ``$batch`` per group), with the real Graph
gateway, MSAL tokens and retries, against the simulator with ``latencyMs`` injected.
Tables and queues are in memory (to measure Graph, not the storage emulator) and W
threads stand in for W concurrent queue invocations (default 16, the local host's
batch size). Set-up seeds subscriptions straight into the simulator's state and our
tables (creating 10,000 would cost 10,000 validation handshakes); this is
``bench/renewal_fanout.py`` (the 100,000 capacity run) with the issue's defaults.

Run: ``.venv/bin/python bench/renewal.py [--subscriptions 10000] [--workers 16] [--latency-ms 100] [--quick]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from renewal_fanout import main as run_renewal

if __name__ == "__main__":
    run_renewal(__doc__, default_count=10_000, quick_count=1_000, default_workers=16, label="renewal")
