"""Idempotent writes: the same ``Idempotency-Key`` with the same request answers the same response.

Used by the route framework (``functions/endpoint.py``, routes declared ``idempotent=True``),
never by handlers. One request:

1. ``begin`` claims the key: it inserts a ``pending`` record (the insert is the lock:
   Table Storage accepts exactly one insert of a row). The key is scoped to the caller
   (tenant, user, acting app): the same key from someone else is a different key.
2. The route runs; ``complete`` stores its 2xx response on the record (ETag-guarded).
   A refusal or failure ``release``s the key instead, so a retry with the same key
   runs again: only successful responses are replayed.
3. A request whose key exists with the same fingerprint (method, route, path ids and
   canonical JSON body) gets the stored response (``Replay``), and no second command;
   with another fingerprint it is 422 ``idempotency_key_reused``. While the first is
   still running, a concurrent duplicate waits up to ``wait_seconds`` for its answer,
   then gets 409 ``idempotency_key_in_use`` (Retry-After 1).

Keys live ``TTL`` (24 h) from their first use; an expired key is free again. A
``pending`` record older than ``STALE_PENDING`` (4 minutes) belongs to a request that died
half-way and may be taken over (documented: in that narrow case a second command is possible).
``purge_expired`` (an hourly timer) deletes expired records through the expiry index.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final

from core.domain.errors import ConcurrencyConflict, Conflict, IdempotencyKeyInUse, IdempotencyKeyReused, NotFound
from core.ports import Clock, TableStore
from core.services.stores.idempotency import DONE, PENDING, IdempotencyStore, KeyRecord

log = logging.getLogger(__name__)

TTL: Final = timedelta(hours=24)
# Longer than any request can still answer (Azure's load balancer ends HTTP requests at 230 s),
# so a pending claim this old belongs to a request that died.
STALE_PENDING: Final = timedelta(seconds=240)
WAIT_SECONDS: Final = 5.0
POLL_SECONDS: Final = 0.05
MAX_STORED_BODY: Final = 32 * 1024
MAX_KEY_CHARS: Final = 255


def valid_key(key: str) -> bool:
    """1-255 printable ASCII characters (space to tilde), as the contract says."""
    return 1 <= len(key) <= MAX_KEY_CHARS and all(" " <= ch <= "~" for ch in key)


def fingerprint(method: str, route: str, path: Mapping[str, str], body: bytes | None) -> str:
    """What "the same request" means: method, route, path ids and the body as canonical JSON."""
    canonical: Any = None
    if body is not None and body.strip():
        canonical = json.loads(body.decode("utf-8"))
    text = json.dumps([method.upper(), route, dict(sorted(path.items())), canonical], sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose key it is: the tenant, the user (or app) calling, and the app acting for them."""

    tenant_id: str
    caller_id: str
    acting_app: str | None = None

    def hash(self, key: str) -> str:
        text = "\n".join((self.tenant_id, self.caller_id, self.acting_app or "-", key))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Claim:
    """This request owns the key: run, then ``complete`` or ``release``."""

    record: KeyRecord
    etag: str | None


@dataclass(frozen=True, slots=True)
class Replay:
    """The key was used before with the same request: answer this."""

    status: int
    body: str | None
    location: str | None


class IdempotencyService:
    """Claims, completes, releases and purges idempotency keys (module docstring)."""

    def __init__(
        self,
        tables: TableStore,
        clock: Clock,
        *,
        wait_seconds: float = WAIT_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = IdempotencyStore(tables)
        self.clock = clock
        self.wait_seconds = wait_seconds
        self._monotonic = monotonic
        self._sleep = sleep

    def begin(self, scope: Scope, key: str, request_fingerprint: str) -> Claim | Replay:
        """Claim ``key`` for this request, or the response of its earlier use (module docstring)."""
        key_hash = scope.hash(key)
        deadline = self._monotonic() + self.wait_seconds
        while True:
            now = self.clock.now()
            fresh = KeyRecord(scope.tenant_id, key_hash, request_fingerprint, PENDING, now, now + TTL)
            try:
                return Claim(fresh, self.store.insert(fresh))
            except Conflict:
                pass  # the key exists
            found = self.store.get(scope.tenant_id, key_hash)
            if found is None:
                continue  # released or purged meanwhile: claim it again
            record = found.value
            if record.expires_at <= now or (not record.done and record.claimed_at <= now - STALE_PENDING):
                try:
                    return Claim(fresh, self.store.replace(fresh, found.etag))
                except (ConcurrencyConflict, NotFound):
                    continue
            if record.fingerprint != request_fingerprint:
                raise IdempotencyKeyReused()
            if record.done and record.status is not None:
                return Replay(record.status, record.body, record.location)
            if self._monotonic() >= deadline:
                raise IdempotencyKeyInUse(retry_after=1)
            self._sleep(POLL_SECONDS)

    def complete(self, claim: Claim, status: int, body: str | None, location: str | None) -> None:
        """Keep the response for replays (a body over ``MAX_STORED_BODY`` frees the key instead)."""
        if body is not None and len(body) > MAX_STORED_BODY:
            log.warning("idempotency: response too large to keep; key released")
            self.release(claim)
            return
        done = replace(claim.record, state=DONE, status=status, body=body, location=location)
        try:
            self.store.replace(done, claim.etag)
        except (ConcurrencyConflict, NotFound):
            log.warning("idempotency: the key was taken over before its response was stored")

    def release(self, claim: Claim) -> None:
        """Free the key (the request failed): a retry with it runs again."""
        try:
            self.store.delete(claim.record.tenant_id, claim.record.key_hash, claim.etag)
        except ConcurrencyConflict:
            log.info("idempotency: the key changed hands before it was released")

    def purge_expired(self, tenant_id: str, now: datetime | None = None) -> int:
        """Delete the tenant's expired keys, reading only expiry-index rows of past hours; how many."""
        now = now or self.clock.now()
        removed = 0
        for row in list(self.store.expired_index(tenant_id, now)):
            found = self.store.get(tenant_id, row.key_hash)
            if found is not None and found.value.expires_at <= now:
                try:
                    self.store.delete(tenant_id, row.key_hash, found.etag)
                    removed += 1
                except ConcurrencyConflict:
                    pass  # re-used meanwhile: its new index row covers it
            self.store.delete_index_row(tenant_id, row.row_key)
        return removed
