"""The product's server on the session and availability routes: acting for a named user, reading its tenant, audited."""

from __future__ import annotations

from typing import Any

from core.names import Tables
from core.services.stores.audit import AuditTrail
from tests.functions.conftest import (
    PRODUCT_SERVER,
    TENANT_A,
    TENANT_B,
    USER_A,
    USER_A2,
    USER_B,
    Env,
    TokenFactory,
    bearer,
)
from tests.functions.test_sessions_routes import BODY, SUBJECT, _run_worker, _setup

ROLE = ["Sessions.ReadWrite.All"]
WINDOW = {"from": "2025-03-04T00:00:00Z", "to": "2025-03-05T00:00:00Z"}


def _as(token: str, user: str | None = None, **extra: str) -> dict[str, str]:
    headers = {**bearer(token), **extra}
    if user is not None:
        headers["X-On-Behalf-Of"] = user
    return headers


def _audit(env: Env) -> list[Any]:
    return list(reversed(AuditTrail(env.tables, env.container.clock).entries(TENANT_A, limit=100)))


def test_product_server_books_for_a_user_named_by_object_id(env: Env, mint: TokenFactory) -> None:
    """With X-On-Behalf-Of the app books as that user: they are the organizer and read it as their own."""
    _setup(env, mint)
    app = mint(app=True, roles=ROLE)
    r = env.client.post("/api/sessions", headers=_as(app, USER_A), json=BODY)
    assert r.status == 202, r.text
    sid = r.json()["id"]
    mine = env.client.get(f"/api/sessions/{sid}", headers=bearer(mint()))
    assert mine.status == 200 and mine.json()["organizer"] == USER_A


def test_product_server_names_the_user_by_email(env: Env, mint: TokenFactory) -> None:
    """An email/UPN is resolved to the user's object id in the token's tenant."""
    _setup(env, mint)
    r = env.client.post("/api/sessions", headers=_as(mint(app=True, roles=ROLE), "Ann@Contoso.Example"), json=BODY)
    assert r.status == 202, r.text
    got = env.client.get(f"/api/sessions/{r.json()['id']}", headers=bearer(mint()))
    assert got.json()["organizer"] == USER_A


def test_naming_nobody_or_nothing_is_a_422_on_the_header(env: Env, mint: TokenFactory) -> None:
    """No header, an unknown email or a malformed value: 422 with the header as the field."""
    _setup(env, mint)
    app = mint(app=True, roles=ROLE)
    cases = {None: "on_behalf_of_required", "nobody@contoso.example": "user_not_found",
             "drop table": "validation_failed"}
    for user, code in cases.items():
        r = env.client.post("/api/sessions", headers=_as(app, user), json=BODY)
        assert r.status == 422 and r.json()["error"]["code"] == code, (user, r.text)
        assert r.json()["error"]["details"]["fields"][0]["loc"] == ["header", "X-On-Behalf-Of"]


def test_acting_needs_the_sessions_role_and_an_app_token(env: Env, mint: TokenFactory) -> None:
    """An app token without Sessions.ReadWrite.All is 403; a user token sending the header is 403 too."""
    _setup(env, mint)
    r = env.client.post("/api/sessions", headers=_as(mint(app=True, roles=["Pairings.ReadWrite.All"]), USER_A),
                        json=BODY)
    assert r.status == 403 and r.json()["error"]["code"] == "sessions_role_required"
    r = env.client.post("/api/sessions", headers=_as(mint(oid=USER_A2), USER_A), json=BODY)
    assert r.status == 403 and r.json()["error"]["code"] == "on_behalf_of_not_allowed"


def test_the_header_is_refused_where_no_user_is_acted_for(env: Env, mint: TokenFactory) -> None:
    """Pairing writes are the app's own: X-On-Behalf-Of there is 403, and app tokens never reach user-only routes."""
    app = mint(app=True, roles=["Pairings.ReadWrite.All", *ROLE])
    r = env.client.put("/api/pairings/p-2", headers=_as(app, USER_A),
                       json={"mentor": USER_A, "mentee": USER_A2, "active": True})
    assert r.status == 403 and r.json()["error"]["code"] == "on_behalf_of_not_allowed"
    r = env.client.get("/api/me/connection", headers=_as(app, USER_A))
    assert r.status == 403 and r.json()["error"]["code"] == "user_token_required"


def test_acting_for_an_attendee_gives_the_attendee_s_rights_only(env: Env, mint: TokenFactory) -> None:
    """The app acting for the partner may read the session but not change it (organizer only)."""
    _setup(env, mint)
    sid = env.client.post("/api/sessions", headers=bearer(mint()), json=BODY).json()["id"]
    app = mint(app=True, roles=ROLE)
    assert env.client.get(f"/api/sessions/{sid}", headers=_as(app, USER_A2)).status == 200
    r = env.client.delete(f"/api/sessions/{sid}", headers=_as(app, USER_A2))
    assert r.status == 403 and r.json()["error"]["code"] == "organizer_only"


def test_product_server_reschedules_and_cancels_and_every_step_is_audited(env: Env, mint: TokenFactory) -> None:
    """Book, move and cancel for Ann: each answers 202, and the audit names app, user, action and ids only."""
    _setup(env, mint)
    app = mint(app=True, roles=ROLE)
    sid = env.client.post("/api/sessions", headers=_as(app, USER_A), json=BODY).json()["id"]
    assert _run_worker(env) == 1
    moved = env.client.patch(f"/api/sessions/{sid}", headers=_as(app, USER_A),
                             json={"start": "2025-03-04T14:00:00Z", "end": "2025-03-04T15:00:00Z",
                                   "timeZone": "UTC"})
    assert moved.status == 202, moved.text
    assert _run_worker(env) == 1
    cancelled = env.client.delete(f"/api/sessions/{sid}", headers=_as(app, USER_A), json={"comment": SUBJECT})
    assert cancelled.status == 202
    actions = [(e.actor, e.action, e.on_behalf_of, e.ids.get("id"), e.status) for e in _audit(env)]
    assert actions == [
        (f"app:{PRODUCT_SERVER}", "session_create", USER_A, sid, 202),
        (f"app:{PRODUCT_SERVER}", "session_reschedule", USER_A, sid, 202),
        (f"app:{PRODUCT_SERVER}", "session_cancel", USER_A, sid, 202),
    ]
    assert _audit(env)[0].ids == {"id": sid, "pairingId": "p-1"}
    assert SUBJECT not in repr(env.tables.all(Tables.AUDIT))  # neither the subject nor the cancel comment


def test_refused_app_requests_are_audited_too(env: Env, mint: TokenFactory) -> None:
    """A refusal (here 404 for an unknown pairing) is recorded with its status and code."""
    _setup(env, mint)
    r = env.client.post("/api/sessions", headers=_as(mint(app=True, roles=ROLE), USER_A),
                        json={**BODY, "pairingId": "nope"})
    assert r.status == 404
    [entry] = _audit(env)
    assert (entry.action, entry.status, entry.code, entry.ids) == ("session_create", 404, "pairing_not_found",
                                                                  {"pairingId": "nope"})


def test_users_own_requests_are_not_in_the_app_audit(env: Env, mint: TokenFactory) -> None:
    """Only apps' requests are audited per request: a user's booking adds no entry."""
    _setup(env, mint)
    assert env.client.post("/api/sessions", headers=bearer(mint()), json=BODY).status == 202
    assert [e for e in _audit(env) if e.actor.startswith("app:")] == []


def test_product_server_reads_any_session_of_its_tenant_and_lists_by_pairing(env: Env, mint: TokenFactory) -> None:
    """Without X-On-Behalf-Of the app reads one session by id, a pairing's sessions, or the tenant's window."""
    _setup(env, mint)
    sid = env.client.post("/api/sessions", headers=bearer(mint()), json=BODY).json()["id"]
    app = mint(app=True, roles=ROLE)
    assert env.client.get(f"/api/sessions/{sid}", headers=bearer(app)).json()["id"] == sid
    by_pairing = env.client.get("/api/sessions", headers=bearer(app), query={**WINDOW, "pairingId": "p-1"})
    assert [s["id"] for s in by_pairing.json()] == [sid]
    assert env.client.get("/api/sessions", headers=bearer(app), query={**WINDOW, "pairingId": "p-9"}).status == 404
    tenant = env.client.get("/api/sessions", headers=bearer(app), query=WINDOW)
    assert [s["id"] for s in tenant.json()] == [sid]
    other = mint(app=True, roles=ROLE, tid=TENANT_B)
    assert env.client.get(f"/api/sessions/{sid}", headers=bearer(other)).status == 404
    assert env.client.get("/api/sessions", headers=bearer(other), query=WINDOW).json() == []


def test_product_server_reads_the_user_s_availability(env: Env, mint: TokenFactory) -> None:
    """POST /api/availability for Ann: the same answer Ann gets herself."""
    _setup(env, mint)
    body = {"pairingId": "p-1", "start": "2025-03-04T08:00:00Z", "end": "2025-03-04T18:00:00Z",
            "durationMinutes": 30, "timeZone": "UTC", "workingHoursOnly": False}
    hers = env.client.post("/api/availability", headers=bearer(mint()), json=body)
    app = env.client.post("/api/availability", headers=_as(mint(app=True, roles=ROLE), USER_A), json=body)
    assert hers.status == app.status == 200, app.text
    assert app.json() == hers.json() and app.json()["slots"]
    assert env.client.post("/api/availability", headers=_as(mint(app=True, roles=ROLE), USER_B),
                           json=body).status == 404  # not a member of that pairing


def test_list_without_a_window_answers_the_upcoming_62_days(env: Env, mint: TokenFactory) -> None:
    """GET /api/sessions with no window lists sessions from now on, not a validation error."""
    _setup(env, mint)
    sid = env.client.post("/api/sessions", headers=bearer(mint()), json=BODY).json()["id"]
    r = env.client.get("/api/sessions", headers=bearer(mint()))
    assert r.status == 200 and [s["id"] for s in r.json()] == [sid]
    assert env.client.get("/api/sessions", headers=bearer(mint()),
                          query={"from": "2025-03-05T00:00:00Z"}).json() == []


def test_lists_are_paged_with_a_cursor(env: Env, mint: TokenFactory) -> None:
    """limit caps a page; X-Next-Cursor continues it; the pages together list every session once, by start."""
    _setup(env, mint)
    ids = []
    for hour in range(8, 15):
        body = {**BODY, "start": f"2025-03-04T{hour:02d}:00:00Z", "end": f"2025-03-04T{hour:02d}:30:00Z"}
        r = env.client.post("/api/sessions", headers=bearer(mint()), json=body)
        assert r.status == 202, r.text
        ids.append(r.json()["id"])
    for token in (mint(), mint(app=True, roles=ROLE)):
        seen: list[str] = []
        query = {**WINDOW, "limit": "3"}
        for _ in range(5):
            page = env.client.get("/api/sessions", headers=bearer(token), query=query)
            assert page.status == 200 and len(page.json()) <= 3
            seen += [s["id"] for s in page.json()]
            cursor = page.header("X-Next-Cursor")
            if not cursor:
                break
            query = {**WINDOW, "limit": "3", "cursor": cursor}
        assert seen == ids
    bad = env.client.get("/api/sessions", headers=bearer(mint()), query={"cursor": "not-a-cursor"})
    assert bad.status == 422


def test_the_admin_reads_the_audit_trail_newest_first_in_pages(env: Env, mint: TokenFactory) -> None:
    """GET /api/integration/audit: the app's requests (for whom, which ids, which status) newest first, paged by the
    `next` cursor to the end; only admins, only their tenant; a cursor we did not give out is 422."""
    _setup(env, mint)
    app = mint(app=True, roles=ROLE)
    booked = env.client.post("/api/sessions", headers=_as(app, USER_A), json=BODY)
    assert booked.status == 202, booked.text
    sid = booked.json()["id"]
    env.container.clock.advance(seconds=1)  # type: ignore[attr-defined]
    assert env.client.get(f"/api/sessions/{sid}", headers=_as(app)).status == 200
    env.container.clock.advance(seconds=1)  # type: ignore[attr-defined]
    assert env.client.delete(f"/api/sessions/{sid}", headers=_as(app, USER_A2)).status in (403, 404)
    admin = bearer(mint(roles=["Integration.Admin"]))
    seen: list[dict[str, Any]] = []
    cursor: dict[str, str] = {}
    for _ in range(10):
        r = env.client.get("/api/integration/audit", headers=admin, query={"limit": "2", **cursor})
        assert r.status == 200, r.text
        seen += r.json()["entries"]
        if not r.json().get("next"):
            break
        cursor = {"before": r.json()["next"]}
    apps = [e for e in seen if e["actor"] == f"app:{PRODUCT_SERVER}"]
    assert [(e["action"], e.get("onBehalfOf"), e.get("status")) for e in apps][:3] == [
        ("session_cancel", USER_A2, apps[0]["status"]), ("session_get", None, 200), ("session_create", USER_A, 202)]
    assert apps[0]["status"] in (403, 404) and apps[0]["code"] and apps[2]["ids"]["id"] == sid
    assert [e["at"] for e in seen] == sorted((e["at"] for e in seen), reverse=True)
    assert len(seen) == len(_audit(env))
    assert SUBJECT not in str(seen)
    assert env.client.get("/api/integration/audit", headers=bearer(mint())).status == 403
    assert env.client.get("/api/integration/audit", headers=_as(app)).status == 403
    other = env.client.get("/api/integration/audit", headers=bearer(mint(tid=TENANT_B, roles=["Integration.Admin"])))
    assert other.status in (200, 404) and (other.status == 404 or other.json()["entries"] == [])
    bad = env.client.get("/api/integration/audit", headers=admin, query={"before": "not-a-cursor"})
    assert bad.status == 422 and bad.json()["error"]["code"] == "invalid_cursor"
    assert env.client.get("/api/integration/audit", headers=admin, query={"limit": "0"}).status == 422
