"""$batch, throttling (fault injection and per-mailbox concurrency), failures and outages."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from local.simulator.seed import ALICE, BOB, CONTOSO
from tests.simulator.conftest import Sim, event_body, next_weekday


def _batch(sim: Sim, token: str, requests_: list[dict[str, Any]]) -> Any:
    return sim.graph("POST", "/$batch", token, json={"requests": requests_})


def test_batch_returns_each_part_with_its_own_status(sim: Sim, contoso_token: str) -> None:
    """A batch is 200 with per-part status, headers and body, including failing parts."""
    resp = _batch(
        sim,
        contoso_token,
        [
            {"id": "1", "method": "GET", "url": f"/users/{ALICE}/calendar"},
            {"id": "2", "method": "GET", "url": "/users/onprem1@contoso.test/calendar"},
            {
                "id": "3",
                "method": "POST",
                "url": f"/users/{BOB}/events",
                "body": event_body(next_weekday()),
                "headers": {"Content-Type": "application/json"},
            },
        ],
    )
    assert resp.status_code == 200
    parts = {p["id"]: p for p in resp.json()["responses"]}
    assert parts["1"]["status"] == 200 and parts["1"]["body"]["owner"]["address"] == ALICE
    assert parts["2"]["status"] == 404 and parts["2"]["body"]["error"]["code"] == "MailboxNotEnabledForRESTAPI"
    assert parts["3"]["status"] == 201


def test_batch_depends_on_a_failed_part_gives_424(sim: Sim, contoso_token: str) -> None:
    """A part whose dependency failed is not run and answers 424."""
    resp = _batch(
        sim,
        contoso_token,
        [
            {"id": "a", "method": "GET", "url": "/users/ghost@contoso.test/calendar"},
            {
                "id": "b",
                "method": "POST",
                "url": f"/users/{ALICE}/events",
                "dependsOn": ["a"],
                "body": event_body(next_weekday()),
            },
        ],
    )
    parts = {p["id"]: p for p in resp.json()["responses"]}
    assert parts["a"]["status"] == 404
    assert parts["b"]["status"] == 424
    assert not any(e["subject"] == "Mentoring session" for e in sim.events_of(ALICE))


def test_batch_limits_are_enforced(sim: Sim, contoso_token: str) -> None:
    """Over 20 parts, or duplicate ids, make the whole batch a 400."""
    many = [{"id": str(i), "method": "GET", "url": f"/users/{ALICE}"} for i in range(21)]
    assert _batch(sim, contoso_token, many).status_code == 400
    assert _batch(sim, contoso_token, many[:20]).status_code == 200
    dup = [{"id": "x", "method": "GET", "url": "/users"}, {"id": "x", "method": "GET", "url": "/users"}]
    assert _batch(sim, contoso_token, dup).status_code == 400


def test_throttled_batch_parts_carry_retry_after(sim: Sim, contoso_token: str) -> None:
    """Under throttling each part may be a 429 with its own Retry-After; the batch stays 200."""
    sim.post("/_sandbox/faults", json={"throttleRate": 1.0, "retryAfterSeconds": 7})
    resp = _batch(sim, contoso_token, [{"id": "1", "method": "GET", "url": f"/users/{ALICE}/calendar"}])
    assert resp.status_code == 200
    part = resp.json()["responses"][0]
    assert part["status"] == 429
    assert part["headers"]["Retry-After"] == "7"
    assert part["body"]["error"]["code"] == "ApplicationThrottled"


def test_throttle_and_fail_rates_apply_to_graph_not_to_the_control_api(sim: Sim, contoso_token: str) -> None:
    """throttleRate=1 gives 429 + Retry-After, failRate=1 gives 503; /_sandbox keeps working."""
    assert sim.post("/_sandbox/faults", json={"throttleRate": 1.0}).json()["throttleRate"] == 1.0
    throttled = sim.graph("GET", f"/users/{ALICE}/calendar", contoso_token)
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "1"
    sim.post("/_sandbox/faults", json={"failRate": 1.0})
    assert sim.graph("GET", f"/users/{ALICE}/calendar", contoso_token).status_code == 503
    assert sim.get("/_sandbox/tenants").status_code == 200
    reset = sim.post("/_sandbox/faults", json={}).json()
    assert reset["failRate"] == 0 and reset["throttleRate"] == 0
    assert sim.graph("GET", f"/users/{ALICE}/calendar", contoso_token).status_code == 200


def test_unknown_fault_names_are_rejected(sim: Sim) -> None:
    """A misspelt fault is a 400 rather than silently ignored."""
    assert sim.post("/_sandbox/faults", json={"throtleRate": 1}).status_code == 400
    assert sim.post("/_sandbox/faults", json={"throttleRate": 2}).status_code == 400


def test_per_mailbox_concurrency_limit_is_four(sim: Sim, contoso_token: str) -> None:
    """With slow responses, more than 4 concurrent requests to one mailbox get 429 MailboxConcurrency;
    another mailbox is unaffected."""
    sim.post("/_sandbox/faults", json={"latencyMs": 400})

    def call(user: str) -> tuple[int, str]:
        resp = sim.graph("GET", f"/users/{user}/calendar", contoso_token)
        code = resp.json().get("error", {}).get("message", "") if resp.status_code != 200 else ""
        return resp.status_code, code

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(call, [ALICE] * 7 + [BOB]))
    alice = results[:7]
    assert sum(status == 200 for status, _ in alice) == 4
    assert all(msg == "Application is over its MailboxConcurrency limit." for status, msg in alice if status == 429)
    assert results[7][0] == 200


def test_outage_fails_graph_and_the_token_endpoint(sim: Sim, contoso_token: str) -> None:
    """During an outage Graph answers 503 and the token endpoint temporarily_unavailable."""
    sim.post("/_sandbox/faults", json={"outageSeconds": 30})
    assert sim.graph("GET", "/users", contoso_token).status_code == 503
    token = sim.client_credentials(CONTOSO)
    assert token.status_code == 503 and token.json()["error"] == "temporarily_unavailable"
    assert sim.get("/_sandbox/faults").json()["outageSeconds"] > 0
