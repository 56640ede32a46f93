"""Delegated connections (per-user method, and the service account's scheduling mailbox): metadata only.

Table ``connections``, PartitionKey = tenant id: RowKey = the user's object id for a
per-user connection, ``service-account`` for the tenant's scheduling mailbox (its oid and
UPN). Never a token: the token cache is a secret named ``user_token_secret_name``. Flagging a
connection ``needsReconnect`` writes ``connection.needs_reconnect`` to the product in the same
transaction (outbox rows ``x~...`` in the partition, skipped by every reader here).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from core.domain.errors import CalendarNotConnected, ConcurrencyConflict, NotFound
from core.domain.product_events import reconnect_draft
from core.names import Tables
from core.ports import Entity, EntityValue, TableOp, TableStore
from core.services.stores.codec import as_datetime, opt_str
from core.services.stores.outbox import Outbox, is_outbox_row, make_events

SERVICE_ACCOUNT_ROW: Final = "service-account"

# User.ReadBasic.All (delegated, no admin consent needed) lets a delegated token resolve the
# partner and colleagues (GET /users/{id}); User.Read alone only reads the signed-in user.
USER_SCOPES: Final = ("User.Read", "User.ReadBasic.All", "Calendars.ReadWrite", "MailboxSettings.Read")
SERVICE_ACCOUNT_SCOPES: Final = (
    "Calendars.ReadWrite.Shared", "User.Read", "User.ReadBasic.All", "MailboxSettings.Read",
)


class ConnectionPurpose(StrEnum):
    """What a delegated sign-in connects: a user's own calendar or the tenant's scheduling mailbox."""

    USER = "user"
    SERVICE_ACCOUNT = "serviceAccount"

    @property
    def scopes(self) -> tuple[str, ...]:
        return USER_SCOPES if self is ConnectionPurpose.USER else SERVICE_ACCOUNT_SCOPES

    @property
    def state_purpose(self) -> str:
        return "user_connection" if self is ConnectionPurpose.USER else "service_account_connection"


class ConnectionStatus(StrEnum):
    CONNECTED = "connected"
    NEEDS_RECONNECT = "needsReconnect"




@dataclass(frozen=True, slots=True)
class ConnectionRecord:
    """One delegated connection: metadata only (never a token)."""

    tenant_id: str
    user_id: str
    purpose: ConnectionPurpose
    status: ConnectionStatus
    reason: str | None = None
    username: str | None = None  # the service account's UPN (shown to admins); not kept for users
    connected_at: datetime | None = None
    updated_at: datetime | None = None
    connected_by: str | None = None

    @property
    def needs_reconnect(self) -> bool:
        return self.status is ConnectionStatus.NEEDS_RECONNECT


class ConnectionRepository:
    """Rows of table ``connections`` (PartitionKey tid; RowKey oid, or ``service-account``)."""

    def __init__(self, tables: TableStore) -> None:
        self.tables = tables
        self.outbox = Outbox(tables)

    @staticmethod
    def _from(entity: Entity) -> ConnectionRecord:
        d = entity.data
        return ConnectionRecord(
            tenant_id=entity.partition_key,
            user_id=str(d.get("userId") or entity.row_key),
            purpose=ConnectionPurpose(str(d.get("purpose") or ConnectionPurpose.USER.value)),
            status=ConnectionStatus(str(d.get("status") or ConnectionStatus.CONNECTED.value)),
            reason=opt_str(d.get("reason")),
            username=opt_str(d.get("username")),
            connected_at=as_datetime(d.get("connectedAt")),
            updated_at=as_datetime(d.get("updatedAt")),
            connected_by=opt_str(d.get("connectedBy")),
        )

    @staticmethod
    def _to(record: ConnectionRecord) -> dict[str, EntityValue]:
        return {
            "userId": record.user_id,
            "purpose": record.purpose.value,
            "status": record.status.value,
            "reason": record.reason,
            "username": record.username,
            "connectedAt": record.connected_at,
            "updatedAt": record.updated_at,
            "connectedBy": record.connected_by,
        }

    @staticmethod
    def _row(record: ConnectionRecord) -> str:
        return SERVICE_ACCOUNT_ROW if record.purpose is ConnectionPurpose.SERVICE_ACCOUNT else record.user_id

    def get(self, tenant_id: str, user_id: str) -> ConnectionRecord | None:
        """A user's own connection (per-user method)."""
        entity = self.tables.get(Tables.CONNECTIONS, tenant_id.lower(), user_id.lower())
        return None if entity is None else self._from(entity)

    def service_account(self, tenant_id: str) -> ConnectionRecord | None:
        """The tenant's scheduling mailbox connection, if an admin connected one."""
        entity = self.tables.get(Tables.CONNECTIONS, tenant_id.lower(), SERVICE_ACCOUNT_ROW)
        return None if entity is None else self._from(entity)

    def service_account_id(self, tenant_id: str) -> str | None:
        """The scheduling mailbox's object id (``identity_for``'s ``service_account_id``)."""
        found = self.service_account(tenant_id)
        return None if found is None else found.user_id

    def users(self, tenant_id: str) -> list[ConnectionRecord]:
        """Every per-user connection of the tenant (the access test's connected / not-yet-connected split)."""
        out = []
        for entity in self.tables.query(Tables.CONNECTIONS, tenant_id.lower()):
            if entity.row_key != SERVICE_ACCOUNT_ROW and not is_outbox_row(entity.row_key):
                out.append(self._from(entity))
        return out

    def save(self, record: ConnectionRecord) -> None:
        self.tables.upsert(Tables.CONNECTIONS, Entity(record.tenant_id, self._row(record), self._to(record)))

    def delete(self, tenant_id: str, user_id: str) -> None:
        self.tables.delete(Tables.CONNECTIONS, tenant_id.lower(), user_id.lower())

    def delete_service_account(self, tenant_id: str) -> None:
        self.tables.delete(Tables.CONNECTIONS, tenant_id.lower(), SERVICE_ACCOUNT_ROW)

    def mark_needs_reconnect(self, tenant_id: str, user_id: str, reason: str, now: datetime) -> bool:
        """Flag every connection that rides on this user's tokens; True when one was not flagged yet."""
        tenant_id, user_id = tenant_id.lower(), user_id.lower()
        changed = False
        for row in (user_id, SERVICE_ACCOUNT_ROW):
            for _ in range(3):  # an ETag race with a concurrent writer: re-read and retry
                entity = self.tables.get(Tables.CONNECTIONS, tenant_id, row)
                if entity is None:
                    break
                record = self._from(entity)
                if record.user_id != user_id or (record.needs_reconnect and record.reason == reason):
                    break
                flagged = ConnectionRecord(
                    tenant_id=record.tenant_id,
                    user_id=record.user_id,
                    purpose=record.purpose,
                    status=ConnectionStatus.NEEDS_RECONNECT,
                    reason=reason,
                    username=record.username,
                    connected_at=record.connected_at,
                    updated_at=now,
                    connected_by=record.connected_by,
                )
                drafts = [] if record.needs_reconnect else [
                    reconnect_draft(tenant_id, record.user_id, record.purpose.value, reason)
                ]
                state = TableOp("update", Entity(tenant_id, row, self._to(flagged), entity.etag))
                try:
                    self.outbox.commit(Tables.CONNECTIONS, state, make_events(tenant_id, drafts, now))
                except (ConcurrencyConflict, NotFound):
                    continue
                changed = changed or not record.needs_reconnect
                break
        return changed




def require_connected(connections: ConnectionRepository, tenant_id: str, user_id: str) -> ConnectionRecord:
    """The user's live per-user connection, or 409 ``calendar_not_connected`` /
    ``calendar_reconnect_required`` (``details.reason`` = the AADSTS number) when they must
    (re)connect first."""
    record = connections.get(tenant_id, user_id)
    if record is None:
        raise CalendarNotConnected(details={"userId": user_id.lower()})
    if record.needs_reconnect:
        raise CalendarNotConnected(
            "This person's Microsoft 365 connection expired; they must connect again.",
            code="calendar_reconnect_required",
            details={"userId": user_id.lower(), "reason": record.reason},
        )
    return record
