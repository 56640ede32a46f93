"""Benchmark: resident memory of the Functions host after 10,000 change notifications through the webhook.

The host runs as its own process (``tests/faults/procstack.py``: Azurite on disk, the
simulator in this process), so its RSS is the app's and nothing of the load generator's.
Fabrikam is onboarded; notifications carry a genuine clientState for Fabrikam mailboxes
and name events that are not sessions (the common case: most calendar changes are not
ours), so each costs the webhook's enqueue and the worker's one index read, and no
Graph call. They are POSTed 50 per request by 8 concurrent senders, then the
``notifications`` queue is drained. Figures: RSS after start-up and a warm-up of 500,
RSS after the 10,000 and the queue drained, peak RSS (VmHWM), and the Graph calls made.

Run: ``.venv/bin/python bench/host_memory.py [--notifications 10000] [--quick]``.
"""

from __future__ import annotations

import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import parser, rss_mb

from core.adapters.local_secrets import LocalFileSecretStore
from core.names import Queues, Tables
from core.ports import Entity
from core.services.client_state import SECRET_NAME, ClientStateSigner, new_key
from local.simulator.seed import FABRIKAM
from tests.faults.procstack import ProcessStack

PER_POST = 50
SENDERS = 8
WARM_UP = 500


def onboard_fabrikam(stack: ProcessStack) -> None:
    """The integration record as onboarding leaves it (the admin flow itself is not what is measured)."""
    stack.control("POST", "/_sandbox/consent", {"tenant": FABRIKAM, "granted": True})
    stack.tables.upsert(Tables.INTEGRATIONS, Entity(FABRIKAM, "integration", {
        "vendor": "outlook365", "method": "domainWide", "ownerEmail": "admin@fabrikam.test",
        "enabled": True, "status": "connected", "pairingPolicy": "registered",
    }))
    stack.tables.upsert(Tables.INTEGRATIONS, Entity("~tenants", FABRIKAM, {}))


def signer_for(stack: ProcessStack) -> ClientStateSigner:
    """The webhook's clientState key, made here before the host first needs it."""
    store = LocalFileSecretStore(stack.env["LOCAL_SECRETS_DIR"])
    if store.get(SECRET_NAME) is None:
        store.set(SECRET_NAME, new_key())
    key = store.get(SECRET_NAME)
    assert key is not None
    return ClientStateSigner(key.encode("utf-8"))


def mailboxes(stack: ProcessStack) -> list[str]:
    tenant = next(t for t in stack.control("GET", "/_sandbox/tenants") if t["id"] == FABRIKAM)
    return [u["id"] for u in tenant["users"] if u.get("kind", "normal") == "normal"]


def bodies(count: int, users: list[str], signer: ClientStateSigner) -> list[dict[str, Any]]:
    """``count`` notifications about untracked events, ``PER_POST`` per body."""
    items = []
    for i in range(count):
        user = users[i % len(users)]
        event = "AAMk" + uuid.uuid4().hex
        items.append({
            "subscriptionId": str(uuid.UUID(int=i)), "changeType": "updated", "tenantId": FABRIKAM,
            "clientState": signer.sign(FABRIKAM, user), "resource": f"Users/{user}/Events/{event}",
            "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": f"Users/{user}/Events/{event}",
                             "id": event},
        })
    return [{"value": items[i : i + PER_POST]} for i in range(0, len(items), PER_POST)]


def post_all(stack: ProcessStack, payloads: list[dict[str, Any]]) -> list[float]:
    """POST every body (``SENDERS`` at a time); the ack latencies in ms. Any non-202 is an error."""
    def one(body: dict[str, Any]) -> float:
        began = time.perf_counter()
        r = stack.http.post(f"{stack.api_url}/graph/notifications", json=body, timeout=30)
        elapsed = (time.perf_counter() - began) * 1000
        if r.status_code != 202:
            raise RuntimeError(f"webhook answered {r.status_code}")
        return elapsed

    with ThreadPoolExecutor(max_workers=SENDERS) as pool:
        return list(pool.map(one, payloads))


def queue_depth(stack: ProcessStack) -> int:
    from azure.storage.queue import QueueClient

    with QueueClient.from_connection_string(stack.env["AzureWebJobsStorage"], Queues.NOTIFICATIONS) as client:
        return int(client.get_queue_properties().approximate_message_count or 0)


def drain(stack: ProcessStack, timeout: float = 600.0) -> float:
    """Seconds until the notifications queue is empty (twice in a row, 0.5 s apart)."""
    began = time.perf_counter()
    empty = 0
    while time.perf_counter() - began < timeout:
        empty = empty + 1 if queue_depth(stack) == 0 else 0
        if empty >= 2:
            return time.perf_counter() - began
        time.sleep(0.5)
    raise TimeoutError("the notifications queue did not drain")


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--notifications", type=int, default=None, help="default 10,000 (quick: 1,000)")
    args = p.parse_args()
    total = args.notifications or (1_000 if args.quick else 10_000)
    with ProcessStack.create() as stack:
        onboard_fabrikam(stack)
        signer = signer_for(stack)
        users = mailboxes(stack)
        post_all(stack, bodies(WARM_UP, users, signer))
        drain(stack)
        before = rss_mb(stack.host_pid)
        seq = stack.last_seq()
        payloads = bodies(total, users, signer)
        began = time.perf_counter()
        post_all(stack, payloads)
        acked = time.perf_counter() - began
        drained = drain(stack) + acked
        after = rss_mb(stack.host_pid)
        graph_calls = len(stack.graph_requests(since=seq))
        print(f"host RSS after start-up and {WARM_UP} notifications: {before:.0f} MiB")
        print(f"host RSS after {total:,} more notifications ({len(payloads)} POSTs of {PER_POST}), queue drained: "
              f"{after:.0f} MiB (+{after - before:.0f} MiB), peak {peak_mb(stack.host_pid):.0f} MiB")
        print(f"notifications acked in {acked:.1f} s, processed in {drained:.1f} s "
              f"({total / drained:.0f}/s); Graph calls for untracked events: {graph_calls}")


if __name__ == "__main__":
    main()
