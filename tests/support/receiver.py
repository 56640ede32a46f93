"""A real HTTP receiver for webhook tests: a threaded ``http.server`` on a free loopback port.

It records every POST (headers, body, time), verifies signatures with the ``standardwebhooks``
package when given the secret, and answers from a script (a status per request, a delay, or
"down": the socket refuses connections while the server is stopped).
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True, slots=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Start with ``start()``; ``url`` is where it listens. ``answer(received) -> status`` decides the reply."""

    answer: Callable[[dict[str, str], bytes], int] = field(default=lambda headers, body: 200)
    delay: float = 0.0
    tls: tuple[str, str] | None = None  # (cert file, key file)
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                if outer.delay:
                    time.sleep(outer.delay)
                status = outer.answer(headers, body)
                with outer._lock:
                    outer.received.append(Received(self.path, headers, body, time.time(), status))
                try:
                    self.send_response(status)
                    if 300 <= status < 400:
                        self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender closes without reading the body

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening (connections are refused until ``start()`` again, on the same port)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def delivered(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if 200 <= r.status < 300]

    def verify(self, secret: str, item: Received) -> Any:
        """The payload, verified with ``standardwebhooks`` (raises ``WebhookVerificationError`` otherwise)."""
        return Webhook(secret).verify(item.body, item.headers)


__all__ = ["Received", "Receiver", "WebhookVerificationError"]
