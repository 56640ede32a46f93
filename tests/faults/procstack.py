"""A local stack whose parts can be killed: Azurite on disk and the host in their own processes.

The e2e ``stack`` fixture runs the host in the test process with an in-memory Azurite,
which is right for features but cannot lose a process. Here Azurite keeps its data in
a folder (so stopping and starting it loses nothing that was acknowledged), the host is
``python -m tests.faults.hostproc`` (so SIGKILL takes messages in flight with it), and
the simulator runs in this process (its control API and fault switches stay reachable
while the others come and go). Used by the fault-injection suite and the host-memory
benchmark; the API is the e2e ``Stack`` plus process control.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from core.ports import TableStore
from local import azurite as azurite_mod
from local.simulator import start_simulator
from tests.e2e.conftest import LOCAL_CLIENT_SECRET, Stack, _write_secret, stack_env

ROOT = Path(__file__).resolve().parents[2]
# Graph keeps retrying an unacknowledged notification for hours; the simulator's default
# (0.5-4 s) would lose everything sent while the host is down. This models a few minutes.
GRAPH_LIKE_RETRIES = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 30.0, 30.0)


@dataclass
class ProcessStack(Stack):
    """The e2e ``Stack`` API, with Azurite and the host as processes this object can stop, kill and restart."""

    work: Path = field(default_factory=Path)
    host_port: int = 0
    azurite_ports: tuple[int, int, int] = (0, 0, 0)
    azurite: azurite_mod.Azurite | None = None
    process: subprocess.Popen[bytes] | None = None
    host_starts: int = 0
    _tables: TableStore | None = None

    @classmethod
    def create(cls, *, work: Path | None = None, extra_env: dict[str, str] | None = None,
               extra_users: int = 0) -> ProcessStack:
        """Start Azurite (on disk), the simulator (in-process) and the host process; ready when it answers."""
        work = work or Path(tempfile.mkdtemp(prefix="faults-"))
        ports = (azurite_mod.free_port(), azurite_mod.free_port(), azurite_mod.free_port())
        emulator = azurite_mod.start(ports=ports, location=work / "azurite", reuse=False)
        host_port = azurite_mod.free_port()
        sim = start_simulator(port=0, ca_dir=work / "ca", service_url=f"http://127.0.0.1:{host_port}",
                              notification_retry_delays=GRAPH_LIKE_RETRIES, extra_users=extra_users)
        env = stack_env(sim, host_port, emulator.connection_string, work / "secrets", work / "outbox")
        env["LOG_LEVEL"] = "WARNING"
        env.update(extra_env or {})
        _write_secret(work / "secrets", "entra-client-secret", LOCAL_CLIENT_SECRET)
        # The host and its container live in the host process, not here.
        stack = cls(api_url=f"http://127.0.0.1:{host_port}/api", sim=sim, host=None, container=None,  # type: ignore[arg-type]
                    env=env, outbox=work / "outbox", work=work, host_port=host_port, azurite_ports=ports,
                    azurite=emulator)
        try:
            stack.start_host()
        except BaseException:
            stack.close()
            raise
        return stack

    # --- Azurite --------------------------------------------------------------------
    def stop_azurite(self) -> None:
        """Stop Azurite (SIGTERM; it flushes to disk); storage calls fail until ``start_azurite``."""
        if self.azurite is not None:
            self.azurite.stop()
            self.azurite = None

    def start_azurite(self) -> None:
        """Start Azurite again on the same ports and folder: everything acknowledged before is still there."""
        if self.azurite is None:
            self.azurite = azurite_mod.start(ports=self.azurite_ports, location=self.work / "azurite", reuse=False)

    @property
    def tables(self) -> TableStore:
        """The app's tables, read from this process (for checking final states)."""
        if self._tables is None:
            from core.adapters.tables import AzureTableStore

            self._tables = AzureTableStore.from_connection_string(self.env["AzureWebJobsStorage"])
        return self._tables

    # --- the host -------------------------------------------------------------------
    def start_host(self, timeout: float = 60.0) -> None:
        """Start ``python -m tests.faults.hostproc`` and wait until its HTTP server answers."""
        if self.process is not None and self.process.poll() is None:
            return
        child_env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
        child_env.update(self.env)
        self.host_starts += 1
        log = (self.work / f"host-{self.host_starts}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.hostproc", "--port", str(self.host_port)],
            cwd=ROOT, env=child_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"host exited with {self.process.returncode}; see {self.work}")
            try:
                self.http.get(f"{self.api_url}/health", timeout=2)
                return
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError("host did not answer in time")

    @property
    def host_pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill_host(self) -> None:
        """SIGKILL the host: no shutdown, messages being processed stay leased until their visibility ends."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop_host(self) -> None:
        """Stop the host politely (SIGTERM lets running invocations finish)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill_host()

    def host_log(self) -> str:
        """Everything the host processes printed (newest start last)."""
        return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in sorted(self.work.glob("host-*.log")))

    def close(self) -> None:
        self.stop_host()
        self.sim.stop()
        self.stop_azurite()

    def __enter__(self) -> ProcessStack:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
