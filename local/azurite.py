"""Start (or find) Azurite, the storage emulator, for local runs and tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented; not a secret).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DEFAULT_PORTS = (10000, 10001, 10002)


def connection_string(blob: int, queue: int, table: int, host: str = "127.0.0.1") -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
        f"BlobEndpoint=http://{host}:{blob}/{ACCOUNT};QueueEndpoint=http://{host}:{queue}/{ACCOUNT};"
        f"TableEndpoint=http://{host}:{table}/{ACCOUNT};"
    )


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def azurite_binary() -> str | None:
    local = ROOT / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return str(local)
    return shutil.which("azurite")


@dataclass
class Azurite:
    """A running Azurite: ours (``process`` set) or one that was already there."""

    ports: tuple[int, int, int]
    process: subprocess.Popen[bytes] | None = None
    in_memory: bool = False

    @property
    def connection_string(self) -> str:
        return connection_string(*self.ports)

    def stop(self) -> None:
        """Stop Azurite if we started it. An in-memory instance has nothing to flush and
        Azurite can take ~10 s to honour SIGTERM once used, so it is killed after a short grace."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=1 if self.in_memory else 10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(
    *,
    ports: tuple[int, int, int] | None = None,
    location: Path | None = None,
    in_memory: bool = False,
    reuse: bool = True,
    timeout: float = 60.0,
) -> Azurite:
    """Reuse Azurite on ``ports`` if it is already listening, else start it and wait until it is."""
    ports = ports or DEFAULT_PORTS
    if reuse and all(port_open(p) for p in ports):
        return Azurite(ports)
    binary = azurite_binary()
    if binary is None:
        raise RuntimeError("Azurite is not installed: run `npm ci` (make does this for you).")
    args = [
        binary,
        "--silent",
        "--skipApiVersionCheck",
        "--loose",
        "--blobHost", "127.0.0.1", "--blobPort", str(ports[0]),
        "--queueHost", "127.0.0.1", "--queuePort", str(ports[1]),
        "--tableHost", "127.0.0.1", "--tablePort", str(ports[2]),
    ]
    if in_memory:
        args.append("--inMemoryPersistence")
    else:
        loc = location or (ROOT / ".azurite")
        loc.mkdir(parents=True, exist_ok=True)
        args += ["--location", str(loc)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Azurite exited with code {proc.returncode}")
        if all(port_open(p) for p in ports):
            return Azurite(ports, proc, in_memory)
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("Azurite did not start in time")


def ephemeral(in_memory: bool = True) -> Azurite:
    """A private Azurite on free ports (tests)."""
    return start(ports=(free_port(), free_port(), free_port()), in_memory=in_memory, reuse=False)


if __name__ == "__main__":
    az = start(reuse=True)
    print(az.connection_string if os.environ.get("PRINT_CONNECTION") else f"azurite on ports {az.ports}")
