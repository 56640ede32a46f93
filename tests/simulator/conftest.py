"""Fixtures: one in-process simulator per session (re-seeded before every test) and webhook receivers."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from local.simulator import SimulatorHandle, start_simulator
from local.simulator.seed import CONTOSO, FABRIKAM
from local.simulator.state import DEFAULT_CLIENT_ID


class Sim:
    """A thin client for the simulator under test (verify against its CA on every call).

    ``requests`` lets REQUESTS_CA_BUNDLE override a Session's ``verify``, so it is
    passed per request instead.
    """

    def __init__(self, handle: SimulatorHandle) -> None:
        self.handle = handle
        self.url = handle.url
        self.ca = str(handle.ca_path)
        self.http = requests.Session()

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("verify", self.ca)
        kwargs.setdefault("timeout", 15)
        url = path if path.startswith("https://") else self.url + path
        return self.http.request(method, url, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    # -- helpers used across the suite -------------------------------------------------
    def consent(self, tenant: str = CONTOSO, **body: Any) -> dict[str, Any]:
        resp = self.post("/_sandbox/consent", json={"tenant": tenant, **body})
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    def client_credentials(self, tenant: str = CONTOSO, **overrides: str) -> requests.Response:
        form = {
            "grant_type": "client_credentials",
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": "s3cret-value",
            "scope": f"{self.url}/.default",
            **overrides,
        }
        return self.post(f"/{tenant}/oauth2/v2.0/token", data=form)

    def app_token(self, tenant: str = CONTOSO) -> str:
        """A Graph app-only token, granting the tenant's consent first."""
        self.consent(tenant, granted=True)
        resp = self.client_credentials(tenant)
        assert resp.status_code == 200, resp.text
        return str(resp.json()["access_token"])

    def graph(
        self, method: str, path: str, token: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> requests.Response:
        hdrs = {"Authorization": f"Bearer {token}", **(headers or {})}
        return self.request(method, f"/v1.0{path}", headers=hdrs, **kwargs)

    def events_of(self, user: str) -> list[dict[str, Any]]:
        resp = self.get(f"/_sandbox/users/{user}/events")
        assert resp.status_code == 200, resp.text
        return list(resp.json())

    def copy_of(self, user: str, ical_uid: str) -> dict[str, Any] | None:
        return next((e for e in self.events_of(user) if e["iCalUId"] == ical_uid), None)


@pytest.fixture(scope="session")
def sim_handle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorHandle]:
    handle = start_simulator(
        port=0,
        ca_dir=tmp_path_factory.mktemp("ca"),
        service_url="http://127.0.0.1:7071",
        validation_timeout=2.0,
        notification_retry_delays=(0.05, 0.1, 0.2),
    )
    yield handle
    handle.stop()


@pytest.fixture
def sim(sim_handle: SimulatorHandle) -> Iterator[Sim]:
    """The simulator, freshly re-seeded, with no faults and an empty request log."""
    sim_handle.wait_notifications(5)
    sim_handle.state.reset()
    client = Sim(sim_handle)
    yield client
    sim_handle.wait_notifications(5)
    client.http.close()


@pytest.fixture
def contoso_token(sim: Sim) -> str:
    return sim.app_token(CONTOSO)


@pytest.fixture
def fabrikam_token(sim: Sim) -> str:
    return sim.app_token(FABRIKAM)


# -- time helpers ------------------------------------------------------------------------
def next_weekday(days_ahead: int = 7, hour: int = 3) -> datetime:
    """A UTC datetime on a Monday-Friday at least ``days_ahead`` days out (seeded events avoid 03:00 UTC
    for Alice/Bob's working hours)."""
    day = datetime.now(UTC).replace(hour=hour, minute=0, second=0, microsecond=0) + timedelta(days=days_ahead)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def dttz(moment: datetime, tz: str = "UTC") -> dict[str, str]:
    return {"dateTime": moment.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": tz}


def event_body(start: datetime, minutes: int = 30, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subject": "Mentoring session",
        "start": dttz(start),
        "end": dttz(start + timedelta(minutes=minutes)),
    }
    body.update(extra)
    return body


def attendee(address: str, kind: str = "required") -> dict[str, Any]:
    return {"emailAddress": {"address": address}, "type": kind}


# -- webhook receiver --------------------------------------------------------------------
@dataclass
class Receiver:
    """A local webhook endpoint: answers Graph's validation and records notification bodies."""

    mode: str = "echo"  # echo | wrong | slow | error
    statuses: list[int] = field(default_factory=list)  # statuses to answer notifications with, in order
    received: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    validations: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/graph/notifications?code=fn-key"

    def next_body(self, timeout: float = 5.0) -> dict[str, Any]:
        return self.received.get(timeout=timeout)

    def items(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Collect at least ``count`` notification items (bodies may batch several)."""
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            out.extend(self.received.get(timeout=max(0.01, deadline - time.monotonic()))["value"])
        return out

    def drain(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while not self.received.empty():
            out.extend(self.received.get_nowait()["value"])
        return out


def _receiver_handler(rec: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            query = parse_qs(urlsplit(self.path).query)
            if "validationToken" in query:
                token = query["validationToken"][0]
                rec.validations.append(token)
                if rec.mode == "slow":
                    rec.release.wait(10)
                answer = token if rec.mode == "echo" else "<html>" + token + "</html>"
                status = 500 if rec.mode == "error" else 200
                self._reply(status, answer.encode(), "text/plain")
                return
            status = rec.statuses.pop(0) if rec.statuses else 202
            if status < 300:
                rec.received.put(json.loads(body))
            self._reply(status, b"", "text/plain")

        def _reply(self, status: int, data: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@pytest.fixture
def receiver_factory() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(mode: str = "echo", statuses: list[int] | None = None) -> Receiver:
        rec = Receiver(mode=mode, statuses=list(statuses or []))
        server = ThreadingHTTPServer(("127.0.0.1", 0), _receiver_handler(rec))
        server.daemon_threads = True
        rec.server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        made.append(rec)
        return rec

    yield make
    for rec in made:
        rec.release.set()
        assert rec.server is not None
        rec.server.shutdown()
        rec.server.server_close()


@pytest.fixture
def receiver(receiver_factory: Callable[..., Receiver]) -> Receiver:
    return receiver_factory()


def subscribe(
    sim: Sim,
    token: str,
    user: str,
    rec: Receiver,
    *,
    lifecycle: Receiver | None = None,
    minutes: int = 60,
    change_type: str = "created,updated,deleted",
    client_state: str = "client-state-123",
) -> requests.Response:
    body: dict[str, Any] = {
        "changeType": change_type,
        "notificationUrl": rec.url,
        "resource": f"/users/{user}/events",
        "expirationDateTime": (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z"),
        "clientState": client_state,
    }
    if lifecycle is not None:
        body["lifecycleNotificationUrl"] = lifecycle.url.replace("notifications", "lifecycle")
    return sim.graph("POST", "/subscriptions", token, json=body)
