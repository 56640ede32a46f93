"""The webhook endpoint routes: who may call them, tenant isolation, secrets shown once, bad input, the log."""

from __future__ import annotations

from typing import Any

import pytest

from core.names import Queues
from tests.functions.conftest import TENANT_A, TENANT_B, USER_A, Env, TokenFactory, bearer, error_code
from tests.support.fake_webhooks import FakeWebhookSender

BASE = "/api/webhooks/endpoints"
ADMIN = ["Integration.Admin"]
URL = "https://hooks.product.example/calendar"


@pytest.fixture
def sender(env: Env) -> FakeWebhookSender:
    fake = FakeWebhookSender()
    env.container._webhooks = fake  # before the container builds its sender
    return fake


def _admin(mint: TokenFactory, tid: str = TENANT_A) -> dict[str, str]:
    return bearer(mint(tid=tid, roles=ADMIN))


def _create(env: Env, headers: dict[str, str], **body: Any) -> Any:
    return env.client.post(BASE, headers=headers, json={"url": URL, **body})


def test_an_admin_creates_an_endpoint_and_sees_the_secret_once(env: Env, mint: TokenFactory,
                                                                 sender: FakeWebhookSender) -> None:
    """201 with Location and a whsec_ secret; list and get never show the secret again."""
    r = _create(env, _admin(mint), events=["session.booked"], description="CRM sync")
    assert r.status == 201, r.text
    created = r.json()
    assert created["secret"].startswith("whsec_") and created["events"] == ["session.booked"]
    assert r.header("Location") == f"{BASE}/{created['id']}"
    listed = env.client.get(BASE, headers=_admin(mint)).json()
    got = env.client.get(f"{BASE}/{created['id']}", headers=_admin(mint)).json()
    assert [e["id"] for e in listed] == [created["id"]]
    assert "secret" not in listed[0] and "secret" not in got and got["description"] == "CRM sync"


def test_the_product_server_manages_endpoints_with_its_app_role(env: Env, mint: TokenFactory,
                                                                sender: FakeWebhookSender) -> None:
    """An app-only token with Webhooks.ReadWrite.All may; with only Pairings.ReadWrite.All it may not."""
    app = bearer(mint(app=True, oid="0a000000-0000-4000-8000-0000000000aa", roles=["Webhooks.ReadWrite.All"]))
    assert _create(env, app).status == 201
    other = bearer(mint(app=True, oid="0a000000-0000-4000-8000-0000000000ab", roles=["Pairings.ReadWrite.All"]))
    r = env.client.get(BASE, headers=other)
    assert (r.status, error_code(r)) == (403, "webhook_manager_required")


def test_a_user_without_the_admin_role_is_refused(env: Env, mint: TokenFactory, sender: FakeWebhookSender) -> None:
    """A signed-in user who is not an admin gets 403 on every endpoint route."""
    r = _create(env, bearer(mint()))
    assert (r.status, error_code(r)) == (403, "webhook_manager_required")
    assert env.client.get(BASE).status == 401


def test_another_tenants_endpoint_is_not_found(env: Env, mint: TokenFactory, sender: FakeWebhookSender) -> None:
    """Tenant B's admin gets 404 for tenant A's endpoint on every route, and lists none of A's."""
    endpoint_id = _create(env, _admin(mint)).json()["id"]
    b = _admin(mint, TENANT_B)
    assert env.client.get(BASE, headers=b).json() == []
    for method, path, body in (
        ("GET", f"{BASE}/{endpoint_id}", None),
        ("PATCH", f"{BASE}/{endpoint_id}", {"enabled": False}),
        ("DELETE", f"{BASE}/{endpoint_id}", None),
        ("POST", f"{BASE}/{endpoint_id}/rotate-secret", None),
        ("POST", f"{BASE}/{endpoint_id}/ping", None),
        ("GET", f"{BASE}/{endpoint_id}/deliveries", None),
        ("POST", f"{BASE}/{endpoint_id}/replay", {"since": "2025-03-03T08:00:00Z"}),
    ):
        r = env.client.request(method, path, headers=b, json=body)
        assert (r.status, error_code(r)) == (404, "webhook_endpoint_not_found"), (method, path)


@pytest.mark.parametrize(("body", "code"), [
    ({"url": "http://hooks.product.example/x"}, "url_not_https"),
    ({"url": "https://10.0.0.1/x"}, "url_address_not_allowed"),
    ({"url": "https://169.254.169.254/metadata"}, "url_address_not_allowed"),
    ({"url": URL, "events": ["session.moved"]}, "unknown_event_type"),
    ({"url": URL, "description": "x" * 501}, "description_too_long"),
    ({"url": URL, "secret": "whsec_mine"}, "validation_failed"),
    ({"url": 42}, "validation_failed"),
])
def test_bad_input_is_422_with_a_clear_code(env: Env, mint: TokenFactory, sender: FakeWebhookSender,
                                           body: dict[str, Any], code: str) -> None:
    """Each invalid value is refused with 422 and its own code, never a 500."""
    r = env.client.post(BASE, headers=_admin(mint), json=body)
    assert (r.status, error_code(r)) == (422, code), r.text


def test_patch_changes_only_what_is_given_and_null_clears_the_description(env: Env, mint: TokenFactory,
                                                                          sender: FakeWebhookSender) -> None:
    """PATCH enabled=false keeps the URL and events; description null clears it; the change is audited."""
    created = _create(env, _admin(mint), events=["session.cancelled"], description="old").json()
    r = env.client.patch(f"{BASE}/{created['id']}", headers=_admin(mint), json={"enabled": False})
    assert r.status == 200 and r.json()["enabled"] is False and r.json()["disabledReason"] == "by_request"
    assert r.json()["events"] == ["session.cancelled"] and r.json()["description"] == "old"
    cleared = env.client.patch(f"{BASE}/{created['id']}", headers=_admin(mint), json={"description": None}).json()
    assert "description" not in cleared
    actions = [e.action for e in env.container.webhook_endpoints.audit.entries(TENANT_A)]
    assert actions[:3] == ["webhook_endpoint.updated", "webhook_endpoint.updated", "webhook_endpoint.created"]


def test_rotate_ping_deliveries_and_replay(env: Env, mint: TokenFactory, sender: FakeWebhookSender) -> None:
    """Rotation shows a new secret once; a ping is queued (202, Location to the log) and shows in the log."""
    endpoint_id = _create(env, _admin(mint)).json()["id"]
    rotated = env.client.post(f"{BASE}/{endpoint_id}/rotate-secret", headers=_admin(mint)).json()
    assert rotated["secret"].startswith("whsec_") and rotated["previousSecretValidUntil"]
    ping = env.client.post(f"{BASE}/{endpoint_id}/ping", headers=_admin(mint))
    assert ping.status == 202 and ping.header("Location") == f"{BASE}/{endpoint_id}/deliveries"
    for message in env.queues.take(Queues.PRODUCT_EVENTS):
        env.container.webhook_delivery.handle(message.body)
    page = env.client.get(f"{BASE}/{endpoint_id}/deliveries?limit=5", headers=_admin(mint)).json()
    [entry] = page["deliveries"]
    assert entry["eventId"] == ping.json()["eventId"] and entry["outcome"] == "delivered"
    assert entry["statusCode"] == 200 and "next" not in page
    replay = env.client.post(f"{BASE}/{endpoint_id}/deliveries/{entry['id']}/replay", headers=_admin(mint))
    assert replay.status == 202 and replay.json()["eventId"] == entry["eventId"]
    since = env.client.post(f"{BASE}/{endpoint_id}/replay", headers=_admin(mint),
                            json={"since": "2025-03-03T08:00:00+00:00"})
    assert since.status == 202
    far = env.client.post(f"{BASE}/{endpoint_id}/replay", headers=_admin(mint),
                          json={"since": "2024-01-01T00:00:00Z"})
    assert (far.status, error_code(far)) == (422, "since_too_old")


def test_the_delivery_log_pages_newest_first(env: Env, mint: TokenFactory, sender: FakeWebhookSender) -> None:
    """Five pings, pages of two: 2 + 2 + 1, newest first, each page's next cursor leading to the following one."""
    endpoint_id = _create(env, _admin(mint)).json()["id"]
    for _ in range(5):
        env.container.webhook_endpoints.ping(TENANT_A, USER_A, endpoint_id)
        for message in env.queues.take(Queues.PRODUCT_EVENTS):
            env.container.webhook_delivery.handle(message.body)
        env.container.clock.advance(seconds=1)  # type: ignore[attr-defined]
    seen: list[str] = []
    cursor = ""
    sizes = []
    while True:
        page = env.client.get(f"{BASE}/{endpoint_id}/deliveries?limit=2{cursor}", headers=_admin(mint)).json()
        sizes.append(len(page["deliveries"]))
        seen += [d["at"] for d in page["deliveries"]]
        if "next" not in page:
            break
        cursor = f"&before={page['next']}"
    assert sizes == [2, 2, 1] and seen == sorted(seen, reverse=True)


def test_bad_ids_and_queries_are_422_not_500(env: Env, mint: TokenFactory, sender: FakeWebhookSender) -> None:
    """A malformed endpoint id, delivery id or limit is a validation error; an unknown delivery is 404."""
    endpoint_id = _create(env, _admin(mint)).json()["id"]
    assert env.client.get(f"{BASE}/not-an-id", headers=_admin(mint)).status == 422
    assert env.client.get(f"{BASE}/{endpoint_id}/deliveries?limit=500", headers=_admin(mint)).status == 422
    unknown = "dlv_01JAAAAAAAAAAAAAAAAAAAAAAA"
    r = env.client.post(f"{BASE}/{endpoint_id}/deliveries/{unknown}/replay", headers=_admin(mint))
    assert (r.status, error_code(r)) == (404, "delivery_not_found")
    d = env.client.delete(f"{BASE}/{endpoint_id}", headers=_admin(mint))
    assert d.status == 204 and env.client.get(f"{BASE}/{endpoint_id}", headers=_admin(mint)).status == 404
