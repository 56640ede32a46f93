"""Offered-hours routes: /me, the tenant default, a user's rules (admins), the preview; ETags and 422 codes."""

from __future__ import annotations

from datetime import time
from typing import Any

import pytest

from core.domain.calendar import TimeZoneSpec, Weekday, WorkingHours
from core.names import Queues
from tests.functions.conftest import TENANT_A, TENANT_B, USER_A, USER_A2, Env, TokenFactory, bearer, error_code
from tests.support.fake_graph import FakeCalendarGateway, FakeTokenProvider

ADMIN_ID = "a0000000-0000-4000-8000-0000000000ad"
ADMIN = ["Integration.Admin"]
ME = "/api/me/availability-rules"
DEFAULT = "/api/integration/availability-rules/default"
TUE_THU: dict[str, Any] = {
    "timeZone": "Europe/Berlin",
    "weekly": [{"day": "tuesday", "start": "14:00", "end": "17:00"},
               {"day": "thursday", "start": "14:00", "end": "17:00"},
               {"day": "friday", "start": "22:00", "end": "02:00", "endsNextDay": True}],
    "overrides": [{"date": "2025-03-11", "mode": "off"},
                  {"date": "2025-03-13", "mode": "replace", "windows": [{"start": "09:00", "end": "10:00"}]}],
    "minNoticeMinutes": 720,
    "bufferBeforeMinutes": 10,
    "bufferAfterMinutes": 5,
    "maxPerDay": 2,
    "maxPerWeek": 5,
}


def _graph(env: Env) -> FakeCalendarGateway:
    graph = FakeCalendarGateway(tokens=FakeTokenProvider([TENANT_A, TENANT_B]), clock=env.container.clock)
    mon_fri = frozenset({Weekday.MONDAY, Weekday.TUESDAY, Weekday.WEDNESDAY, Weekday.THURSDAY, Weekday.FRIDAY})
    graph.add_user(TENANT_A, "ann@contoso.example", user_id=USER_A, time_zone="Europe/Berlin",
                   working_hours=WorkingHours(mon_fri, time(9), time(17), TimeZoneSpec("Europe/Berlin")))
    graph.add_user(TENANT_A, "ben@contoso.example", user_id=USER_A2)
    env.container.graph = graph
    return graph


def test_me_starts_with_no_rules(env: Env, mint: TokenFactory) -> None:
    """Nothing set anywhere: GET answers 200 with source none and no ETag."""
    r = env.client.get(ME, headers=bearer(mint()))
    assert r.status == 200 and r.json() == {"source": "none"}
    assert r.header("ETag") is None


def test_put_then_get_returns_the_rules_with_one_etag(env: Env, mint: TokenFactory) -> None:
    """PUT stores the document; the ETag header equals the body's etag and GET gives back the same rules."""
    put = env.client.put(ME, headers=bearer(mint()), json=TUE_THU)
    assert put.status == 200, put.text
    doc = put.json()
    assert doc["source"] == "own" and put.header("ETag") == doc["etag"]
    assert doc["weekly"][2] == {"day": "friday", "start": "22:00", "end": "02:00", "endsNextDay": True}
    assert doc["overrides"][1] == {"date": "2025-03-13", "mode": "replace",
                                   "windows": [{"start": "09:00", "end": "10:00", "endsNextDay": False}]}
    assert (doc["maxPerDay"], doc["maxPerWeek"], doc["minNoticeMinutes"]) == (2, 5, 720)
    got = env.client.get(ME, headers=bearer(mint()))
    assert got.json() == doc and got.header("ETag") == doc["etag"]


def test_stale_or_foreign_etags_are_412_and_the_current_one_writes(env: Env, mint: TokenFactory) -> None:
    """If-Match with the current ETag writes; the replaced ETag, a made-up one and If-None-Match on existing are 412."""
    first = env.client.put(ME, headers={**bearer(mint()), "If-None-Match": "*"}, json=TUE_THU)
    assert first.status == 200
    etag = first.header("ETag")
    second = env.client.put(ME, headers={**bearer(mint()), "If-Match": str(etag)}, json={**TUE_THU, "maxPerDay": 1})
    assert second.status == 200 and second.header("ETag") != etag
    for headers in ({"If-Match": str(etag)}, {"If-Match": '"not-ours"'}, {"If-Match": "garbage"},
                    {"If-None-Match": "*"}):
        r = env.client.put(ME, headers={**bearer(mint()), **headers}, json=TUE_THU)
        assert r.status == 412 and error_code(r) == "precondition_failed", headers
    assert env.client.get(ME, headers=bearer(mint())).json()["maxPerDay"] == 1
    weak = env.client.put(ME, headers={**bearer(mint()), "If-Match": f"W/{second.header('ETag')}"}, json=TUE_THU)
    assert weak.status == 200


@pytest.mark.parametrize(("change", "code"), [
    ({"weekly": [{"day": "monday", "start": "17:00", "end": "09:00"}]}, "inverted_window"),
    ({"weekly": [{"day": "monday", "start": "09:00", "end": "12:00"},
                 {"day": "monday", "start": "11:00", "end": "13:00"}]}, "overlapping_windows"),
    ({"weekly": [{"day": "monday", "start": f"{h:02d}:00", "end": f"{h:02d}:30"} for h in range(13)]},
     "too_many_windows"),
    ({"timeZone": "Europe/Atlantis"}, "unknown_time_zone"),
    ({"maxPerDay": 0}, "invalid_cap"),
    ({"minNoticeMinutes": 50000}, "notice_out_of_range"),
    ({"bufferAfterMinutes": -1}, "buffer_out_of_range"),
    ({"overrides": [{"date": "2025-03-11", "mode": "off"}, {"date": "2025-03-11", "mode": "add",
                                                            "windows": [{"start": "09:00", "end": "10:00"}]}]},
     "duplicate_override_date"),
    ({"weekly": [{"day": "monday", "start": "25:00", "end": "26:00"}]}, "validation_failed"),
    ({"weekly": [{"day": "someday", "start": "09:00", "end": "10:00"}]}, "validation_failed"),
    ({"colour": "blue"}, "validation_failed"),
])
def test_unusable_rules_are_422_with_a_code_that_says_what_to_fix(
    env: Env, mint: TokenFactory, change: dict[str, Any], code: str,
) -> None:
    """Meaning errors carry their own code and field list; shape errors are validation_failed; nothing is stored."""
    r = env.client.put(ME, headers=bearer(mint()), json={**TUE_THU, **change})
    assert r.status == 422 and error_code(r) == code, r.text
    if code not in ("validation_failed", "unknown_time_zone"):
        assert r.json()["error"]["details"]["fields"][0]["type"] == code
    assert env.client.get(ME, headers=bearer(mint())).json() == {"source": "none"}


def test_delete_returns_the_user_to_the_tenant_default(env: Env, mint: TokenFactory) -> None:
    """The admin's default shows as source default once the user's own rules are deleted (204, idempotent)."""
    assert env.client.put(DEFAULT, headers=bearer(mint(oid=ADMIN_ID, roles=ADMIN)),
                          json={**TUE_THU, "maxPerDay": None}).status == 200
    env.client.put(ME, headers=bearer(mint()), json=TUE_THU)
    assert env.client.delete(ME, headers=bearer(mint())).status == 204
    assert env.client.delete(ME, headers=bearer(mint())).status == 204
    r = env.client.get(ME, headers=bearer(mint()))
    assert r.json()["source"] == "default" and "etag" not in r.json() and "maxPerDay" not in r.json()


def test_the_default_is_for_admins_and_stays_in_its_tenant(env: Env, mint: TokenFactory) -> None:
    """A user without the role gets 403 admin_role_required; tenant B's users never see tenant A's default."""
    r = env.client.put(DEFAULT, headers=bearer(mint()), json=TUE_THU)
    assert r.status == 403 and error_code(r) == "admin_role_required"
    admin = bearer(mint(oid=ADMIN_ID, roles=ADMIN))
    assert env.client.get(DEFAULT, headers=admin).json() == {"source": "none"}
    put = env.client.put(DEFAULT, headers=admin, json=TUE_THU)
    assert put.status == 200 and put.json()["source"] == "default" and put.header("ETag")
    assert env.client.get(DEFAULT, headers=admin).header("ETag") == put.header("ETag")
    assert env.client.get(ME, headers=bearer(mint(tid=TENANT_B))).json() == {"source": "none"}
    assert env.client.delete(DEFAULT, headers={**admin, "If-Match": '"stale"'}).status == 412
    assert env.client.delete(DEFAULT, headers={**admin, "If-Match": str(put.header("ETag"))}).status == 204
    assert env.client.get(ME, headers=bearer(mint())).json() == {"source": "none"}


def test_admins_set_a_users_rules_by_email_or_id(env: Env, mint: TokenFactory) -> None:
    """PUT by email, read by id: the user sees them as their own; unknown users are 404; non-admins 403."""
    _graph(env)
    admin = bearer(mint(oid=ADMIN_ID, roles=ADMIN))
    put = env.client.put("/api/users/ben@contoso.example/availability-rules", headers=admin, json=TUE_THU)
    assert put.status == 200, put.text
    got = env.client.get(f"/api/users/{USER_A2}/availability-rules", headers=admin)
    assert got.json() == put.json()
    assert env.client.get(ME, headers=bearer(mint(oid=USER_A2))).json()["source"] == "own"
    missing = env.client.get("/api/users/ghost@contoso.example/availability-rules", headers=admin)
    assert missing.status == 404 and error_code(missing) == "user_not_found"
    assert env.client.get(f"/api/users/{USER_A2}/availability-rules", headers=bearer(mint())).status == 403
    assert env.client.delete(f"/api/users/{USER_A2}/availability-rules", headers=admin).status == 204
    assert env.client.get(ME, headers=bearer(mint(oid=USER_A2))).json() == {"source": "none"}


def test_the_product_server_manages_a_user_s_offered_hours_by_acting_for_them(env: Env, mint: TokenFactory) -> None:
    """An app token must name the user (422 without X-On-Behalf-Of); naming Ann, it reads and writes Ann's rules."""
    _graph(env)
    app = bearer(mint(app=True, roles=["Sessions.ReadWrite.All"]))
    r = env.client.get(ME, headers=app)
    assert r.status == 422 and error_code(r) == "on_behalf_of_required"
    as_ann = {**app, "X-On-Behalf-Of": "ann@contoso.example"}
    put = env.client.put(ME, headers={**as_ann, "If-None-Match": "*"}, json=TUE_THU)
    assert put.status == 200, put.text
    assert env.client.get(ME, headers=bearer(mint())).json() == put.json()  # Ann's own view
    assert env.client.get(ME, headers={**app, "X-On-Behalf-Of": USER_A2}).json() == {"source": "none"}


def test_preview_lists_offered_time_and_with_a_duration_the_bookable_slots(env: Env, mint: TokenFactory) -> None:
    """From Monday 3 March 2025: Tuesday 14-17 and Thursday 14-17 Berlin (13-16Z); 60-minute slots inside them."""
    _graph(env)
    env.client.put(ME, headers=bearer(mint()), json={
        "timeZone": "Europe/Berlin", "weekly": [{"day": "tuesday", "start": "14:00", "end": "17:00"},
                                                {"day": "thursday", "start": "14:00", "end": "17:00"}]})
    window = {"from": "2025-03-03T00:00:00Z", "to": "2025-03-10T00:00:00Z"}
    r = env.client.get(f"{ME}/preview", headers=bearer(mint()), query=window)
    assert r.status == 200, r.text
    assert r.json()["source"] == "own" and r.json()["timeZone"] == "Europe/Berlin" and "slots" not in r.json()
    assert r.json()["offered"] == [{"start": "2025-03-04T13:00:00Z", "end": "2025-03-04T16:00:00Z"},
                                   {"start": "2025-03-06T13:00:00Z", "end": "2025-03-06T16:00:00Z"}]
    slots = env.client.get(f"{ME}/preview", headers=bearer(mint()), query={**window, "durationMinutes": "60"})
    assert slots.status == 200, slots.text
    starts = [s["start"] for s in slots.json()["slots"]]
    assert starts[0] == "2025-03-04T13:00:00Z" and starts[-1] == "2025-03-06T15:00:00Z"


def test_preview_refuses_a_window_it_cannot_serve(env: Env, mint: TokenFactory) -> None:
    """An inverted window, one over 62 days, a duration longer than the window, or years out of range are 422."""
    for params in ({"from": "2025-03-10T00:00:00Z", "to": "2025-03-03T00:00:00Z"},
                   {"from": "2025-03-01T00:00:00Z", "to": "2025-06-01T00:00:00Z"},
                   {"from": "2025-03-03T00:00:00Z", "to": "2025-03-03T00:30:00Z", "durationMinutes": "60"},
                   {"from": "0001-01-01T00:00:00+14:00", "to": "0001-01-05T00:00:00Z"},
                   {"from": "9999-12-30T00:00:00Z", "to": "9999-12-31T23:59:59-12:00"}):
        r = env.client.get(f"{ME}/preview", headers=bearer(mint()), query=params)
        assert r.status == 422 and error_code(r) == "validation_failed", params


def test_a_change_of_offered_hours_reaches_the_product_as_a_signed_event(env: Env, mint: TokenFactory) -> None:
    """The product's server sets Ann's rules, Ann removes them: two availability_rules.changed deliveries, signed
    with the endpoint's secret, matching the published schema, naming the app for the first; no rule content."""
    from functions.schemas.product_webhooks import AvailabilityRulesWebhook
    from tests.support.fake_webhooks import FakeWebhookSender

    _graph(env)
    sender = FakeWebhookSender()
    env.container._webhooks = sender  # type: ignore[attr-defined]
    created = env.client.post("/api/webhooks/endpoints", headers=bearer(mint(roles=ADMIN, oid=ADMIN_ID)),
                              json={"url": "https://hooks.product.example/rules",
                                    "events": ["availability_rules.changed"]})
    assert created.status == 201, created.text
    app = {**bearer(mint(app=True, roles=["Sessions.ReadWrite.All"])), "X-On-Behalf-Of": "ann@contoso.example"}
    assert env.client.put(ME, headers=app, json=TUE_THU).status == 200
    env.container.clock.advance(seconds=2)  # type: ignore[attr-defined]
    assert env.client.delete(ME, headers=bearer(mint())).status == 204
    for _ in range(3):
        for message in env.queues.take(Queues.PRODUCT_EVENTS):
            env.container.webhook_delivery.handle(message.body)
    payloads = [AvailabilityRulesWebhook.model_validate(s.verify(created.json()["secret"])) for s in sender.sent]
    assert [(p.data.scope, p.data.user_id, p.data.change, p.data.app is not None) for p in payloads] == [
        ("user", USER_A, "updated", True), ("user", USER_A, "deleted", False)]
    assert all("14:00" not in s.body and "Europe/Berlin" not in s.body for s in sender.sent)
