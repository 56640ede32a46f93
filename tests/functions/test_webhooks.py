"""Graph webhook endpoints: the validation handshake and size limits."""

from __future__ import annotations

import json

import pytest

from functions.webhooks import MAX_NOTIFICATION_BYTES
from tests.functions.conftest import Env, validated
from tests.log_guard import sentinel

ROUTES = ["/api/graph/notifications", "/api/graph/lifecycle"]


@pytest.mark.parametrize("path", ROUTES)
def test_handshake_echoes_the_decoded_token_as_plain_text(env: Env, path: str) -> None:
    """?validationToken= is answered 200 text/plain with exactly the URL-decoded token."""
    token = "Validation: Token received 2025-03-03 09:00 +00:00 / abc&def=1"
    r = env.client.post(path, query={"validationToken": token, "code": "function-key"})
    assert r.status == 200
    assert r.body == token.encode("utf-8")
    assert r.content_type == "text/plain; charset=utf-8"
    assert r.header("X-Content-Type-Options") == "nosniff"


@pytest.mark.parametrize("path", ROUTES)
def test_html_looking_token_is_still_plain_text(env: Env, path: str) -> None:
    """A token that looks like markup is echoed verbatim as text/plain, never as HTML."""
    token = "<script>alert('x')</script><b>hi</b>"
    r = env.client.post(path + "?validationToken=%3Cscript%3Ealert('x')%3C%2Fscript%3E%3Cb%3Ehi%3C%2Fb%3E")
    assert r.status == 200
    assert r.text == token
    assert "html" not in r.content_type
    assert r.header("X-Content-Type-Options") == "nosniff"


@pytest.mark.parametrize("path", ROUTES)
def test_handshake_ignores_the_body(env: Env, path: str) -> None:
    """Graph's validation POST may carry any body (or none): the echo does not depend on it."""
    r = env.client.post(
        path, query={"validationToken": "tok"}, body=b"not json", headers={"Content-Type": "text/plain"}
    )
    assert (r.status, r.text) == (200, "tok")


@pytest.mark.parametrize("path", ROUTES)
def test_overlong_or_empty_token_is_refused(env: Env, path: str) -> None:
    """Tokens over 2,048 characters, or empty ones, get 400 in the JSON envelope and no echo."""
    long_token = "a" * 2049
    r = env.client.post(path, query={"validationToken": long_token})
    assert r.status == 400
    assert long_token not in r.text
    assert r.json()["error"]["code"] == "invalid_validation_token"
    assert env.client.post(path, query={"validationToken": ""}).status == 400
    assert env.client.post(path, query={"validationToken": "a" * 2048}).status == 200


@pytest.mark.parametrize("path", ROUTES)
def test_notifications_need_a_json_body_within_the_limit(env: Env, path: str) -> None:
    """Without a token: no body is 400, bad JSON 400, over 1 MB 413, a wrong shape 422."""
    assert env.client.post(path).status == 400
    assert env.client.post(path, body=b"{oops").status == 400
    assert env.client.post(path, body=b"[" + b" " * MAX_NOTIFICATION_BYTES + b"]").status == 413
    assert env.client.post(path, json={"value": "x"}).status == 422
    assert env.client.post(path, json={"value": []}).status == 422


@pytest.mark.parametrize("path", ROUTES)
def test_well_formed_notifications_reach_the_processing_hook(env: Env, path: str) -> None:
    """A valid batch (bigger than the API's 64 KiB limit, under 1 MB) passes validation to the processing hook."""
    client_state = sentinel("client-state-value-never-logged")
    item = {
        "subscriptionId": "sub-1",
        "clientState": client_state,
        "changeType": "updated",
        "resource": "Users/x/Events/y",
        "tenantId": "aaaaaaaa-0000-4000-8000-00000000000a",
        "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "id": "y"},
        "futureGraphProperty": {"anything": True},
    }
    body = {"value": [item] * 400}
    assert len(json.dumps(body)) > 64 * 1024
    r = env.client.post(path, json=body)
    assert validated(r)
    assert client_state not in r.text


def test_webhooks_are_function_key_protected_when_deployed(env: Env) -> None:
    """The webhook triggers use auth level FUNCTION (Azure checks ?code=); every other route is anonymous to Azure."""
    levels = {f.route: f.auth_level.upper() for f in env.client.functions}
    assert levels["graph/notifications"] == "FUNCTION"
    assert levels["graph/lifecycle"] == "FUNCTION"
    others = {level for route, level in levels.items() if not route.startswith("graph/")}
    assert others == {"ANONYMOUS"}
