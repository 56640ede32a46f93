"""Idempotency-Key on POST, PATCH and DELETE /api/sessions: replay, reuse, scope, failures, concurrency, expiry."""

from __future__ import annotations

import threading
from typing import Any

from core.names import Queues
from core.services.stores.sessions import SessionRepository
from tests.functions.conftest import TENANT_A, USER_A, USER_A2, Env, TokenFactory, bearer
from tests.functions.test_sessions_routes import BODY, _run_worker, _setup

MOVE = {"start": "2025-03-04T14:00:00Z", "end": "2025-03-04T15:00:00Z", "timeZone": "UTC"}


def _key(token: str, key: str, **extra: str) -> dict[str, str]:
    return {**bearer(token), "Idempotency-Key": key, **extra}


def _sessions(env: Env) -> list[Any]:
    return list(SessionRepository(env.tables).list_tenant(TENANT_A))


def test_a_repeated_booking_replays_the_first_answer_and_books_once(env: Env, mint: TokenFactory) -> None:
    """Same key, same body: same status, id and Location, marked replayed; one session, one command."""
    _setup(env, mint)
    first = env.client.post("/api/sessions", headers=_key(mint(), "book-1"), json=BODY)
    again = env.client.post("/api/sessions", headers=_key(mint(), "book-1"),
                            json=dict(reversed(list(BODY.items()))))  # same JSON, other key order
    assert first.status == again.status == 202
    assert first.json() == again.json() and again.header("Location") == first.header("Location")
    assert again.header("Idempotent-Replayed") == "true" and first.header("Idempotent-Replayed") is None
    assert len(_sessions(env)) == 1 and len(env.queues.pending(Queues.EVENT_WRITES)) == 1


def test_the_same_key_with_another_body_is_422(env: Env, mint: TokenFactory) -> None:
    """A key reused for a different booking is refused with idempotency_key_reused, and books nothing."""
    _setup(env, mint)
    assert env.client.post("/api/sessions", headers=_key(mint(), "k"), json=BODY).status == 202
    r = env.client.post("/api/sessions", headers=_key(mint(), "k"), json={**BODY, "subject": "Other"})
    assert r.status == 422 and r.json()["error"]["code"] == "idempotency_key_reused"
    assert len(_sessions(env)) == 1


def test_keys_are_per_caller_and_per_acted_for_user(env: Env, mint: TokenFactory) -> None:
    """The same key text from another user, or from the app acting for someone, is another key."""
    _setup(env, mint)
    a = env.client.post("/api/sessions", headers=_key(mint(), "same"), json=BODY)
    later = {**BODY, "start": "2025-03-04T12:00:00+01:00", "end": "2025-03-04T13:00:00+01:00"}
    b = env.client.post("/api/sessions", headers=_key(mint(oid=USER_A2), "same"), json=later)
    app = mint(app=True, roles=["Sessions.ReadWrite.All"])
    evening = {**BODY, "start": "2025-03-04T16:00:00+01:00", "end": "2025-03-04T17:00:00+01:00"}
    c = env.client.post("/api/sessions", headers=_key(app, "same", **{"X-On-Behalf-Of": USER_A}), json=evening)
    assert a.status == b.status == c.status == 202, (a.text, b.text, c.text)
    assert len({a.json()["id"], b.json()["id"], c.json()["id"]}) == 3


def test_a_refused_request_frees_its_key(env: Env, mint: TokenFactory) -> None:
    """Only successes are replayed: after a 409 slot_taken the same key books once the slot is free."""
    graph = _setup(env, mint)
    from datetime import UTC, datetime

    event = graph.add_busy(TENANT_A, "ben@contoso.example", datetime(2025, 3, 4, 9, tzinfo=UTC),
                           datetime(2025, 3, 4, 10, tzinfo=UTC))
    refused = env.client.post("/api/sessions", headers=_key(mint(), "retry-me"), json=BODY)
    assert refused.status == 409 and refused.json()["error"]["code"] == "slot_taken"
    graph.delete_event_in_outlook(TENANT_A, "ben@contoso.example", event)
    assert env.client.post("/api/sessions", headers=_key(mint(), "retry-me"), json=BODY).status == 202


def test_reschedule_and_cancel_are_idempotent_too(env: Env, mint: TokenFactory) -> None:
    """A repeated PATCH or DELETE with its key changes nothing more: one version bump, one command each."""
    _setup(env, mint)
    sid = env.client.post("/api/sessions", headers=bearer(mint()), json=BODY).json()["id"]
    _run_worker(env)
    for _ in range(2):
        r = env.client.patch(f"/api/sessions/{sid}", headers=_key(mint(), "move-1"), json=MOVE)
        assert r.status == 202, r.text
    assert SessionRepository(env.tables).require(TENANT_A, sid).value.version == 2
    assert _run_worker(env) == 1
    for _ in range(2):
        assert env.client.delete(f"/api/sessions/{sid}", headers=_key(mint(), "cancel-1")).status == 202
    assert SessionRepository(env.tables).require(TENANT_A, sid).value.version == 3
    assert _run_worker(env) == 1
    other = env.client.delete(f"/api/sessions/{sid}", headers=_key(mint(), "move-1"))  # a PATCH's key on DELETE
    assert other.status == 422 and other.json()["error"]["code"] == "idempotency_key_reused"


def test_a_malformed_key_is_422_naming_the_header(env: Env, mint: TokenFactory) -> None:
    """Empty, over 255 characters or not printable ASCII: 422 validation_failed on the header."""
    _setup(env, mint)
    for key in ("x" * 256, "tab\tkey"):
        r = env.client.post("/api/sessions", headers=_key(mint(), key), json=BODY)
        assert r.status == 422, key
        assert r.json()["error"]["details"]["fields"][0]["loc"] == ["header", "Idempotency-Key"]
    assert _sessions(env) == []


def test_concurrent_identical_requests_book_exactly_once(env: Env, mint: TokenFactory) -> None:
    """Eight threads send the same keyed booking at once: one session, one command, the same answer for all."""
    _setup(env, mint)
    token = mint()
    answers: list[tuple[int, str]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def one() -> None:
        barrier.wait()
        r = env.client.post("/api/sessions", headers=_key(token, "double-click"), json=BODY)
        with lock:
            answers.append((r.status, r.json().get("id", r.text)))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {status for status, _ in answers} == {202}
    assert len({sid for _, sid in answers}) == 1
    assert len(_sessions(env)) == 1 and len(env.queues.pending(Queues.EVENT_WRITES)) == 1


def test_after_24_hours_the_key_books_again(env: Env, mint: TokenFactory) -> None:
    """Keys expire after 24 h: the same key then makes a new booking (here of the next day)."""
    _setup(env, mint)
    first = env.client.post("/api/sessions", headers=_key(mint(), "daily"), json=BODY).json()["id"]
    env.container.clock.advance(hours=24, seconds=1)  # type: ignore[attr-defined]
    later = {**BODY, "start": "2025-03-05T10:00:00+01:00", "end": "2025-03-05T11:00:00+01:00"}
    again = env.client.post("/api/sessions", headers=_key(mint(), "daily"), json=later)
    assert again.status == 202 and again.json()["id"] != first and again.header("Idempotent-Replayed") is None
