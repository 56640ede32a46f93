"""The browser tests' stack: the web console built, served by the local host with its dev sign-in helpers.

It is the end-to-end stack of tests/e2e/conftest.py (same ``Stack``, same ``stack_env``,
the host serving ``function_app`` and ``web/dist``), with two differences:

- its own in-memory Azurite, so the wizard starts from a tenant nobody onboarded yet,
  whatever other tiers did to the shared one;
- module scope, restoring the previous app container afterwards, so it never overlaps the
  session-wide e2e stack (two stacks would share the process-wide container).

Chromium and the npm packages must be there: a missing one fails in CI (``CI=true``) and
skips elsewhere with the command that installs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from core import bootstrap
from core.settings import Settings
from local import azurite as azurite_mod
from local.devauth import DevAuth, attach
from local.host import Host, QueueOptions
from local.simulator import start_simulator
from local.simulator.state import DEFAULT_CLIENT_ID
from tests.conftest import IN_CI
from tests.e2e.conftest import LOCAL_CLIENT_SECRET, ROOT, Stack, _write_secret, stack_env

HERE = Path(__file__).resolve().parent
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", ROOT / "test-results" / "screenshots"))
NODE_TIMEOUT = 240


def unavailable(why: str) -> None:
    """Fail in CI (the browser tier must run there), skip on a developer machine."""
    if IN_CI:
        pytest.fail(why)
    pytest.skip(why)


def build_console() -> None:
    """``npm run build:web`` into web/dist (the host's default static folder)."""
    if not (ROOT / "node_modules" / "esbuild").is_dir():
        unavailable("npm packages are missing: run `npm ci` (make test does)")
    proc = subprocess.run(
        ["npm", "run", "--silent", "build:web", "--", "--quiet"],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, f"web build failed:\n{proc.stdout}\n{proc.stderr}"


@dataclass
class Console:
    """The running stack plus what the browser scripts need, and facts tests hand to later tests."""

    stack: Stack
    base_url: str
    screenshots: Path
    facts: dict[str, Any] = field(default_factory=dict)

    def run(self, script: str, **env: str) -> Any:
        """Run tests/browser/<script> under node; its exit code decides, its RESULT line is returned."""
        full_env = {
            **os.environ,
            "BASE_URL": self.base_url,
            "CHROMIUM": str(CHROMIUM),
            "SCREENSHOT_DIR": str(self.screenshots),
            **env,
        }
        proc = subprocess.run(
            ["node", str(HERE / script)],
            check=False, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=NODE_TIMEOUT,
        )
        output = f"--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-6000:]}"
        assert proc.returncode == 0, f"{script} failed (exit {proc.returncode})\n{output}"
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        assert lines, f"{script} printed no RESULT line\n{output}"
        return json.loads(lines[-1][len("RESULT ") :])


@pytest.fixture(scope="module")
def console() -> Iterator[Console]:
    """Build the console, start Azurite + simulator + host (with /_dev helpers), yield; stop all."""
    if not CHROMIUM.exists():
        unavailable(f"Chromium is missing at {CHROMIUM}: run scripts/ensure_chromium.sh (make test does)")
    if shutil.which("node") is None or not (ROOT / "node_modules" / "playwright-core").is_dir():
        unavailable("node or playwright-core is missing: run `npm ci` (make test does)")
    build_console()
    try:
        storage = azurite_mod.ephemeral(in_memory=True)
    except RuntimeError as exc:
        unavailable(f"Azurite is required for the browser tests: {exc}")
    import function_app

    previous = bootstrap._container
    work = Path(tempfile.mkdtemp(prefix="browser-"))
    sim = host = None
    try:
        host_port = azurite_mod.free_port()
        sim = start_simulator(port=0, ca_dir=work / "ca", service_url=f"http://127.0.0.1:{host_port}")
        env = stack_env(sim, host_port, storage.connection_string, work / "secrets", work / "outbox")
        _write_secret(work / "secrets", "entra-client-secret", LOCAL_CLIENT_SECRET)
        container = bootstrap.build_container(Settings.from_env(env))
        bootstrap.set_container(container)
        host = Host(
            function_app.app,
            env=env,
            host_json=ROOT / "host.json",
            port=host_port,
            storage_connection_string=storage.connection_string,
            poll=QueueOptions(max_polling_interval=0.5, visibility_timeout=1.0, max_dequeue_count=5, batch_size=16),
            web_dir=ROOT / "web" / "dist",
        )
        attach(host, DevAuth(simulator_url=sim.url, ca_path=sim.ca_path, client_id=DEFAULT_CLIENT_ID))
        host.start()
        yield Console(
            stack=Stack(api_url=host.api_url, sim=sim, host=host, env=env, outbox=work / "outbox",
                        container=container),
            base_url=host.url,
            screenshots=SCREENSHOTS,
        )
    finally:
        if host is not None:
            host.stop()
        if sim is not None:
            sim.stop()
        storage.stop()
        bootstrap.set_container(previous)
        shutil.rmtree(work, ignore_errors=True)
