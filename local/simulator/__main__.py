"""``python -m local.simulator --port 7443 --ca-dir .local/ca``: run the simulator until interrupted."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading

from local.simulator.server import start_simulator
from local.simulator.state import DEFAULT_CLIENT_ID


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.simulator", description=__doc__)
    parser.add_argument("--port", type=int, default=7443)
    parser.add_argument("--ca-dir", default=".local/ca")
    parser.add_argument(
        "--service-url",
        default=os.environ.get("SIM_SERVICE_URL"),
        help="the service's base URL; redirect URIs under it are accepted (loopback always is)",
    )
    parser.add_argument("--client-id", default=os.environ.get("ENTRA_CLIENT_ID") or DEFAULT_CLIENT_ID)
    parser.add_argument(
        "--client-secret",
        default=os.environ.get("SIM_CLIENT_SECRET"),
        help="if set, client credentials must use exactly this secret",
    )
    parser.add_argument("--max-subscription-minutes", type=int, default=10080)
    parser.add_argument("--extra-users", type=int, default=int(os.environ.get("SIM_EXTRA_USERS", "0")))
    parser.add_argument("--validation-timeout", type=float, default=10.0)
    parser.add_argument(
        "--state-file",
        default=os.environ.get("SIM_STATE_FILE") or None,
        help="keep the tenants (events, subscriptions, consent, tokens) in this JSON file across restarts; "
        "without it everything lives in memory",
    )
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")

    handle = start_simulator(
        port=args.port,
        ca_dir=args.ca_dir,
        service_url=args.service_url,
        client_id=args.client_id,
        client_secret=args.client_secret,
        max_subscription_minutes=args.max_subscription_minutes,
        extra_users=args.extra_users,
        validation_timeout=args.validation_timeout,
        state_file=args.state_file,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"simulator listening on {handle.url}", flush=True)
    stop.wait()
    handle.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
