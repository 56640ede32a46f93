"""The whole local stack comes up and answers, as `make run` would start it."""

from __future__ import annotations

from tests.e2e.conftest import Stack


def test_health_is_green_on_the_local_stack(stack: Stack) -> None:
    """The host is live (/api/health) and tables and queues on Azurite are reachable (/api/health/ready: 200)."""
    live = stack.call("GET", "/health")
    assert live.status_code == 200 and live.json()["checks"] == {"process": "ok"}
    response = stack.call("GET", "/health/ready")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"tables": "ok", "queues": "ok"}


def test_simulator_lists_seeded_tenants(stack: Stack) -> None:
    """The simulator holds at least two seeded tenants so isolation can be tested."""
    tenants = stack.control("GET", "/_sandbox/tenants")
    assert len(tenants) >= 2
    kinds = {u["kind"] for t in tenants for u in t["users"]}
    assert {"normal", "onPremises", "unlicensed", "outsideScope", "hybrid"} <= kinds


def test_unauthenticated_call_gets_401_envelope(stack: Stack) -> None:
    """A protected route without a token answers 401 in the JSON envelope with WWW-Authenticate."""
    response = stack.call("GET", "/integration")
    assert response.status_code == 401
    assert response.headers.get("WWW-Authenticate", "").startswith("Bearer")
    assert response.json()["error"]["code"]
