"""Pairing routes: written by admins or the product's server, read by members, users named by id or email."""

from __future__ import annotations

from tests.functions.conftest import TENANT_A, TENANT_B, USER_A, USER_A2, Env, TokenFactory, bearer
from tests.support.fake_graph import FakeCalendarGateway, FakeTokenProvider

ADMIN = ["Integration.Admin"]


def _graph(env: Env) -> FakeCalendarGateway:
    graph = FakeCalendarGateway(tokens=FakeTokenProvider([TENANT_A, TENANT_B]), clock=env.container.clock)
    graph.add_user(TENANT_A, "ann@contoso.example", user_id=USER_A)
    graph.add_user(TENANT_A, "ben@contoso.example", user_id=USER_A2)
    env.container.graph = graph
    return graph


def test_admin_puts_a_pairing_and_members_see_it(env: Env, mint: TokenFactory) -> None:
    """PUT by email and id stores ids and addresses; both members list it; DELETE removes it (204)."""
    _graph(env)
    body = {"mentor": "ann@contoso.example", "mentee": USER_A2, "active": True}
    put = env.client.put("/api/pairings/p-1", headers=bearer(mint(roles=ADMIN)), json=body)
    assert put.status == 200, put.text
    assert put.json()["mentor"] == USER_A and put.json()["menteeAddress"] == "ben@contoso.example"
    for oid in (USER_A, USER_A2):
        mine = env.client.get("/api/me/pairings", headers=bearer(mint(oid=oid)))
        assert [p["pairingId"] for p in mine.json()] == ["p-1"]
    assert env.client.delete("/api/pairings/p-1", headers=bearer(mint(roles=ADMIN))).status == 204
    assert env.client.get("/api/me/pairings", headers=bearer(mint())).json() == []


def test_product_server_writes_with_an_app_token(env: Env, mint: TokenFactory) -> None:
    """An app-only token with Pairings.ReadWrite.All may write pairings."""
    _graph(env)
    token = mint(app=True, roles=["Pairings.ReadWrite.All"])
    body = {"mentor": USER_A, "mentee": USER_A2, "active": True}
    assert env.client.put("/api/pairings/p-2", headers=bearer(token), json=body).status == 200


def test_unknown_member_is_422_with_the_field(env: Env, mint: TokenFactory) -> None:
    """A member that does not resolve in the tenant answers 422 user_not_found naming mentor or mentee."""
    _graph(env)
    body = {"mentor": USER_A, "mentee": "ghost@contoso.example", "active": True}
    r = env.client.put("/api/pairings/p-3", headers=bearer(mint(roles=ADMIN)), json=body)
    assert r.status == 422
    assert r.json()["error"]["code"] == "user_not_found"
    assert r.json()["error"]["details"]["fields"][0]["loc"] == ["body", "mentee"]


def test_pairings_of_another_tenant_are_invisible(env: Env, mint: TokenFactory) -> None:
    """Tenant B's members never see tenant A's pairings, even with the same object id."""
    _graph(env)
    body = {"mentor": USER_A, "mentee": USER_A2, "active": True}
    env.client.put("/api/pairings/p-1", headers=bearer(mint(roles=ADMIN)), json=body)
    assert env.client.get("/api/me/pairings", headers=bearer(mint(tid=TENANT_B))).json() == []
