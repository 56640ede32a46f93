"""Benchmark of the access test (not a test): 200 sampled users against the Microsoft 365 simulator.

The simulator runs in-process with 200 extra users seeded into Contoso (next to its
seeded on-premises, unlicensed and out-of-scope users); the real Graph gateway and
MSAL token provider talk to it over HTTPS exactly as in local mode; storage and queues
are in memory so only Graph is measured. Reported per run: wall time, Graph HTTP
requests (``$batch`` counted once, its parts separately), token requests, and the
report's counts. Run: ``.venv/bin/python bench/access_test.py [--users 200] [--runs 3]
[--latency-ms 0]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.domain.commands import AccessTestCommand
from core.domain.integration import Integration, IntegrationStatus
from core.names import Queues
from core.services.access_test import AccessTestService
from core.services.alerts import OwnerAlerts
from core.services.stores.integrations import IntegrationRepository
from local.simulator import seed
from local.simulator.state import DEFAULT_CLIENT_ID
from tests.support.memory import FixedClock, InMemoryCommandQueue, InMemoryTableStore
from tests.support.simulator import SimulatorControl, real_gateway, running_simulator


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200, help="sample size (extra users seeded to match)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency-ms", type=int, default=0, help="simulated Graph latency per request")
    parser.add_argument("--quick", action="store_true", help="a small smoke size (one run)")
    args = parser.parse_args()
    if args.quick:
        args.runs = 1

    with running_simulator(extra_users=args.users) as sim:
        control = SimulatorControl(sim)
        control.grant_consent(seed.CONTOSO)
        if args.latency_ms:
            control.set_faults(latencyMs=args.latency_ms)
        gateway, tokens = real_gateway(sim)
        clock = FixedClock(datetime.now(UTC))
        tables, queues = InMemoryTableStore(), InMemoryCommandQueue(now=clock.now)
        IntegrationRepository(tables).save(
            Integration(
                tenant_id=seed.CONTOSO,
                owner_email="owner@contoso.test",
                status=IntegrationStatus.CONNECTED,
                access_test_sample_size=args.users,
            ),
            None,
        )
        service = AccessTestService(
            tables=tables, queues=queues, clock=clock, gateway=gateway,
            alerts=OwnerAlerts(tables, queues, clock), app_id=DEFAULT_CLIENT_ID, tokens=tokens,
        )
        walls: list[float] = []
        for run in range(1, args.runs + 1):
            service.start(seed.CONTOSO, seed.CONTOSO_ADMIN_ID)
            [message] = queues.take(Queues.ACCESS_TESTS)
            since = control.last_seq()
            started = time.perf_counter()
            report = service.run(AccessTestCommand.from_message(message.body))
            wall = time.perf_counter() - started
            walls.append(wall)
            log = control.requests_since(since)
            graph = [r for r in log if str(r["path"]).startswith("/v1.0")]
            http = [r for r in graph if not r.get("batch")]
            parts = [r for r in graph if r.get("batch")]
            token_requests = [r for r in log if "/oauth2/" in str(r["path"])]
            kinds = Counter(
                "list users" if r["path"].startswith("/v1.0/users") and r["method"] == "GET" and "/calendar" not in
                r["path"] else "getSchedule" if r["path"].endswith("getSchedule") else "$batch" if
                r["path"].endswith("$batch") else r["path"]
                for r in http
            )
            assert report is not None
            print(
                f"run {run}: {wall * 1000:7.1f} ms wall, {len(http)} Graph HTTP requests {dict(kinds)}, "
                f"{len(parts)} $batch parts, {len(token_requests)} token requests; "
                f"sampled {report.sampled}: {report.accessible} accessible, "
                f"{ {r.value: n for r, n in report.by_reason.items()} }"
            )
        print(f"median wall time over {len(walls)} runs: {statistics.median(walls) * 1000:.1f} ms")
        cold = walls[0]
        print(f"first run (includes MSAL discovery and the token): {cold * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
