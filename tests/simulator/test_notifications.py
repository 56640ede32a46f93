"""Subscriptions (validation handshake, limits, renewal), change and lifecycle notifications."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from local.simulator import start_simulator
from local.simulator.seed import ALICE, ALICE_ID, BOB, CONTOSO
from tests.simulator.conftest import Receiver, Sim, attendee, dttz, event_body, next_weekday, subscribe


def test_subscription_is_created_after_the_validation_echo(sim: Sim, contoso_token: str, receiver: Receiver) -> None:
    """Graph POSTs a validationToken to the URL (query string kept) and creates the subscription on an exact echo."""
    resp = subscribe(sim, contoso_token, ALICE, receiver)
    assert resp.status_code == 201, resp.text
    sub = resp.json()
    assert sub["resource"] == f"/users/{ALICE}/events"
    assert sub["changeType"] == "created,updated,deleted"
    assert receiver.validations and receiver.validations[0].startswith("Validation: ")
    listed = sim.get("/_sandbox/subscriptions").json()
    assert [s["id"] for s in listed] == [sub["id"]]
    assert sim.graph("GET", f"/subscriptions/{sub['id']}", contoso_token).status_code == 200


def test_wrong_echo_refuses_the_subscription(
    sim: Sim, contoso_token: str, receiver_factory: Callable[..., Receiver]
) -> None:
    """An endpoint that answers anything but the exact token (here HTML-wrapped) gets a 400."""
    resp = subscribe(sim, contoso_token, ALICE, receiver_factory("wrong"))
    assert resp.status_code == 400
    assert resp.json()["error"]["message"].startswith("Subscription validation request failed")
    assert sim.get("/_sandbox/subscriptions").json() == []
    assert subscribe(sim, contoso_token, ALICE, receiver_factory("error")).status_code == 400


def test_slow_echo_refuses_the_subscription(receiver_factory: Callable[..., Receiver], tmp_path: object) -> None:
    """An endpoint slower than the validation timeout is refused (timeout shortened for the test)."""
    handle = start_simulator(ca_dir=str(tmp_path), validation_timeout=0.3)
    try:
        sim = Sim(handle)
        token = sim.app_token(CONTOSO)
        assert subscribe(sim, token, ALICE, receiver_factory("slow")).status_code == 400
    finally:
        handle.stop()


def test_subscription_limits(sim: Sim, contoso_token: str, receiver: Receiver) -> None:
    """Expiry beyond the maximum, a clientState over 128 chars, or a bad changeType are 400s."""
    assert subscribe(sim, contoso_token, ALICE, receiver, minutes=10081).status_code == 400
    assert subscribe(sim, contoso_token, ALICE, receiver, client_state="x" * 129).status_code == 400
    assert subscribe(sim, contoso_token, ALICE, receiver, change_type="moved").status_code == 400
    assert subscribe(sim, contoso_token, "onprem1@contoso.test", receiver).status_code == 404


def test_renew_reauthorize_delete_and_expiry(sim: Sim, contoso_token: str, receiver: Receiver) -> None:
    """PATCH renews (bounded), reauthorize is 204, DELETE removes; an expired subscription is gone (404)."""
    sub = subscribe(sim, contoso_token, ALICE, receiver).json()
    later = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    renewed = sim.graph("PATCH", f"/subscriptions/{sub['id']}", contoso_token, json={"expirationDateTime": later})
    assert renewed.status_code == 200
    assert renewed.json()["expirationDateTime"] > sub["expirationDateTime"]
    too_far = (datetime.now(UTC) + timedelta(days=8)).isoformat()
    assert (
        sim.graph(
            "PATCH", f"/subscriptions/{sub['id']}", contoso_token, json={"expirationDateTime": too_far}
        ).status_code
        == 400
    )
    assert sim.graph("POST", f"/subscriptions/{sub['id']}/reauthorize", contoso_token).status_code == 204
    assert sim.graph("DELETE", f"/subscriptions/{sub['id']}", contoso_token).status_code == 204
    assert sim.graph("GET", f"/subscriptions/{sub['id']}", contoso_token).status_code == 404

    second = subscribe(sim, contoso_token, ALICE, receiver).json()
    with sim.handle.state.lock:
        sim.handle.state.subscriptions[second["id"]].expiration = datetime.now(UTC) - timedelta(seconds=1)
    assert (
        sim.graph(
            "PATCH", f"/subscriptions/{second['id']}", contoso_token, json={"expirationDateTime": later}
        ).status_code
        == 404
    )


def test_created_updated_deleted_are_notified_with_client_state(
    sim: Sim, contoso_token: str, receiver: Receiver
) -> None:
    """Every change to an event in the mailbox reaches notificationUrl with the subscription's clientState."""
    sub = subscribe(sim, contoso_token, ALICE, receiver).json()
    ev = sim.graph("POST", f"/users/{ALICE}/events", contoso_token, json=event_body(next_weekday())).json()
    created = receiver.items(1)[0]
    assert created["changeType"] == "created"
    assert created["clientState"] == "client-state-123"
    assert created["subscriptionId"] == sub["id"]
    assert created["tenantId"] == CONTOSO
    assert created["resource"] == f"Users/{ALICE_ID}/Events/{ev['id']}"
    assert created["resourceData"]["id"] == ev["id"]
    assert created["resourceData"]["@odata.type"] == "#Microsoft.Graph.Event"
    sim.graph("PATCH", f"/users/{ALICE}/events/{ev['id']}", contoso_token, json={"subject": "x"})
    assert receiver.items(1)[0]["changeType"] == "updated"
    sim.graph("DELETE", f"/users/{ALICE}/events/{ev['id']}", contoso_token)
    assert receiver.items(1)[0]["changeType"] == "deleted"


def test_outlook_changes_and_attendee_answers_notify_the_organizer(
    sim: Sim, contoso_token: str, receiver: Receiver
) -> None:
    """Moves in Outlook (control API) and the attendee's answer both notify the organizer's subscription."""
    start = next_weekday()
    ev = sim.graph(
        "POST", f"/users/{ALICE}/events", contoso_token, json=event_body(start, attendees=[attendee(BOB)])
    ).json()
    sub = subscribe(sim, contoso_token, ALICE, receiver).json()
    moved = sim.post(
        f"/_sandbox/users/{ALICE}/events/{ev['id']}/move",
        json={"start": (start + timedelta(hours=2)).isoformat(), "end": (start + timedelta(hours=3)).isoformat()},
    )
    assert moved.status_code == 200
    assert moved.json()["start"]["dateTime"].startswith((start + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
    first = receiver.items(1)
    assert first[0]["changeType"] == "updated" and first[0]["subscriptionId"] == sub["id"]
    copy = sim.copy_of(BOB, ev["iCalUId"])
    assert copy is not None
    sim.post(f"/_sandbox/users/{BOB}/events/{copy['id']}/respond", json={"response": "declined"})
    answer = receiver.items(1)[0]
    assert answer["resourceData"]["id"] == ev["id"]
    org = sim.graph("GET", f"/users/{ALICE}/events/{ev['id']}", contoso_token).json()
    assert org["attendees"][0]["status"]["response"] == "declined"
    assert sim.copy_of(BOB, ev["iCalUId"]) is None
    sim.post(f"/_sandbox/users/{ALICE}/events/{ev['id']}/cancel", json={})
    assert receiver.items(1)[0]["changeType"] == "deleted"


def test_duplicates_fault_sends_each_notification_n_times(sim: Sim, contoso_token: str, receiver: Receiver) -> None:
    """With duplicates=3, the same notification arrives three times."""
    subscribe(sim, contoso_token, ALICE, receiver)
    sim.post("/_sandbox/faults", json={"duplicates": 3})
    sim.graph("POST", f"/users/{ALICE}/events", contoso_token, json=event_body(next_weekday()))
    items = receiver.items(3)
    assert len({i["resourceData"]["id"] for i in items}) == 1


def test_notifications_can_be_switched_off(sim: Sim, contoso_token: str, receiver: Receiver) -> None:
    """With notifications off nothing is delivered (lost notifications, for reconciliation tests)."""
    subscribe(sim, contoso_token, ALICE, receiver)
    sim.post("/_sandbox/faults", json={"notifications": False})
    sim.graph("POST", f"/users/{ALICE}/events", contoso_token, json=event_body(next_weekday()))
    assert sim.handle.wait_notifications(5)
    assert receiver.drain() == []


def test_failed_deliveries_are_retried(sim: Sim, contoso_token: str, receiver_factory: Callable[..., Receiver]) -> None:
    """A 5xx answer is retried until the endpoint accepts it."""
    rec = receiver_factory(statuses=[503, 500])
    subscribe(sim, contoso_token, ALICE, rec)
    sim.graph("POST", f"/users/{ALICE}/events", contoso_token, json=event_body(next_weekday()))
    assert rec.items(1)[0]["changeType"] == "created"
    assert sim.handle.wait_notifications(5)
    attempts = [d for d in sim.get("/_sandbox/notifications").json() if d["kind"] == "change"]
    statuses = [d["status"] for d in attempts]
    assert statuses[-1] == 202
    assert [s for s in statuses if s is not None][:2] == [503, 500]


def test_burst_of_changes_can_share_one_post(sim: Sim, contoso_token: str, receiver: Receiver) -> None:
    """Changes queued together for one URL are batched into a single value array."""
    subscribe(sim, contoso_token, ALICE, receiver)
    subscribe(sim, contoso_token, BOB, receiver)
    ev = sim.graph(
        "POST", f"/users/{ALICE}/events", contoso_token, json=event_body(next_weekday(), attendees=[attendee(BOB)])
    ).json()
    body = receiver.next_body()
    items = body["value"] + receiver.drain()
    assert {i["resource"].split("/")[1] for i in items} >= {ALICE_ID}
    assert any(i["resourceData"]["id"] == ev["id"] for i in items)
    assert len(body["value"]) == 2  # organizer's created + attendee's copy created, one POST


def test_lifecycle_notifications_reach_the_lifecycle_url(
    sim: Sim, contoso_token: str, receiver_factory: Callable[..., Receiver]
) -> None:
    """Control-triggered lifecycle events POST lifecycleEvent; subscriptionRemoved also deletes it."""
    changes, lifecycle = receiver_factory(), receiver_factory()
    sub = subscribe(sim, contoso_token, ALICE, changes, lifecycle=lifecycle).json()
    assert sub["lifecycleNotificationUrl"].startswith(lifecycle.url.split("/api")[0])
    assert len(lifecycle.validations) == 1
    sim.post(
        "/_sandbox/subscriptions/lifecycle", json={"subscriptionId": sub["id"], "event": "reauthorizationRequired"}
    )
    item = lifecycle.items(1)[0]
    assert item["lifecycleEvent"] == "reauthorizationRequired"
    assert item["clientState"] == "client-state-123"
    assert item["subscriptionId"] == sub["id"]
    sim.post("/_sandbox/subscriptions/lifecycle", json={"subscriptionId": sub["id"], "event": "subscriptionRemoved"})
    assert lifecycle.items(1)[0]["lifecycleEvent"] == "subscriptionRemoved"
    assert sim.graph("GET", f"/subscriptions/{sub['id']}", contoso_token).status_code == 404
    assert changes.drain() == []


def test_attendee_mailbox_subscription_sees_invitations(sim: Sim, contoso_token: str, receiver: Receiver) -> None:
    """A subscription on the attendee's mailbox is told when the invitation copy lands."""
    subscribe(sim, contoso_token, BOB, receiver)
    start = next_weekday()
    sim.graph(
        "POST",
        f"/users/{ALICE}/events",
        contoso_token,
        json={**event_body(start), "attendees": [attendee(BOB)], "end": dttz(start + timedelta(hours=1))},
    )
    item = receiver.items(1)[0]
    assert item["changeType"] == "created"
    assert item["resource"].startswith("Users/")
