"""Benchmark of recurring sessions on the local stack (not a test): Graph calls and time to book a series.

Starts what ``make run`` starts, in-process (a private Azurite, the Microsoft 365 simulator,
the local Functions host with host.json's queue settings), then:

1. availability of a 52-week weekly series for 2 people + 1 room (``POST /api/availability/series``):
   the getSchedule calls it makes (counted in the simulator's request log, and as the answer
   reports them), with and without looking for moved starts (whole days read), and its latency;
2. booking it: from ``POST /api/sessions`` (with the recurrence, a Teams link and the room) until
   ``GET /api/series/{id}`` reports ``booked`` with all 52 occurrences read back (polled every
   50 ms), ``RUNS`` times -> p50 / max, with the Graph requests one booking takes; the same
   for a 12-week series.

Run: ``.venv/bin/python bench/series.py [--quick]`` (prints JSON).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import parser
from bench._stack import local_stack
from tests.e2e.conftest import Stack
from tests.e2e.test_booking_e2e import ensure_contoso, pair, upn

ROOM = "room-severn@contoso.test"
PAIRS = [("aaron", "beth"), ("chris", "zoe"), ("dave", "heidi"), ("erin", "ivan"), ("frank", "judy")]


def _body(pairing_id: str, start: datetime, weeks: int, **extra: Any) -> dict[str, Any]:
    return {"pairingId": pairing_id, "start": start.isoformat(), "end": (start + timedelta(minutes=45)).isoformat(),
            "timeZone": "UTC", "room": ROOM,
            "recurrence": {"pattern": {"type": "weekly", "daysOfWeek": [start.strftime("%A").lower()]},
                           "range": {"type": "numbered", "startDate": start.date().isoformat(),
                                     "numberOfOccurrences": weeks}}, **extra}


def _graph_calls(stack: Stack, since: int) -> Counter[str]:
    """Graph requests since ``since`` by kind (method and path without ids)."""
    counts: Counter[str] = Counter()
    for r in stack.graph_requests(since=since):
        path = str(r.get("path", ""))
        if path.endswith("/getSchedule"):
            counts["getSchedule"] += 1
        elif path.endswith("/instances"):
            counts["instances"] += 1
        else:
            counts[f"{r.get('method')} {_shape(path)}"] += 1
    return counts


def _shape(path: str) -> str:
    """A Graph path without ids, to count request kinds."""
    parts = [p for p in path.split("/") if p]
    keep = [p for p in parts if p in ("users", "events", "calendar", "calendarView", "cancel", "subscriptions",
                                      "$batch", "getSchedule", "instances", "places", "mailboxSettings")]
    return "/" + "/".join(keep)


def availability(stack: Stack, pairing_id: str, token: str, start: datetime) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for suggest in (False, True):
        seq = stack.last_seq()
        began = time.perf_counter()
        r = stack.call("POST", "/availability/series", token, {**_body(pairing_id, start, 52), "suggest": suggest})
        elapsed = time.perf_counter() - began
        assert r.status_code == 200, r.text
        doc = r.json()
        calls = _graph_calls(stack, seq)
        out["with_suggestions" if suggest else "occurrences_only"] = {
            "occurrences": len(doc["occurrences"]), "clashing": doc["clashing"],
            "schedule_calls_reported": doc["scheduleCalls"], "getSchedule_requests_seen": calls["getSchedule"],
            "ms": round(elapsed * 1000),
        }
    return out


def book_once(stack: Stack, pairing_id: str, token: str, start: datetime, weeks: int) -> tuple[float, Counter[str]]:
    seq = stack.last_seq()
    began = time.perf_counter()
    r = stack.call("POST", "/sessions", token, _body(pairing_id, start, weeks, onConflict="bookAnyway"))
    assert r.status_code == 202, r.text
    series_id = r.json()["seriesId"]
    deadline = began + 180
    while time.perf_counter() < deadline:
        doc = stack.call("GET", f"/series/{series_id}", token).json()
        rows = doc["occurrences"]
        if doc["status"] == "booked" and len(rows) == weeks and all(o.get("id") for o in rows):
            return time.perf_counter() - began, _graph_calls(stack, seq)
        if doc["status"] == "failed":
            raise RuntimeError(f"series failed: {doc.get('failureReason')}")
        time.sleep(0.05)
    raise TimeoutError(series_id)


def main() -> None:
    args = parser(__doc__).parse_args()
    runs = 1 if args.quick else 5
    with local_stack("series") as stack:
        ensure_contoso(stack)
        pairs = [(pair(stack, m, p), stack.token(upn(m))) for m, p in PAIRS]
        base = (datetime.now(UTC) + timedelta(days=14)).replace(hour=5, minute=0, second=0, microsecond=0)
        result: dict[str, Any] = {"availability_52_weeks": availability(stack, pairs[0][0], pairs[0][1], base)}
        for weeks in (52, 12):
            times, calls = [], Counter[str]()
            for i in range(runs):
                pairing_id, token = pairs[i % len(pairs)]
                start = base + timedelta(days=i + (0 if weeks == 52 else 1), hours=2 if weeks == 12 else 0)
                took, calls = book_once(stack, pairing_id, token, start, weeks)
                times.append(took)
            result[f"book_{weeks}_weeks"] = {
                "runs": runs, "first_s": round(times[0], 2), "p50_s": round(statistics.median(times), 2),
                "max_s": round(max(times), 2), "graph_requests_last_run": dict(sorted(calls.items())),
            }
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
