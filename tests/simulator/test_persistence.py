"""The simulator's state file: a restart keeps what a Microsoft 365 tenant keeps, and SIGTERM loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from local.azurite import free_port, port_open
from local.simulator import start_simulator
from local.simulator.seed import ALICE, BOB, CONTOSO, FABRIKAM
from local.simulator.state import DEFAULT_CLIENT_ID
from tests.support.simulator import webhook_receiver

ROOT = Path(__file__).resolve().parents[2]


def _session(ca: Path) -> requests.Session:
    http = requests.Session()
    http.trust_env = False
    http.verify = str(ca)
    return http


def _token(http: requests.Session, url: str, tenant: str) -> str:
    form = {"grant_type": "client_credentials", "client_id": DEFAULT_CLIENT_ID, "client_secret": "s",
            "scope": f"{url}/.default"}
    resp = http.post(f"{url}/{tenant}/oauth2/v2.0/token", data=form, timeout=10)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["access_token"])


def _when(hours: int) -> dict[str, str]:
    moment = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=70, hours=hours)
    return {"dateTime": moment.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}


def test_restart_on_the_same_state_file_keeps_the_tenant(tmp_path: Path) -> None:
    """Events, attendee copies, subscriptions, consent, the signing key (old tokens still work) and delta links
    survive a stop and a start on the same file; without a file nothing is written."""
    state_file = tmp_path / "m365.json"
    with webhook_receiver() as receiver:
        sim = start_simulator(port=0, ca_dir=tmp_path / "ca", state_file=state_file)
        http = _session(sim.ca_path)
        token = _token(http, sim.url, FABRIKAM)
        auth = {"Authorization": f"Bearer {token}"}
        body = {"subject": "kept", "start": _when(1), "end": _when(2),
                "attendees": [{"emailAddress": {"address": "felix@fabrikam.test"}, "type": "required"}]}
        event = http.post(f"{sim.url}/v1.0/users/admin@fabrikam.test/events", json=body, headers=auth,
                          timeout=10).json()
        window = {"startDateTime": f"{_when(0)['dateTime']}Z", "endDateTime": f"{_when(5)['dateTime']}Z"}
        delta = http.get(f"{sim.url}/v1.0/users/admin@fabrikam.test/calendarView/delta", params=window,
                         headers=auth, timeout=10).json()["@odata.deltaLink"]
        expiry = (datetime.now(UTC) + timedelta(hours=2)).isoformat().replace("+00:00", "Z")
        sub = http.post(f"{sim.url}/v1.0/subscriptions", headers=auth, timeout=15, json={
            "changeType": "updated", "notificationUrl": receiver.url, "resource": "/users/admin@fabrikam.test/events",
            "expirationDateTime": expiry, "clientState": "kept-state"}).json()
        http.post(f"{sim.url}/_sandbox/consent", json={"tenant": CONTOSO, "granted": True}, timeout=10)
        port, url = sim.port, sim.url
        sim.stop()

        again = start_simulator(port=port, ca_dir=tmp_path / "ca", state_file=state_file)
        try:
            assert again.url == url
            got = http.get(f"{url}/v1.0/users/admin@fabrikam.test/events/{event['id']}", headers=auth, timeout=10)
            assert got.status_code == 200 and got.json()["subject"] == "kept"
            copies = http.get(f"{url}/_sandbox/users/felix@fabrikam.test/events", timeout=10).json()
            assert any(c["iCalUId"] == event["iCalUId"] for c in copies)
            listed = http.get(f"{url}/v1.0/subscriptions", headers=auth, timeout=10).json()["value"]
            assert [s["id"] for s in listed] == [sub["id"]]
            changes = http.get(delta, headers=auth, timeout=10).json()
            assert changes["value"] == [] and "@odata.deltaLink" in changes
            tenants = {t["id"]: t for t in http.get(f"{url}/_sandbox/tenants", timeout=10).json()}
            assert tenants[CONTOSO]["consentGranted"] is True
            # The same kept-alive client session now talks to the new instance only (the stopped one
            # closed its connections), so what it changes is what the running simulator holds.
            http.post(f"{url}/_sandbox/consent", json={"tenant": CONTOSO, "revoke": True}, timeout=10)
            assert again.state.tenants[CONTOSO].consent_granted is False
        finally:
            again.stop()
    in_memory = start_simulator(port=0, ca_dir=tmp_path / "ca")
    in_memory.stop()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca", "m365.json"]


def _start_process(port: int, tmp: Path, state_file: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "local.simulator", "--port", str(port), "--ca-dir", str(tmp / "ca"),
         "--state-file", str(state_file)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not port_open(port):
        assert proc.poll() is None and time.monotonic() < deadline, "simulator did not start"
        time.sleep(0.1)
    return proc


def test_sigterm_right_after_a_change_loses_nothing(tmp_path: Path) -> None:
    """A move made in Outlook and answered 200 is in the file after an immediate SIGTERM (no debounce loss)."""
    port, state_file = free_port(), tmp_path / "m365.json"
    proc = _start_process(port, tmp_path, state_file)
    http = _session(tmp_path / "ca" / "ca.pem")
    url = f"https://127.0.0.1:{port}"
    try:
        alice: list[dict[str, Any]] = http.get(f"{url}/_sandbox/users/{ALICE}/events", timeout=10).json()
        target = next(e for e in alice if e["isOrganizer"] and not e["isAllDay"])
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=90)
        moved = http.post(f"{url}/_sandbox/users/{ALICE}/events/{target['id']}/move", timeout=10,
                          json={"start": start.isoformat(), "end": (start + timedelta(minutes=30)).isoformat()})
        assert moved.status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        proc = _start_process(port, tmp_path, state_file)
        after = {e["id"]: e for e in http.get(f"{url}/_sandbox/users/{ALICE}/events", timeout=10).json()}
        assert after[target["id"]]["start"]["dateTime"].startswith(start.strftime("%Y-%m-%dT%H:%M:%S"))
        users = http.get(f"{url}/_sandbox/tenants", timeout=10).json()[0]["users"]
        assert any(u["userPrincipalName"] == BOB for u in users)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
