"""Benchmark (not a test): from a change in Outlook to the updated session, on the local stack.

The organizer moves a tracked event in the simulator (``/_sandbox/.../move``); the
simulator POSTs the change notification to the host's webhook, which enqueues it in
Azurite; the notification worker (a queue trigger polled by the local host) reads the
event back through the real Graph gateway and saves the session. The figure is the
time from the move to the session showing the new start (polled every 10 ms in
Azurite): p50 / p99 over ``--moves`` moves. Note the local host polls queues at most
every 0.5 s here (``QueueOptions.max_polling_interval``), like the Functions host's
back-off; that dominates the figure, not the service.

Run: ``.venv/bin/python bench/notification_latency.py [--moves 30] [--quick]``.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import latency_line, machine_line, parser

from bench._stack import FAST_POLL, local_stack
from core.bootstrap import get_container
from core.names import Tables
from core.ports import Entity
from core.services.stores.sessions import SessionRepository
from local.simulator.seed import FABRIKAM
from tests.e2e.conftest import Stack
from tests.e2e.test_sync_e2e import ORGANIZER, _book, _user_ids


def onboard_fabrikam(stack: Stack) -> None:
    stack.control("POST", "/_sandbox/consent", {"tenant": FABRIKAM, "granted": True})
    tables = get_container().tables
    tables.upsert(Tables.INTEGRATIONS, Entity(FABRIKAM, "integration", {
        "vendor": "outlook365", "method": "domainWide", "ownerEmail": "admin@fabrikam.test",
        "enabled": True, "status": "connected", "pairingPolicy": "registered",
    }))
    tables.upsert(Tables.INTEGRATIONS, Entity("~tenants", FABRIKAM, {}))


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--moves", type=int, default=None, help="moves to time (default 30, quick 5)")
    args = p.parse_args()
    moves = args.moves or (5 if args.quick else 30)
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger().setLevel(logging.ERROR)
    with local_stack("notification", poll=FAST_POLL, quiet=True) as stack:
        onboard_fabrikam(stack)
        session = _book(stack, _user_ids(stack))
        repo = SessionRepository(get_container().tables)
        latencies: list[float] = []
        for i in range(moves):
            offset = timedelta(minutes=15 * (1 + i % 4))
            start, end = session.start + offset, session.end + offset
            began = time.perf_counter()
            stack.control("POST", f"/_sandbox/users/{ORGANIZER}/events/{session.event_id}/move",
                          {"start": start.isoformat(), "end": end.isoformat()})
            deadline = began + 30
            while repo.require(FABRIKAM, session.session_id).value.start != start:
                if time.perf_counter() > deadline:
                    raise RuntimeError("the session was not updated within 30 s")
                time.sleep(0.01)
            latencies.append((time.perf_counter() - began) * 1000)
            session = repo.require(FABRIKAM, session.session_id).value
            time.sleep(0.2)
        print(machine_line())
        print(latency_line(f"Outlook move -> session updated, {moves} moves", latencies))


if __name__ == "__main__":
    main()
