"""OAuth ``state`` values: random, single-use, short-lived, bound to a tenant, stored hashed.

Shared by admin consent (core/services/integration.py) and the per-user / service-account
sign-in (core/services/connections.py). A state is ``"<tenant id>.<random>"`` so the
callback can find its row with the tenant id in the key (PartitionKey = tenant id);
the row's key is the SHA-256 of the random part, so the table never holds a usable
state. Taking a state deletes its row with the ETag it was read with before anyone
acts on it: a replay, or two callbacks racing, find nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Final

from core.domain.errors import ConcurrencyConflict
from core.names import Tables
from core.ports import Entity, EntityValue, TableStore
from core.services.stores.codec import as_datetime

STATE_TTL: Final = timedelta(minutes=10)
STATE_BYTES: Final = 32
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_RAW_STATE = re.compile(r"^[A-Za-z0-9_-]{32,128}$")


def row_key(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def new_state(tenant_id: str, random_token: Callable[[int], str]) -> tuple[str, str]:
    """A fresh state for ``tenant_id`` and the row key to store it under: (state, row key)."""
    raw = random_token(STATE_BYTES)
    return f"{tenant_id}.{raw}", row_key(raw)


def expires_at(row: Entity) -> datetime | None:
    return as_datetime(row.data.get("expiresAt"))


def is_expired(row: Entity, now: datetime) -> bool:
    expires = expires_at(row)
    return expires is None or expires <= now


class OAuthStateStore:
    """Pending OAuth states in table ``oauthstates`` (PartitionKey tenant id, RowKey the hash of the random part)."""

    def __init__(self, tables: TableStore) -> None:
        self.tables = tables

    def put(self, tenant_id: str, key: str, data: dict[str, EntityValue]) -> None:
        """Store a new state's row (``key`` from ``new_state``); the raw state is never stored."""
        self.tables.insert(Tables.OAUTH_STATES, Entity(tenant_id, key, data))

    def take(self, state: str | None) -> tuple[str | None, Entity | None]:
        """(tenant id, row) of a state, its row already deleted; row None when unknown, malformed or replayed.

        The tenant id is None when the state does not even name a tenant.
        """
        if not state:
            return None, None
        tenant_id, _, raw = state.partition(".")
        tenant_id = tenant_id.lower()
        if not _GUID.match(tenant_id) or not _RAW_STATE.match(raw):
            return None, None
        key = row_key(raw)
        row = self.tables.get(Tables.OAUTH_STATES, tenant_id, key)
        if row is None:
            return tenant_id, None
        try:
            self.tables.delete(Tables.OAUTH_STATES, tenant_id, key, etag=row.etag)
        except ConcurrencyConflict:
            return tenant_id, None  # taken a moment ago by someone else: a replay
        return tenant_id, row

    def purge_expired(self, tenant_id: str, purposes: Collection[EntityValue], now: datetime) -> None:
        """Delete the tenant's expired states of these purposes (another caller's deletion is fine)."""
        for row in list(self.tables.query(Tables.OAUTH_STATES, tenant_id)):
            if row.data.get("purpose") in purposes and is_expired(row, now):
                with contextlib.suppress(ConcurrencyConflict):
                    self.tables.delete(Tables.OAUTH_STATES, tenant_id, row.row_key, etag=row.etag)

    def delete_all(self, tenant_id: str) -> None:
        """Forget every pending state of a tenant (disconnect)."""
        for state in list(self.tables.query(Tables.OAUTH_STATES, tenant_id)):
            self.tables.delete(Tables.OAUTH_STATES, tenant_id, state.row_key)
