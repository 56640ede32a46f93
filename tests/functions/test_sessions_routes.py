"""Session routes end to end in-process: 202 + Location, the queue trigger, reads, changes, 403/404/409."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import azure.functions.queue as funcq

from core.names import Queues
from functions import event_jobs
from tests.functions.conftest import TENANT_A, TENANT_B, USER_A, USER_A2, USER_B, Env, TokenFactory, bearer
from tests.log_guard import sentinel
from tests.support.fake_graph import FakeCalendarGateway, FakeTokenProvider

SUBJECT = sentinel("Quarterly mentoring catch-up 7f3a")
BODY = {"pairingId": "p-1", "start": "2025-03-04T10:00:00+01:00", "end": "2025-03-04T11:00:00+01:00",
        "timeZone": "Europe/Paris", "subject": SUBJECT}


def _setup(env: Env, mint: TokenFactory) -> FakeCalendarGateway:
    graph = FakeCalendarGateway(tokens=FakeTokenProvider([TENANT_A]), clock=env.container.clock)
    graph.add_user(TENANT_A, "ann@contoso.example", user_id=USER_A)
    graph.add_user(TENANT_A, "ben@contoso.example", user_id=USER_A2)
    env.container.graph = graph
    put = env.client.put("/api/pairings/p-1", headers=bearer(mint(roles=["Integration.Admin"])),
                         json={"mentor": USER_A, "mentee": USER_A2, "active": True})
    assert put.status == 200, put.text
    return graph


def _run_worker(env: Env) -> int:
    """Hand every queued event-write message to the queue trigger, as the host would; returns how many."""
    handled = 0
    for _ in range(10):
        batch = env.queues.take(Queues.EVENT_WRITES, include_delayed=True)
        if not batch:
            return handled
        for m in batch:
            event_jobs.event_write(funcq.QueueMessage(id=str(m.id), body=json.dumps(m.body).encode(),
                                                     dequeue_count=1))
            handled += 1
    return handled


def test_book_then_read_as_organizer_and_attendee(env: Env, mint: TokenFactory) -> None:
    """POST answers 202 pending + Location; after the worker both participants read it booked with a join URL."""
    graph = _setup(env, mint)
    r = env.client.post("/api/sessions", headers=bearer(mint()), json=BODY)
    assert r.status == 202, r.text
    sid = r.json()["id"]
    assert r.json()["status"] == "pending" and r.header("Location") == f"/api/sessions/{sid}"
    assert SUBJECT not in json.dumps([m.body for m in env.queues.pending(Queues.EVENT_WRITES)])
    assert _run_worker(env) == 1
    for oid in (USER_A, USER_A2):
        got = env.client.get(f"/api/sessions/{sid}", headers=bearer(mint(oid=oid)))
        assert got.status == 200
        doc = got.json()
        assert doc["status"] == "booked" and doc["joinUrl"] and doc["source"] == "platform"
        assert doc["start"] == "2025-03-04T09:00:00Z" and doc["timeZone"] == "Europe/Paris"
        assert doc["organizer"] == USER_A and doc["attendees"] == [
            {"user": USER_A2, "email": "ben@contoso.example", "type": "required", "response": "notResponded"}]
    assert len(graph.events_of(TENANT_A, "ann@contoso.example")) == 1
    listed = env.client.get("/api/sessions", headers=bearer(mint(oid=USER_A2)),
                            query={"from": "2025-03-04T00:00:00Z", "to": "2025-03-05T00:00:00Z"})
    assert [s["id"] for s in listed.json()] == [sid]


def test_strangers_and_other_tenants_get_404_and_attendees_403_on_changes(env: Env, mint: TokenFactory) -> None:
    """Reading is for participants (others: the same bare 404 as a missing id); changing is the organizer's."""
    _setup(env, mint)
    sid = env.client.post("/api/sessions", headers=bearer(mint()), json=BODY).json()["id"]
    stranger = env.client.get(f"/api/sessions/{sid}", headers=bearer(mint(oid=USER_B)))
    missing = env.client.get("/api/sessions/nope", headers=bearer(mint()))
    other_tenant = env.client.get(f"/api/sessions/{sid}", headers=bearer(mint(tid=TENANT_B)))
    assert stranger.status == missing.status == other_tenant.status == 404
    assert stranger.json() == missing.json() == other_tenant.json()
    attendee = env.client.delete(f"/api/sessions/{sid}", headers=bearer(mint(oid=USER_A2)))
    assert attendee.status == 403 and attendee.json()["error"]["code"] == "organizer_only"


def test_reschedule_and_cancel_reach_the_calendar(env: Env, mint: TokenFactory) -> None:
    """PATCH and DELETE answer 202 and, through the worker, move then cancel the Outlook event."""
    graph = _setup(env, mint)
    sid = env.client.post("/api/sessions", headers=bearer(mint()), json=BODY).json()["id"]
    _run_worker(env)
    moved = {"start": "2025-03-05T14:00:00Z", "end": "2025-03-05T14:30:00Z", "timeZone": "UTC"}
    assert env.client.patch(f"/api/sessions/{sid}", headers=bearer(mint()), json=moved).status == 202
    pending = env.client.get(f"/api/sessions/{sid}", headers=bearer(mint())).json()
    assert pending["pendingChange"] == "reschedule"
    _run_worker(env)
    [event] = graph.events_of(TENANT_A, "ann@contoso.example")
    assert event.start == datetime(2025, 3, 5, 14, 0, tzinfo=UTC)
    cancel = env.client.delete(f"/api/sessions/{sid}", headers=bearer(mint()), json={"comment": "Sorry"})
    assert cancel.status == 202
    _run_worker(env)
    assert graph.events_of(TENANT_A, "ann@contoso.example") == []
    assert env.client.get(f"/api/sessions/{sid}", headers=bearer(mint())).json()["status"] == "cancelled"
    again = env.client.delete(f"/api/sessions/{sid}", headers=bearer(mint()))
    assert again.status == 409


def test_booking_outside_a_pairing_is_refused(env: Env, mint: TokenFactory) -> None:
    """Under the registered policy an unknown pairing is 404 and an unpaired partner 403."""
    _setup(env, mint)
    other = {**BODY, "pairingId": "p-404"}
    assert env.client.post("/api/sessions", headers=bearer(mint()), json=other).status == 404
    partner = {k: v for k, v in BODY.items() if k != "pairingId"} | {"partner": "zed@contoso.example"}
    r = env.client.post("/api/sessions", headers=bearer(mint()), json=partner)
    assert r.status == 403 and r.json()["error"]["code"] == "partner_not_paired"


def test_session_in_the_past_is_422(env: Env, mint: TokenFactory) -> None:
    """The clock says 2025-03-03 09:00 UTC: a session the day before is refused."""
    _setup(env, mint)
    past = {**BODY, "start": "2025-03-02T10:00:00+01:00", "end": "2025-03-02T11:00:00+01:00"}
    r = env.client.post("/api/sessions", headers=bearer(mint()), json=past)
    assert r.status == 422
