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
from datetime import UTC, datetime, timedelta
from typing import Final

from core.domain.errors import ConcurrencyConflict
from core.names import Tables
from core.ports import Entity, EntityValue, TableStore

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


def take_state(tables: TableStore, state: str | None) -> tuple[str | None, Entity | None]:
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
    row = tables.get(Tables.OAUTH_STATES, tenant_id, key)
    if row is None:
        return tenant_id, None
    try:
        tables.delete(Tables.OAUTH_STATES, tenant_id, key, etag=row.etag)
    except ConcurrencyConflict:
        return tenant_id, None  # taken a moment ago by someone else: a replay
    return tenant_id, row


def expires_at(row: Entity) -> datetime | None:
    value = row.data.get("expiresAt")
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


def is_expired(row: Entity, now: datetime) -> bool:
    expires = expires_at(row)
    return expires is None or expires <= now


def purge_expired(tables: TableStore, tenant_id: str, purposes: Collection[EntityValue], now: datetime) -> None:
    """Delete the tenant's expired states of these purposes (another caller's deletion is fine)."""
    for row in list(tables.query(Tables.OAUTH_STATES, tenant_id)):
        if row.data.get("purpose") in purposes and is_expired(row, now):
            with contextlib.suppress(ConcurrencyConflict):
                tables.delete(Tables.OAUTH_STATES, tenant_id, row.row_key, etag=row.etag)
