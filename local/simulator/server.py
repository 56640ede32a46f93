"""The https server: one ``ThreadingHTTPServer`` on 127.0.0.1, routing to Entra, Graph and /_sandbox."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from local.certs import ensure_ca
from local.simulator import persist
from local.simulator.control import Control
from local.simulator.entra import Entra, Keys
from local.simulator.graph import Graph
from local.simulator.notifier import Notifier
from local.simulator.persist import Persister
from local.simulator.state import DEFAULT_CLIENT_ID, Config, SimState
from local.simulator.web import Request, Response, json_response

log = logging.getLogger("local.simulator")
_MAX_BODY = 4 * 1024 * 1024


class _App:
    """Routes a parsed request to the right handler and logs Graph/Entra traffic."""

    def __init__(self, state: SimState, entra: Entra, graph: Graph, control: Control) -> None:
        self.state = state
        self.entra = entra
        self.graph = graph
        self.control = control

    def __call__(self, req: Request) -> Response:
        segs = req.segments
        if req.method != "GET":
            # Any non-GET may change what the tenant keeps (events, consent, tokens, subscriptions):
            # the persister (if there is a state file) saves a moment later.
            self.state.changed()
        if segs[:1] == ["_sandbox"]:
            return self.control.dispatch(req)
        if segs[:1] == ["v1.0"]:
            resp, tid = self.graph.handle(req)
            self.state.log_request(req.method, req.path, resp.status, tid)
            return resp
        routed = self.entra.dispatch(req)
        if routed is None:
            resp = json_response(404, {"error": "not_found", "error_description": f"No route {req.method} {req.path}"})
            self.state.log_request(req.method, req.path, 404, None)
            return resp
        resp, tid = routed
        self.state.log_request(req.method, req.path, resp.status, tid)
        return resp


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "M365Simulator/1.0"
    timeout = 60
    wbufsize = 64 * 1024  # headers and body leave in one segment (no Nagle/delayed-ACK stalls)
    disable_nagle_algorithm = True
    app: _App

    def setup(self) -> None:
        super().setup()
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            self._write(json_response(413, {"error": {"code": "RequestEntityTooLarge", "message": "Body too large."}}))
            return
        body = self.rfile.read(length) if length else b""
        req = Request.from_target(self.command, self.path, dict(self.headers.items()), body)
        try:
            resp = self.app(req)
        except Exception:
            log.exception("simulator handler failed for %s %s", self.command, req.path)
            resp = json_response(500, {"error": {"code": "InternalServerError", "message": "Simulator failure."}})
        self._write(resp)

    def _write(self, resp: Response) -> None:
        self.send_response(resp.status)
        for key, value in resp.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._open: set[Any] = set()
        self._open_lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address, exc_info=True)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End kept-alive connections: after a stop no client may reach this instance's state any more
        (a restarted simulator on the same port must be the only one answering)."""
        with self._open_lock:
            conns, self._open = list(self._open), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


@dataclass
class SimulatorHandle:
    """A running simulator: its URL, CA bundle and state; ``stop()`` shuts it down."""

    url: str
    port: int
    ca_path: Path
    state: SimState
    notifier: Notifier
    _server: _Server
    _thread: threading.Thread
    persister: Persister | None = None

    def stop(self) -> None:
        """Stop serving, then save what a tenant keeps (when there is a state file): nothing acknowledged is lost."""
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        self.notifier.stop()
        self._thread.join(timeout=5)
        if self.persister is not None:
            self.persister.stop()

    def wait_notifications(self, timeout: float = 10.0) -> bool:
        """Block until every queued change/lifecycle notification has been delivered (or given up)."""
        return self.notifier.wait_idle(timeout)


def start_simulator(
    port: int = 0,
    ca_dir: str | Path = ".local/ca",
    *,
    service_url: str | None = None,
    client_id: str = DEFAULT_CLIENT_ID,
    client_secret: str | None = None,
    max_subscription_minutes: int = 10080,
    extra_users: int = 0,
    validation_timeout: float = 10.0,
    notification_retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0),
    mailbox_concurrency: int = 4,
    state_file: str | Path | None = None,
) -> SimulatorHandle:
    """Start the simulator in a background thread (port 0 picks a free port).

    With ``state_file`` the tenants are loaded from it when it exists (else seeded and saved) and
    every change is saved back (``local/simulator/persist.py``); without, they live in memory only."""
    files = ensure_ca(ca_dir)
    config = Config(
        client_id=client_id.lower(),
        client_secret=client_secret,
        service_url=service_url,
        max_subscription_minutes=max_subscription_minutes,
        validation_timeout=validation_timeout,
        extra_users=extra_users,
        mailbox_concurrency=mailbox_concurrency,
        notification_retry_delays=notification_retry_delays,
    )
    state = SimState(config)
    saved = persist.read(Path(state_file)) if state_file else None
    key = (saved or {}).get("signingKey") or {}
    keys = Keys(key.get("pem"), key.get("kid"))
    persister: Persister | None = None
    if state_file:
        if saved is not None:
            with state.lock:
                persist.restore(state, saved)
        persister = Persister(state, Path(state_file), keys.private_pem(), keys.kid)
        state.change_hooks.append(persister.mark)
        persister.mark()  # a fresh seed is written at once; a loaded one is rewritten unchanged
    entra = Entra(state, keys)
    verify = str(files.ca_pem)
    notifier = Notifier(
        verify=verify,
        retry_delays=config.notification_retry_delays,
        faults=lambda: (state.faults.notifications, state.faults.duplicates),
    )
    state.sink = notifier.enqueue
    state.reset_hooks.append(notifier.deliveries.clear)
    graph = Graph(state, keys, entra, notifier, verify)
    control = Control(state, entra, graph, notifier)

    handler = type("SimHandler", (_Handler,), {"app": _App(state, entra, graph, control)})
    server = _Server(("127.0.0.1", port), handler, bind_and_activate=False)
    server.socket = _tls_socket(server.socket, files.server_cert_pem, files.server_key_pem)
    server.server_bind()
    server.server_activate()
    actual = server.server_address[1]
    state.base_url = f"https://127.0.0.1:{actual}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="sim-server", daemon=True
    )
    thread.start()
    return SimulatorHandle(state.base_url, actual, files.ca_pem, state, notifier, server, thread, persister)


def _tls_socket(sock: socket.socket, cert: Path, key: Path) -> socket.socket:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    return ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
