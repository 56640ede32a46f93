"""The local Functions host as its own process, so a fault run can SIGKILL it mid-work and start it again.

``python -m tests.faults.hostproc --port P`` reads every setting from its environment
(the parent passes them), creates the app's tables and queues, and serves
``function_app`` until SIGTERM. Queue polling is fast (0.5 s) and a message being
processed stays invisible for ``FAULTS_RECEIVE_VISIBILITY`` seconds (default 20): after
a SIGKILL the messages in flight reappear after that long, as on Azure after the
(longer) invocation lease, and are processed again - which is what the run proves safe.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.hostproc")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    for noisy in ("azure", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))

    from local.host import Host, QueueOptions
    from local.host.cli import provision

    env = dict(os.environ)
    connection = env["AzureWebJobsStorage"]
    provision(connection)
    import function_app

    options = QueueOptions(
        batch_size=16,
        max_polling_interval=0.5,
        visibility_timeout=float(env.get("FAULTS_VISIBILITY_TIMEOUT", "2")),
        max_dequeue_count=5,
        receive_visibility=float(env.get("FAULTS_RECEIVE_VISIBILITY", "20")),
    )
    host = Host(function_app.app, env=env, host_json=ROOT / "host.json", port=args.port,
                storage_connection_string=connection, poll=options)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    host.start()
    print(f"hostproc ready on {host.api_url}", flush=True)
    while not stop.wait(0.5):
        pass
    host.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
