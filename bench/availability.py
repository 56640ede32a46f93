"""Benchmark of POST /api/availability on the local stack (not a test): p50/p99 over 200 calls.

A seeded pair of the simulator's Fabrikam tenant (Felix in London, Hugo in Berlin, both
with seeded busy time), a 5-day window, 30-minute slots: each call is one HTTP request
to the Functions host, one Azurite table read for the integration and one for the
pairing, one getSchedule to the simulator and the slot engine.

Which stack:

* a running ``make run`` stack (127.0.0.1:7071 and the simulator on 7443) is used when
  both ports answer; its Azurite gets the Fabrikam integration record (only if it has
  none) and a pairing row;
* otherwise (or with ``--fresh``) a private one is started in this process, like the
  end-to-end tests do: Azurite on free ports, the simulator, and the host.

Calls rotate over several mentors (each paired with Hugo), so a run stays inside each caller's
``graph_reads`` rate limit (60 at once, then 1 per second: ``core/services/ratelimits.py``) and
measures the route, not the 429s.

Run: ``.venv/bin/python bench/availability.py [--calls 200] [--fresh]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests

from core.bootstrap import build_container, set_container
from core.names import Tables
from core.ports import Entity, TableStore
from core.services.stores.pairings import Pairing, PairingRepository
from core.settings import Settings
from local import azurite
from local.simulator.seed import FABRIKAM

ROOT = Path(__file__).resolve().parents[1]
MENTEE = "hugo@fabrikam.test"
LOCAL_CLIENT_SECRET = "local-dev-secret"  # noqa: S105 - the simulator app's well-known local credential
NEVER = "0 0 0 1 1 *"
WARM_UP = 5


@dataclass
class Target:
    api_url: str
    sim_url: str
    ca_path: str
    tables: TableStore
    label: str


def _session(verify: str | bool = True) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # never let a proxy or REQUESTS_CA_BUNDLE change what we measure
    session.verify = verify
    return session


@contextmanager
def running_stack() -> Iterator[Target]:
    """The `make run` stack on its default ports."""
    from core.adapters.tables import AzureTableStore
    from local.settings import HOST_PORT, SIMULATOR_PORT, load_env

    env = load_env()
    settings = Settings.from_env(env)
    ca = env.get("LOCAL_CA_BUNDLE", ".local/ca/ca.pem")
    yield Target(
        api_url=f"http://127.0.0.1:{HOST_PORT}/api",
        sim_url=f"https://127.0.0.1:{SIMULATOR_PORT}",
        ca_path=str(ROOT / ca) if not Path(ca).is_absolute() else ca,
        tables=AzureTableStore.from_settings(settings.storage),
        label="running make-run stack",
    )


@contextmanager
def fresh_stack() -> Iterator[Target]:
    """Azurite, the simulator and the host in this process, wired as `make run` wires them."""
    from core.adapters.local_secrets import LocalFileSecretStore
    from local.host import Host
    from local.simulator import start_simulator
    from local.simulator.state import DEFAULT_CLIENT_ID

    work = Path(tempfile.mkdtemp(prefix="bench-"))
    store = azurite.ephemeral(in_memory=True)
    host_port = azurite.free_port()
    sim = start_simulator(port=0, ca_dir=work / "ca", service_url=f"http://127.0.0.1:{host_port}")
    host_url = f"http://127.0.0.1:{host_port}"
    env = {
        "AzureWebJobsStorage": store.connection_string, "LOCAL_MODE": "true", "LOCAL_CA_BUNDLE": str(sim.ca_path),
        "AUTHORITY_HOST": sim.url, "GRAPH_BASE_URL": f"{sim.url}/v1.0", "ENTRA_CLIENT_ID": DEFAULT_CLIENT_ID,
        "ENTRA_CREDENTIAL": "secret", "PUBLIC_BASE_URL": host_url, "APP_URL": host_url, "ALLOWED_TENANTS": "*",
        "LOCAL_SECRETS_DIR": str(work / "secrets"), "LOCAL_OUTBOX_DIR": str(work / "outbox"),
        "ACCESS_TEST_SCHEDULE": NEVER, "RENEWAL_SCHEDULE": NEVER, "RECONCILE_SCHEDULE": NEVER,
        "RECONCILE_NEAR_SCHEDULE": NEVER,
        "LOG_LEVEL": "WARNING",
    }
    LocalFileSecretStore(str(work / "secrets")).set("entra-client-secret", LOCAL_CLIENT_SECRET)
    os.environ.update(env)  # what the worker process would see (function_app checks settings on import)
    import function_app

    container = build_container(Settings.from_env(env))
    set_container(container)
    host = Host(function_app.app, env=env, host_json=ROOT / "host.json", port=host_port,
                storage_connection_string=store.connection_string)
    host.start()
    try:
        yield Target(host.api_url, sim.url, str(sim.ca_path), container.tables, "fresh in-process stack")
    finally:
        host.stop()
        sim.stop()
        store.stop()
        set_container(None)


MENTORS = ("felix@fabrikam.test", "gina@fabrikam.test", "iris@fabrikam.test", "jack@fabrikam.test",
           "kara@fabrikam.test", "liam@fabrikam.test")


def prepare(target: Target) -> list[tuple[str, str]]:
    """Onboard Fabrikam if it is not (integration record), pair each mentor with Hugo; [(pairing id, token)]."""
    if target.tables.get(Tables.INTEGRATIONS, FABRIKAM, "integration") is None:
        target.tables.upsert(Tables.INTEGRATIONS, Entity(FABRIKAM, "integration", {
            "vendor": "outlook365", "method": "domainWide", "ownerEmail": "admin@fabrikam.test",
            "enabled": True, "status": "connected", "pairingPolicy": "registered",
        }))
        target.tables.upsert(Tables.INTEGRATIONS, Entity("~tenants", FABRIKAM, {}))
    control = _session(target.ca_path)
    tenants: list[dict[str, Any]] = control.get(f"{target.sim_url}/_sandbox/tenants", timeout=15).json()
    users = {u["userPrincipalName"]: u["id"] for t in tenants if t["id"] == FABRIKAM for u in t["users"]}
    callers = []
    for mentor in MENTORS:
        pairing_id = "bench-" + uuid.uuid4().hex[:10]
        PairingRepository(target.tables).save(
            Pairing(FABRIKAM, pairing_id, users[mentor], mentor, users[MENTEE], MENTEE))
        token = control.post(f"{target.sim_url}/_sandbox/token", json={"user": mentor}, timeout=15).json()
        callers.append((pairing_id, str(token["access_token"])))
    return callers


def graph_request_count(target: Target, since: int) -> tuple[int, int]:
    """(Graph requests after ``since``, newest sequence number) from the simulator's request log."""
    log: list[dict[str, Any]] = _session(target.ca_path).get(
        f"{target.sim_url}/_sandbox/requests", params={"since": str(since)}, timeout=15
    ).json()
    graph = sum(1 for r in log if str(r["path"]).startswith("/v1.0"))
    return graph, (int(log[-1]["seq"]) if log else since)


def run(target: Target, calls: int) -> None:
    callers = prepare(target)
    today = date.today()
    monday = today + timedelta(days=7 - today.weekday())
    start = datetime(monday.year, monday.month, monday.day, tzinfo=UTC)
    window = {"start": start.isoformat(), "end": (start + timedelta(days=5)).isoformat(),
              "durationMinutes": 30, "timeZone": "Europe/London"}
    requests_ = [({"pairingId": pid, **window}, {"Authorization": f"Bearer {tok}"}) for pid, tok in callers]
    http = _session()
    url = f"{target.api_url}/availability"
    slots = 0
    for i in range(WARM_UP):
        body, headers = requests_[i % len(requests_)]
        warm = http.post(url, json=body, headers=headers, timeout=30)
        if warm.status_code != 200:
            raise SystemExit(f"POST /api/availability answered {warm.status_code}: {warm.text[:300]}")
        slots = len(warm.json()["slots"])
    _, since = graph_request_count(target, 0)
    timings: list[float] = []
    for i in range(calls):
        body, headers = requests_[i % len(requests_)]
        began = time.perf_counter()
        response = http.post(url, json=body, headers=headers, timeout=30)
        timings.append((time.perf_counter() - began) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"POST /api/availability answered {response.status_code}: {response.text[:300]}")
    graph_calls, _ = graph_request_count(target, since)
    ordered = sorted(timings)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * len(ordered)) - 1)]
    print(f"POST /api/availability on the {target.label}: {calls} calls, {slots} slots each, "
          f"{graph_calls / calls:.2f} Graph requests per call")
    print(f"  p50 {statistics.median(timings):.1f} ms   p99 {p99:.1f} ms   "
          f"mean {statistics.fmean(timings):.1f} ms   max {ordered[-1]:.1f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--fresh", action="store_true", help="always start a private stack in this process")
    parser.add_argument("--quick", action="store_true", help="a small smoke size (20 calls)")
    args = parser.parse_args(argv)
    if args.quick:
        args.calls = min(args.calls, 20)
    from local.settings import HOST_PORT, SIMULATOR_PORT

    use_running = not args.fresh and azurite.port_open(HOST_PORT) and azurite.port_open(SIMULATOR_PORT)
    with running_stack() if use_running else fresh_stack() as target:
        run(target, args.calls)
    return 0


if __name__ == "__main__":
    sys.exit(main())
