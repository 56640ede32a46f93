"""Benchmark (not a test): webhook acknowledgement latency on the local stack, over HTTP.

Bursts of 1,000 change notifications in POSTs of 50 (as Graph batches them) against
``POST /api/graph/notifications`` on the local Functions host (Azurite queues, the
real webhook code: pydantic parse, per-item HMAC check in constant time, one queue
write per POST). Each burst's 20 POSTs go out over ``--concurrency`` connections at
once. The figure is the acknowledgement latency per POST (client side): p50 / p99,
target p99 < 100 ms (Graph counts a reply over 2.9 s as slow).

Two topologies are measured:

* ``http-only``: the host serves only the webhook functions, as on Flex Consumption,
  where HTTP triggers scale in their own instance group, apart from queue triggers;
* ``co-located``: the host serves the whole app, so the notification workers process
  each burst (one table read per untracked item) in the same Python process, competing
  for the GIL with the webhook: the local stack's worst case, not the deployed shape.

Run: ``.venv/bin/python bench/webhook.py [--bursts 10] [--concurrency 8] [--quick]``.
"""

from __future__ import annotations

import logging
import multiprocessing
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import azure.functions as func
import requests
from _common import ROOT, latency_line, machine_line, parser

from core.adapters.local_secrets import LocalFileSecretStore
from core.bootstrap import build_container, set_container
from core.services.client_state import SECRET_NAME, ClientStateSigner, new_key
from core.settings import Settings
from functions import webhooks
from local import azurite as azurite_mod
from local.host import Host
from local.simulator import start_simulator
from local.simulator.seed import FABRIKAM
from tests.e2e.conftest import LOCAL_CLIENT_SECRET, _write_secret, stack_env

PER_POST = 50
PER_BURST = 1_000


def notification_bodies(signer: ClientStateSigner, count: int) -> list[dict[str, Any]]:
    """POST bodies of 50 notifications each, for mailboxes of one tenant (events the service does not track)."""
    users = [str(uuid.uuid4()) for _ in range(25)]
    items = []
    for i in range(count):
        user = users[i % len(users)]
        event_id = "AAMkAD" + uuid.uuid4().hex + "AAA="
        resource = f"Users/{user}/Events/{event_id}"
        items.append({
            "subscriptionId": str(uuid.uuid4()), "subscriptionExpirationDateTime": "2030-01-01T00:00:00Z",
            "clientState": signer.sign(FABRIKAM, user), "changeType": "updated", "resource": resource,
            "tenantId": FABRIKAM, "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": resource,
                                                   "@odata.etag": 'W/"DwAAABYAAAA"', "id": event_id},
        })
    return [{"value": items[i : i + PER_POST]} for i in range(0, count, PER_POST)]


_child_sessions: list[requests.Session] = []


def _burst_in_child(url: str, bodies: list[dict[str, Any]], concurrency: int) -> list[float]:
    """Runs in the load-generator process: Graph's POSTs come from elsewhere, not from the host's GIL."""
    while len(_child_sessions) < concurrency:
        session = requests.Session()
        session.trust_env = False
        _child_sessions.append(session)
    return burst(url, bodies, concurrency, _child_sessions)


def burst(url: str, bodies: list[dict[str, Any]], concurrency: int, sessions: list[requests.Session]) -> list[float]:
    """POST every body, ``concurrency`` at a time; the latency of each in ms."""

    def post(index: int) -> float:
        http = sessions[index % len(sessions)]
        started = time.perf_counter()
        r = http.post(url, json=bodies[index], timeout=30)
        elapsed = (time.perf_counter() - started) * 1000
        if r.status_code != 202:
            raise RuntimeError(f"webhook answered {r.status_code}")
        return elapsed

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(post, range(len(bodies))))


def measure(label: str, app: Any, env: dict[str, str], storage: str, port: int, *, bursts: int, concurrency: int,
            signer: ClientStateSigner) -> None:
    """Serve ``app`` on ``port``, send the bursts, print the figures."""
    host = Host(app, env=env, host_json=ROOT / "host.json", port=port, storage_connection_string=storage)
    host.start()
    # The load generator is a separate process (forked before the host's threads matter to it),
    # so the client's own threads never compete with the host for its interpreter lock.
    client = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"))
    try:
        url = f"{host.api_url}/graph/notifications"
        # warm-up: key read, connections
        client.submit(_burst_in_child, url, notification_bodies(signer, 200), concurrency).result()
        latencies: list[float] = []
        walls: list[float] = []
        for _ in range(bursts):
            bodies = notification_bodies(signer, PER_BURST)
            started = time.perf_counter()
            latencies.extend(client.submit(_burst_in_child, url, bodies, concurrency).result())
            walls.append((time.perf_counter() - started) * 1000)
        print(latency_line(f"{label}: webhook ack, {bursts} bursts of {PER_BURST} in POSTs of {PER_POST}, "
                           f"{concurrency} in flight", latencies))
        print(f"{label}: burst wall time, median {statistics.median(walls):.0f} ms per {PER_BURST} notifications")
    finally:
        client.shutdown()
        host.stop()


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--bursts", type=int, default=None, help="bursts of 1,000 notifications (default 10, quick 2)")
    p.add_argument("--concurrency", type=int, default=8, help="POSTs in flight at once")
    args = p.parse_args()
    bursts = args.bursts or (2 if args.quick else 10)
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger().setLevel(logging.ERROR)
    work = Path(tempfile.mkdtemp(prefix="bench-webhook-"))
    az = azurite_mod.ephemeral(in_memory=True)
    host_port = azurite_mod.free_port()
    sim = start_simulator(port=0, ca_dir=work / "ca", service_url=f"http://127.0.0.1:{host_port}")
    env = {**stack_env(sim, host_port, az.connection_string, work / "secrets", work / "outbox"), "LOG_LEVEL": "ERROR"}
    _write_secret(work / "secrets", "entra-client-secret", LOCAL_CLIENT_SECRET)
    key = new_key()
    LocalFileSecretStore(str(work / "secrets")).set(SECRET_NAME, key)
    set_container(build_container(Settings.from_env(env)))
    signer = ClientStateSigner(key.encode("utf-8"))
    try:
        print(machine_line())
        http_only = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
        http_only.register_functions(webhooks.bp)
        measure("http-only", http_only, env, az.connection_string, host_port, bursts=bursts,
                concurrency=args.concurrency, signer=signer)
        import function_app

        measure("co-located", function_app.app, env, az.connection_string, host_port, bursts=bursts,
                concurrency=args.concurrency, signer=signer)
    finally:
        sim.stop()
        az.stop()
        set_container(None)


if __name__ == "__main__":
    main()
