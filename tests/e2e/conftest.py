"""The end-to-end stack: Azurite, the Microsoft 365 simulator and the local Functions host, in-process.

One stack per test session (``stack`` fixture). The host serves ``function_app`` on a
free port with local-mode settings pointing at the simulator, exactly as ``make run``
does, so end-to-end tests go through HTTP, real queues and the real Graph gateway.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from core.bootstrap import Container, build_container, set_container
from core.settings import Settings
from local import azurite as azurite_mod
from local.host import Host, QueueOptions
from local.simulator import SimulatorHandle, start_simulator
from local.simulator.state import DEFAULT_CLIENT_ID, PRODUCT_SERVER_CLIENT_ID

ROOT = Path(__file__).resolve().parents[2]
LOCAL_CLIENT_SECRET = "local-dev-secret"
NEVER = "0 0 0 1 1 *"  # timers fire only when a test asks (yearly)


@dataclass
class Stack:
    api_url: str
    sim: SimulatorHandle
    host: Host
    env: dict[str, str]
    outbox: Path
    container: Container
    http: requests.Session = field(default_factory=requests.Session)
    _sim_http: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        self.http.trust_env = False
        self._sim_http.trust_env = False
        self._sim_http.verify = str(self.sim.ca_path)

    # --- the simulator ------------------------------------------------------------
    def control(self, method: str, path: str, json: Any = None, **params: Any) -> Any:
        """Call the simulator's control API (``/_sandbox``...); raises on an error status."""
        response = self._sim_http.request(method, f"{self.sim.url}{path}", json=json, params=params or None, timeout=15)
        if response.status_code >= 400:
            raise AssertionError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response.json() if response.content else None

    def token(self, user: str, roles: list[str] | None = None) -> str:
        body: dict[str, Any] = {"user": user}
        if roles is not None:
            body["roles"] = roles
        return str(self.control("POST", "/_sandbox/token", body)["access_token"])

    def app_token(self, tenant: str, roles: list[str]) -> str:
        body = {"app": True, "tenant": tenant, "roles": roles}
        return str(self.control("POST", "/_sandbox/token", body)["access_token"])

    def graph_requests(self, since: int = 0) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.control("GET", "/_sandbox/requests", since=since)
        return result

    def last_seq(self) -> int:
        log = self.graph_requests()
        return int(log[-1]["seq"]) if log else 0

    # --- the service ----------------------------------------------------------------
    def call(self, method: str, path: str, token: str | None = None, json: Any = None, **kw: Any) -> requests.Response:
        headers = dict(kw.pop("headers", {}) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.request(method, f"{self.api_url}{path}", json=json, headers=headers, timeout=30, **kw)

    def wait_for(self, check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2) -> Any:
        """Poll ``check`` until it returns something truthy (queues and notifications are asynchronous)."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = check()
            if last:
                return last
            time.sleep(interval)
        raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")

    def onboard(self, tenant: str, admin: str, owner_email: str = "owner@contoso.test") -> dict[str, Any]:
        """Run the admin flow: configure, consent at the simulator's page, follow the callback."""
        token = self.token(admin, roles=["Integration.Admin"])
        self.control("POST", "/_sandbox/consent", {"tenant": tenant, "grant": True})
        put = self.call("PUT", "/integration", token, {"vendor": "outlook365", "method": "domainWide",
                                                        "ownerEmail": owner_email})
        assert put.status_code == 200, put.text
        consent = self.call("POST", "/integration/consent", token)
        assert consent.status_code == 200, consent.text
        page = self._sim_http.get(consent.json()["consentUrl"], allow_redirects=False, timeout=15)
        assert page.status_code == 302, page.text
        callback = page.headers["Location"]
        assert callback.startswith(self.api_url), callback
        done = self.http.get(callback, allow_redirects=False, timeout=30)
        assert done.status_code == 302, done.text
        outcome = parse_qs(urlsplit(done.headers["Location"]).query)
        assert outcome.get("consent") == ["granted"], done.headers["Location"]
        integration: dict[str, Any] = self.call("GET", "/integration", token).json()
        return integration


def stack_env(sim: SimulatorHandle, host_port: int, storage: str, secrets_dir: Path, outbox: Path) -> dict[str, str]:
    host_url = f"http://127.0.0.1:{host_port}"
    return {
        "AzureWebJobsStorage": storage,
        "LOCAL_MODE": "true",
        "LOCAL_CA_BUNDLE": str(sim.ca_path),
        "AUTHORITY_HOST": sim.url,
        "GRAPH_BASE_URL": f"{sim.url}/v1.0",
        "ENTRA_CLIENT_ID": DEFAULT_CLIENT_ID,
        "ENTRA_CREDENTIAL": "secret",
        "PUBLIC_BASE_URL": host_url,
        "APP_URL": host_url,
        "CORS_ALLOWED_ORIGINS": host_url,
        "ALLOWED_TENANTS": "*",
        "LOCAL_SECRETS_DIR": str(secrets_dir),
        "LOCAL_OUTBOX_DIR": str(outbox),
        "ACCESS_TEST_SCHEDULE": NEVER,
        "RENEWAL_SCHEDULE": NEVER,
        "RECONCILE_SCHEDULE": NEVER,
        "RECONCILE_NEAR_SCHEDULE": NEVER,
        "PRODUCT_SERVER_CLIENT_IDS": PRODUCT_SERVER_CLIENT_ID,
        "LOG_LEVEL": "INFO",
    }


def _write_secret(secrets_dir: Path, name: str, value: str) -> None:
    from core.adapters.local_secrets import LocalFileSecretStore

    LocalFileSecretStore(str(secrets_dir)).set(name, value)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The metadata-only audit runs after every other end-to-end test, so it sees all they stored."""
    last = [i for i in items if "test_metadata_only" in i.nodeid]
    if not last:
        return
    rest = [i for i in items if i not in last]
    e2e_positions = [n for n, i in enumerate(rest) if "tests/e2e/" in i.nodeid]
    cut = e2e_positions[-1] + 1 if e2e_positions else len(rest)
    items[:] = rest[:cut] + last + rest[cut:]


@pytest.fixture(scope="session")
def e2e_azurite() -> Iterator[azurite_mod.Azurite]:
    """A private Azurite for the stack, so other suites' scratch tables never mix with the app's data."""
    try:
        instance = azurite_mod.ephemeral(in_memory=True)
    except RuntimeError as exc:
        pytest.fail(f"Azurite is required for the end-to-end tier: {exc}")
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def stack(e2e_azurite: azurite_mod.Azurite) -> Iterator[Stack]:
    """Azurite + simulator + host serving function_app, wired like `make run` (once per session)."""
    import function_app

    azurite = e2e_azurite
    work = Path(tempfile.mkdtemp(prefix="e2e-"))
    host_port = azurite_mod.free_port()
    sim = start_simulator(port=0, ca_dir=work / "ca", service_url=f"http://127.0.0.1:{host_port}")
    env = stack_env(sim, host_port, azurite.connection_string, work / "secrets", work / "outbox")
    _write_secret(work / "secrets", "entra-client-secret", LOCAL_CLIENT_SECRET)
    settings = Settings.from_env(env)
    container = build_container(settings)
    set_container(container)
    host = Host(
        function_app.app,
        env=env,
        host_json=ROOT / "host.json",
        port=host_port,
        storage_connection_string=azurite.connection_string,
        poll=QueueOptions(max_polling_interval=0.5, visibility_timeout=1.0, max_dequeue_count=5, batch_size=16),
    )
    host.start()
    try:
        yield Stack(api_url=host.api_url, sim=sim, host=host, env=env, outbox=work / "outbox", container=container)
    finally:
        host.stop()
        sim.stop()
        set_container(None)


@pytest.fixture(autouse=True)
def _stack_container(request: pytest.FixtureRequest) -> None:
    """Other suites install their own containers in this process; the host's functions must see
    the stack's again before each end-to-end test that uses the stack."""
    if "stack" in request.fixturenames:
        set_container(request.getfixturevalue("stack").container)


def bearer(token: str) -> Mapping[str, str]:
    return {"Authorization": f"Bearer {token}"}
