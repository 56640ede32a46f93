"""The route framework: declare a handler once, with everything auth, validation and OpenAPI need.

    @endpoint(bp, "POST", "sessions", auth=Auth.USER, body=CreateSessionBody,
              response=SessionAccepted, status=202, summary="Book a session", rate_limit="session_writes")
    def create_session(ctx: RequestContext[CreateSessionBody, NoQuery]) -> Handled: ...

``endpoint`` registers an Azure Functions HTTP trigger (``auth_level`` ANONYMOUS: the
bearer token is checked here; webhooks use FUNCTION so Azure checks ``?code=``) wrapped
by ``functions.http.api`` (correlation id, error envelope), then per request:

1. authenticates per ``auth`` (``functions.auth``): 401 / 403;
2. validates path, query and body with the declared pydantic models: 413 over the
   body limit, 400 for bad JSON, 422 ``validation_failed`` with
   ``details.fields = [{loc, msg, type}]`` (input values are never echoed);
3. applies the route's rate-limit policy, per caller and per tenant, shared across instances
   (the container's ``rate_limiter``; 429 + Retry-After);
4. calls the handler with a ``RequestContext`` and turns its return value into a
   response: a pydantic model / dict / list -> JSON with the declared status,
   ``None`` -> empty body, a ``Reply`` or ``func.HttpResponse`` -> as given.

Two cross-cutting behaviours live here, once, rather than in handlers:

* **Idempotent writes** (``idempotent=True``): a request carrying ``Idempotency-Key``
  (1-255 printable characters) is run at most once per caller and key within 24 h; the
  same key with the same request replays the first 2xx response (``Idempotent-Replayed:
  true``), with another request it is 422 ``idempotency_key_reused``
  (``core/services/idempotency.py``). Without the header the route runs as usual.
* **The app audit trail**: every request an app-only token makes (itself, or acting for
  a user through ``X-On-Behalf-Of``) is recorded once it is authenticated, whatever its
  outcome: acting app, user acted for, operation id, the ids involved (path, ``*Id``
  fields, the reply's ``id``) and the status; never a body's content
  (``AuditTrail.record_app_action``).

Every declaration is recorded in ``REGISTRY``, from which ``functions/openapi.py``
builds the OpenAPI document.

Models are named, not imported, where routes are declared: ``M = Models("functions.schemas.
sessions")`` then ``body=M.CreateSessionBody``. The schemas module (and pydantic) load when
the first request needs them, so indexing the app (a cold start) imports neither; handlers
import the reply models they build inside their body, for the same reason.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeAlias

import azure.functions as func
from typing_extensions import TypeVar

from core.bootstrap import Container, get_container
from core.domain.errors import BadRequest, NotImplementedYet, ServiceError, ValidationFailed
from core.log import correlation_id
from core.services.authz import Caller
from functions.auth import Auth, authenticate
from functions.http import MAX_BODY_BYTES, api, empty_response, json_response, read_body

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

log = logging.getLogger(__name__)

B = TypeVar("B", default=None)
Q = TypeVar("Q", default=Any)  # routes that declare no query get ``NoQuery``
P = TypeVar("P", default=None)


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A pydantic model named by module and class, imported on first use (module docstring)."""

    module: str
    name: str

    def resolve(self) -> type[BaseModel]:
        model: type[BaseModel] = getattr(importlib.import_module(self.module), self.name)
        return model

    @property
    def many(self) -> ListOf:
        """``list[Model]`` as a declared response."""
        return ListOf(self)


@dataclass(frozen=True, slots=True)
class ListOf:
    """A response that is a JSON array of ``ref``."""

    ref: ModelRef


class Models:
    """The models of one schemas module, by attribute: ``Models("functions.schemas.x").Body``."""

    def __init__(self, module: str) -> None:
        self._module = module

    def __getattr__(self, name: str) -> ModelRef:
        if name.startswith("_"):
            raise AttributeError(name)
        return ModelRef(self._module, name)


COMMON = Models("functions.schemas.common")
ModelSpec = ModelRef | None
ResponseSpec = ModelRef | ListOf | None


def _resolve(spec: ModelSpec) -> type[BaseModel] | None:
    return spec.resolve() if spec is not None else None

MAX_FIELD_ERRORS = 20
_MAX_LOC_CHARS = 64
IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_MAX_AUDIT_IDS = 10
_MAX_AUDIT_ID_CHARS = 128


@dataclass(frozen=True, slots=True)
class Reply:
    """A response other than "JSON with the declared status": another status, headers, or no body."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


Handled: TypeAlias = "BaseModel | Mapping[str, Any] | list[Any] | Reply | func.HttpResponse | None"


@dataclass(frozen=True, slots=True)
class RequestContext(Generic[B, Q, P]):
    """What a handler gets: the caller (None on anonymous routes), validated inputs, the container."""

    request: func.HttpRequest
    caller_or_none: Caller | None
    body: B
    query: Q
    path: P
    container_or_none: Container | None = None
    spec: RouteSpec | None = None

    def parse_body(self) -> Any:
        """Parse the body now (routes declared with ``defer_body=True`` decide when, e.g. after a handshake)."""
        assert self.spec is not None
        return _parse_body(self.spec, self.request) if self.spec.body is not None else None

    @property
    def container(self) -> Container:
        """The wired adapters (built on first use, so anonymous static routes never need settings)."""
        return self.container_or_none if self.container_or_none is not None else get_container()

    @property
    def caller(self) -> Caller:
        """The authenticated caller (authenticated routes only)."""
        if self.caller_or_none is None:
            raise RuntimeError("anonymous route has no caller")
        return self.caller_or_none

    @property
    def correlation_id(self) -> str:
        return correlation_id.get()


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """One declared route, as OpenAPI and the tests see it."""

    name: str
    method: str
    route: str
    auth: Auth
    summary: str
    status: int
    body_ref: ModelSpec = None
    body_required: bool = True
    query_ref: ModelSpec = None
    path_ref: ModelSpec = None
    response_ref: ResponseSpec = None
    response_content_type: str = "application/json"
    rate_limit: str | None = None
    onboarding: bool = False
    function_key: bool = False
    max_body_bytes: int = MAX_BODY_BYTES
    extra_statuses: tuple[int, ...] = ()
    tags: tuple[str, ...] = ()
    defer_body: bool = False
    idempotent: bool = False
    response_headers: tuple[tuple[str, str], ...] = ()  # (name, meaning) of headers a success may carry

    @property
    def path_template(self) -> str:
        return f"/api/{self.route}"

    @property
    def body(self) -> type[BaseModel] | None:
        return _resolve(self.body_ref)

    @property
    def query(self) -> type[BaseModel] | None:
        return _resolve(self.query_ref)

    @property
    def path(self) -> type[BaseModel] | None:
        return _resolve(self.path_ref)

    @property
    def response(self) -> tuple[type[BaseModel] | None, bool]:
        """``(model, is_list)`` of the declared response."""
        if isinstance(self.response_ref, ListOf):
            return self.response_ref.ref.resolve(), True
        return _resolve(self.response_ref), False


REGISTRY: list[RouteSpec] = []


def registered_routes() -> list[RouteSpec]:
    return list(REGISTRY)


def field_errors(exc: ValidationError, prefix: str) -> list[dict[str, Any]]:
    """Pydantic errors as ``{loc, msg, type}``, without the offending input values."""
    out: list[dict[str, Any]] = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = [prefix, *(str(p)[:_MAX_LOC_CHARS] if isinstance(p, str) else p for p in err["loc"])]
        out.append({"loc": loc, "msg": err["msg"], "type": err["type"]})
        if len(out) >= MAX_FIELD_ERRORS:
            break
    return out


def _validation_failed(fields: list[dict[str, Any]]) -> ValidationFailed:
    return ValidationFailed("Some values are not valid.", details={"fields": fields})


def _parse_mapping(model: type[BaseModel], data: Mapping[str, str], prefix: str) -> BaseModel:
    from pydantic import ValidationError

    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise _validation_failed(field_errors(exc, prefix)) from None


def _parse_body(spec: RouteSpec, req: func.HttpRequest) -> BaseModel | None:
    from pydantic import ValidationError

    body = spec.body
    assert body is not None
    raw = read_body(req, max_bytes=spec.max_body_bytes, required=spec.body_required)
    if raw is None:
        return None
    try:
        # Standard JSON only (no NaN/Infinity), checked by the stdlib parser first: 400, not 422.
        json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadRequest("The request body is not valid JSON.", code="malformed_json") from exc
    try:
        # Validated from the JSON text so strict mode keeps JSON's types (no "5" for 5).
        return body.model_validate_json(raw)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise BadRequest("The request body is not valid JSON.", code="malformed_json") from None
        raise _validation_failed(field_errors(exc, "body")) from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _to_response(spec: RouteSpec, result: Handled) -> func.HttpResponse:
    if isinstance(result, func.HttpResponse):
        return result
    status, body, headers = spec.status, result, {}
    if isinstance(result, Reply):
        status, body, headers = result.status, result.body, dict(result.headers)
    if body is None:
        return empty_response(status, headers)
    return json_response(_jsonable(body), status, headers)


def _jsonable(body: Any) -> Any:
    from pydantic import BaseModel

    if isinstance(body, BaseModel):
        return body.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(body, list | tuple):
        return [_jsonable(item) for item in body]
    if isinstance(body, Mapping):
        return {k: _jsonable(v) for k, v in body.items()}
    return body


def endpoint(
    bp: func.Blueprint,
    method: str,
    route: str,
    *,
    auth: Auth,
    summary: str,
    status: int = 200,
    body: ModelSpec = None,
    body_required: bool = True,
    query: ModelSpec = None,
    path: ModelSpec = None,
    response: ResponseSpec = None,
    response_content_type: str = "application/json",
    rate_limit: str | None = None,
    onboarding: bool = False,
    function_key: bool = False,
    max_body_bytes: int = MAX_BODY_BYTES,
    extra_statuses: tuple[int, ...] = (),
    tags: tuple[str, ...] = (),
    defer_body: bool = False,
    idempotent: bool = False,
    response_headers: tuple[tuple[str, str], ...] = (),
) -> Callable[[Callable[[Any], Handled]], Callable[[func.HttpRequest], func.HttpResponse]]:
    """Declare and register one contract route (see the module docstring)."""
    method = method.upper()

    def decorate(handler: Callable[[Any], Handled]) -> Callable[[func.HttpRequest], func.HttpResponse]:
        spec = RouteSpec(
            name=handler.__name__,
            method=method,
            route=route,
            auth=auth,
            summary=summary,
            status=status,
            body_ref=body,
            body_required=body_required,
            query_ref=query if query is not None else COMMON.NoQuery,
            path_ref=path,
            response_ref=response,
            response_content_type=response_content_type,
            rate_limit=rate_limit,
            onboarding=onboarding,
            function_key=function_key,
            max_body_bytes=max_body_bytes,
            extra_statuses=extra_statuses,
            tags=tags or (route.split("/", 1)[0],),
            defer_body=defer_body,
            idempotent=idempotent,
            response_headers=response_headers,
        )
        if any((s.method == method and s.route == route) or s.name == spec.name for s in REGISTRY):
            raise ValueError(f"route {method} /api/{route} ({spec.name}) is declared twice")

        def run(req: func.HttpRequest, container: Container | None, caller: Caller | None) -> func.HttpResponse:
            path_model, query_model = spec.path, spec.query
            path_value = _parse_mapping(path_model, req.route_params, "path") if path_model is not None else None
            query_value = _parse_mapping(query_model, req.params, "query") if query_model is not None else None
            body_value = _parse_body(spec, req) if body is not None and not defer_body else None
            if rate_limit is not None and caller is not None and container is not None:
                container.rate_limiter.take(rate_limit, caller)  # shared across instances (core/services/ratelimits.py)
            ctx: RequestContext[Any, Any, Any] = RequestContext(
                request=req,
                caller_or_none=caller,
                body=body_value,
                query=query_value,
                path=path_value,
                container_or_none=container,
                spec=spec,
            )
            key = req.headers.get(IDEMPOTENCY_HEADER) if idempotent and caller is not None else None
            if key is not None:
                return _run_idempotent(spec, handler, ctx, key)
            return _to_response(spec, handler(ctx))

        def entry(req: func.HttpRequest) -> func.HttpResponse:
            container = None if auth is Auth.ANONYMOUS else get_container()
            caller = authenticate(req, auth, container, onboarding=onboarding) if container is not None else None
            if container is None or caller is None or not caller.by_app:
                return run(req, container, caller)
            try:
                response = run(req, container, caller)
            except ServiceError as err:
                _audit_app(container, spec, caller, req, status=err.http_status, code=err.code, response=None)
                raise
            except Exception:
                _audit_app(container, spec, caller, req, status=500, code="internal_error", response=None)
                raise
            _audit_app(container, spec, caller, req, status=response.status_code, code=None, response=response)
            return response

        entry.__name__ = handler.__name__
        entry.__qualname__ = handler.__qualname__
        entry.__doc__ = handler.__doc__
        wrapped = api(entry)
        level = func.AuthLevel.FUNCTION if function_key else func.AuthLevel.ANONYMOUS
        bp.route(route=route, methods=[method], auth_level=level)(wrapped)
        REGISTRY.append(spec)
        return wrapped

    return decorate




def _run_idempotent(spec: RouteSpec, handler: Callable[[Any], Handled], ctx: RequestContext[Any, Any, Any],
                    key: str) -> func.HttpResponse:
    """Run the handler at most once per caller and key (module docstring); replay its 2xx answer."""
    from core.services.idempotency import Claim, Scope, fingerprint, valid_key

    if not valid_key(key):
        raise ValidationFailed(
            f"{IDEMPOTENCY_HEADER} must be 1 to 255 printable ASCII characters.",
            details={"fields": [{"loc": ["header", IDEMPOTENCY_HEADER], "msg": "1-255 printable characters"}]},
        )
    caller = ctx.caller
    service = ctx.container.idempotency
    req = ctx.request
    outcome = service.begin(
        Scope(caller.tenant_id, caller.object_id, caller.acting_app), key,
        # the query string is part of "the same request" too (DELETE /api/series/{id}?from=...)
        fingerprint(spec.method, spec.route, {**dict(req.route_params), **{f"?{k}": v for k, v in req.params.items()}},
                    req.get_body()),
    )
    if not isinstance(outcome, Claim):
        headers = {REPLAYED_HEADER: "true"}
        if outcome.location:
            headers["Location"] = outcome.location
        if outcome.body is None:
            return empty_response(outcome.status, headers)
        return json_response(json.loads(outcome.body), outcome.status, headers)
    try:
        response = _to_response(spec, handler(ctx))
    except BaseException:
        service.release(outcome)
        raise
    if 200 <= response.status_code < 300:
        raw = response.get_body()
        try:
            service.complete(outcome, response.status_code, raw.decode("utf-8") if raw else None,
                             response.headers.get("Location"))
        except ServiceError as exc:  # the write happened: answer it; only a replay is lost
            log.error("idempotency: the response could not be kept (%s)", exc.code)
    else:
        service.release(outcome)
    return response


def _audit_ids(req: func.HttpRequest, response: func.HttpResponse | None) -> dict[str, str]:
    """Ids a request names (path, ``*Id`` query and body fields) and the ``id`` it answered; no content."""
    found: dict[str, str] = {k: v for k, v in req.route_params.items() if isinstance(v, str)}
    found.update({k: v for k, v in req.params.items() if k.endswith("Id") and isinstance(v, str)})
    raw = req.get_body() or b""
    if raw.strip():
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            found.update({k: v for k, v in doc.items() if k.endswith("Id") and isinstance(v, str)})
    if response is not None and 200 <= response.status_code < 300:
        try:
            answer = json.loads(response.get_body() or b"null")
        except ValueError:
            answer = None
        if isinstance(answer, dict) and isinstance(answer.get("id"), str):
            found["id"] = answer["id"]
    return {k[:_MAX_LOC_CHARS]: v[:_MAX_AUDIT_ID_CHARS] for k, v in list(found.items())[:_MAX_AUDIT_IDS]}


def _audit_app(container: Container, spec: RouteSpec, caller: Caller, req: func.HttpRequest, *, status: int,
               code: str | None, response: func.HttpResponse | None) -> None:
    """Record one app request in the tenant's audit trail; a failure to record never fails the request."""
    app_id = caller.acting_app or caller.app_id or caller.object_id
    try:
        container.audit.record_app_action(
            caller.tenant_id, app_id, spec.name,
            on_behalf_of=caller.object_id if caller.acting_app else None,
            ids=_audit_ids(req, response), status=status, code=code,
        )
    except Exception as exc:
        log.error("an app action could not be written to the audit trail (%s)", type(exc).__name__)


def not_yet(feature: str) -> NotImplementedYet:
    """The 501 a contract route answers (after auth and validation) until its feature lands."""
    return NotImplementedYet(f"{feature} is not available yet.", code="not_implemented")
