"""Benchmark of group availability on the local stack (not a test): Graph calls and latency per question.

``POST /api/availability`` for a group over two weeks (30-minute slots on a 30-minute grid):

* ``5 people + 5 rooms``: the caller, three required colleagues, one optional colleague, any
  of five rooms (10 schedules: one getSchedule);
* ``5 people + 3 hosts + 5 rooms``: the same with any one of three interviewers (13 schedules:
  still one getSchedule; the hosts' loads are table reads);
* ``everyone + 5 rooms``: every other reachable Contoso colleague (24 people with the caller,
  29 schedules), split at Graph's 20 per call (two getSchedule calls; working hours off, as
  people across a dozen zones share none; ``capacity`` 10, the rest joining online).

Each question is one HTTP request to the Functions host; the figures are the p50/p99 of the
route and the Graph requests per question from the simulator's request log (``/_sandbox/requests``),
after a warm-up that fills the per-process directory and room caches (what a product asking
about the same group week after week sees). The floor is ``ceil(schedules / 20)`` getSchedule
calls per window under 62 days.

Always a private stack in this process (Azurite, the simulator, the host), with Contoso onboarded
under the ``sameTenant`` policy; callers rotate over six colleagues so each stays inside its
``graph_reads`` budget (one token per getSchedule call).

Run: ``.venv/bin/python bench/group_availability.py [--calls 100] [--quick]``.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import machine_line, parser, percentile
from bench.availability import Target, _session, fresh_stack
from core.names import Tables
from core.ports import Entity
from local.simulator.seed import CONTOSO

CALLERS = ("aaron", "beth", "chris", "zoe", "ken", "laura")
REQUIRED = ("frank", "grace", "heidi")
OPTIONAL = ("judy",)
HOSTS = ("oscar", "rupert", "sybil")
ROOMS = ("room-orca@contoso.test", "room-puffin@contoso.test", "room-salmon@contoso.test",
         "room-thames@contoso.test", "room-severn@contoso.test")
WARM_UP = 6
BIG_CALLERS = 4
MAX_BIG = 25  # the big group asks as four callers and invites everyone else (two tokens per question)


def upn(name: str) -> str:
    return f"{name}@contoso.test"


def prepare(target: Target) -> tuple[list[dict[str, str]], list[str]]:
    """Onboard Contoso (sameTenant); tokens of the callers; every other normal colleague (for the big group)."""
    target.tables.upsert(Tables.INTEGRATIONS, Entity(CONTOSO, "integration", {
        "vendor": "outlook365", "method": "domainWide", "ownerEmail": "admin@contoso.test",
        "enabled": True, "status": "connected", "pairingPolicy": "sameTenant",
    }))
    target.tables.upsert(Tables.INTEGRATIONS, Entity("~tenants", CONTOSO, {}))
    control = _session(target.ca_path)
    control.post(f"{target.sim_url}/_sandbox/consent", json={"tenant": CONTOSO, "grant": True, "granted": True},
                 timeout=15).raise_for_status()
    headers = []
    for name in CALLERS:
        token = control.post(f"{target.sim_url}/_sandbox/token", json={"user": upn(name)}, timeout=15).json()
        headers.append({"Authorization": f"Bearer {token['access_token']}"})
    tenants: list[dict[str, Any]] = control.get(f"{target.sim_url}/_sandbox/tenants", timeout=15).json()
    taken = {upn(n) for n in CALLERS[:BIG_CALLERS]}
    others = [u["userPrincipalName"] for t in tenants if t["id"] == CONTOSO for u in t["users"]
              if u["kind"] == "normal" and u.get("accountEnabled", True) and u["userPrincipalName"] not in taken
              and not u["userPrincipalName"].startswith(("admin@", "scheduler@"))]
    return headers, others


def graph_requests(target: Target, since: int) -> tuple[list[dict[str, Any]], int]:
    """Graph HTTP requests after ``since`` (``$batch`` parts, logged with ``batch``, are not requests of
    their own) and the newest sequence number of the simulator's log."""
    log: list[dict[str, Any]] = _session(target.ca_path).get(
        f"{target.sim_url}/_sandbox/requests", params={"since": str(since)}, timeout=15).json()
    graph = [r for r in log if str(r["path"]).startswith("/v1.0") and not r.get("batch")]
    return graph, (int(log[-1]["seq"]) if log else since)


def scenario(target: Target, headers: list[dict[str, str]], label: str, body: dict[str, Any], *, calls: int,
             schedules: int) -> None:
    http = _session()
    url = f"{target.api_url}/availability"
    slots = 0
    _, cold_since = graph_requests(target, 0)
    for i in range(WARM_UP):
        warm = http.post(url, json=body, headers=headers[i % len(headers)], timeout=60)
        if warm.status_code != 200:
            raise SystemExit(f"{label}: POST /api/availability answered {warm.status_code}: {warm.text[:300]}")
        slots = len(warm.json()["slots"])
        if i == 0:
            cold, _ = graph_requests(target, cold_since)
            kinds = ", ".join(sorted({str(r["path"]).rsplit("/", 1)[-1].split("?")[0] for r in cold}))
            print(f"{label}: the first question (caches cold) made {len(cold)} Graph requests ({kinds})")
    _, since = graph_requests(target, 0)
    timings: list[float] = []
    for i in range(calls):
        while True:
            began = time.perf_counter()
            response = http.post(url, json=body, headers=headers[i % len(headers)], timeout=60)
            if response.status_code != 429:  # over a caller's graph_reads budget: wait (not timed), ask again
                break
            time.sleep(float(response.headers.get("Retry-After", "1")))
        timings.append((time.perf_counter() - began) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{label}: POST /api/availability answered {response.status_code}: {response.text[:300]}")
    log, _ = graph_requests(target, since)
    graph = len(log)
    schedule_calls = sum(1 for r in log if str(r["path"]).lower().endswith("/getschedule"))
    floor = math.ceil(schedules / 20)
    print(f"{label}: {schedules} schedules, {slots} slots, {calls} questions; "
          f"{graph / calls:.2f} Graph requests and {schedule_calls / calls:.2f} getSchedule per question "
          f"(floor {floor}); p50 {statistics.median(timings):.1f} ms, p99 {percentile(timings, 0.99):.1f} ms, "
          f"max {max(timings):.1f} ms")


def run(target: Target, calls: int) -> None:
    headers, others = prepare(target)
    today = date.today()
    monday = today + timedelta(days=7 - today.weekday())
    start = datetime(monday.year, monday.month, monday.day, tzinfo=UTC)
    window = {"start": start.isoformat(), "end": (start + timedelta(days=14)).isoformat(),
              "durationMinutes": 30, "stepMinutes": 30, "timeZone": "UTC"}
    people = [{"user": upn(n)} for n in REQUIRED] + [{"user": upn(n), "type": "optional"} for n in OPTIONAL]
    rooms = {"rooms": list(ROOMS), "roomChoice": "bestFit"}
    scenario(target, headers, "5 people + 5 rooms", {**window, "attendees": people, **rooms}, calls=calls,
             schedules=10)
    scenario(target, headers, "5 people + 3 hosts + 5 rooms",
             {**window, "attendees": people, "hosts": [upn(n) for n in HOSTS], **rooms}, calls=calls, schedules=13)
    big = [{"user": u} for u in others[:MAX_BIG]]
    scenario(target, headers[:BIG_CALLERS], f"{len(big) + 1} people + 5 rooms (seats for 10: the rest remote)",
             {**window, "attendees": big, **rooms, "capacity": 10, "workingHoursOnly": False},
             calls=max(1, calls // 2), schedules=len(big) + 1 + len(ROOMS))  # half: two tokens each, four callers


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--calls", type=int, default=100)
    args = p.parse_args(argv)
    if args.quick:
        args.calls = min(args.calls, 10)
    print(machine_line())
    with fresh_stack() as target:
        run(target, args.calls)
    return 0


if __name__ == "__main__":
    sys.exit(main())
