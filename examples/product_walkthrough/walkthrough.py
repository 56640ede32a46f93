"""From `make run` to a signed event at your receiver, as a product's server would do it.

Run the local stack (`make run`), then `python examples/product_walkthrough/walkthrough.py`.
The script:

1. onboards Contoso as its admin would (configure, admin consent at the simulator's page);
2. gets an app-only token for the product's server (client credentials; in the simulator
   `/_sandbox/token {"app": true}`) with the roles Sessions, Pairings and Webhooks.ReadWrite.All;
3. pairs Alice with Carol, registers a webhook endpoint and starts the example receiver
   (`examples/webhook_receiver/receiver.py`) with the endpoint's secret;
4. finds a free slot and books it for Alice (`X-On-Behalf-Of`, `Idempotency-Key`);
5. moves the event in the simulated Outlook, as Alice would;
6. prints what the receiver verified and applied: session.booked, then session.rescheduled
   (and the attendee's response reset that Exchange makes on a move).

API_URL and SIM_URL override the local addresses; RECEIVER_PORT the receiver's port.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import requests

API = os.environ.get("API_URL", "http://127.0.0.1:7071/api")
SIM = os.environ.get("SIM_URL", "https://127.0.0.1:7443")
PORT = int(os.environ.get("RECEIVER_PORT", "8765"))
CONTOSO = "11111111-1111-4111-8111-111111111111"
HERE = Path(__file__).resolve().parent

sim = requests.Session()
sim.verify = False  # the simulator's local CA; never do this against a real service
sim.trust_env = False
requests.packages.urllib3.disable_warnings()  # type: ignore[attr-defined]


def token(body: dict[str, Any]) -> str:
    return str(sim.post(f"{SIM}/_sandbox/token", json=body, timeout=10).json()["access_token"])


def auth(tok: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}", **headers}


def wait(check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise SystemExit("timed out")


def main() -> int:
    admin = token({"user": "admin@contoso.test", "roles": ["Integration.Admin"]})
    sim.post(f"{SIM}/_sandbox/consent", json={"tenant": CONTOSO, "grant": True}, timeout=10)
    requests.put(f"{API}/integration", headers=auth(admin), timeout=30,
                 json={"vendor": "outlook365", "method": "domainWide", "ownerEmail": "owner@contoso.test"})
    consent_url = requests.post(f"{API}/integration/consent", headers=auth(admin), timeout=30).json()["consentUrl"]
    callback = sim.get(consent_url, allow_redirects=False, timeout=30).headers["Location"]
    print("admin consent:", requests.get(callback, allow_redirects=False, timeout=30).headers["Location"])
    wait(lambda: requests.get(f"{API}/integration", headers=auth(admin), timeout=30).json()["status"]
         in ("connected", "degraded"))

    app = token({"app": True, "tenant": CONTOSO,
                 "roles": ["Sessions.ReadWrite.All", "Pairings.ReadWrite.All", "Webhooks.ReadWrite.All"]})
    pairing = f"walk-{uuid.uuid4().hex[:8]}"
    requests.put(f"{API}/pairings/{pairing}", headers=auth(app), timeout=30,
                 json={"mentor": "alice@contoso.test", "mentee": "carol@contoso.test", "active": True})
    endpoint = requests.post(f"{API}/webhooks/endpoints", headers=auth(app), timeout=30,
                             json={"url": f"http://127.0.0.1:{PORT}/", "description": "walkthrough"}).json()
    print("endpoint:", endpoint["id"])
    receiver = subprocess.Popen(  # noqa: S603 - our own example, our own interpreter
        [sys.executable, str(HERE.parent / "webhook_receiver" / "receiver.py"), "--port", str(PORT)],
        env={**os.environ, "WEBHOOK_SECRET": endpoint["secret"]}, stdout=subprocess.PIPE, text=True,
    )
    try:
        alice = {"X-On-Behalf-Of": "alice@contoso.test"}
        start = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
        slots = requests.post(f"{API}/availability", headers=auth(app, **alice), timeout=30, json={
            "pairingId": pairing, "start": start.isoformat(), "end": (start + dt.timedelta(days=3)).isoformat(),
            "durationMinutes": 30, "timeZone": "UTC"}).json()["slots"]
        slot = slots[0]
        booked = requests.post(f"{API}/sessions", headers=auth(app, **alice, **{"Idempotency-Key": uuid.uuid4().hex}),
                               timeout=30, json={"pairingId": pairing, "start": slot["start"], "end": slot["end"],
                                                 "timeZone": "UTC"}).json()
        session_id = booked["id"]
        wait(lambda: requests.get(f"{API}/sessions/{session_id}", headers=auth(app, **alice),
                                  timeout=30).json()["status"] == "booked")
        print("booked:", session_id, slot["start"])

        tenant = next(t for t in sim.get(f"{SIM}/_sandbox/tenants", timeout=10).json() if t["id"] == CONTOSO)
        alice_id = next(u["id"] for u in tenant["users"] if u["userPrincipalName"] == "alice@contoso.test")
        events = sim.get(f"{SIM}/_sandbox/users/{alice_id}/events", timeout=10).json()
        event = next(e for e in events if e.get("transactionId") == session_id)
        moved = dt.datetime.fromisoformat(slot["start"].replace("Z", "+00:00")) + dt.timedelta(hours=1)
        sim.post(f"{SIM}/_sandbox/users/{alice_id}/events/{event['id']}/move", timeout=10,
                 json={"start": moved.isoformat(), "end": (moved + dt.timedelta(minutes=30)).isoformat()})
        print("moved in Outlook to", moved.isoformat())
        time.sleep(float(os.environ.get("WAIT_SECONDS", "8")))
    finally:
        receiver.send_signal(signal.SIGINT)
        out, _ = receiver.communicate(timeout=10)
    applied = [json.loads(line) for line in out.splitlines() if '"applied"' in line]
    for item in applied:
        print("receiver verified and applied:", item)
    types = [a["applied"] for a in applied if a.get("sessionId") == session_id]
    return 0 if types[:1] == ["session.booked"] and "session.rescheduled" in types else 1


if __name__ == "__main__":
    raise SystemExit(main())
