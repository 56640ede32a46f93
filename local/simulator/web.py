"""Tiny request/response values shared by the Entra, Graph and control handlers.

Handlers are plain functions ``Request -> Response`` so ``$batch`` can run a part
through the same Graph pipeline without any HTTP in between.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from local.simulator.timeutil import iso_z, now_utc


@dataclass
class Request:
    """An HTTP request as the handlers see it (header names lower-cased)."""

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @classmethod
    def from_target(cls, method: str, target: str, headers: dict[str, str], body: bytes) -> Request:
        parts = urlsplit(target)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        return cls(method.upper(), unquote(parts.path), query, {k.lower(): v for k, v in headers.items()}, body)

    def json(self) -> Any:
        """The JSON body, or ``None`` when empty; raise ``GraphError`` 400 when malformed."""
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from exc

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))

    @property
    def segments(self) -> list[str]:
        return [s for s in self.path.split("/") if s]


@dataclass
class Response:
    """An HTTP response; ``body`` is bytes, ``json_body`` keeps the object for ``$batch``."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    json_body: Any = None


class GraphError(Exception):
    """Raise from a Graph handler to answer with Graph's error envelope."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def json_response(status: int, obj: Any, headers: dict[str, str] | None = None) -> Response:
    data = json.dumps(obj).encode()
    hdrs = {"Content-Type": "application/json; charset=utf-8"}
    hdrs.update(headers or {})
    return Response(status, hdrs, data, obj)


def empty(status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(status, dict(headers or {}), b"")


def redirect(url: str) -> Response:
    return Response(302, {"Location": url, "Cache-Control": "no-store"}, b"")


def add_query(url: str, params: dict[str, str]) -> str:
    """Append query parameters to a URL that may already carry some."""
    sep = "&" if "?" in url else "?"
    return url + sep + urlencode(params)


def graph_error_response(err: GraphError, client_request_id: str | None = None) -> Response:
    """Graph's error envelope with an innerError carrying request ids and date."""
    request_id = str(uuid.uuid4())
    inner = {
        "date": iso_z(now_utc())[:19],
        "request-id": request_id,
        "client-request-id": client_request_id or request_id,
    }
    body = {"error": {"code": err.code, "message": err.message, "innerError": inner}}
    headers = {"request-id": request_id, **err.headers}
    if err.status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="", error="invalid_token"')
    return json_response(err.status, body, headers)


def control_error(status: int, code: str, message: str) -> Response:
    """The control API's error shape (same as the service's)."""
    return json_response(status, {"error": {"code": code, "message": message}})
