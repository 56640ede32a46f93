"""The example receiver (examples/webhook_receiver) run as a process, fed by the service's own webhook sender."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.adapters.webhook_sender import RequestsWebhookSender

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "webhook_receiver" / "receiver.py"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"


class Running:
    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url

    def lines(self, count: int) -> list[dict[str, Any]]:
        assert self.process.stdout is not None
        return [json.loads(self.process.stdout.readline()) for _ in range(count)]


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Running]:
    env = {**os.environ, "WEBHOOK_SECRET": SECRET}
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--port", "0", "--state", str(tmp_path / "state.json")],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    assert process.stdout is not None
    url = json.loads(process.stdout.readline())["listening"]
    yield Running(process, url)
    process.terminate()
    process.wait(timeout=10)


def _send(url: str, event_id: str, payload: dict[str, Any], secret: str = SECRET) -> int | None:
    sender = RequestsWebhookSender(local_mode=True)
    body = json.dumps(payload, separators=(",", ":"))
    return sender.deliver(url, message_id=event_id, timestamp=datetime.now(UTC), body=body, secrets=[secret]).status


def _session(kind: str, version: int) -> dict[str, Any]:
    return {"type": kind, "timestamp": "2026-11-23T08:00:00.000Z",
            "data": {"sessionId": "s1", "tenantId": "t", "version": version, "status": "booked"}}


def test_the_example_applies_each_event_once_and_never_goes_back(receiver: Running) -> None:
    """Signed deliveries are applied; a repeated webhook-id and an older version are ignored (204 all);
    a delivery signed with another secret is refused with 400 and never applied."""
    assert _send(receiver.url, "evt_1", _session("session.booked", 2)) == 204
    assert _send(receiver.url, "evt_1", _session("session.booked", 2)) == 204  # a retry
    assert _send(receiver.url, "evt_0", _session("session.booked", 1)) == 204  # older, arriving late
    assert _send(receiver.url, "evt_2", _session("session.rescheduled", 3), secret=OTHER) == 400
    assert _send(receiver.url, "evt_2", _session("session.rescheduled", 3)) == 204
    assert _send(receiver.url, "evt_9", {"type": "ping", "timestamp": "2026-11-23T08:00:00.000Z",
                                        "data": {"tenantId": "t", "endpointId": "ep"}}) == 204
    assert receiver.lines(5) == [
        {"applied": "session.booked", "sessionId": "s1", "version": 2},
        {"ignored": "duplicate", "webhookId": "evt_1"},
        {"ignored": "stale", "webhookId": "evt_0"},
        {"applied": "session.rescheduled", "sessionId": "s1", "version": 3},
        {"applied": "ping", "sessionId": None, "version": None},
    ]


def test_the_example_remembers_across_a_restart(tmp_path: Path) -> None:
    """With --state, a restarted receiver still ignores an event it applied before the restart."""
    state = tmp_path / "state.json"
    env = {**os.environ, "WEBHOOK_SECRET": SECRET}
    for expected in ({"applied": "session.booked", "sessionId": "s1", "version": 2},
                     {"ignored": "duplicate", "webhookId": "evt_1"}):
        process = subprocess.Popen([sys.executable, str(SCRIPT), "--port", "0", "--state", str(state)],
                                   stdout=subprocess.PIPE, text=True, env=env)
        assert process.stdout is not None
        try:
            url = json.loads(process.stdout.readline())["listening"]
            assert _send(url, "evt_1", _session("session.booked", 2)) == 204
            assert json.loads(process.stdout.readline()) == expected
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_without_a_secret_the_example_refuses_to_start() -> None:
    """No WEBHOOK_SECRET: exit code 2 and a message, rather than accepting unsigned calls."""
    env = {k: v for k, v in os.environ.items() if k != "WEBHOOK_SECRET"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--port", "0"], capture_output=True, text=True, env=env,
                          timeout=30, check=False)
    assert done.returncode == 2 and "WEBHOOK_SECRET" in done.stderr
