"""A minimal receiver of the calendar integration's webhooks (Standard Webhooks), standard library only
plus the ``standardwebhooks`` package.

    WEBHOOK_SECRET=whsec_... python receiver.py --port 8000 [--state state.json]

For every POST it:

1. verifies the signature and timestamp over the raw body (``standardwebhooks``), else 400;
2. drops a repeated ``webhook-id`` (a retry or a replay of an event already handled);
3. for session events, drops a ``version`` not newer than the one last applied for that
   session (stale or out-of-date), so the product's copy only ever moves forward;
4. answers 204 at once and hands the event to the product (here: one JSON line on stdout).

Seen ids and versions live in memory and, with ``--state``, in a JSON file, so a restart
does not apply an event twice. A real product keeps them in its database, in the same
transaction as the change the event causes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

MAX_BODY = 256 * 1024
MAX_IDS = 100_000  # remembered webhook ids (oldest forgotten first); keep more if you replay far back


class Store:
    """What has been applied: webhook ids (bounded, oldest first) and the highest version per session."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.ids: OrderedDict[str, None] = OrderedDict()
        self.versions: dict[str, int] = {}
        self.lock = threading.Lock()
        if path is not None and path.exists():
            saved = json.loads(path.read_text(encoding="utf-8"))
            self.ids = OrderedDict.fromkeys(saved.get("ids", []))
            self.versions = {k: int(v) for k, v in saved.get("versions", {}).items()}

    def decide(self, webhook_id: str, event: dict[str, Any]) -> str:
        """``apply``, ``duplicate`` or ``stale``; records what is applied."""
        with self.lock:
            if webhook_id in self.ids:
                return "duplicate"
            data = event.get("data") or {}
            session, version = data.get("sessionId"), data.get("version")
            if isinstance(session, str) and isinstance(version, int):
                if version <= self.versions.get(session, 0):
                    self.ids[webhook_id] = None
                    return "stale"
                self.versions[session] = version
            self.ids[webhook_id] = None
            while len(self.ids) > MAX_IDS:
                self.ids.popitem(last=False)
            self._save()
            return "apply"

    def _save(self) -> None:
        if self.path is None:
            return
        temp = self.path.with_suffix(".tmp")
        temp.write_text(json.dumps({"ids": list(self.ids), "versions": self.versions}), encoding="utf-8")
        temp.replace(self.path)


def handle_event(event: dict[str, Any]) -> None:
    """The product's work: here, one line per applied event (queue it in a real product)."""
    data = event.get("data") or {}
    line = {"applied": event.get("type"), "sessionId": data.get("sessionId"), "version": data.get("version")}
    print(json.dumps(line), flush=True)


def make_handler(webhook: Webhook, store: Store) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY:
                self._answer(413)
                return
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                event = webhook.verify(body, headers)
            except WebhookVerificationError:
                self._answer(400)
                return
            decision = store.decide(headers["webhook-id"], event)
            self._answer(204)
            if decision == "apply":
                handle_event(event)
            else:
                print(json.dumps({"ignored": decision, "webhookId": headers["webhook-id"]}), flush=True)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return  # no access log: URLs and headers are not worth keeping

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--state", type=Path, help="JSON file keeping seen ids and versions across restarts")
    args = parser.parse_args(argv)
    secret = os.environ.get("WEBHOOK_SECRET", "")
    if not secret.startswith("whsec_"):
        print("set WEBHOOK_SECRET to the endpoint's secret (whsec_...)", file=sys.stderr)
        return 2
    server = ThreadingHTTPServer((args.host, args.port), make_handler(Webhook(secret), Store(args.state)))
    print(json.dumps({"listening": f"http://{args.host}:{server.server_address[1]}/"}), flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
