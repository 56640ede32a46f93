"""The HTTP side of the local host: routing to HTTP functions, platform CORS, static files.

Behaves like the Functions front end on Azure where it matters to clients: routes
under ``/{routePrefix}``, case-insensitive route templates, the worker's
``Content-Type`` rule (``text/*`` gets ``; charset=``), and App Service platform CORS
(answered before the function runs, for the origins in ``CORS_ALLOWED_ORIGINS``).
Function ``authLevel`` is *not* enforced - ``func start`` does not enforce it either.
Errors the host produces itself use the API's JSON error envelope.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import posixpath
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import azure.functions as func

from local.host.config import FunctionInfo
from local.host.routes import RouteTemplate

log = logging.getLogger("local.host.http")

MAX_BODY_BYTES = 1024 * 1024
PREFLIGHT_MAX_AGE = 3600
DEFAULT_ALLOWED_HEADERS = "Authorization, Content-Type, x-correlation-id, Accept, Accept-Language"
EXPOSED_HEADERS = "Location, Retry-After, x-correlation-id"
ALL_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
_HOST_HEADER = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
_TOKEN_LIST = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+(\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*$")
_HOST_ERROR_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
# The web console's policy, on every static response (files and their 404s), as close to the deployed one
# (web/staticwebapp.config.json) as a same-origin local console allows: everything it loads or calls is this
# host (the API, /_dev helpers, the simulator's pages through /_dev/sim).
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; frame-src 'none'; manifest-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'; object-src 'none'"
)
STATIC_SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Security-Policy", CONSOLE_CSP),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)
_CONTENT_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
    ".woff2": "font/woff2",
    ".ico": "image/x-icon",
    ".webmanifest": "application/manifest+json",
}


@dataclass(frozen=True, slots=True)
class HttpRoute:
    """An HTTP function with its compiled route and methods (None: any method)."""

    route: RouteTemplate
    methods: frozenset[str] | None
    function: FunctionInfo


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """App Service platform CORS: exact origins (or ``*``), no credentials."""

    origins: frozenset[str]

    @classmethod
    def from_setting(cls, raw: str | None) -> CorsPolicy:
        items = (o.strip().rstrip("/") for o in (raw or "").split(","))
        return cls(frozenset(o.lower() for o in items if o))

    def allows(self, origin: str | None) -> bool:
        if not origin:
            return False
        return "*" in self.origins or origin.rstrip("/").lower() in self.origins


@dataclass(frozen=True, slots=True)
class Response:
    """What goes on the wire."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    @classmethod
    def error(cls, status: int, code: str, message: str, extra: Mapping[str, str] | None = None) -> Response:
        body = json.dumps({"error": {"code": code, "message": message}}, separators=(",", ":")).encode()
        headers = [("Content-Type", "application/json; charset=utf-8"), *_HOST_ERROR_HEADERS.items()]
        headers += list((extra or {}).items())
        return cls(status, headers, body)


Invoker = Callable[[FunctionInfo, func.HttpRequest], Any]
# A local-only handler outside the API prefix (method, raw target, headers, body); None: not mine.
Mount = Callable[[str, str, Mapping[str, str], bytes], "Response | None"]


class HttpFront:
    """Turns raw HTTP requests into HttpRequest objects for the app's HTTP functions."""

    def __init__(
        self,
        routes: Iterable[HttpRoute],
        *,
        route_prefix: str,
        cors: CorsPolicy,
        invoke: Invoker,
        web_dir: Path | None,
    ) -> None:
        self.routes = list(routes)
        self.prefix = "/" + route_prefix.strip("/") if route_prefix.strip("/") else ""
        self.cors = cors
        self.invoke = invoke
        self.web_dir = web_dir.resolve() if web_dir and web_dir.is_dir() else None
        self.mounts: list[Mount] = []

    def mount(self, handler: Mount) -> None:
        """Serve some non-API paths with ``handler`` before static files (local dev helpers only)."""
        self.mounts.append(handler)

    def local(self, method: str, raw_target: str, headers: Mapping[str, str], body: bytes) -> Response | None:
        """The first mounted handler's answer, or None to fall through to static files."""
        for handler in self.mounts:
            response = handler(method, raw_target, headers, body)
            if response is not None:
                return response
        return None

    def is_api(self, path: str) -> bool:
        if not self.prefix:
            return True
        low = path.lower()
        return low == self.prefix or low.startswith(self.prefix + "/")

    def route_path(self, path: str) -> str:
        return path[len(self.prefix) :].lstrip("/")

    def dispatch(
        self, method: str, raw_target: str, headers: Mapping[str, str], body: bytes, base_url: str
    ) -> Response:
        """Route one API request to its function and turn the result into a Response."""
        split = urlsplit(raw_target)
        path = self.route_path(split.path)
        allowed: set[str] = set()
        for entry in self.routes:
            values = entry.route.match(path)
            if values is None:
                continue
            if entry.methods is not None and method not in entry.methods:
                allowed.update(entry.methods)
                continue
            params: dict[str, str] = {}
            for key, value in parse_qsl(split.query, keep_blank_values=True):
                params.setdefault(key, value)
            request = func.HttpRequest(
                method=method,
                url=base_url + raw_target,
                headers=dict(headers),
                params=params,
                route_params=values,
                body=body,
            )
            return self._call(entry.function, request)
        if allowed:
            return Response.error(
                405,
                "method_not_allowed",
                f"This route does not accept {method}.",
                {"Allow": ", ".join(sorted(allowed))},
            )
        return Response.error(404, "not_found", "No function serves this path.")

    def _call(self, function: FunctionInfo, request: func.HttpRequest) -> Response:
        try:
            result = self.invoke(function, request)
        except Exception:
            # The traceback names code and lines only; request headers and body are never logged.
            log.exception("function %s raised", function.name)
            return Response.error(500, "internal_error", "Something went wrong on our side.")
        return to_response(result, function.name)

    def preflight(self, origin: str, headers: Mapping[str, str]) -> Response:
        """204 for an allowed origin, with the Access-Control-* answers a browser needs."""
        requested = headers.get("access-control-request-headers", "").strip()
        allow_headers = requested if requested and _TOKEN_LIST.match(requested) else DEFAULT_ALLOWED_HEADERS
        return Response(
            204,
            [
                ("Access-Control-Allow-Origin", origin),
                ("Access-Control-Allow-Methods", ALL_METHODS),
                ("Access-Control-Allow-Headers", allow_headers),
                ("Access-Control-Max-Age", str(PREFLIGHT_MAX_AGE)),
                ("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
            ],
            b"",
        )

    def with_cors(self, response: Response, origin: str | None) -> Response:
        if origin is None or not self.cors.allows(origin):
            return response
        headers = [(k, v) for k, v in response.headers if not k.lower().startswith("access-control-")]
        headers += [
            ("Access-Control-Allow-Origin", origin),
            ("Access-Control-Expose-Headers", EXPOSED_HEADERS),
        ]
        if not any(k.lower() == "vary" for k, _ in headers):
            headers.append(("Vary", "Origin"))
        else:
            headers = [(k, v + ", Origin" if k.lower() == "vary" else v) for k, v in headers]
        return Response(response.status, headers, response.body)

    def static(self, raw_path: str) -> Response:
        """A file of the web console (index.html for client-side routes), never outside its folder; every answer
        carries the console's Content-Security-Policy, Referrer-Policy and X-Frame-Options."""
        found = self._static(raw_path)
        headers = [(k, v) for k, v in found.headers if k.lower() not in {n.lower() for n, _ in STATIC_SECURITY_HEADERS}]
        return Response(found.status, [*headers, *STATIC_SECURITY_HEADERS], found.body)

    def _static(self, raw_path: str) -> Response:
        if self.web_dir is None:
            return Response.error(404, "not_found", "No function serves this path.")
        rel = unquote(raw_path)
        if "\x00" in rel or "\\" in rel:
            return Response.error(404, "not_found", "No such file.")
        parts = [p for p in rel.split("/") if p not in ("", ".")]
        if any(p == ".." for p in parts):
            return Response.error(404, "not_found", "No such file.")
        candidate = (self.web_dir.joinpath(*parts) if parts else self.web_dir).resolve()
        if not candidate.is_relative_to(self.web_dir):
            return Response.error(404, "not_found", "No such file.")
        if candidate.is_dir():
            candidate = candidate / "index.html"
        if not candidate.is_file():
            if parts and posixpath.splitext(parts[-1])[1]:
                return Response.error(404, "not_found", "No such file.")
            candidate = self.web_dir / "index.html"
            if not candidate.is_file():
                return Response.error(404, "not_found", "No such file.")
        suffix = candidate.suffix.lower()
        ctype = _CONTENT_TYPES.get(suffix) or mimetypes.guess_type(candidate.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype in ("application/json", "image/svg+xml"):
            ctype += "; charset=utf-8"
        cache = "no-cache" if suffix == ".html" else "public, max-age=300"
        return Response(
            200,
            [("Content-Type", ctype), ("Cache-Control", cache), ("X-Content-Type-Options", "nosniff")],
            candidate.read_bytes(),
        )


def to_response(result: Any, function_name: str) -> Response:
    """The worker's conversion of a function's return value (HttpResponse or str)."""
    if isinstance(result, func.HttpResponse):
        headers = list(result.headers.items())
        if not any(k.lower() == "content-type" for k, _ in headers):
            mimetype = result.mimetype or "text/plain"
            ctype = f"{mimetype}; charset={result.charset}" if mimetype.startswith("text/") else mimetype
            headers.append(("Content-Type", ctype))
        return Response(int(result.status_code), headers, result.get_body() or b"")
    if isinstance(result, str | bytes):
        body = result.encode("utf-8") if isinstance(result, str) else result
        return Response(200, [("Content-Type", "text/plain; charset=utf-8")], body)
    if result is None:
        return Response(204, [], b"")
    log.error("function %s returned %s, not an HttpResponse", function_name, type(result).__name__)
    return Response.error(500, "internal_error", "Something went wrong on our side.")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    front: HttpFront


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 60
    # Headers and body go out in separate writes on keep-alive connections; with Nagle on,
    # the client's delayed ACK adds ~40 ms to every response.
    disable_nagle_algorithm = True

    def version_string(self) -> str:
        return "local-functions-host"

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)

    def _handle(self) -> None:
        started = time.perf_counter()
        front = self.server.front
        method = self.command.upper()
        path = urlsplit(self.path).path
        headers = _headers(self)
        origin = headers.get("origin")
        try:
            if not front.is_api(path):
                mounted: Response | None = None
                if front.mounts:
                    local_body = self._read_body(headers)
                    if local_body is None:
                        self.close_connection = True
                    else:
                        mounted = front.local(method, self.path, headers, local_body)
                else:
                    self._drain_or_close(headers)
                if mounted is not None:
                    response = mounted
                elif method in ("GET", "HEAD"):
                    response = front.static(path)
                else:
                    response = Response.error(404, "not_found", "No function serves this path.")
            elif method == "OPTIONS" and origin and "access-control-request-method" in headers:
                self._drain_or_close(headers)
                # An origin not in the list gets no CORS headers, so the browser refuses the call.
                allowed = front.cors.allows(origin)
                response = front.preflight(origin, headers) if allowed else Response(204, [], b"")
            else:
                body = self._read_body(headers)
                if body is None:
                    response = Response.error(
                        413, "payload_too_large", f"The request body is larger than {MAX_BODY_BYTES} bytes."
                    )
                    self.close_connection = True
                else:
                    response = front.dispatch(method, self.path, headers, body, self._base_url(headers))
                response = front.with_cors(response, origin)
            self._write(response, head_only=method == "HEAD")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return
        except Exception:
            log.exception("local host failed on %s %s", method, path)
            response = Response.error(500, "internal_error", "Something went wrong on our side.")
            self.close_connection = True
            try:
                self._write(response, head_only=method == "HEAD")
            except OSError:
                return
        log.info("%s %s -> %s (%.1f ms)", method, path, response.status, (time.perf_counter() - started) * 1000)

    def _base_url(self, headers: Mapping[str, str]) -> str:
        host = headers.get("host", "")
        if not _HOST_HEADER.match(host):
            host = f"127.0.0.1:{self.server.server_address[1]}"
        return f"http://{host}"

    def _read_body(self, headers: Mapping[str, str]) -> bytes | None:
        """The body, or None when it is over the limit (then the connection is closed unread)."""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return self._read_chunked()
        length_text = headers.get("content-length", "0").strip() or "0"
        if not length_text.isdigit():
            self.close_connection = True
            return b""
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            return None
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024).strip()
            try:
                size = int(line.split(b";", 1)[0] or b"0", 16)
            except ValueError:
                self.close_connection = True
                return b""
            if size == 0:
                while self.rfile.readline(1024).strip():
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                return None
            chunks.append(self.rfile.read(size))
            self.rfile.readline(8)

    def _drain_or_close(self, headers: Mapping[str, str]) -> None:
        if self._read_body(headers) is None:
            self.close_connection = True

    def _write(self, response: Response, *, head_only: bool) -> None:
        self.send_response(response.status)
        for key, value in response.headers:
            if key.lower() in ("content-length", "transfer-encoding", "connection"):
                continue
            self.send_header(key, value)
        no_body = response.status in (204, 304) or 100 <= response.status < 200
        if not no_body:
            self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head_only and not no_body:
            self.wfile.write(response.body)


def _headers(handler: BaseHTTPRequestHandler) -> dict[str, str]:
    merged: dict[str, str] = {}
    for key, value in handler.headers.items():
        low = key.lower()
        merged[low] = f"{merged[low]}, {value}" if low in merged else value
    return merged


class HttpServer:
    """A ThreadingHTTPServer bound to 127.0.0.1 serving an HttpFront on a background thread."""

    def __init__(self, front: HttpFront, *, host: str = "127.0.0.1", port: int = 7071) -> None:
        self._server = _Server((host, port), _Handler)
        self._server.front = front
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)
