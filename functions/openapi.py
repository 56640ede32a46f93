"""The OpenAPI 3.1 document, generated from the route registry and the pydantic models.

Routes validate with the same classes this module turns into JSON Schema
(``models_json_schema``, refs into ``components/schemas``), so the published contract
cannot drift from what the code accepts. OpenAPI 3.1 uses JSON Schema 2020-12, which
is what pydantic emits, so schemas go in unchanged.
"""

from __future__ import annotations

import copy
import threading
from typing import Any, Final, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from functions.auth import Auth
from functions.endpoint import RouteSpec, registered_routes
from functions.schemas.meta import Error
from functions.schemas.product_webhooks import WEBHOOKS
from functions.schemas.webhooks import MAX_VALIDATION_TOKEN_CHARS

REF_TEMPLATE: Final = "#/components/schemas/{model}"
_ERRORS: Final[dict[int, tuple[str, str]]] = {
    400: ("BadRequest", "Malformed request (not JSON, missing body)."),
    401: ("Unauthorized", "No or invalid bearer token (see WWW-Authenticate)."),
    403: ("Forbidden", "Valid caller, not allowed (tenant not onboarded, missing role or scope)."),
    404: ("NotFound", "Not found (also for another tenant's ids)."),
    409: ("Conflict", "The state changed or the slot is taken."),
    412: ("PreconditionFailed", "If-Match names an outdated version (or If-None-Match: * met an existing one)."),
    413: ("PayloadTooLarge", "The body is larger than the route accepts."),
    422: ("ValidationFailed", "Valid JSON, invalid values: details.fields lists {loc, msg, type}."),
    429: ("RateLimited", "Too many requests; see Retry-After."),
    501: ("NotImplemented", "The feature behind this route has not landed yet."),
    503: ("ServiceUnavailable", "A dependency is down or the service is misconfigured; see Retry-After."),
}
_AUTH_TEXT: Final[dict[Auth, str]] = {
    Auth.ANONYMOUS: "Anonymous.",
    Auth.USER: "A signed-in user of an onboarded tenant (delegated token with the API scope).",
    Auth.ADMIN: "A signed-in user with the Integration.Admin app role.",
    Auth.PAIRING_WRITER: "Integration.Admin, or an app-only token with the Pairings.ReadWrite.All role.",
    Auth.SESSION_USER: "A signed-in user, or the product's server (app-only token with the Sessions.ReadWrite.All "
                       "role) acting for the user named in X-On-Behalf-Of, who is then the caller (and organizer).",
    Auth.SESSION_READER: "A signed-in user, or the product's server (app-only token with the Sessions.ReadWrite.All "
                         "role) acting for the user named in X-On-Behalf-Of, or reading across its tenant without it.",
    Auth.WEBHOOK_MANAGER: "Integration.Admin, or an app-only token with the Webhooks.ReadWrite.All role.",
}
_ON_BEHALF_OF: Final[dict[str, Any]] = {
    "name": "X-On-Behalf-Of",
    "in": "header",
    "required": False,
    "description": "App-only tokens only (Sessions.ReadWrite.All): the user of the token's tenant the request acts "
                   "for, by Entra object id or email/UPN. Refused (403) from user tokens. Every app request is "
                   "audited.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 254},
}
_IDEMPOTENCY_KEY: Final[dict[str, Any]] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "1-255 printable characters, unique per intended change (e.g. a UUID). The same key with the "
                   "same request by the same caller within 24 h replays the first successful response (same "
                   "status and id, Idempotent-Replayed: true) and changes nothing; with a different request it "
                   "is 422 idempotency_key_reused; while the first is still running, 409 idempotency_key_in_use.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7E]+$"},
}
_ACTING: Final = frozenset({Auth.SESSION_USER, Auth.SESSION_READER})

_lock = threading.Lock()
_cache: tuple[int, dict[str, Any]] | None = None


def openapi_document() -> dict[str, Any]:
    """The document for every route registered so far (built once, copied per call)."""
    global _cache  # noqa: PLW0603 - built once per worker
    routes = registered_routes()
    with _lock:
        if _cache is None or _cache[0] != len(routes):
            _cache = (len(routes), build_document(routes))
        return copy.deepcopy(_cache[1])


def build_document(routes: list[RouteSpec]) -> dict[str, Any]:
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(Error, "serialization")]
    wanted += [(model, "serialization") for _, model, _ in WEBHOOKS]
    for spec in routes:
        for model in (spec.body, spec.query, spec.path):
            if model is not None:
                wanted.append((model, "validation"))
        model, _ = spec.response
        if model is not None:
            wanted.append((model, "serialization"))
    unique = list(dict.fromkeys(wanted))
    refs, defs = models_json_schema(unique, by_alias=True, ref_template=REF_TEMPLATE)
    schemas: dict[str, Any] = defs.get("$defs", {})

    def ref(model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return dict(refs[(model, mode)])

    # Responses are written with exclude_none: a nullable property is absent rather than null,
    # so it must not be listed as required in any schema a response uses.
    output_names = {ref(m, mode)["$ref"].rsplit("/", 1)[-1] for m, mode in unique if mode == "serialization"}
    for name in _reachable(output_names, schemas):
        _drop_nullable_from_required(schemas[name])

    def resolved(model: type[BaseModel]) -> dict[str, Any]:
        name = ref(model, "validation")["$ref"].rsplit("/", 1)[-1]
        schema: dict[str, Any] = schemas[name]
        return schema

    paths: dict[str, dict[str, Any]] = {}
    for spec in routes:
        operation = _operation(spec, ref, resolved)
        paths.setdefault(spec.path_template, {})[spec.method.lower()] = operation

    error_ref = ref(Error, "serialization")
    webhooks = {
        name: {"post": _webhook_operation(name, summary, ref(model, "serialization"))}
        for names, model, summary in WEBHOOKS
        for name in names
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Microsoft 365 calendar integration for people-scheduling products",
            "version": "1",
            "description": "HTTP contract v1 (docs/api.md). Errors are always "
            '{"error": {"code", "message", "details"?}}. Times are ISO 8601 with an offset.',
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "paths": dict(sorted(paths.items())),
        "webhooks": webhooks,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An Entra ID v2 access token issued for this API (aud = its client id).",
                },
                "functionKey": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "code",
                    "description": "The Azure Functions key (deployed only); Graph echoes it on every POST.",
                },
            },
            "responses": {
                name: {"description": text, "content": {"application/json": {"schema": error_ref}}}
                for name, text in _ERRORS.values()
            },
        },
    }


_WEBHOOK_HEADERS: Final = (
    ("webhook-id", "The event id (evt_...): the same for every retry and replay of this event. Deduplicate by it."),
    ("webhook-timestamp", "When this attempt was signed, in seconds since the Unix epoch; refuse it when it "
                          "is more than 5 minutes from your clock."),
    ("webhook-signature", "Space-separated `v1,<base64 HMAC-SHA256 of '<id>.<timestamp>.<body>'>` signatures, "
                          "one per live secret (two for 24 h after a rotation); verify with the Standard "
                          "Webhooks libraries."),
)


def _webhook_operation(name: str, summary: str, schema: dict[str, Any]) -> dict[str, Any]:
    """One event type as an OpenAPI 3.1 webhook: what the service POSTs to a registered endpoint."""
    return {
        "operationId": "webhook_" + name.replace(".", "_"),
        "summary": f"{name}: {summary}",
        "description": "Sent to every enabled endpoint whose event filter includes this type (Standard Webhooks). "
                       "At least once: retried with back-off for at least 24 h; session events carry `version`, "
                       "and a later version is not sent to an endpoint before an earlier one of the same session.",
        "tags": ["webhooks"],
        "parameters": [
            {"name": header, "in": "header", "required": True, "schema": {"type": "string"}, "description": text}
            for header, text in _WEBHOOK_HEADERS
        ],
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
        "responses": {
            "2XX": {"description": "Received: any 2xx within 10 seconds; the body is ignored."},
            "410": {"description": "Gone: the endpoint is disabled and receives nothing more."},
            "default": {"description": "Anything else (or no answer within 10 s, or a redirect) is retried."},
        },
    }


def _nullable(prop: dict[str, Any]) -> bool:
    if prop.get("type") == "null" or (isinstance(prop.get("type"), list) and "null" in prop["type"]):
        return True
    return any(_nullable(option) for option in prop.get("anyOf", []) + prop.get("oneOf", []))


def _drop_nullable_from_required(schema: dict[str, Any]) -> None:
    props = schema.get("properties", {})
    required = [name for name in schema.get("required", []) if not _nullable(props.get(name, {}))]
    if required:
        schema["required"] = required
    else:
        schema.pop("required", None)


def _reachable(names: set[str], schemas: dict[str, Any]) -> set[str]:
    """The named component schemas and every component schema they refer to."""
    seen: set[str] = set()
    todo = [n for n in names if n in schemas]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        stack: list[Any] = [schemas[name]]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                target = node.get("$ref")
                if isinstance(target, str) and target.startswith("#/components/schemas/"):
                    todo.append(target.rsplit("/", 1)[-1])
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
    return seen


def _parameters(model: type[BaseModel] | None, where: Literal["query", "path"], resolved: Any) -> list[dict[str, Any]]:
    if model is None:
        return []
    schema = resolved(model)
    required = set(schema.get("required", []))
    out = []
    for name, prop in schema.get("properties", {}).items():
        param: dict[str, Any] = {"name": name, "in": where, "required": where == "path" or name in required}
        param["schema"] = {k: v for k, v in prop.items() if k != "title"}
        if "description" in prop:
            param["description"] = prop["description"]
        out.append(param)
    return out


def _operation(spec: RouteSpec, ref: Any, resolved: Any) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": spec.name,
        "summary": spec.summary,
        "description": _AUTH_TEXT[spec.auth] + (" Set-up route: a tenant not onboarded yet may call it when "
                                                 "the deployment allows it." if spec.onboarding else ""),
        "tags": list(spec.tags),
        "x-auth": spec.auth.value,
    }
    if spec.auth is Auth.ANONYMOUS:
        op["security"] = [{"functionKey": []}] if spec.function_key else []
    else:
        op["security"] = [{"bearer": []}]
    params = _parameters(spec.path, "path", resolved) + _parameters(spec.query, "query", resolved)
    if spec.auth in _ACTING:
        params.append(dict(_ON_BEHALF_OF))
    if spec.idempotent:
        params.append(dict(_IDEMPOTENCY_KEY))
    if params:
        op["parameters"] = params
    if spec.body is not None:
        op["requestBody"] = {
            "required": spec.body_required and not spec.defer_body,
            "content": {"application/json": {"schema": ref(spec.body, "validation")}},
        }

    responses: dict[str, Any] = {}
    model, is_list = spec.response
    success: dict[str, Any] = {"description": spec.summary}
    if model is not None:
        schema = ref(model, "serialization")
        success["content"] = {"application/json": {"schema": {"type": "array", "items": schema} if is_list else schema}}
    if spec.status == 302:
        success["headers"] = {"Location": {"schema": {"type": "string"}, "description": "Where the browser goes next."}}
    if spec.status == 202 and spec.rate_limit:
        success["headers"] = {"Location": {"schema": {"type": "string"}, "description": "The resource to poll."}}
    for name, meaning in spec.response_headers:
        success.setdefault("headers", {})[name] = {"schema": {"type": "string"}, "description": meaning}
    if spec.idempotent:
        success.setdefault("headers", {})["Idempotent-Replayed"] = {
            "schema": {"type": "string", "enum": ["true"]},
            "description": "Present when this is the stored answer to an earlier request with the same key.",
        }
    responses[str(spec.status)] = success
    if spec.response_content_type == "text/plain":
        responses["200"] = {
            "description": "Validation handshake: exactly the validationToken, as plain text.",
            "content": {"text/plain": {"schema": {"type": "string", "maxLength": MAX_VALIDATION_TOKEN_CHARS}}},
        }

    errors: set[int] = {503}
    if spec.auth is not Auth.ANONYMOUS:
        errors |= {401, 403}
    if spec.body is not None:
        errors |= {400, 413, 422}
    if spec.query is not None and spec.query.model_fields:
        errors.add(422)
    if spec.response_content_type == "text/plain":
        errors.add(400)
    if spec.path is not None:
        errors |= {404, 422}
    if spec.rate_limit:
        errors.add(429)
    if spec.idempotent:
        errors |= {409, 422}
    if spec.auth in _ACTING:
        errors.add(422)  # X-On-Behalf-Of missing (app tokens) or naming nobody
    errors |= {s for s in spec.extra_statuses if s in _ERRORS}
    for status in sorted(errors):
        if str(status) not in responses:
            responses[str(status)] = {"$ref": f"#/components/responses/{_ERRORS[status][0]}"}
    op["responses"] = dict(sorted(responses.items()))
    return op
