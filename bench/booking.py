"""Benchmark of booking on the local stack (not a test): time from POST /api/sessions to ``booked``.

Starts what ``make run`` starts, in-process: a private Azurite, the Microsoft 365
simulator and the local Functions host serving ``function_app`` with host.json's queue
settings (``maxPollingInterval`` 2 s). Then:

1. latency: ``LATENCY_RUNS`` bookings, one at a time, each timed from the POST until
   GET /api/sessions/{id} reports ``booked`` (polled every 10 ms) -> p50 / p99;
2. faults: 50 bookings at once from 5 organizers while the simulator throttles 30% of
   Graph requests and fails 5% -> how many end booked, and the duplicate count (events
   per transactionId in the organizers' calendars, from the simulator).

Run: ``.venv/bin/python bench/booking.py`` (prints JSON).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._stack import local_stack
from tests.e2e.conftest import Stack
from tests.e2e.test_booking_e2e import FAULT_PAIRS, book, ensure_contoso, events_of, pair, upn

LATENCY_RUNS = 40
FAULT_BOOKINGS = 50


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _booked_after(stack: Stack, token: str, sid: str, started: float, timeout: float = 120) -> float:
    deadline = started + timeout
    while time.perf_counter() < deadline:
        doc = stack.call("GET", f"/sessions/{sid}", token).json()
        if doc.get("status") == "booked":
            return time.perf_counter() - started
        if doc.get("status") == "failed":
            raise RuntimeError(f"session failed: {doc.get('failureReason')}")
        time.sleep(0.01)
    raise TimeoutError(sid)


def latency(stack: Stack) -> dict[str, Any]:
    # Organizers take turns: one caller's 21st write within a minute would measure the API's
    # per-caller rate limit (burst 20), not the booking pipeline.
    pairs = [(pair(stack, m, p), stack.token(upn(m))) for m, p in FAULT_PAIRS]
    # Past the simulator's seeded calendars (8 weeks): every time is free, so the slot check passes (and is timed).
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=60)
    times = []
    for i in range(LATENCY_RUNS):
        pairing_id, token = pairs[i % len(pairs)]
        started = time.perf_counter()
        sid = book(stack, token, pairing_id, base + timedelta(hours=i))
        times.append(_booked_after(stack, token, sid, started))
    return {
        "runs": LATENCY_RUNS,
        "first_ms": round(times[0] * 1000),  # cold: token, sealing key, first Graph connection
        "p50_ms": round(statistics.median(times) * 1000),
        "p90_ms": round(_percentile(times, 0.90) * 1000),
        "p99_ms": round(_percentile(times, 0.99) * 1000),
        "max_ms": round(max(times) * 1000),
    }


def faults(stack: Stack) -> dict[str, Any]:
    pairs = [(m, pair(stack, m, p)) for m, p in FAULT_PAIRS]
    tokens = {m: stack.token(upn(m)) for m, _ in pairs}
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=80)
    jobs = [(m, pid, base + timedelta(days=i // 5, hours=i % 5)) for i in range(FAULT_BOOKINGS // 5)
            for m, pid in pairs]
    stack.control("POST", "/_sandbox/faults", {"throttleRate": 0.3, "failRate": 0.05, "retryAfterSeconds": 1})
    seq = stack.last_seq()
    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=5) as pool:
            sids = list(pool.map(lambda j: (j[0], book(stack, tokens[j[0]], j[1], j[2])), jobs))
        statuses: Counter[str] = Counter()
        deadline = time.perf_counter() + 300
        pending = {sid: m for m, sid in sids}
        while pending and time.perf_counter() < deadline:
            for sid, m in list(pending.items()):
                status = stack.call("GET", f"/sessions/{sid}", tokens[m]).json().get("status")
                if status in ("booked", "failed"):
                    statuses[status] += 1
                    del pending[sid]
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
    finally:
        stack.control("POST", "/_sandbox/faults", {})
    graph = stack.graph_requests(since=seq)
    counts: Counter[str] = Counter()
    for organizer, _ in pairs:
        counts.update(e["transactionId"] for e in events_of(stack, organizer) if e.get("transactionId"))
    return {
        "bookings": len(sids),
        "booked": statuses["booked"],
        "failed": statuses["failed"],
        "unfinished": len(pending),
        "duplicates": sum(max(0, counts[sid] - 1) for _, sid in sids),
        "missing_events": sum(1 for _, sid in sids if counts[sid] == 0),
        "seconds_to_all_settled": round(elapsed, 1),
        "graph_requests": len(graph),
        "graph_429": sum(1 for r in graph if r.get("status") == 429),
        "graph_503": sum(1 for r in graph if r.get("status") == 503),
    }


def main() -> None:
    with local_stack("booking") as stack:
        ensure_contoso(stack)
        print(json.dumps({"latency": latency(stack), "faults": faults(stack)}, indent=2))


if __name__ == "__main__":
    main()
