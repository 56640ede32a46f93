"""Events to the product on the whole local stack, received by a real HTTP server started by the test.

Booking through the API, then moving, answering and cancelling in Outlook (the simulator),
each reaches the product's endpoint as a signed Standard Webhooks POST that the
``standardwebhooks`` package verifies, with the right type and ``source``. A receiver that is
down for a while loses nothing and still gets each session's versions in order.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from core.bootstrap import get_container
from core.services.stores.sessions import SessionRepository
from local.simulator import seed
from tests.e2e.conftest import Stack
from tests.e2e.test_booking_e2e import book, ensure_contoso, free_slot, pair, upn, wait_status
from tests.support.receiver import Receiver

TENANT = seed.CONTOSO


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def endpoint(stack: Stack, receiver: Receiver) -> Iterator[tuple[str, str]]:
    """An endpoint for Contoso pointing at the receiver (registered by the admin; deleted afterwards)."""
    ensure_contoso(stack)
    stack.control("POST", "/_sandbox/faults", {})
    admin = stack.token(seed.CONTOSO_ADMIN, roles=["Integration.Admin"])
    r = stack.call("POST", "/webhooks/endpoints", admin, {"url": receiver.url, "events": [
        "session.booked", "session.rescheduled", "session.cancelled", "session.response_changed", "session.failed"]})
    assert r.status_code == 201, r.text
    created = r.json()
    yield created["id"], created["secret"]
    assert stack.call("DELETE", f"/webhooks/endpoints/{created['id']}", admin).status_code == 204


def _events_for(receiver: Receiver, secret: str, sid: str) -> list[dict[str, Any]]:
    """Verified payloads of one session, in arrival order (every delivery checked with standardwebhooks)."""
    out = []
    for item in receiver.delivered():
        payload = receiver.verify(secret, item)
        if payload["data"].get("sessionId") == sid:
            out.append({**payload, "webhookId": item.webhook_id})
    return out


def _wait_types(stack: Stack, receiver: Receiver, secret: str, sid: str, types: list[str], *,
                timeout: float = 60) -> list[dict[str, Any]]:
    def check() -> list[dict[str, Any]] | None:
        got = _events_for(receiver, secret, sid)
        return got if [e["type"] for e in got][: len(types)] == types else None

    found: list[dict[str, Any]] = stack.wait_for(check, timeout=timeout)
    return found


def _wait_watched(stack: Stack, user: str) -> None:
    """Until the organizer's mailbox has a change-notification subscription (the event writer creates it
    right after an organizer's first booking is saved, so a move made sooner would go unnoticed)."""
    tenant = next(t for t in stack.control("GET", "/_sandbox/tenants") if t["id"] == TENANT)
    oid = next(u["id"] for u in tenant["users"] if u["userPrincipalName"].lower() == user.lower())
    stack.wait_for(lambda: any(oid.lower() in sub["resource"].lower()
                               for sub in stack.control("GET", "/_sandbox/subscriptions")))


def _event_id(sid: str) -> str:
    event_id = SessionRepository(get_container().tables).require(TENANT, sid).value.event_id
    assert event_id
    return event_id


def test_booking_and_outlook_changes_reach_the_product_signed(stack: Stack, endpoint: tuple[str, str],
                                                               receiver: Receiver) -> None:
    """booked (platform), then moved, accepted and cancelled in Outlook (source outlook), versions rising."""
    _, secret = endpoint
    pairing_id = pair(stack, "alice", "bob")
    alice = stack.token(upn("alice"))
    start = free_slot(stack, alice, pairing_id, day_offset=21)
    sid = book(stack, alice, pairing_id, start)
    wait_status(stack, alice, sid, "booked")
    booked = _wait_types(stack, receiver, secret, sid, ["session.booked"])[0]
    assert booked["data"]["source"] == "platform" and booked["data"]["status"] == "booked"
    assert booked["webhookId"].startswith("evt_") and "subject" not in booked["data"]

    _wait_watched(stack, upn("alice"))
    event_id = _event_id(sid)
    moved = start + timedelta(hours=2)
    stack.control("POST", f"/_sandbox/users/{upn('alice')}/events/{event_id}/move",
                  {"start": moved.isoformat(), "end": (moved + timedelta(minutes=30)).isoformat()})
    got = _wait_types(stack, receiver, secret, sid, ["session.booked", "session.rescheduled"])
    assert got[1]["data"]["source"] == "outlook"
    assert got[1]["data"]["start"] == moved.strftime("%Y-%m-%dT%H:%M:%S.000Z")

    copies = stack.control("GET", f"/_sandbox/users/{upn('bob')}/events")
    ical = SessionRepository(get_container().tables).require(TENANT, sid).value.ical_uid
    copy = next(e for e in copies if e.get("iCalUId") == ical)
    stack.control("POST", f"/_sandbox/users/{upn('bob')}/events/{copy['id']}/respond", {"response": "accepted"})

    def accepted() -> dict[str, Any] | None:
        return next((e for e in _events_for(receiver, secret, sid) if e["type"] == "session.response_changed"
                     and e["data"]["attendees"][0]["response"] == "accepted"), None)

    answer = stack.wait_for(accepted, timeout=60)
    assert answer["data"]["source"] == "outlook"

    stack.control("POST", f"/_sandbox/users/{upn('alice')}/events/{event_id}/cancel", {})
    def cancelled() -> list[dict[str, Any]] | None:
        seen = _events_for(receiver, secret, sid)
        return seen if seen and seen[-1]["type"] == "session.cancelled" else None

    got = stack.wait_for(cancelled, timeout=60)
    assert got[-1]["data"]["source"] == "outlook" and got[-1]["data"]["status"] == "cancelled"
    assert [e["type"] for e in got][:2] == ["session.booked", "session.rescheduled"]
    versions = [e["data"]["version"] for e in got]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)  # in order, each once
    assert len({e["webhookId"] for e in got}) == len(got)


def test_a_receiver_down_for_a_while_loses_nothing_and_keeps_each_sessions_order(
    stack: Stack, endpoint: tuple[str, str], receiver: Receiver
) -> None:
    """The receiver stops; two sessions are booked and one moved in Outlook; it comes back: every event
    arrives (retries, same webhook-id), and each session's versions arrive in ascending order."""
    endpoint_id, secret = endpoint
    pairing_id = pair(stack, "carol", "grace")
    carol = stack.token(upn("carol"))
    receiver.stop()
    down_at = time.monotonic()
    first = book(stack, carol, pairing_id, free_slot(stack, carol, pairing_id, day_offset=24))
    second = book(stack, carol, pairing_id, free_slot(stack, carol, pairing_id, day_offset=27))
    wait_status(stack, carol, first, "booked")
    wait_status(stack, carol, second, "booked")
    _wait_watched(stack, upn("carol"))
    stored = SessionRepository(get_container().tables).require(TENANT, first).value
    moved = stored.start + timedelta(hours=1)
    stack.control("POST", f"/_sandbox/users/{upn('carol')}/events/{_event_id(first)}/move",
                  {"start": moved.isoformat(), "end": (moved + timedelta(minutes=30)).isoformat()})
    stack.wait_for(lambda: SessionRepository(get_container().tables).require(TENANT, first).value.start == moved)
    time.sleep(max(0.0, 8 - (time.monotonic() - down_at)))  # down for about 8 seconds
    receiver.start()
    got_first = _wait_types(stack, receiver, secret, first, ["session.booked", "session.rescheduled"], timeout=90)
    got_second = _wait_types(stack, receiver, secret, second, ["session.booked"], timeout=90)
    for got in (got_first, got_second):
        versions = [e["data"]["version"] for e in got]
        assert versions == sorted(versions)
    admin = stack.token(seed.CONTOSO_ADMIN, roles=["Integration.Admin"])
    log = stack.call("GET", f"/webhooks/endpoints/{endpoint_id}/deliveries?limit=100", admin).json()["deliveries"]
    failed = [d for d in log if d["outcome"] == "failed"]
    assert failed and all(d["error"] == "connection_failed" for d in failed)  # the outage was retried
    delivered_ids = [d["eventId"] for d in log if d["outcome"] == "delivered"]
    assert len(delivered_ids) == len(set(delivered_ids))  # no event delivered twice
