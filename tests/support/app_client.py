"""An in-process client for the function app's HTTP triggers, dispatched by their binding metadata.

It does what the Functions host does before the Python worker sees a request: match
``/api/<route template>`` (case-insensitive, ``{name}``, ``{name:constraint}``,
``{name?}`` and ``{*rest}`` segments) and the trigger's methods, URL-decode the query
string into ``params`` (repeated keys joined with ","), decode route values into
``route_params``, and build ``func.HttpRequest``. The answer's ``Content-Type`` comes
from an explicit header or else from ``mimetype``/``charset``, as the worker does.
It does not enforce function keys (``func start`` does not either).

    client = AppClient(function_app.app)
    r = client.post("/api/sessions", json={...}, headers={"Authorization": f"Bearer {token}"})
    assert r.status == 202 and r.json()["status"] == "pending"
"""

from __future__ import annotations

import json as jsonlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import azure.functions as func

BASE = "http://127.0.0.1:7071"
_SEGMENT = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::[^}?]+)?(\??)\}")


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    function: str | None = None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    @property
    def content_type(self) -> str:
        return self.header("content-type") or ""

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None

    def json(self) -> Any:
        return jsonlib.loads(self.body)


@dataclass(frozen=True, slots=True)
class HttpFunction:
    name: str
    route: str
    methods: tuple[str, ...]
    auth_level: str
    pattern: re.Pattern[str]
    handler: Any = field(repr=False)


def _compile(route: str) -> re.Pattern[str]:
    out, pos = [], 0
    for m in _SEGMENT.finditer(route):
        out.append(re.escape(route[pos : m.start()]))
        catch_all, name, optional = m.group(1), m.group(2), m.group(3)
        body = f"(?P<{name}>.+)" if catch_all else f"(?P<{name}>[^/]+)"
        out.append(f"{body}?" if optional else body)
        pos = m.end()
    out.append(re.escape(route[pos:]))
    return re.compile("^" + "".join(out) + "/?$", re.IGNORECASE)


_indexed: list[tuple[func.FunctionApp, list[HttpFunction]]] = []


def http_functions(app: func.FunctionApp) -> list[HttpFunction]:
    """Every HTTP-triggered function of the app, from its binding metadata.

    Indexed once per app, like the host does (``get_functions`` refuses to run twice).
    """
    for known, functions in _indexed:
        if known is app:
            return functions
    functions = _index(app)
    _indexed.append((app, functions))
    return functions


def _index(app: func.FunctionApp) -> list[HttpFunction]:
    # get_functions() records the names it saw and refuses to run a second time: index with
    # an empty record (someone else may have indexed first) and put the record back after,
    # so the host, the local host or a test can still index the app.
    seen = app.functions_bindings
    app.functions_bindings = {}
    try:
        functions = app.get_functions()
    finally:
        app.functions_bindings = seen
    found = []
    for fn in functions:
        trigger = fn.get_trigger()
        if trigger is None or trigger.get_binding_name() != "httpTrigger":
            continue
        route = trigger.route or fn.get_function_name()
        methods = tuple(str(getattr(m, "value", m)).upper() for m in (trigger.methods or ["GET", "POST"]))
        level = str(getattr(trigger.auth_level, "value", trigger.auth_level))
        handler = fn.get_user_function()
        found.append(HttpFunction(fn.get_function_name(), route, methods, level, _compile(route), handler))
    # Like ASP.NET routing: literal segments win over parameters.
    return sorted(found, key=lambda f: len(_SEGMENT.findall(f.route)))


class AppClient:
    """Sends requests to the app's functions in-process."""

    def __init__(self, app: func.FunctionApp, prefix: str = "api") -> None:
        self.prefix = prefix.strip("/")
        self.functions = http_functions(app)

    def match(self, method: str, path: str) -> tuple[HttpFunction, dict[str, str]] | str | None:
        """The function and route values; ``None`` when no route matches, ``"method"`` when only the method is wrong."""
        rel = path.lstrip("/")
        if not rel.lower().startswith(self.prefix + "/") and rel.lower() != self.prefix:
            return None
        rel = rel[len(self.prefix) + 1 :]
        method_mismatch = False
        for fn in self.functions:
            m = fn.pattern.match(rel)
            if not m:
                continue
            if method.upper() not in fn.methods:
                method_mismatch = True
                continue
            return fn, {k: unquote(v) for k, v in m.groupdict().items() if v is not None}
        return "method" if method_mismatch else None

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | str | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        body: bytes | str | None = None,
    ) -> Response:
        split = urlsplit(path)
        raw_query = split.query
        if isinstance(query, str):
            raw_query = query
        elif query:
            raw_query = "&".join(x for x in (raw_query, urlencode(query)) if x)
        data = b""
        hdrs = dict(headers or {})
        if json is not None:
            data = jsonlib.dumps(json).encode("utf-8")
            hdrs.setdefault("Content-Type", "application/json")
        elif body is not None:
            data = body.encode("utf-8") if isinstance(body, str) else body
        matched = self.match(method, split.path)
        if matched is None:
            return Response(404, {}, b"")
        if matched == "method":
            return Response(405, {}, b"")
        assert not isinstance(matched, str)
        fn, route_params = matched
        params: dict[str, str] = {}
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            params[key] = f"{params[key]},{value}" if key in params else value
        url = f"{BASE}{split.path}" + (f"?{raw_query}" if raw_query else "")
        req = func.HttpRequest(method.upper(), url, headers=hdrs, params=params, route_params=route_params, body=data)
        result: func.HttpResponse = fn.handler(req)
        out_headers = dict(result.headers)
        if not any(k.lower() == "content-type" for k in out_headers) and result.get_body():
            out_headers["Content-Type"] = f"{result.mimetype}; charset={result.charset}"
        return Response(result.status_code, out_headers, result.get_body() or b"", fn.name)

    def get(self, path: str, **kw: Any) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Response:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Response:
        return self.request("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> Response:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Response:
        return self.request("DELETE", path, **kw)
