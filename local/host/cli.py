"""``python -m local.host``: validate settings, ensure storage, import the app, serve until stopped."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

from azure.core.exceptions import AzureError

from core.names import Queues, Tables
from core.settings import Settings, SettingsError
from local import azurite
from local.host import Host, QueueOptions
from local.host.config import HostConfigError, HostJson
from local.host.queues import ensure_queue, queue_client
from local.settings import ROOT, SETTINGS_FILE, LocalSettingsError, azurite_ports, load_env

LOCAL_MAX_POLLING_SECONDS = 0.5  # idle queue polling on a developer's machine (see serve)

log = logging.getLogger("local.host")


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    for noisy in ("azure", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def install_signal_handlers(stop: threading.Event) -> None:
    """Ctrl-C and SIGTERM set ``stop`` so shutdown runs in the main thread, in order."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():  # second Ctrl-C: give up waiting politely
            raise KeyboardInterrupt
        print(f"\n{signal.Signals(signum).name}: stopping...", file=sys.stderr)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def ensure_storage(connection_string: str, *, location: Path | None = None) -> azurite.Azurite | None:
    """Start Azurite when the connection string points at a local emulator that is not running."""
    ports = azurite_ports(connection_string)
    if ports is None:
        return None
    return azurite.start(ports=ports, reuse=True, location=location or ROOT / ".azurite")


def provision(connection_string: str) -> None:
    """Create the app's tables, queues and poison queues if they are missing (as infra/ does on Azure)."""
    from azure.data.tables import TableServiceClient

    tables = TableServiceClient.from_connection_string(connection_string, retry_total=2)
    for table in Tables.ALL:
        tables.create_table_if_not_exists(table)
    for queue in Queues.ALL:
        ensure_queue(queue_client(connection_string, queue))
        ensure_queue(queue_client(connection_string, Queues.poison(queue)))


def load_app(ref: str) -> Any:
    """``module:attribute`` -> the FunctionApp (imported only after the environment is set)."""
    module_name, _, attr = ref.partition(":")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    module = importlib.import_module(module_name)
    return getattr(module, attr or "app")


def local_queue_options(host_json: Path) -> QueueOptions:
    """host.json's queue settings, polling idle queues at most every 0.5 s.

    One instance on a developer's machine: host.json's 2 s is Azure's, where every instance's
    idle polls are billed storage transactions. A change in Outlook crosses two queues before
    it reaches the product's webhook (docs/benchmarks.md, bench/product_events.py).
    """
    queues = HostJson.load(host_json).queues
    return replace(queues, max_polling_interval=min(queues.max_polling_interval, LOCAL_MAX_POLLING_SECONDS))


def serve(
    env: Mapping[str, str],
    *,
    app_ref: str = "function_app:app",
    port: int = 7071,
    host_json: Path | None = None,
    web_dir: Path | None = None,
    stop: threading.Event | None = None,
    banner: Callable[[Host], None] | None = None,
) -> int:
    """Run the app until ``stop`` is set (or a signal arrives); the process exit code."""
    try:
        Settings.from_env(env)
    except SettingsError as exc:
        print(f"local host: cannot start.\n{exc}", file=sys.stderr)
        return 1
    if azurite.port_open(port):
        print(
            f"local host: 127.0.0.1:{port} is already in use - is the local stack (make run) already running? "
            f"Stop it or pass --port.",
            file=sys.stderr,
        )
        return 1
    connection = env.get("AzureWebJobsStorage", "")
    if "AccountName=" not in connection and "UseDevelopmentStorage" not in connection:
        print("local host: AzureWebJobsStorage must be a storage connection string locally.", file=sys.stderr)
        return 1
    stop = stop or threading.Event()
    emulator: azurite.Azurite | None = None
    host: Host | None = None
    try:
        emulator = ensure_storage(connection)
        if emulator is not None and emulator.process is not None:
            log.info("started Azurite on ports %s (data in .azurite/)", emulator.ports)
        provision(connection)
        os.environ.update(env)
        app = load_app(app_ref)
        host_json = host_json or ROOT / "host.json"
        host = Host(
            app,
            env=env,
            host_json=host_json,
            port=port,
            storage_connection_string=connection,
            web_dir=web_dir,
            poll=local_queue_options(host_json),
        )
        host.start()
        if banner:
            banner(host)
        else:
            print(f"local host: serving {host.api_url} (Ctrl-C to stop)", flush=True)
        while not stop.wait(0.5):
            pass
        return 0
    except (HostConfigError, RuntimeError) as exc:
        print(f"local host: cannot start: {exc}", file=sys.stderr)
        return 1
    except AzureError as exc:
        print(f"local host: storage is not reachable ({type(exc).__name__}): {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if host is not None:
            host.stop()
        if emulator is not None:
            emulator.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.host", description=__doc__)
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--app", default="function_app:app", help="module:attribute of the FunctionApp")
    parser.add_argument("--host-json", type=Path, default=ROOT / "host.json")
    parser.add_argument("--settings", type=Path, default=SETTINGS_FILE, help="func-start local.settings.json")
    parser.add_argument("--web-dir", type=Path, default=None, help="static files served at / (default web/dist)")
    args = parser.parse_args(argv)
    configure_logging()
    try:
        env = load_env(args.settings)
    except LocalSettingsError as exc:
        print(f"local host: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    install_signal_handlers(stop)
    return serve(env, app_ref=args.app, port=args.port, host_json=args.host_json, web_dir=args.web_dir, stop=stop)
