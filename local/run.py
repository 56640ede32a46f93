"""``python -m local.run`` (``make run``): the whole local stack in one command.

Azurite (data kept in ``.azurite/``), the Microsoft 365 simulator as a child process
on https://127.0.0.1:7443, and the function app on http://127.0.0.1:7071 in this
process, all wired by ``local.settings.LOCAL_DEFAULTS`` (overridable by
``local.settings.json`` and the environment). The local secret store is seeded with
the simulator app's client secret. Ctrl-C or SIGTERM stops everything this command
started; a second ``make run`` while one is running says so and exits.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from core.settings import Settings, SettingsError
from local import azurite
from local.host import Host
from local.host.cli import configure_logging, install_signal_handlers, serve
from local.settings import (
    HOST_PORT,
    LOCAL_DEFAULTS,
    ROOT,
    SETTINGS_FILE,
    SIMULATOR_PORT,
    LocalSettingsError,
    load_env,
)

CLIENT_SECRET_NAME = "entra-client-secret"
LOCAL_CLIENT_SECRET = "local-dev-secret"  # the simulator app's well-known local credential, not a secret
SIMULATOR_START_TIMEOUT = 30.0
SIMULATOR_STATE_FILE = ROOT / ".azurite" / "m365-simulator.json"


def already_running(ports: Mapping[str, int]) -> list[str]:
    """Which of our ports are taken, as ``'name (127.0.0.1:port)'``."""
    return [f"{name} (127.0.0.1:{port})" for name, port in ports.items() if azurite.port_open(port)]


def seed_secrets(env: Mapping[str, str]) -> None:
    """Give the local secret store the simulator app's client secret unless one is there already."""
    directory = ROOT / env.get("LOCAL_SECRETS_DIR", ".local/secrets")
    try:
        from core.adapters.local_secrets import LocalFileSecretStore
    except ImportError:  # pragma: no cover - the adapter is part of the project; kept for partial checkouts
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = directory / CLIENT_SECRET_NAME
        if not target.exists():
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(LOCAL_CLIENT_SECRET)
        return
    store = LocalFileSecretStore(directory)
    if store.get(CLIENT_SECRET_NAME) is None:
        store.set(CLIENT_SECRET_NAME, LOCAL_CLIENT_SECRET)


def simulator_available() -> bool:
    try:
        return importlib.util.find_spec("local.simulator.__main__") is not None
    except ModuleNotFoundError:
        return False


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGTERM if this process dies without cleaning up (no orphans)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def start_simulator(*, port: int, service_port: int, ca_dir: Path) -> subprocess.Popen[bytes]:
    """Start the simulator and wait until it listens; RuntimeError if it exits or hangs."""
    cmd = [
        sys.executable,
        "-m",
        "local.simulator",
        "--port",
        str(port),
        "--ca-dir",
        str(ca_dir),
        "--service-url",
        f"http://127.0.0.1:{service_port}",
        # Beside Azurite's data: sessions and subscription rows kept there need the events and
        # subscriptions they name to be kept here too (`make clean` removes both).
        "--state-file",
        str(SIMULATOR_STATE_FILE),
    ]
    preexec: Callable[[], None] | None = _die_with_parent if sys.platform.startswith("linux") else None
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, preexec_fn=preexec)  # noqa: PLW1509
    deadline = time.monotonic() + SIMULATOR_START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the Microsoft 365 simulator exited with code {proc.returncode} (see its output above)")
        if azurite.port_open(port):
            return proc
        time.sleep(0.2)
    stop_process(proc)
    raise RuntimeError(f"the Microsoft 365 simulator did not listen on 127.0.0.1:{port} within 30 s")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def banner(sim_port: int | None) -> Callable[[Host], None]:
    def show(host: Host) -> None:
        lines = [
            "",
            "Local stack is up (Ctrl-C stops everything):",
            f"  API          {host.api_url}",
            f"  health       {host.api_url}/health (readiness: {host.api_url}/health/ready)",
            f"  web console  {host.url}/",
            f"  simulator    https://127.0.0.1:{sim_port}" if sim_port else "  simulator    (not running)",
            "  storage      Azurite on 127.0.0.1:10000-10002 (data in .azurite/)",
            "",
        ]
        print("\n".join(lines), flush=True)

    return show


def web_console(sim_port: int | None, env: Mapping[str, str], show: Callable[[Host], None]) -> Callable[[Host], None]:
    """Before the banner: build the console if needed and mount its local sign-in helpers (local/devauth.py)."""

    def start(host: Host) -> None:
        if sim_port is not None:
            from local.devauth import DevAuth, attach

            ca = ROOT / ".local" / "ca" / "ca.pem"
            attach(host, DevAuth(simulator_url=f"https://127.0.0.1:{sim_port}", ca_path=ca,
                                 client_id=env.get("ENTRA_CLIENT_ID", "")))
        show(host)

    return start


def build_web_console() -> None:
    """``npm run build:web`` when web/dist is missing or older than web/src (skipped without node_modules)."""
    dist, src = ROOT / "web" / "dist" / "index.html", ROOT / "web"
    if not (ROOT / "node_modules" / ".bin" / "esbuild").exists():
        if not dist.exists():
            print("local stack: web console not built (run `npm ci` then `npm run build:web`).", file=sys.stderr)
        return
    sources = [p for p in src.rglob("*") if p.is_file() and "dist" not in p.relative_to(src).parts]
    if dist.exists() and all(p.stat().st_mtime <= dist.stat().st_mtime for p in sources):
        return
    result = subprocess.run(["npm", "run", "--silent", "build:web"], cwd=ROOT, check=False)
    if result.returncode != 0:
        print("local stack: building the web console failed (see above); the API still runs.", file=sys.stderr)


def retarget(env: dict[str, str], *, port: int, sim_port: int) -> None:
    """Follow non-default ports in the settings that still have their default values."""
    swaps = {f"127.0.0.1:{HOST_PORT}": f"127.0.0.1:{port}", f"127.0.0.1:{SIMULATOR_PORT}": f"127.0.0.1:{sim_port}"}
    for key in ("AUTHORITY_HOST", "GRAPH_BASE_URL", "PUBLIC_BASE_URL", "APP_URL", "CORS_ALLOWED_ORIGINS"):
        if env.get(key) == LOCAL_DEFAULTS.get(key):
            value = env[key]
            for old, new in swaps.items():
                value = value.replace(old, new)
            env[key] = value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.run", description=__doc__)
    parser.add_argument("--port", type=int, default=HOST_PORT)
    parser.add_argument("--simulator-port", type=int, default=SIMULATOR_PORT)
    parser.add_argument("--no-simulator", action="store_true", help="use the Microsoft 365 endpoints in the env")
    parser.add_argument("--settings", type=Path, default=SETTINGS_FILE)
    args = parser.parse_args(argv)
    configure_logging()
    os.chdir(ROOT)  # relative paths in the settings (.local/..., .azurite/) are from the project root

    ports = {"API": args.port} | ({} if args.no_simulator else {"simulator": args.simulator_port})
    busy = already_running(ports)
    if busy:
        print(
            "The local stack looks already running: " + ", ".join(busy) + " in use.\n"
            f"Open http://127.0.0.1:{args.port}/api/health, or stop the other `make run` (Ctrl-C in its terminal).",
            file=sys.stderr,
        )
        return 1
    try:
        env = load_env(args.settings)
    except LocalSettingsError as exc:
        print(f"local stack: {exc}", file=sys.stderr)
        return 1
    retarget(env, port=args.port, sim_port=args.simulator_port)
    try:
        Settings.from_env(env)
    except SettingsError as exc:
        print(f"local stack: cannot start.\n{exc}", file=sys.stderr)
        return 1

    stop = threading.Event()
    install_signal_handlers(stop)
    seed_secrets(env)
    simulator: subprocess.Popen[bytes] | None = None
    sim_port: int | None = None
    try:
        if args.no_simulator:
            pass
        elif not simulator_available():
            print(
                "local stack: the Microsoft 365 simulator (local/simulator) is not available yet - skipping it. "
                f"The app still points at https://127.0.0.1:{args.simulator_port}, so Graph calls will fail.",
                file=sys.stderr,
            )
        else:
            simulator = start_simulator(port=args.simulator_port, service_port=args.port, ca_dir=ROOT / ".local" / "ca")
            sim_port = args.simulator_port
        build_web_console()
        return serve(env, port=args.port, stop=stop, banner=web_console(sim_port, env, banner(sim_port)))
    except RuntimeError as exc:
        print(f"local stack: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if simulator is not None:
            stop_process(simulator)


if __name__ == "__main__":
    sys.exit(main())
