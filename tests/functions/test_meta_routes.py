"""Anonymous routes (health, permissions), the JWKS fetcher, the in-process client and the log guard."""

from __future__ import annotations

import logging

import pytest
import requests
import responses

from core.adapters.jwt_validator import requests_jwks_fetcher
from core.domain.errors import DependencyError
from core.log import correlation_id, message_correlation
from tests import log_guard
from tests.functions.conftest import Env, TokenFactory, bearer

GRAPH_PERMISSIONS = {
    ("Calendars.ReadWrite", "application"),
    ("User.Read.All", "application"),
    ("MailboxSettings.Read", "application"),
    ("Place.Read.All", "application"),
    ("User.Read", "delegated"),
    ("Calendars.ReadWrite", "delegated"),
    ("MailboxSettings.Read", "delegated"),
    ("offline_access", "delegated"),
}


def test_permissions_list_what_the_app_asks_for_and_why(env: Env) -> None:
    """GET /api/integration/permissions names each Graph permission with a purpose, and the data-usage statement."""
    r = env.client.get("/api/integration/permissions")
    assert r.status == 200
    doc = r.json()
    listed = {(p["name"], p["type"]) for p in doc["permissions"]}
    assert listed >= GRAPH_PERMISSIONS
    for p in doc["permissions"]:
        assert p["access"] in ("read", "readWrite")
        assert len(p["purpose"]) > 20
    assert "subject" in doc["dataUsage"] and "body" in doc["dataUsage"]


class _Pings:
    """Counts (and can fail) the dependency pings readiness makes."""

    def __init__(self, env: Env) -> None:
        self.calls = 0
        self.fail = False
        self._tables_ping = env.container.tables.ping
        env.container.tables.ping = self.ping  # type: ignore[method-assign]

    def ping(self) -> None:
        from core.domain.errors import StorageUnavailable

        self.calls += 1
        if self.fail:
            raise StorageUnavailable()
        self._tables_ping()


@pytest.fixture
def pings(env: Env) -> _Pings:
    from functions import health

    health._ready.clear()
    return _Pings(env)


def test_liveness_is_anonymous_and_touches_no_dependency(env: Env, pings: _Pings) -> None:
    """GET /api/health answers 200 from the process alone: a flood of anonymous probes never reaches storage."""
    for _ in range(20):
        r = env.client.get("/api/health")
        assert r.status == 200 and r.json() == {"status": "ok", "checks": {"process": "ok"}}
    assert r.header("x-correlation-id")
    assert pings.calls == 0


def test_readiness_checks_dependencies_at_most_once_per_cache_period(env: Env, pings: _Pings) -> None:
    """GET /api/health/ready reports tables and queues; twenty calls within the cache period make one check."""
    for _ in range(20):
        r = env.client.get("/api/health/ready")
        assert r.status == 200
        assert r.json() == {"status": "ok", "checks": {"tables": "ok", "queues": "ok", "keyVault": "ok"}}
    assert pings.calls == 1


def test_readiness_names_the_failing_check_with_retry_after(env: Env, pings: _Pings) -> None:
    """Storage down: 503 with the failing check's code and Retry-After."""
    pings.fail = True
    r = env.client.get("/api/health/ready")
    assert r.status == 503 and r.header("Retry-After") == "10"
    assert r.json() == {"status": "unhealthy",
                        "checks": {"tables": "storage_unavailable", "queues": "ok", "keyVault": "ok"}}


def test_correlation_id_is_echoed_or_created(env: Env) -> None:
    """A well-formed x-correlation-id is echoed back; a malformed one is replaced."""
    echoed = env.client.get("/api/health", headers={"x-correlation-id": "abc-123"}).header("x-correlation-id")
    assert echoed == "abc-123"
    replaced = env.client.get("/api/health", headers={"x-correlation-id": "bad id\r\nx"}).header("x-correlation-id")
    assert replaced and replaced != "bad id\r\nx"


def test_queue_messages_get_a_correlation_scope() -> None:
    """A queue message continues the id of the request that queued it, or uses its own message id."""
    with message_correlation("req-42", "msg-1"):
        assert correlation_id.get() == "req-42"
    with message_correlation(None, "msg-1"):
        assert correlation_id.get() == "msg-1"
    with message_correlation(None, None):
        assert len(correlation_id.get()) == 32
    assert correlation_id.get() == "-"


def test_unknown_route_and_wrong_method(env: Env) -> None:
    """The client mimics the host: 404 for unknown paths, 405 for a known path with another method."""
    assert env.client.get("/api/nope").status == 404
    assert env.client.request("PATCH", "/api/health").status == 405


def test_client_matches_routes_case_insensitively_and_decodes_values(env: Env, mint: TokenFactory) -> None:
    """Route matching ignores case like ASP.NET, and route values reach the function URL-decoded."""
    r = env.client.get("/API/Sessions/a%2Db", headers=bearer(mint()))
    assert r.function == "session_get"
    assert r.status in (404, 501)


@responses.activate
def test_jwks_is_fetched_over_https_with_a_timeout() -> None:
    """The requests-based fetcher returns the document and turns failures into a 503 dependency error."""
    url = "https://login.microsoftonline.com/common/discovery/v2.0/keys"
    responses.get(url, json={"keys": [{"kty": "RSA", "kid": "k"}]})
    assert requests_jwks_fetcher(url)()["keys"][0]["kid"] == "k"
    responses.replace(responses.GET, url, status=500)
    with pytest.raises(DependencyError):
        requests_jwks_fetcher(url)()
    responses.replace(responses.GET, url, body=requests.ConnectionError("down"))
    with pytest.raises(DependencyError):
        requests_jwks_fetcher(url)()
    responses.replace(responses.GET, url, body="<html>")
    with pytest.raises(DependencyError):
        requests_jwks_fetcher(url)()


def test_log_guard_is_attached_and_detects_leaks() -> None:
    """The suite-wide guard sees records and recognises JWTs, fixed sentinels and registered ones."""
    before = log_guard.records_seen()
    logging.getLogger("tests.guard").info("an ordinary line")
    assert log_guard.records_seen() == before + 1
    assert log_guard.find_leaks("x eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2ln y") == ["<a JWT>"]
    assert log_guard.find_leaks("Confidential subject: q3") == ["Confidential subject"]
    marker = log_guard.sentinel("refresh-token-sentinel-123")
    assert log_guard.find_leaks(f"rt={marker}") == [marker]
    assert log_guard.find_leaks("nothing to see") == []


def test_requests_with_tokens_leave_no_secret_in_the_logs(env: Env, mint: TokenFactory) -> None:
    """Authenticated, refused and webhook requests log no token, query string, clientState or body."""
    token = mint()
    state = log_guard.sentinel("client-state-secret-xyz")
    code = log_guard.sentinel("auth-code-secret-abc")
    start = len(log_guard.leaks())
    env.client.get("/api/me/connection", headers=bearer(token))
    env.client.get("/api/me/connection", headers=bearer(token + "x"))
    env.client.get(f"/api/me/connection/callback?code={code}&state={state}")
    env.client.post("/api/graph/notifications", json={"value": [{"subscriptionId": "s", "clientState": state}]})
    env.client.post(f"/api/graph/notifications?validationToken={code}")
    env.client.post("/api/sessions", headers=bearer(token), json={"subject": "Confidential subject: x"})
    assert log_guard.leaks()[start:] == []
