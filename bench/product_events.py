"""Benchmark (not a test): an Outlook change reaching the product's webhook, and delivery throughput.

On the local stack (Azurite, the simulator, the local Functions host in this process) a
product endpoint (a threaded ``http.server`` on loopback) is registered for Fabrikam. Then:

1. **Latency**: the organizer moves the event in the simulator (or the partner answers);
   the simulator POSTs the change notification, the notification worker (queue 1) reads
   the event through the real Graph gateway and saves the session with its outbox row in
   one transaction, the dispatcher queues the delivery (queue 2), the delivery worker signs
   and POSTs it. The figure is the time from the simulator call to the receiver getting
   the ``session.rescheduled`` / ``session.response_changed`` with the new state: p50 / p99.
   Changes are spaced by a random 0.5-3 s so they meet the pollers at every back-off stage.
   Two polling settings: host.json's (``maxPollingInterval`` 2 s, what ``make run`` and
   Azure use) and the end-to-end tier's 0.5 s.
2. **Throughput**: ``--burst`` pings queued at once to one endpoint; deliveries per second
   of one host instance (16 concurrent queue invocations, host.json's ``batchSize``).

Run: ``.venv/bin/python bench/product_events.py [--changes 40] [--burst 300] [--quick]``.
"""

from __future__ import annotations

import logging
import random
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import latency_line, machine_line, parser
from notification_latency import onboard_fabrikam

from bench._stack import FAST_POLL, local_stack
from core.bootstrap import get_container
from core.services.stores.sessions import SessionRepository
from local.host import QueueOptions
from local.simulator.seed import FABRIKAM
from tests.e2e.test_sync_e2e import ORGANIZER, PARTNER, _book, _user_ids
from tests.support.receiver import Receiver


def _received(receiver: Receiver, check: Callable[[dict[str, Any]], bool], after: float) -> float | None:
    """Arrival time (epoch seconds) of the first 2xx delivery after ``after`` whose payload passes ``check``."""
    for item in receiver.delivered():
        if item.at >= after and check(item.json()):
            return item.at
    return None


def run(poll: QueueOptions | None, label: str, changes: int, burst: int) -> list[str]:
    receiver = Receiver().start()
    lines: list[str] = []
    try:
        with local_stack("product-events", poll=poll, quiet=True) as stack:
            container = stack.container
            onboard_fabrikam(stack)
            token = stack.app_token(FABRIKAM, ["Webhooks.ReadWrite.All"])
            created = stack.call("POST", "/webhooks/endpoints", token, {"url": receiver.url})
            assert created.status_code == 201, created.text
            endpoint_id = created.json()["id"]
            ids = _user_ids(stack)
            session = _book(stack, ids)
            repo = SessionRepository(get_container().tables)

            def partner_copy() -> dict[str, Any]:
                return next(e for e in stack.control("GET", f"/_sandbox/users/{PARTNER}/events")
                            if e.get("iCalUId") == session.ical_uid and not e.get("isCancelled"))
            rng = random.Random(11)
            moves: list[float] = []
            answers: list[float] = []
            answer_cycle = ["accepted", "tentativelyAccepted", "declined"]
            for i in range(changes):
                time.sleep(rng.uniform(0.5, 3.0))
                if i % 2 == 0:
                    offset = timedelta(minutes=15 * (1 + (i // 2) % 4))
                    start = session.start + offset
                    began = time.time()
                    stack.control("POST", f"/_sandbox/users/{ORGANIZER}/events/{session.event_id}/move",
                                  {"start": start.isoformat(), "end": (session.end + offset).isoformat()})
                    want = start.strftime("%Y-%m-%dT%H:%M:%S.000Z")

                    def moved(p: dict[str, Any], want: str = want) -> bool:
                        return p["type"] == "session.rescheduled" and p["data"]["start"] == want

                    check, bucket = moved, moves
                else:
                    answer = answer_cycle[(i // 2) % len(answer_cycle)]
                    copy = partner_copy()
                    began = time.time()
                    stack.control("POST", f"/_sandbox/users/{PARTNER}/events/{copy['id']}/respond",
                                  {"response": answer})

                    def answered(p: dict[str, Any], answer: str = answer) -> bool:
                        return p["type"] == "session.response_changed" and any(
                            a["response"] == answer for a in p["data"]["attendees"])

                    check, bucket = answered, answers
                deadline = time.time() + 30
                while (at := _received(receiver, check, began)) is None:
                    if time.time() > deadline:
                        raise RuntimeError("the product did not hear about the change within 30 s")
                    time.sleep(0.005)
                bucket.append((at - began) * 1000)
                session = repo.require(FABRIKAM, session.session_id).value
            lines.append(latency_line(f"[{label}] Outlook move -> product webhook, {len(moves)} moves", moves))
            lines.append(latency_line(f"[{label}] Outlook RSVP -> product webhook, {len(answers)} answers", answers))
            lines.append(latency_line(f"[{label}] any Outlook change -> product webhook", moves + answers))

            before = len(receiver.delivered())
            began = time.time()
            with ThreadPoolExecutor(max_workers=8) as pool:  # queue the burst faster than one instance drains it
                list(pool.map(lambda _: container.webhook_endpoints.ping(FABRIKAM, "bench", endpoint_id), range(burst)))
            queued = time.time() - began
            deadline = time.time() + 300
            while len(receiver.delivered()) - before < burst:
                if time.time() > deadline:
                    raise RuntimeError("the burst was not delivered within 300 s")
                time.sleep(0.02)
            arrivals = sorted(item.at for item in receiver.delivered()[before:])
            took = arrivals[-1] - began
            steady = (len(arrivals) - 1) / max(1e-9, arrivals[-1] - arrivals[0])
            lines.append(f"[{label}] throughput: {burst} deliveries in {took:.1f} s from the first enqueue "
                         f"(queued in {queued:.1f} s); {steady:.0f}/s between first and last arrival, one instance")
    finally:
        receiver.stop()
    return lines


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--changes", type=int, default=None, help="Outlook changes to time (default 40, quick 6)")
    p.add_argument("--burst", type=int, default=None, help="pings for the throughput figure (default 300, quick 30)")
    p.add_argument("--only", choices=("hostjson", "fast"), default=None, help="one polling setting only")
    args = p.parse_args()
    changes = args.changes or (6 if args.quick else 40)
    burst = args.burst or (30 if args.quick else 300)
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger().setLevel(logging.ERROR)
    print(machine_line())
    started = datetime.now()
    if args.only in (None, "hostjson"):
        for line in run(None, "host.json polling, max 2 s", changes, burst):
            print(line, flush=True)
    if args.only in (None, "fast"):
        for line in run(FAST_POLL, "polling max 0.5 s", changes, burst):
            print(line, flush=True)
    print(f"took {(datetime.now() - started).total_seconds():.0f} s")


if __name__ == "__main__":
    main()
