"""Webhook processing: clientState checked per item, one queue write per POST, 202 or 503, nothing leaked."""

from __future__ import annotations

import json
from typing import Any

from core.names import Queues
from core.services.client_state import SECRET_NAME, ClientStateSigner
from functions.webhooks import dropped_counts
from tests.functions.conftest import TENANT_A, TENANT_B, Env
from tests.log_guard import sentinel
from tests.support.memory import InMemorySecretStore

KEY = "test-client-state-key-0123456789abcdef"
ORGANIZER = "a0000000-0000-4000-8000-0000000000aa"
SIGNER = ClientStateSigner(KEY.encode())


def _install_key(env: Env) -> None:
    env.container.secrets.set(SECRET_NAME, KEY)


def change(event_id: str, *, tenant: str = TENANT_A, user: str = ORGANIZER, client_state: str | None = None,
           change_type: str = "updated") -> dict[str, Any]:
    resource = f"Users/{user}/Events/{event_id}"
    return {
        "subscriptionId": "sub-1",
        "subscriptionExpirationDateTime": "2025-03-10T09:00:00Z",
        "clientState": client_state if client_state is not None else SIGNER.sign(tenant, user),
        "changeType": change_type,
        "resource": resource,
        "tenantId": tenant,
        "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": resource,
                         "@odata.etag": 'W/"abc"', "id": event_id},
    }


NONCE = "n0nce-of-sub-1xx"


def lifecycle(event: str, *, tenant: str = TENANT_A, user: str = ORGANIZER,
              client_state: str | None = None) -> dict[str, Any]:
    return {
        "subscriptionId": "sub-1",
        "subscriptionExpirationDateTime": "2025-03-10T09:00:00Z",
        "tenantId": tenant,
        "clientState": client_state if client_state is not None else SIGNER.sign(tenant, user, NONCE),
        "lifecycleEvent": event,
    }


def test_valid_notifications_are_enqueued_in_one_message_and_acknowledged_202(env: Env) -> None:
    """50 good items -> 202 and exactly one queue message with their metadata, without any clientState."""
    _install_key(env)
    items = [change(f"AAMkAD{i}/+=") for i in range(50)]
    r = env.client.post("/api/graph/notifications", json={"value": items})
    assert r.status == 202
    (message,) = env.queues.take(Queues.NOTIFICATIONS)
    assert message.body["kind"] == "notifications" and message.body["tenantId"] == TENANT_A
    assert [i["eventId"] for i in message.body["items"]] == [f"AAMkAD{i}/+=" for i in range(50)]
    assert message.body["items"][0] == {"tenantId": TENANT_A, "userId": ORGANIZER, "eventId": "AAMkAD0/+=",
                                        "changeType": "updated", "subscriptionId": "sub-1"}
    assert "clientState" not in json.dumps(message.body)


def test_wrong_client_state_is_dropped_and_counted(env: Env) -> None:
    """An item with a forged clientState is not enqueued, is counted, and never appears in a log or the answer."""
    _install_key(env)
    forged = sentinel("1~" + ORGANIZER + "~forged-mac-value-AAAAAAAAAAAAAAAAAAAA")
    before = dropped_counts().get("bad_client_state", 0)
    r = env.client.post("/api/graph/notifications", json={"value": [change("e1", client_state=forged)]})
    assert r.status == 202
    assert forged not in r.text
    assert env.queues.take(Queues.NOTIFICATIONS) == []
    assert dropped_counts()["bad_client_state"] == before + 1


def test_mixed_batch_enqueues_only_the_good_items(env: Env) -> None:
    """Items signed for another tenant or mailbox, unsigned or with an odd resource are dropped; the rest pass."""
    _install_key(env)
    good = change("good")
    other_tenant = change("t", client_state=SIGNER.sign(TENANT_B, ORGANIZER))
    other_mailbox = change("m", client_state=SIGNER.sign(TENANT_A, "a0000000-0000-4000-8000-0000000000bb"))
    missing = {**change("x"), "clientState": None}
    odd = {**change("y"), "resource": "Users/someone/Messages/y"}
    r = env.client.post("/api/graph/notifications", json={"value": [other_tenant, good, other_mailbox, missing, odd]})
    assert r.status == 202
    (message,) = env.queues.take(Queues.NOTIFICATIONS)
    assert [i["eventId"] for i in message.body["items"]] == ["good"]


def test_a_forged_item_among_genuine_ones_of_the_same_mailbox_is_still_dropped(env: Env) -> None:
    """Checking each distinct (clientState, tenant, mailbox) once never lets a forged value ride on a good one."""
    _install_key(env)
    forged = "1~" + ORGANIZER + "~forged-mac-value-BBBBBBBBBBBBBBBBBBBB"
    items = [change("g1"), change("f1", client_state=forged), change("g2"), change("f2", client_state=forged)]
    items.append({**change("wrong-tenant"), "tenantId": TENANT_B})  # genuine state, other tenant
    r = env.client.post("/api/graph/notifications", json={"value": items})
    assert r.status == 202
    (message,) = env.queues.take(Queues.NOTIFICATIONS)
    assert [i["eventId"] for i in message.body["items"]] == ["g1", "g2"]


def test_notifications_of_several_tenants_share_one_message(env: Env) -> None:
    """One POST may mix subscriptions of several tenants: still one queue write, each item keeps its tenant."""
    _install_key(env)
    r = env.client.post("/api/graph/notifications", json={"value": [change("a"), change("b", tenant=TENANT_B)]})
    assert r.status == 202
    (message,) = env.queues.take(Queues.NOTIFICATIONS)
    assert [i["tenantId"] for i in message.body["items"]] == [TENANT_A, TENANT_B]


def test_failed_enqueue_answers_503_so_graph_retries(env: Env) -> None:
    """When the queue cannot be written the answer is 503 with Retry-After, never 202."""
    _install_key(env)
    env.queues.fail_sends = True
    r = env.client.post("/api/graph/notifications", json={"value": [change("e1")]})
    assert r.status == 503
    assert r.header("Retry-After")


def test_secret_store_is_read_once_not_per_notification(env: Env) -> None:
    """The clientState key is read from the secret store once; later POSTs make no store call."""
    _install_key(env)
    secrets = env.container.secrets
    assert isinstance(secrets, InMemorySecretStore)
    for _ in range(20):
        assert env.client.post("/api/graph/notifications", json={"value": [change("e1")]}).status == 202
    assert secrets.reads == 1


def test_without_a_key_nothing_is_accepted(env: Env) -> None:
    """Before any subscription exists there is no key: every item is dropped (and nothing is created)."""
    r = env.client.post("/api/graph/notifications", json={"value": [change("e1")]})
    assert r.status == 202
    assert env.queues.take(Queues.NOTIFICATIONS) == []
    secrets = env.container.secrets
    assert isinstance(secrets, InMemorySecretStore) and secrets.names() == []


def test_lifecycle_events_are_checked_and_enqueued_with_their_mailbox(env: Env) -> None:
    """Lifecycle items carry no resource: the mailbox comes from the verified clientState; forged ones are dropped."""
    _install_key(env)
    body = {"value": [lifecycle("subscriptionRemoved"), lifecycle("missed", client_state="1~x~forged"),
                      lifecycle("reauthorizationRequired", tenant=TENANT_B, user=ORGANIZER)]}
    r = env.client.post("/api/graph/lifecycle", json=body)
    assert r.status == 202
    (message,) = env.queues.take(Queues.LIFECYCLE)
    # The subscription's nonce rides along (never the clientState): the worker matches it to the current record.
    assert message.body["items"] == [
        {"tenantId": TENANT_A, "userId": ORGANIZER, "subscriptionId": "sub-1", "lifecycleEvent": "subscriptionRemoved",
         "nonce": NONCE},
        {"tenantId": TENANT_B, "userId": ORGANIZER, "subscriptionId": "sub-1",
         "lifecycleEvent": "reauthorizationRequired", "nonce": NONCE},
    ]


def test_lifecycle_enqueue_failure_answers_503(env: Env) -> None:
    """Lifecycle events that could not be persisted get 503 so Graph retries them."""
    _install_key(env)
    env.queues.fail_sends = True
    r = env.client.post("/api/graph/lifecycle", json={"value": [lifecycle("missed")]})
    assert r.status == 503


def test_handshake_still_wins_over_processing(env: Env) -> None:
    """A validation request is echoed even when the key is missing and the queue is down."""
    env.queues.fail_sends = True
    r = env.client.post("/api/graph/notifications", query={"validationToken": "hello"})
    assert (r.status, r.text) == (200, "hello")


def test_the_webhook_path_touches_no_table_on_any_post(env: Env) -> None:
    """Change and lifecycle POSTs (good, forged, unknown-key) make no table call: binding, deduplication and
    cooldowns are the workers' (the key ring is the only store read, once)."""
    _install_key(env)
    tables = env.container.tables
    calls: list[str] = []
    for name in ("get", "insert", "update", "upsert", "delete", "query"):
        original = getattr(tables, name)

        def spy(*args: Any, _name: str = name, _original: Any = original, **kw: Any) -> Any:
            calls.append(_name)
            return _original(*args, **kw)

        setattr(tables, name, spy)
    env.client.post("/api/graph/notifications", json={"value": [change("e1"), change("e2", client_state="2~1~x~y~z")]})
    env.client.post("/api/graph/lifecycle", json={"value": [lifecycle("missed"), lifecycle("reauthorizationRequired")]})
    assert calls == []


def test_an_item_under_a_key_rotated_elsewhere_gets_503_until_the_ring_reloads(env: Env) -> None:
    """Another instance rotated the key and signed a new subscription with it: this instance answers 503 (Graph
    delivers again) while it reloads the ring in the background, then accepts the item."""
    import time

    from core.services.client_state import ClientStateKeyCache

    _install_key(env)
    assert env.client.post("/api/graph/notifications", json={"value": [change("e0")]}).status == 202  # ring loaded
    env.queues.take(Queues.NOTIFICATIONS)
    rotated = ClientStateKeyCache(env.container.secrets)
    rotated.rotate()
    item = change("e1", client_state=rotated.require().sign(TENANT_A, ORGANIZER))
    first = env.client.post("/api/graph/notifications", json={"value": [item]})
    assert first.status == 503 and first.header("Retry-After") == "5"
    keys = env.container.client_state_keys
    deadline = time.monotonic() + 5
    while keys.cached is not None and "2" not in keys.cached.key_ids:
        assert time.monotonic() < deadline, "the ring never reloaded"
        time.sleep(0.01)
    assert env.client.post("/api/graph/notifications", json={"value": [item]}).status == 202
    (message,) = env.queues.take(Queues.NOTIFICATIONS)
    assert message.body["items"][0]["eventId"] == "e1"


def test_an_item_under_any_other_unknown_key_id_is_dropped_as_forged(env: Env) -> None:
    """Only the next key id (current + 1) can be a rotation not yet loaded; a value naming key 7 is not ours: 202,
    nothing enqueued, counted as a bad clientState."""
    _install_key(env)
    forged = ClientStateSigner(b"attacker-key-0123456789abcdef", "7").sign(TENANT_A, ORGANIZER)
    before = dropped_counts().get("bad_client_state", 0)
    r = env.client.post("/api/graph/notifications", json={"value": [change("e1", client_state=forged)]})
    assert r.status == 202 and env.queues.take(Queues.NOTIFICATIONS) == []
    assert dropped_counts().get("bad_client_state", 0) == before + 1
