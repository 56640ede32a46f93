"""Helpers for tests that run the real Graph gateway against the local Microsoft 365 simulator.

pytest-free on purpose (contract, adapter and end-to-end suites all use it):

    with running_simulator() as sim:
        control = SimulatorControl(sim)
        control.grant_consent(seed.CONTOSO)
        gateway, tokens = real_gateway(sim)
        gateway.get_user(GraphIdentity(seed.CONTOSO), seed.ALICE)

The gateway is built the way ``core/bootstrap.py`` builds it in local mode: settings from
``Settings.from_env`` (``LOCAL_MODE=true``, authority and Graph on the simulator, its CA
trusted), the shared session, ``AppOnlyTokenProvider`` with the client secret from an
in-memory secret store.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import requests

from core.adapters.graph import GraphClient, GraphGateway, RetryPolicy
from core.adapters.http import build_session
from core.adapters.tokens import CLIENT_SECRET_NAME, AppOnlyTokenProvider
from core.settings import Settings
from local.simulator import SimulatorHandle, start_simulator
from local.simulator.state import DEFAULT_CLIENT_ID
from tests.support.memory import InMemorySecretStore

LOCAL_CLIENT_SECRET = "local-dev-secret"  # the simulator accepts any secret unless configured with one


@contextmanager
def running_simulator(ca_dir: str | None = None, **options: Any) -> Iterator[SimulatorHandle]:
    """An in-process simulator on a free port (its CA in a temporary folder unless ``ca_dir``)."""
    with tempfile.TemporaryDirectory(prefix="sim-ca-") as tmp:
        handle = start_simulator(port=0, ca_dir=ca_dir or tmp, **options)
        try:
            yield handle
        finally:
            handle.stop()


def simulator_settings(sim: SimulatorHandle, **overrides: str) -> Settings:
    """Local-mode settings with Entra ID and Graph pointing at the simulator."""
    env = {
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "ENTRA_CLIENT_ID": DEFAULT_CLIENT_ID,
        "ENTRA_CREDENTIAL": "secret",
        "AUTHORITY_HOST": sim.url,
        "GRAPH_BASE_URL": f"{sim.url}/v1.0",
        "PUBLIC_BASE_URL": "http://127.0.0.1:7071",
        "APP_URL": "http://127.0.0.1:5173",
        "LOCAL_MODE": "true",
        "LOCAL_CA_BUNDLE": str(sim.ca_path),
    }
    env.update(overrides)
    return Settings.from_env(env)


def quick_retry() -> RetryPolicy:
    """A retry policy that never sleeps (tests of throttling see ``Throttled`` at once)."""
    return RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, max_total_wait=0.5, sleep=lambda _s: None)


def real_gateway(
    sim: SimulatorHandle, *, retry: RetryPolicy | None = None, secret: str = LOCAL_CLIENT_SECRET
) -> tuple[GraphGateway, AppOnlyTokenProvider]:
    """The real gateway and token provider, wired to the simulator as in local mode."""
    settings = simulator_settings(sim)
    session = build_session(settings)
    # requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override ``session.verify`` for every request
    # that passes no ``verify`` (GraphClient and MSAL pass none), so on machines that set them the
    # simulator's CA would be ignored. Not reading the environment keeps LOCAL_CA_BUNDLE in force.
    session.trust_env = False
    tokens = AppOnlyTokenProvider(settings, session, InMemorySecretStore({CLIENT_SECRET_NAME: secret}))
    client = GraphClient(settings.graph_base_url, session, tokens, retry or quick_retry())
    return GraphGateway(client), tokens


class SimulatorControl:
    """The simulator's control API (``/_sandbox``, docs/api.md) as Python calls."""

    def __init__(self, sim: SimulatorHandle) -> None:
        self.base = f"{sim.url}/_sandbox"
        self._session = requests.Session()
        self._session.trust_env = False  # see real_gateway: REQUESTS_CA_BUNDLE would override verify
        self._session.verify = str(sim.ca_path)

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None, **params: str) -> Any:
        response = self._session.request(method, self.base + path, json=body, params=params or None, timeout=10)
        if response.status_code >= 400:
            raise AssertionError(f"simulator control {method} {path}: {response.status_code} {response.text[:300]}")
        return response.json() if response.content else None

    # -- directory, consent, tokens -----------------------------------------------------
    def tenants(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/tenants")
        return result

    def tenant(self, tenant_id: str) -> dict[str, Any]:
        for tenant in self.tenants():
            if tenant["id"] == tenant_id:
                return tenant
        raise KeyError(tenant_id)

    def grant_consent(self, tenant_id: str) -> None:
        """The tenant's admin has consented: app-only tokens work."""
        self._call("POST", "/consent", {"tenant": tenant_id, "granted": True, "grant": True})

    def revoke_consent(self, tenant_id: str) -> None:
        """Consent withdrawn: new tokens fail (AADSTS700016) and issued ones are rejected."""
        self._call("POST", "/consent", {"tenant": tenant_id, "revoke": True})

    def consent_page_declines(self, tenant_id: str) -> None:
        """The admin consent page answers "declined" (AADSTS65004)."""
        self._call("POST", "/consent", {"tenant": tenant_id, "grant": False})

    def service_token(
        self, user: str | None = None, *, tenant: str | None = None, roles: list[str] | None = None
    ) -> str:
        """A token for calling *our* API: as ``user`` (UPN or id), or app-only for ``tenant``."""
        body: dict[str, Any] = {"app": True, "tenant": tenant} if user is None else {"user": user}
        if roles is not None:
            body["roles"] = roles
        return str(self._call("POST", "/token", body)["access_token"])

    # -- Outlook as a person --------------------------------------------------------------
    def events(self, user: str) -> list[dict[str, Any]]:
        """What is in the user's calendar now, in Graph's event shape (times in UTC)."""
        result: list[dict[str, Any]] = self._call("GET", f"/users/{quote(user, safe='@')}/events")
        return result

    def move(self, user: str, event_id: str, start: str, end: str) -> None:
        self._call("POST", f"/users/{quote(user, safe='@')}/events/{quote(event_id, safe='')}/move",
                   {"start": start, "end": end})

    def cancel(self, user: str, event_id: str) -> None:
        self._call("POST", f"/users/{quote(user, safe='@')}/events/{quote(event_id, safe='')}/cancel", {})

    def respond(self, user: str, event_id: str, response: str) -> None:
        self._call("POST", f"/users/{quote(user, safe='@')}/events/{quote(event_id, safe='')}/respond",
                   {"response": response})

    # -- subscriptions, request log, faults ------------------------------------------------
    def subscriptions(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/subscriptions")
        return result

    def lifecycle(self, subscription_id: str, event: str) -> None:
        self._call("POST", "/subscriptions/lifecycle", {"subscriptionId": subscription_id, "event": event})

    def requests_since(self, since: int = 0) -> list[dict[str, Any]]:
        """Graph/Entra requests the simulator received after log entry ``since``."""
        result: list[dict[str, Any]] = self._call("GET", "/requests", since=str(since))
        return result

    def last_seq(self) -> int:
        log = self.requests_since(0)
        return int(log[-1]["seq"]) if log else 0

    def graph_requests_since(self, since: int) -> list[dict[str, Any]]:
        """Only Graph calls (``/v1.0/...``), batch parts included."""
        return [r for r in self.requests_since(since) if str(r["path"]).startswith("/v1.0")]

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """``throttleRate``, ``failRate``, ``latencyMs``, ``outageSeconds``, ``retryAfterSeconds``..."""
        result: dict[str, Any] = self._call("POST", "/faults", faults)
        return result

    def clear_faults(self) -> None:
        self._call("POST", "/faults", {})

    def reset(self) -> None:
        """Re-seed everything (consent back to the seeded defaults)."""
        self._call("POST", "/reset", {})


@dataclass
class WebhookReceiver:
    """A loopback endpoint that passes Graph's validation handshake and keeps what it receives."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    validations: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def webhook_receiver(*, accept_validation: bool = True) -> Iterator[WebhookReceiver]:
    """An http://127.0.0.1 endpoint for subscriptions (the simulator allows loopback http).

    It echoes ``validationToken`` as text/plain (or answers 400 when ``accept_validation`` is
    False) and records the JSON bodies of notifications, answering 202.
    """
    import json

    receiver = WebhookReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if "validationToken" in query:
                with receiver.lock:
                    receiver.validations += 1
                token = query["validationToken"][0].encode()
                status = 200 if accept_validation else 400
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(token)))
                self.end_headers()
                self.wfile.write(token)
                return
            try:
                payload = json.loads(body) if body else {}
            except ValueError:
                payload = {}
            with receiver.lock:
                receiver.received.append(payload)
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/api/graph/notifications"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
