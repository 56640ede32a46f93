"""The product's server on the whole local stack, with app-only tokens minted by the simulator.

It pairs two users, books for the mentor (X-On-Behalf-Of), lists by pairing as itself,
reschedules and cancels, and the audit trail names the app on every step; concurrent
identical requests (one Idempotency-Key) make one booking, and concurrent different
requests for one slot book at most one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
import requests

from core.bootstrap import get_container
from core.services.stores.audit import AuditTrail
from local.simulator import seed
from local.simulator.state import PRODUCT_SERVER_CLIENT_ID
from tests.e2e.conftest import Stack
from tests.e2e.test_booking_e2e import ensure_contoso, events_of, free_slot, upn, wait_status
from tests.log_guard import sentinel

TENANT = seed.CONTOSO
SUBJECT = sentinel("Confidential subject: product server e2e")
ROLES = ["Sessions.ReadWrite.All", "Pairings.ReadWrite.All"]


@pytest.fixture(scope="module")
def contoso(stack: Stack) -> Iterator[Stack]:
    ensure_contoso(stack)
    stack.control("POST", "/_sandbox/faults", {})
    yield stack


def _headers(user: str | None = None, key: str | None = None) -> dict[str, str]:
    headers = {}
    if user is not None:
        headers["X-On-Behalf-Of"] = user
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


def _pair(stack: Stack, app: str, mentor: str, mentee: str) -> str:
    pairing_id = "ps-" + uuid.uuid4().hex[:12]
    r = stack.call("PUT", f"/pairings/{pairing_id}", app, {"mentor": upn(mentor), "mentee": upn(mentee),
                                                            "active": True})
    assert r.status_code == 200, r.text
    return pairing_id


def _body(pairing_id: str, start: datetime, minutes: int = 30, **extra: Any) -> dict[str, Any]:
    return {"pairingId": pairing_id, "start": start.isoformat(),
            "end": (start + timedelta(minutes=minutes)).isoformat(), "timeZone": "UTC", "subject": SUBJECT, **extra}


def _app_audit(since: datetime) -> list[Any]:
    entries = AuditTrail(get_container().tables, get_container().clock).entries(TENANT, limit=200)
    return [e for e in reversed(entries) if e.at >= since and e.actor == f"app:{PRODUCT_SERVER_CLIENT_ID}"]


def test_product_server_books_lists_reschedules_and_cancels_for_a_user(contoso: Stack) -> None:
    """App-only token: book for Aaron (by UPN), list by pairing as itself, move, cancel; the audit names the app."""
    stack = contoso
    began = datetime.now(UTC) - timedelta(seconds=1)
    app = stack.app_token(TENANT, ROLES)
    pairing_id = _pair(stack, app, "aaron", "beth")
    aaron = stack.token(upn("aaron"))
    start = free_slot(stack, aaron, pairing_id, day_offset=20)

    r = stack.call("POST", "/sessions", app, _body(pairing_id, start), headers=_headers(upn("aaron"), "ps-book-1"))
    assert r.status_code == 202, r.text
    sid = r.json()["id"]
    doc = wait_status(stack, aaron, sid, "booked")
    aaron_id = next(u["id"] for t in stack.control("GET", "/_sandbox/tenants") if t["id"] == TENANT
                    for u in t["users"] if u["userPrincipalName"].lower() == upn("aaron"))
    assert doc["organizer"] == aaron_id  # the user acted for is the organizer
    [event] = events_of(stack, "aaron", sid)
    assert upn("beth") in {a["emailAddress"]["address"].lower() for a in event["attendees"]}

    listed = stack.call("GET", "/sessions", app, params={"pairingId": pairing_id})
    assert listed.status_code == 200 and [s["id"] for s in listed.json()] == [sid]
    one = stack.call("GET", f"/sessions/{sid}", app)
    assert one.status_code == 200 and one.json()["status"] == "booked"

    moved = free_slot(stack, aaron, pairing_id, day_offset=20, not_before=start + timedelta(hours=2))
    r = stack.call("PATCH", f"/sessions/{sid}", app, {"start": moved.isoformat(),
                                                       "end": (moved + timedelta(minutes=30)).isoformat(),
                                                       "timeZone": "UTC"},
                   headers=_headers(upn("aaron"), "ps-move-1"))
    assert r.status_code == 202, r.text
    doc = wait_status(stack, aaron, sid, "booked")
    assert doc["start"] == moved.strftime("%Y-%m-%dT%H:%M:%SZ")

    r = stack.call("DELETE", f"/sessions/{sid}", app, headers=_headers(upn("aaron"), "ps-cancel-1"))
    assert r.status_code == 202, r.text
    wait_status(stack, aaron, sid, "cancelled")
    assert [e for e in events_of(stack, "aaron", sid) if not e["isCancelled"]] == []

    steps = [(e.action, e.on_behalf_of, e.ids.get("id"), e.status) for e in _app_audit(began)
             if e.action.startswith("session_")]
    assert ("session_create", aaron_id, sid, 202) in steps
    assert ("session_list", None, None, 200) in steps
    assert ("session_get", None, sid, 200) in steps
    assert ("session_reschedule", aaron_id, sid, 202) in steps
    assert ("session_cancel", aaron_id, sid, 202) in steps
    assert ("pairing_put", None, None, 200) in [(e.action, e.on_behalf_of, e.ids.get("id"), e.status)
                                                for e in _app_audit(began)]


def test_concurrent_identical_requests_with_one_key_book_once(contoso: Stack) -> None:
    """Six threads send the same keyed booking at once: one session, one Outlook event, one answer for all."""
    stack = contoso
    app = stack.app_token(TENANT, ROLES)
    pairing_id = _pair(stack, app, "chris", "aaron")
    chris = stack.token(upn("chris"))
    start = free_slot(stack, chris, pairing_id, day_offset=25)
    key = "ps-dup-" + uuid.uuid4().hex

    def one(_: int) -> requests.Response:
        return stack.call("POST", "/sessions", app, _body(pairing_id, start), headers=_headers(upn("chris"), key))

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(one, range(6)))
    assert {r.status_code for r in answers} == {202}, [r.text for r in answers]
    ids = {r.json()["id"] for r in answers}
    assert len(ids) == 1
    (sid,) = ids
    wait_status(stack, chris, sid, "booked")
    assert len(events_of(stack, "chris", sid)) == 1
    organized = [e for e in events_of(stack, "chris") if e.get("transactionId") and
                 e["start"]["dateTime"].startswith(start.strftime("%Y-%m-%dT%H:%M"))]
    assert len(organized) == 1


def test_concurrent_requests_for_one_slot_book_at_most_one(contoso: Stack) -> None:
    """Six different requests (own keys) race for one slot of one organizer: one 202, the rest 409 slot_taken."""
    stack = contoso
    app = stack.app_token(TENANT, ROLES)
    pairing_id = _pair(stack, app, "beth", "chris")
    beth = stack.token(upn("beth"))
    start = free_slot(stack, beth, pairing_id, day_offset=30)

    def one(n: int) -> requests.Response:
        return stack.call("POST", "/sessions", app, _body(pairing_id, start),
                          headers=_headers(upn("beth"), f"ps-race-{uuid.uuid4().hex}-{n}"))

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(one, range(6)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [202, 409, 409, 409, 409, 409], [r.text for r in answers]
    assert {r.json()["error"]["code"] for r in answers if r.status_code == 409} == {"slot_taken"}
    [winner] = [r.json()["id"] for r in answers if r.status_code == 202]
    wait_status(stack, beth, winner, "booked")
    at_start = [e for e in events_of(stack, "beth")
                if e["start"]["dateTime"].startswith(start.strftime("%Y-%m-%dT%H:%M")) and not e["isCancelled"]]
    assert len(at_start) == 1

    # Once the event exists, free/busy alone refuses the slot at once; allowConflicts books over it.
    r = stack.call("POST", "/sessions", beth, _body(pairing_id, start + timedelta(minutes=10)))
    assert r.status_code == 409 and r.json()["error"]["code"] == "slot_taken"
    r = stack.call("POST", "/sessions", beth, _body(pairing_id, start + timedelta(minutes=10), allowConflicts=True))
    assert r.status_code == 202, r.text
    wait_status(stack, beth, r.json()["id"], "booked")


def test_two_organizers_racing_for_one_attendee_book_at_most_one(contoso: Stack) -> None:
    """Aaron and Beth each book Chris at the same time (claims are per organizer, so both may pass the
    request): once one invitation is in Chris's calendar, the other is refused (409) or fails slot_taken."""
    stack = contoso
    app = stack.app_token(TENANT, ROLES)
    first, second = _pair(stack, app, "aaron", "chris"), _pair(stack, app, "beth", "chris")
    aaron, beth = stack.token(upn("aaron")), stack.token(upn("beth"))
    start = free_slot(stack, aaron, first, day_offset=35)
    start = free_slot(stack, beth, second, day_offset=35, not_before=start)

    def one(job: tuple[str, str, str]) -> tuple[str, requests.Response]:
        user, token, pairing_id = job
        return token, stack.call("POST", "/sessions", app, _body(pairing_id, start), headers=_headers(upn(user)))

    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(one, [("aaron", aaron, first), ("beth", beth, second)]))
    outcomes = []
    for token, r in answers:
        if r.status_code == 409:
            assert r.json()["error"]["code"] == "slot_taken"
            outcomes.append("refused")
            continue
        assert r.status_code == 202, r.text
        sid = r.json()["id"]
        doc = stack.wait_for(partial(_settled, stack, token, sid), timeout=60)
        outcomes.append(doc["status"] if doc["status"] == "booked" else f"failed:{doc.get('failureReason')}")
    assert sorted(outcomes) in (["booked", "refused"], ["booked", "failed:slot_taken"]), outcomes


def _settled(stack: Stack, token: str, sid: str) -> dict[str, Any] | None:
    doc: dict[str, Any] = stack.call("GET", f"/sessions/{sid}", token).json()
    return doc if doc["status"] in ("booked", "failed") and "pendingChange" not in doc else None
