"""Idempotency keys: claim, replay, reuse with another request, concurrent duplicates, expiry and clean-up."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from core.domain.errors import IdempotencyKeyInUse, IdempotencyKeyReused
from core.names import Tables
from core.services.idempotency import (
    STALE_PENDING,
    TTL,
    Claim,
    IdempotencyService,
    Replay,
    Scope,
    fingerprint,
    valid_key,
)
from tests.support.memory import FixedClock, InMemoryTableStore

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
TENANT = "aaaaaaaa-0000-4000-8000-00000000000a"
ALICE = Scope(TENANT, "a0000000-0000-4000-8000-000000000001")
FP = fingerprint("POST", "sessions", {}, b'{"start": "x", "end": "y"}')


def _service(*, wait: float = 0.0) -> tuple[IdempotencyService, InMemoryTableStore, FixedClock]:
    tables, clock = InMemoryTableStore(), FixedClock(NOW)
    return IdempotencyService(tables, clock, wait_seconds=wait, sleep=lambda _s: None), tables, clock


def test_first_use_claims_and_a_repeat_replays_the_stored_response() -> None:
    """A completed key answers the same status, body and Location again instead of a new claim."""
    service, _, _ = _service()
    claim = service.begin(ALICE, "key-1", FP)
    assert isinstance(claim, Claim)
    service.complete(claim, 202, '{"id":"s1","status":"pending"}', "/api/sessions/s1")
    again = service.begin(ALICE, "key-1", FP)
    assert again == Replay(202, '{"id":"s1","status":"pending"}', "/api/sessions/s1")


def test_canonical_json_makes_key_order_and_spacing_irrelevant() -> None:
    """The fingerprint compares JSON values, not bytes; another route or path id is another request."""
    a = fingerprint("POST", "sessions", {}, b'{"a": 1, "b": [1, 2]}')
    assert a == fingerprint("post", "sessions", {}, b'{"b":[1,2],"a":1}')
    assert a != fingerprint("POST", "sessions", {}, b'{"a": 2, "b": [1, 2]}')
    assert fingerprint("DELETE", "sessions/{id}", {"id": "x"}, None) != fingerprint(
        "DELETE", "sessions/{id}", {"id": "y"}, None)


def test_the_same_key_with_another_request_is_refused() -> None:
    """422 idempotency_key_reused, whether the first use finished or is still running."""
    service, _, _ = _service()
    claim = service.begin(ALICE, "key-1", FP)
    assert isinstance(claim, Claim)
    other = fingerprint("POST", "sessions", {}, b'{"start": "z"}')
    with pytest.raises(IdempotencyKeyReused):
        service.begin(ALICE, "key-1", other)
    service.complete(claim, 202, "{}", None)
    with pytest.raises(IdempotencyKeyReused):
        service.begin(ALICE, "key-1", other)


def test_keys_are_scoped_to_the_caller_and_the_acting_app() -> None:
    """Another user, or the same user through an app, owns a separate key of the same text."""
    service, _, _ = _service()
    assert isinstance(service.begin(ALICE, "k", FP), Claim)
    assert isinstance(service.begin(Scope(TENANT, "a0000000-0000-4000-8000-000000000002"), "k", FP), Claim)
    assert isinstance(service.begin(Scope(TENANT, ALICE.caller_id, acting_app="app-1"), "k", FP), Claim)
    assert isinstance(service.begin(Scope("bbbbbbbb-0000-4000-8000-00000000000b", ALICE.caller_id), "k", FP), Claim)


def test_the_raw_key_is_never_stored() -> None:
    """Rows are keyed by a SHA-256 of scope and key; the key text appears nowhere in the table."""
    service, tables, _ = _service()
    claim = service.begin(ALICE, "my-secret-looking-key-123", FP)
    assert isinstance(claim, Claim)
    service.complete(claim, 202, "{}", None)
    assert "my-secret-looking-key-123" not in repr(tables.all(Tables.IDEMPOTENCY))


def test_a_released_key_runs_again() -> None:
    """A failed request releases its key: the retry claims it afresh."""
    service, _, _ = _service()
    claim = service.begin(ALICE, "k", FP)
    assert isinstance(claim, Claim)
    service.release(claim)
    assert isinstance(service.begin(ALICE, "k", FP), Claim)


def test_a_duplicate_waits_for_the_first_and_gets_its_answer() -> None:
    """While the first request runs, a duplicate polls and then replays what the first answered."""
    tables, clock = InMemoryTableStore(), FixedClock(NOW)
    first = IdempotencyService(tables, clock)
    claim = first.begin(ALICE, "k", FP)
    assert isinstance(claim, Claim)
    polls: list[float] = []

    def finish_on_first_poll(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 1:
            first.complete(claim, 202, '{"id":"s1"}', "/api/sessions/s1")

    duplicate = IdempotencyService(tables, clock, wait_seconds=5.0, sleep=finish_on_first_poll)
    assert duplicate.begin(ALICE, "k", FP) == Replay(202, '{"id":"s1"}', "/api/sessions/s1")
    assert len(polls) == 1


def test_a_duplicate_gives_up_with_409_while_the_first_still_runs() -> None:
    """Past the wait budget the duplicate is told the key is in use (retry shortly), never run."""
    service, _, _ = _service(wait=0.0)
    assert isinstance(service.begin(ALICE, "k", FP), Claim)
    with pytest.raises(IdempotencyKeyInUse) as err:
        service.begin(ALICE, "k", FP)
    assert err.value.http_status == 409 and err.value.retry_after == 1


def test_a_stale_pending_claim_is_taken_over() -> None:
    """A claim left pending by a request that died (older than any request can run) does not block the key forever."""
    service, _, clock = _service()
    assert isinstance(service.begin(ALICE, "k", FP), Claim)
    clock.advance(seconds=STALE_PENDING.total_seconds() - 1)
    with pytest.raises(IdempotencyKeyInUse):
        service.begin(ALICE, "k", FP)  # still within what a live request may take
    clock.advance(seconds=2)
    assert isinstance(service.begin(ALICE, "k", FP), Claim)


def test_a_key_expires_after_24_hours() -> None:
    """After its TTL a key is free again, even for another request."""
    service, _, clock = _service()
    claim = service.begin(ALICE, "k", FP)
    assert isinstance(claim, Claim)
    service.complete(claim, 202, "{}", None)
    clock.advance(seconds=TTL.total_seconds() + 1)
    assert isinstance(service.begin(ALICE, "k", fingerprint("POST", "sessions", {}, b"{}")), Claim)


def test_concurrent_claims_of_one_key_make_exactly_one_claim() -> None:
    """Eight threads racing on one key: one claim; the others replay its answer."""
    tables, clock = InMemoryTableStore(), FixedClock(NOW)
    results: list[Claim | Replay] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def one() -> None:
        service = IdempotencyService(tables, clock, wait_seconds=10.0, sleep=lambda s: threading.Event().wait(0.01))
        barrier.wait()
        outcome = service.begin(ALICE, "k", FP)
        if isinstance(outcome, Claim):
            threading.Event().wait(0.05)
            service.complete(outcome, 202, '{"id":"s1"}', None)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(isinstance(r, Claim) for r in results) == 1
    assert [r for r in results if isinstance(r, Replay)] == [Replay(202, '{"id":"s1"}', None)] * 7


def test_purge_deletes_only_expired_keys_through_the_expiry_index() -> None:
    """The clean-up removes keys past their expiry and their index rows, and keeps live ones."""
    service, tables, clock = _service()
    old = service.begin(ALICE, "old", FP)
    assert isinstance(old, Claim)
    service.complete(old, 202, "{}", None)
    clock.advance(hours=25)
    fresh = service.begin(ALICE, "fresh", FP)
    assert isinstance(fresh, Claim)
    clock.advance(hours=2)
    assert service.purge_expired(TENANT) == 1
    rows = {e.row_key for e in tables.all(Tables.IDEMPOTENCY)}
    assert any(r.startswith("k~") for r in rows) and len([r for r in rows if r.startswith("k~")]) == 1
    assert len([r for r in rows if r.startswith("x~")]) == 1


@pytest.mark.parametrize(("key", "ok"), [("a", True), ("x" * 255, True), ("x" * 256, False), ("", False),
                                         ("tab\there", False), ("caf\u00e9", False), ("~ !", True)])
def test_keys_are_1_to_255_printable_ascii_characters(key: str, ok: bool) -> None:
    """The contract's key syntax: printable ASCII (space to tilde), 1 to 255 characters."""
    assert valid_key(key) is ok
