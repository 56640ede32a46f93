"""Fuzz every route with bodies, queries and paths generated from the OpenAPI document (schemathesis).

With a valid admin token (so requests reach validation), positive and negative cases
must never produce a 5xx other than 501, a 501 only for input the route's models
accept (stubs answer 501 *after* validation), and every error must be the JSON envelope.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from schemathesis import GenerationMode

from functions.endpoint import RouteSpec, registered_routes
from functions.openapi import openapi_document
from tests.functions.conftest import TENANT_A, Env, TokenFactory, bearer, reset_rate_limits
from tests.support.fake_graph import FakeCalendarGateway, FakeTokenProvider

SCHEMA = schemathesis.openapi.from_dict(openapi_document())
OPERATIONS = {(op.method.upper(), op.path): op for op in (r.ok() for r in SCHEMA.get_all_operations())}
SPECS = {(s.method, s.path_template): s for s in registered_routes()}
MAX_EXAMPLES = int(__import__("os").environ.get("FUZZ_EXAMPLES", "12"))


def _valid_for(spec: RouteSpec, model: type[BaseModel] | None, data: Any, *, json_text: bytes | None = None) -> bool:
    if model is None:
        return True
    try:
        if json_text is not None:
            model.model_validate_json(json_text)
        else:
            model.model_validate(data)
    except ValidationError:
        return False
    return True


def _is_envelope(body: bytes) -> bool:
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    error = doc.get("error") if isinstance(doc, dict) else None
    return (
        isinstance(error, dict)
        and isinstance(error.get("code"), str)
        and isinstance(error.get("message"), str)
        and set(error) <= {"code", "message", "details"}
    )


def _present(value: Any) -> bool:
    return value is not None and type(value).__name__ != "NotSet"


@pytest.mark.parametrize("key", sorted(OPERATIONS), ids=lambda k: f"{k[0]} {k[1]}")
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
    database=None,
)
@given(data=st.data())
def test_generated_requests_never_break_a_route(
    env: Env, mint: TokenFactory, key: tuple[str, str], data: Any
) -> None:
    """No 5xx but 501-after-validation; every error is the JSON envelope; handshakes are plain text."""
    operation = OPERATIONS[key]
    spec = SPECS[key]
    mode = data.draw(st.sampled_from([GenerationMode.POSITIVE, GenerationMode.NEGATIVE]))
    case = data.draw(operation.as_strategy(generation_mode=mode))
    reset_rate_limits(env)
    if env.container.graph is None:
        # Features call Microsoft Graph: give them an empty fake tenant so "not configured" is not a 503.
        env.container.graph = FakeCalendarGateway(tokens=FakeTokenProvider([TENANT_A]), clock=env.container.clock)

    headers = {k: str(v) for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    headers.update(bearer(mint(roles=["Integration.Admin"])))
    raw_body: bytes | None = None
    if isinstance(case.body, bytes | str):
        raw_body = case.body.encode("utf-8", "surrogatepass") if isinstance(case.body, str) else case.body
    elif _present(case.body):
        raw_body = json.dumps(case.body).encode("utf-8")
    query = urlencode(case.query or {}, doseq=True)
    r = env.client.request(key[0], case.formatted_path, query=query, headers=headers, body=raw_body)

    assert r.status < 500 or r.status == 501, (r.status, r.text)
    if r.status == 501:
        params = {k: str(v) for k, v in (case.path_parameters or {}).items()}
        assert _valid_for(spec, spec.path, params)
        if spec.body is not None and not spec.defer_body:
            optional_and_absent = raw_body is None and not spec.body_required
            assert optional_and_absent or _valid_for(spec, spec.body, None, json_text=raw_body)
    if r.status >= 400:
        assert r.content_type.startswith("application/json"), r.content_type
        assert _is_envelope(r.body), r.text
    if r.status == 200 and r.content_type.startswith("text/plain"):
        assert spec.function_key and "validationToken" in (case.query or {})
    assert "Traceback" not in r.text
