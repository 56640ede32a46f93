"""HTTP plumbing shared by every blueprint: the JSON envelope and error mapping in one place.

Handlers are thin: parse input, call one service, return a value. ``api`` wraps a
handler so that any ``ServiceError`` becomes the contract's error envelope with its
status (and ``Retry-After`` where it has one), any other exception becomes a bare
500 ``internal_error`` (logged by type and correlation id only: no stack trace or
message reaches the caller), and every response carries ``x-correlation-id``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import azure.functions as func

from core.domain.errors import BadRequest, PayloadTooLarge, ServiceError
from core.log import correlation, new_correlation_id
from core.settings import SettingsError

log = logging.getLogger("functions.http")

JSON = "application/json; charset=utf-8"
MAX_BODY_BYTES = 64 * 1024
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}

Handler = Callable[[func.HttpRequest], func.HttpResponse]


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> func.HttpResponse:
    """JSON with the security headers every API answer carries."""
    merged = dict(_SECURITY_HEADERS)
    merged.update(headers or {})
    return func.HttpResponse(
        body=json.dumps(body, separators=(",", ":"), default=str),
        status_code=status,
        headers=merged,
        mimetype="application/json",
        charset="utf-8",
    )


def empty_response(status: int = 204, headers: Mapping[str, str] | None = None) -> func.HttpResponse:
    merged = dict(_SECURITY_HEADERS)
    merged.update(headers or {})
    return func.HttpResponse(status_code=status, headers=merged)


def error_body(code: str, message: str, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = dict(details)
    return {"error": error}


def error_response(err: ServiceError) -> func.HttpResponse:
    """The contract's error envelope for ``err``; a ``challenge`` attribute becomes ``WWW-Authenticate``."""
    headers: dict[str, str] = {}
    if err.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(err.retry_after)))
    elif err.http_status in (429, 503):
        headers["Retry-After"] = "5"
    challenge = getattr(err, "challenge", None)
    if isinstance(challenge, str):
        headers["WWW-Authenticate"] = challenge
    elif err.http_status == 401:
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    status = err.http_status if 400 <= err.http_status < 600 else 500
    return json_response(error_body(err.code, err.message, err.details or None), status, headers)


def internal_error() -> func.HttpResponse:
    return json_response(error_body("internal_error", "Something went wrong on our side."), 500)


def text_response(text: str, status: int = 200, headers: Mapping[str, str] | None = None) -> func.HttpResponse:
    """Plain text (the Graph validation echo): never HTML, never sniffed as anything else."""
    merged = dict(_SECURITY_HEADERS)
    merged.update(headers or {})
    merged["Content-Type"] = "text/plain; charset=utf-8"
    return func.HttpResponse(body=text, status_code=status, headers=merged, mimetype="text/plain", charset="utf-8")


def read_body(req: func.HttpRequest, *, max_bytes: int = MAX_BODY_BYTES, required: bool = True) -> bytes | None:
    """The raw body; 413 over ``max_bytes``, 400 when required and empty, ``None`` when optional and empty."""
    raw = req.get_body() or b""
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"The request body is larger than {max_bytes} bytes.")
    if not raw.strip():
        if required:
            raise BadRequest("A JSON body is required.", code="body_required")
        return None
    return raw


def read_json(req: func.HttpRequest, *, max_bytes: int = MAX_BODY_BYTES, required: bool = True) -> Any:
    """The request's JSON body; 413 over ``max_bytes``, 400 when it is not JSON."""
    raw = read_body(req, max_bytes=max_bytes, required=required)
    if raw is None:
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise BadRequest("The request body is not valid JSON.", code="malformed_json") from exc


def api(handler: Handler) -> Handler:
    """Wrap a handler with correlation ids and the single error-to-envelope mapping."""

    def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        cid = new_correlation_id(req.headers.get("x-correlation-id"))
        started = time.perf_counter()
        with correlation(cid):
            try:
                response = handler(req)
            except ServiceError as err:
                response = error_response(err)
            except SettingsError:
                log.critical("request refused: the app settings are invalid (see start-up log)")
                response = json_response(
                    error_body("misconfigured", "The service is not configured correctly; its owner has been told."),
                    503,
                    {"Retry-After": "60"},
                )
            except Exception as exc:
                log.error("unhandled %s in %s", type(exc).__name__, handler.__name__)
                response = internal_error()
            response.headers["x-correlation-id"] = cid
            log.info(
                "%s %s -> %s",
                req.method,
                _route_of(req),
                response.status_code,
                extra={"status": response.status_code, "durationMs": round((time.perf_counter() - started) * 1000, 1)},
            )
            return response

    wrapper.__name__ = handler.__name__
    wrapper.__qualname__ = handler.__qualname__
    wrapper.__doc__ = handler.__doc__
    return wrapper


def _route_of(req: func.HttpRequest) -> str:
    # Only the path: query strings may carry codes, states or validation tokens.
    url = req.url or ""
    return url.split("?", 1)[0]
