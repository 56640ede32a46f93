"""The simulator's documented limits and unkind cases: subscription lifetime, GET /subscriptions, hybrid
mailboxes, the notification resource spellings, and the service's lifetime fallback against them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from core.domain.notification_resources import parse_event_resource
from core.services.client_state import SECRET_NAME, ClientStateKeyCache
from core.services.stores.subscriptions import OUTLOOK_MAX_MINUTES
from core.services.subscriptions import LEGACY_MAX_MINUTES, SubscriptionService
from local.simulator.seed import ALICE, ALICE_ID, CONTOSO
from tests.simulator.conftest import Receiver, Sim, event_body, next_weekday, subscribe
from tests.support.memory import FixedClock, InMemoryCommandQueue, InMemorySecretStore, InMemoryTableStore
from tests.support.simulator import real_gateway

HYBRID = "hybrid1@contoso.test"


def _expiry(minutes: float) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def test_expiry_beyond_the_maximum_is_refused_with_extension_error(sim: Sim, contoso_token: str,
                                                                   receiver: Receiver) -> None:
    """Graph refuses (never shortens) an expiry past 10,080 minutes: 400 ExtensionError naming the limit."""
    resp = subscribe(sim, contoso_token, ALICE, receiver, minutes=10080 + 5)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == "ExtensionError"
    assert error["message"] == "Subscription expiration can only be 10080 minutes in the future."
    assert "request-id" in error["innerError"]
    assert subscribe(sim, contoso_token, ALICE, receiver, minutes=10080 - 5).status_code == 201


def test_the_older_4230_minute_limit_can_be_switched_on_for_create_and_renew(
    sim: Sim, contoso_token: str, receiver: Receiver
) -> None:
    """With maxSubscriptionMinutes=4230 both create and PATCH beyond 4,230 minutes get the ExtensionError."""
    created = subscribe(sim, contoso_token, ALICE, receiver, minutes=60).json()
    sim.post("/_sandbox/faults", json={"maxSubscriptionMinutes": 4230})
    assert subscribe(sim, contoso_token, ALICE, receiver, minutes=5000).json()["error"]["message"] == (
        "Subscription expiration can only be 4230 minutes in the future.")
    renew = sim.graph("PATCH", f"/subscriptions/{created['id']}", contoso_token,
                      json={"expirationDateTime": _expiry(5000)})
    assert (renew.status_code, renew.json()["error"]["code"]) == (400, "ExtensionError")
    ok = sim.graph("PATCH", f"/subscriptions/{created['id']}", contoso_token,
                   json={"expirationDateTime": _expiry(4200)})
    assert ok.status_code == 200


def test_subscription_service_falls_back_to_4230_minutes_and_remembers_it(
    sim: Sim, receiver_factory: Callable[..., Receiver]
) -> None:
    """Against Graph's older limit the service's create (10,080 refused, then 4,230) succeeds, stores what Graph
    granted, and renews at 4,230 at once afterwards."""
    sim.app_token(CONTOSO)  # consent granted
    sim.post("/_sandbox/faults", json={"maxSubscriptionMinutes": LEGACY_MAX_MINUTES})
    rec = receiver_factory()
    gateway, _tokens = real_gateway(sim.handle)
    base = rec.url.split("/api/")[0]
    service = SubscriptionService(
        InMemoryTableStore(), InMemoryCommandQueue(), gateway, FixedClock(datetime.now(UTC)),
        ClientStateKeyCache(InMemorySecretStore({SECRET_NAME: "k" * 32})), public_base_url=base,
    )
    since = len(sim.get("/_sandbox/requests").json())
    record = service.recreate(CONTOSO, ALICE_ID)
    assert record.lifetime_minutes == LEGACY_MAX_MINUTES
    assert record.expires_at <= datetime.now(UTC) + timedelta(minutes=LEGACY_MAX_MINUTES)
    creates = [r["status"] for r in sim.get("/_sandbox/requests").json()[since:]
               if r["method"] == "POST" and r["path"] == "/v1.0/subscriptions"]
    assert creates == [400, 201]
    renewed = service.renew_one(CONTOSO, ALICE_ID)
    assert renewed is not None and renewed.lifetime_minutes == LEGACY_MAX_MINUTES
    assert OUTLOOK_MAX_MINUTES not in (record.lifetime_minutes, renewed.lifetime_minutes)


def test_list_subscriptions_pages_hides_client_state_and_shows_only_this_apps(
    sim: Sim, contoso_token: str, receiver: Receiver
) -> None:
    """GET /subscriptions: 100 per page with @odata.nextLink, clientState null, nothing of another tenant."""
    created = {subscribe(sim, contoso_token, ALICE, receiver).json()["id"] for _ in range(101)}
    fabrikam = sim.app_token("22222222-2222-4222-8222-222222222222")
    assert sim.graph("GET", "/subscriptions", fabrikam).json()["value"] == []
    first = sim.graph("GET", "/subscriptions", contoso_token).json()
    assert len(first["value"]) == 100 and all(s["clientState"] is None for s in first["value"])
    second = sim.get(first["@odata.nextLink"], headers={"Authorization": f"Bearer {contoso_token}"}).json()
    assert "@odata.nextLink" not in second
    assert {s["id"] for s in first["value"] + second["value"]} == created


def test_hybrid_mailbox_has_free_busy_but_no_rest_access(sim: Sim, contoso_token: str) -> None:
    """A hybrid mailbox's getSchedule answers real availability while its calendar and events are
    MailboxNotEnabledForRESTAPI; the control API lists the kind."""
    tenants = sim.get("/_sandbox/tenants").json()
    kinds = {u["userPrincipalName"]: u["kind"] for t in tenants for u in t["users"]}
    assert kinds[HYBRID] == "hybrid" and kinds["onprem1@contoso.test"] == "onPremises"
    start = next_weekday(1, hour=0)
    body = {"schedules": [HYBRID, "nolicense1@contoso.test"], "availabilityViewInterval": 60,
            "startTime": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
            "endTime": {"dateTime": (start + timedelta(days=5)).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}}
    hybrid, unlicensed = sim.graph("POST", "/users/admin@contoso.test/calendar/getSchedule", contoso_token,
                                   json=body).json()["value"]
    assert "error" not in hybrid and hybrid["workingHours"]["daysOfWeek"]
    assert len(hybrid["availabilityView"]) == 5 * 24 and set(hybrid["availabilityView"]) != {"0"}
    assert unlicensed["error"]["responseCode"] == "MailboxNotEnabledForRESTAPI"
    for path in (f"/users/{HYBRID}/calendar", f"/users/{HYBRID}/events", f"/users/{HYBRID}/mailboxSettings"):
        resp = sim.graph("GET", path, contoso_token)
        assert (resp.status_code, resp.json()["error"]["code"]) == (404, "MailboxNotEnabledForRESTAPI")
    write = sim.graph("POST", f"/users/{HYBRID}/events", contoso_token, json=event_body(start))
    assert write.json()["error"]["code"] == "MailboxNotEnabledForRESTAPI"


def test_notifications_rotate_among_the_documented_resource_spellings(
    sim: Sim, contoso_token: str, receiver: Receiver
) -> None:
    """Successive notifications use Users/{id}/Events/{id}, users/{id}@{tenant}/events/{id} and
    Users('{id}')/Events('{id}'); each names the same mailbox and the event in resourceData."""
    assert subscribe(sim, contoso_token, ALICE, receiver).status_code == 201
    start = next_weekday(9)
    for i in range(3):
        created = sim.graph("POST", f"/users/{ALICE}/events", contoso_token,
                            json=event_body(start + timedelta(hours=i)))
        assert created.status_code == 201
    items = receiver.items(3)
    resources = [i["resource"] for i in items]
    assert resources[0].startswith(f"Users/{ALICE_ID}/Events/")
    assert resources[1].startswith(f"users/{ALICE_ID}@{CONTOSO}/events/")
    assert resources[2].startswith(f"Users('{ALICE_ID}')/Events('")
    for item in items:
        parsed = parse_event_resource(item["resource"], item["tenantId"])
        assert parsed is not None and parsed.user_id == ALICE_ID
        assert parsed.event_id == item["resourceData"]["id"]
        assert item["resourceData"]["@odata.id"] == item["resource"]

