"""The OpenAPI 3.1 document: valid, complete against docs/api.md and the app, and true to each route's auth."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from schemathesis.specs.openapi.definitions import OPENAPI_31

import function_app
from functions.auth import Auth
from functions.endpoint import registered_routes
from functions.openapi import openapi_document
from tests.functions.conftest import Env
from tests.support.app_client import http_functions

API_MD = Path(__file__).resolve().parents[3] / "shared" / "docs" / "api.md"
if not API_MD.exists():  # the shared specs sit beside the project root
    API_MD = Path("/work/shared/docs/api.md")
_ROW = re.compile(r"^\|\s*(GET|POST|PUT|PATCH|DELETE)\s*\|\s*(/api/\S+?)\s*\|", re.MULTILINE)


def contract_routes() -> set[tuple[str, str]]:
    """(METHOD, path) of every route in docs/api.md, without the simulator's control API."""
    text = API_MD.read_text(encoding="utf-8").split("## Local Microsoft 365 simulator", 1)[0]
    return {(m, p) for m, p in _ROW.findall(text)}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document()


def _documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item}


def test_contract_markdown_is_parsed() -> None:
    """The parser finds the contract's routes (guards against a silently empty comparison)."""
    routes = contract_routes()
    assert len(routes) >= 28
    assert ("PATCH", "/api/sessions/{id}") in routes


def test_every_contract_route_is_documented(document: dict[str, Any]) -> None:
    """Each route of docs/api.md is in the OpenAPI document."""
    assert contract_routes() - _documented(document) == set()


def additions() -> set[str]:
    """Paths the contract's "Version 1.1 additions" name (the OpenAPI document is their detailed reference)."""
    text = API_MD.read_text(encoding="utf-8").split("## Version 1.1 additions", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`(/api/[^`\s]+)`", text))


# Routes that serve a 1.1 addition from beside its path: the admin's side of offered hours; readiness, split
# from liveness so anonymous /api/health does no I/O (docs/architecture.md, "Health"); and the series resource
# of "Sessions may carry a recurrence" (docs/product-integration.md, "Recurring sessions"); the admin's view of the
# audit trail that "Every such action is audited" (Product server) fills.
COMPANIONS = {
    (method, path)
    for method in ("GET", "PUT", "DELETE")
    for path in ("/api/integration/availability-rules/default", "/api/users/{user}/availability-rules")
} | {("GET", "/api/health/ready")} | {
    ("POST", "/api/availability/series"), ("GET", "/api/series"), ("GET", "/api/series/{id}"),
    ("PATCH", "/api/series/{id}"), ("DELETE", "/api/series/{id}"),
} | {("GET", "/api/integration/audit")}


def test_document_has_nothing_beyond_the_contract(document: dict[str, Any]) -> None:
    """The document lists no route the contract does not have (1.1 additions and their companions aside)."""
    prefixes = additions()
    assert "/api/me/availability-rules" in prefixes
    extra = {
        (method, path)
        for method, path in _documented(document) - contract_routes()
        if not any(path == prefix or path.startswith(prefix + "/") for prefix in prefixes)
    }
    assert extra - COMPANIONS == set()
    assert ("GET", "/api/health/ready") in _documented(document)


def test_the_webhook_additions_are_all_under_their_contract_prefix(document: dict[str, Any]) -> None:
    """Every webhook-endpoint route is under /api/webhooks/endpoints, which the 1.1 additions name."""
    assert "/api/webhooks/endpoints" in additions()
    webhook_paths = {p for _, p in _documented(document) if p.startswith("/api/webhooks")}
    assert webhook_paths and all(p.startswith("/api/webhooks/endpoints") for p in webhook_paths)


def test_every_registered_function_is_documented(document: dict[str, Any]) -> None:
    """Every HTTP function the app registers appears in the document under its operationId."""
    operations = {
        op["operationId"]: (method.upper(), path)
        for path, item in document["paths"].items()
        for method, op in item.items()
    }
    for fn in http_functions(function_app.app):
        assert fn.name in operations
        method, path = operations[fn.name]
        assert path == f"/api/{fn.route}"
        assert fn.methods == (method,)


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    """The document validates against the OpenAPI 3.1 schema and every component schema compiles."""
    assert document["openapi"] == "3.1.0"
    errors = [e.message for e in jsonschema_rs.Draft202012Validator(OPENAPI_31).iter_errors(document)]
    assert errors == []
    for name in document["components"]["schemas"]:
        root = {"components": document["components"], "$ref": f"#/components/schemas/{name}"}
        jsonschema_rs.Draft202012Validator(root)


def test_refs_all_resolve(document: dict[str, Any]) -> None:
    """Every $ref points at a component that exists."""
    text = str(document)
    for ref in set(re.findall(r"'#/components/(schemas|responses)/([^']+)'", text)):
        assert ref[1] in document["components"][ref[0]], ref


def test_security_matches_each_routes_auth(document: dict[str, Any]) -> None:
    """Anonymous routes need nothing, webhooks the function key, everything else the bearer token."""
    for spec in registered_routes():
        op = document["paths"][spec.path_template][spec.method.lower()]
        if spec.auth is Auth.ANONYMOUS:
            assert op["security"] == ([{"functionKey": []}] if spec.function_key else [])
        else:
            assert op["security"] == [{"bearer": []}]
            assert {"401", "403"} <= set(op["responses"])


def test_errors_reference_the_one_error_schema(document: dict[str, Any]) -> None:
    """Every error response is the shared envelope."""
    for item in document["paths"].values():
        for op in item.values():
            for status, response in op["responses"].items():
                if int(status) >= 400 and "$ref" in response:
                    assert response["$ref"].startswith("#/components/responses/")
    for response in document["components"]["responses"].values():
        assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_request_schemas_refuse_unknown_fields(document: dict[str, Any]) -> None:
    """Published request bodies say additionalProperties: false, like the validation does."""
    for spec in registered_routes():
        if spec.body is not None and spec.body.model_config.get("extra") == "forbid":
            name = spec.body.__name__
            assert document["components"]["schemas"][name]["additionalProperties"] is False


def test_document_is_served_anonymously(env: Env) -> None:
    """GET /api/openapi.json returns the same document as JSON without a token."""
    r = env.client.get("/api/openapi.json")
    assert r.status == 200
    assert r.content_type.startswith("application/json")
    assert r.json() == openapi_document()


def test_product_server_headers_and_fields_are_documented(document: dict[str, Any]) -> None:
    """Idempotency-Key on session writes, X-On-Behalf-Of where an app may act for a user, paging and allowConflicts."""
    paths = document["paths"]

    def params(path: str, method: str) -> dict[str, dict[str, Any]]:
        return {p["name"]: p for p in paths[path][method].get("parameters", [])}

    for path, method in (("/api/sessions", "post"), ("/api/sessions/{id}", "patch"), ("/api/sessions/{id}", "delete")):
        key = params(path, method)["Idempotency-Key"]
        assert key["in"] == "header" and key["schema"]["maxLength"] == 255 and not key["required"]
        assert "Idempotent-Replayed" in paths[path][method]["responses"]["202"]["headers"]
        assert {"409", "422"} <= set(paths[path][method]["responses"])
    acting = {(p, m) for p, item in paths.items() for m, op in item.items()
              if any(x["name"] == "X-On-Behalf-Of" for x in op.get("parameters", []))}
    assert acting == {("/api/sessions", "post"), ("/api/sessions", "get"), ("/api/sessions/{id}", "get"),
                      ("/api/sessions/{id}", "patch"), ("/api/sessions/{id}", "delete"),
                      ("/api/availability", "post"), ("/api/rooms", "get"), ("/api/rooms/availability", "post"),
                      ("/api/me/availability-rules", "get"), ("/api/me/availability-rules", "put"),
                      ("/api/me/availability-rules", "delete"), ("/api/me/availability-rules/preview", "get"),
                      ("/api/availability/series", "post"), ("/api/series", "get"), ("/api/series/{id}", "get"),
                      ("/api/series/{id}", "patch"), ("/api/series/{id}", "delete")}
    assert "X-Next-Cursor" in paths["/api/sessions"]["get"]["responses"]["200"]["headers"]
    assert {"from", "to", "pairingId", "limit", "cursor"} <= set(params("/api/sessions", "get"))
    assert not params("/api/sessions", "get")["from"]["required"]
    schemas = document["components"]["schemas"]
    assert "allowConflicts" in schemas["CreateSessionBody"]["properties"]
    assert "allowConflicts" in schemas["RescheduleBody"]["properties"]


def test_every_product_event_type_is_published_as_an_openapi_webhook(document: dict[str, Any]) -> None:
    """The `webhooks` section has one POST per event type, with the Standard Webhooks headers and a payload
    schema whose `type` names that event."""
    from core.domain.product_events import EventType

    assert set(document["webhooks"]) == {t.value for t in EventType}
    for name, item in document["webhooks"].items():
        op = item["post"]
        assert {p["name"] for p in op["parameters"]} == {"webhook-id", "webhook-timestamp", "webhook-signature"}
        ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        schema = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
        type_schema = schema["properties"]["type"]
        allowed = type_schema.get("enum") or [type_schema.get("const")]
        assert name in allowed, (name, allowed)
