"""Full-size fault-injection run: ``python -m tests.faults.run --bookings 200 --changes 200``.

Prints progress and the report; exits 0 when every session is in its expected final
state, there are no duplicate events and every failure is visible (one owner alert per
kind), 1 otherwise. The small run of ``make test`` is ``tests/faults/test_fault_injection.py``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

from tests.faults.scenario import FaultPlan, run_scenario


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.faults.run", description=__doc__.splitlines()[0])
    p.add_argument("--bookings", type=int, default=200)
    p.add_argument("--changes", type=int, default=200)
    p.add_argument("--organizers", type=int, default=20)
    p.add_argument("--outage-seconds", type=int, default=60, help="the Graph outage during the bookings")
    p.add_argument("--throttle-rate", type=float, default=0.3)
    p.add_argument("--fail-rate", type=float, default=0.05)
    p.add_argument("--doomed", type=int, default=2, help="bookings made while Graph is down beyond the retry budget")
    p.add_argument("--settle-timeout", type=float, default=900.0)
    p.add_argument("--series", type=int, default=10, help="weekly series booked beside the sessions")
    p.add_argument("--series-weeks", type=int, default=12)
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still tear the stack down (host, Azurite)
    plan = FaultPlan(bookings=args.bookings, changes=args.changes, organizers=args.organizers,
                     outage_seconds=args.outage_seconds, throttle_rate=args.throttle_rate, fail_rate=args.fail_rate,
                     doomed=args.doomed, settle_timeout=args.settle_timeout, series=args.series,
                     series_weeks=args.series_weeks)
    began = time.monotonic()
    report = run_scenario(plan, progress=lambda m: print(f"[{time.monotonic() - began:6.1f}s] {m}", flush=True))
    print("\n".join(report.lines()))
    print("PASS" if report.ok else "FAIL")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
