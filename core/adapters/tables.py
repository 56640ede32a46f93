"""TableStore on Azure Table Storage (azure-data-tables): Azurite locally, identity-based in Azure.

Keys go through ``core.domain.keys.encode_key`` on the way in and ``decode_key`` on
the way out; a key too long to store is hashed and its original is kept in the
``_rawPartitionKey``/``_rawRowKey`` properties, which never reach ``Entity.data``.
Optimistic concurrency is the service's: ``If-Match: <etag>`` on replace and delete,
412 becomes ``ConcurrencyConflict``. Tables are created on first write (a write that
meets ``TableNotFound`` creates the table and retries once); reads of a missing table
see an empty table. Every azure.core exception leaves as a domain error.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import (
    EdmType,
    EntityProperty,
    TableClient,
    TableServiceClient,
    TableTransactionError,
    UpdateMode,
)

from core.adapters.azure_errors import error_code, translate_storage_error
from core.adapters.rules import RAW_PARTITION_KEY, RAW_ROW_KEY, normalize_entity_data
from core.domain.errors import NotFound
from core.domain.keys import decode_key, encode_key, is_hashed
from core.names import Tables
from core.ports import Entity, EntityValue, TableOp, TableStore, check_transaction
from core.settings import StorageSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

# A Functions invocation should fail fast and let the queue retry rather than hang on
# storage: short socket timeouts and a few quick retries (the SDK default is 10 retries).
DEFAULT_CLIENT_OPTIONS: dict[str, Any] = {
    "connection_timeout": 5,
    "read_timeout": 10,
    "retry_total": 3,
    "retry_backoff_factor": 0.4,
    "retry_backoff_max": 4,
    "use_env_settings": False,
}
# use_env_settings=False: no proxy/CA lookups in the process environment on every call (about
# 0.4 ms of CPU per request on the webhook path); Functions hosts use no proxy for storage.
# ping() answers a health probe: one attempt, a couple of seconds at most.
PING_OPTIONS: dict[str, Any] = {"connection_timeout": 2, "read_timeout": 3, "retry_total": 0}

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_SYSTEM_PROPERTIES = frozenset({"PartitionKey", "RowKey", "Timestamp", RAW_PARTITION_KEY, RAW_ROW_KEY})


class AzureTableStore:
    """The TableStore port over one storage account's Table service."""

    page_size = 1000  # entities per query page (the service's maximum); the SDK follows continuations

    def __init__(self, service: TableServiceClient) -> None:
        self._service = service
        self._clients: dict[str, TableClient] = {}
        self._known_tables: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, storage: StorageSettings, **client_options: Any) -> AzureTableStore:
        """A connection string (Azurite, local) wins; otherwise the table endpoint with managed identity."""
        options = {**DEFAULT_CLIENT_OPTIONS, **client_options}
        if storage.connection_string:
            return cls(TableServiceClient.from_connection_string(storage.connection_string, **options))
        if not storage.table_uri:
            raise ValueError("storage settings have neither a connection string nor a table endpoint")
        from azure.identity import ManagedIdentityCredential

        credential = ManagedIdentityCredential(client_id=storage.client_id)
        return cls(TableServiceClient(endpoint=storage.table_uri, credential=credential, **options))

    @classmethod
    def from_connection_string(cls, connection_string: str, **client_options: Any) -> AzureTableStore:
        return cls.from_settings(StorageSettings(connection_string, None, None, None), **client_options)

    # --- the port ---

    def get(self, table: str, partition_key: str, row_key: str) -> Entity | None:
        pk, rk = encode_key(partition_key), encode_key(row_key)

        def op(client: TableClient) -> Entity | None:
            try:
                return _from_sdk(client.get_entity(pk, rk))
            except ResourceNotFoundError:
                return None  # no such entity, or no such table yet: both mean "not there"

        return self._run(table, "get", op, create_table=False)

    def insert(self, table: str, entity: Entity) -> Entity:
        body = _to_sdk(entity)

        def op(client: TableClient) -> Entity:
            metadata = client.create_entity(body)
            return _stored(entity, body, metadata)

        return self._run(table, "insert", op, create_table=True)

    def update(self, table: str, entity: Entity) -> Entity:
        body = _to_sdk(entity)
        condition = MatchConditions.IfNotModified if entity.etag else None

        def op(client: TableClient) -> Entity:
            # Without an ETag the SDK sends If-Match: *, so a missing entity is still a 404.
            metadata = client.update_entity(
                body, mode=UpdateMode.REPLACE, etag=entity.etag, match_condition=condition
            )
            return _stored(entity, body, metadata)

        return self._run(table, "update", op, create_table=False)

    def upsert(self, table: str, entity: Entity) -> Entity:
        body = _to_sdk(entity)

        def op(client: TableClient) -> Entity:
            metadata = client.upsert_entity(body, mode=UpdateMode.REPLACE)
            return _stored(entity, body, metadata)

        return self._run(table, "upsert", op, create_table=True)

    def delete(self, table: str, partition_key: str, row_key: str, etag: str | None = None) -> None:
        pk, rk = encode_key(partition_key), encode_key(row_key)
        condition = MatchConditions.IfNotModified if etag else None

        def op(client: TableClient) -> None:
            try:
                client.delete_entity(pk, rk, etag=etag, match_condition=condition)
            except ResourceNotFoundError:
                return  # already gone (or never there): deleting is idempotent

        self._run(table, "delete", op, create_table=False)

    def transact(self, table: str, partition_key: str, operations: Sequence[TableOp]) -> list[Entity | None]:
        check_transaction(partition_key, operations)
        bodies = [_to_sdk(op.entity) for op in operations]
        batch: list[Any] = []
        for op, body in zip(operations, bodies, strict=True):
            condition = MatchConditions.IfNotModified if op.entity.etag else None
            if op.kind == "insert":
                batch.append(("create", body))
            elif op.kind == "update":
                # Without an ETag the SDK sends If-Match: *, so a missing row fails the batch (404).
                batch.append(("update", body, {"mode": UpdateMode.REPLACE, "etag": op.entity.etag,
                                               "match_condition": condition}))
            elif op.kind == "upsert":
                batch.append(("upsert", body, {"mode": UpdateMode.REPLACE}))
            else:
                keys = {"PartitionKey": body["PartitionKey"], "RowKey": body["RowKey"]}
                batch.append(("delete", keys, {"etag": op.entity.etag, "match_condition": condition}))
        creates = any(op.kind in ("insert", "upsert") for op in operations)

        def submit(client: TableClient) -> list[Entity | None]:
            try:
                results = client.submit_transaction(batch)
            except TableTransactionError as exc:
                if error_code(exc) == "TableNotFound":
                    raise ResourceNotFoundError(message="TableNotFound", response=exc.response) from exc
                raise
            return [
                None if operation.kind == "delete" else _stored(operation.entity, body, dict(meta or {}))
                for operation, body, meta in zip(operations, bodies, results, strict=True)
            ]

        return self._run(table, "transaction", submit, create_table=creates)

    def query(
        self,
        table: str,
        partition_key: str,
        *,
        row_key_from: str | None = None,
        row_key_to: str | None = None,
        limit: int | None = None,
    ) -> Iterator[Entity]:
        if limit is not None and limit <= 0:
            return
        clauses = ["PartitionKey eq @pk"]
        parameters = {"pk": encode_key(partition_key)}
        if row_key_from is not None:
            clauses.append("RowKey ge @rkfrom")
            parameters["rkfrom"] = encode_key(row_key_from)
        if row_key_to is not None:
            clauses.append("RowKey lt @rkto")
            parameters["rkto"] = encode_key(row_key_to)
        page_size = min(limit, self.page_size) if limit is not None else self.page_size
        pages = self._client(table).query_entities(
            " and ".join(clauses), parameters=parameters, results_per_page=page_size
        )
        count = 0
        iterator = iter(pages)
        while limit is None or count < limit:
            try:
                item = next(iterator)
            except StopIteration:
                return
            except ResourceNotFoundError as exc:
                if error_code(exc) == "TableNotFound":
                    return  # a table nobody wrote to yet is an empty table
                raise translate_storage_error(exc, "query") from exc
            except AzureError as exc:
                raise translate_storage_error(exc, "query") from exc
            count += 1
            yield _from_sdk(item)

    def ping(self) -> None:
        """Read at most one row of ``integrations`` (a table the app is granted on, never an account-level
        listing: the identity has Table Data Contributor per table only). A missing table still means storage
        answered (the local stack creates tables on first write; infra provisions them)."""
        try:
            pages = self._client(Tables.INTEGRATIONS).list_entities(results_per_page=1, **PING_OPTIONS).by_page()
            for _ in next(pages, []):
                break
        except ResourceNotFoundError:
            return
        except AzureError as exc:
            raise translate_storage_error(exc, "ping") from exc

    # --- tables ---

    def ensure_table(self, table: str) -> None:
        """Create ``table`` unless this process already knows it exists."""
        if table in self._known_tables:
            return
        try:
            self._service.create_table(table)
        except ResourceExistsError:
            pass
        except AzureError as exc:
            raise translate_storage_error(exc, "create table") from exc
        with self._lock:
            self._known_tables.add(table)

    def _client(self, table: str) -> TableClient:
        with self._lock:
            client = self._clients.get(table)
            if client is None:
                client = self._clients[table] = self._service.get_table_client(table)
            return client

    def _run(self, table: str, what: str, op: Callable[[TableClient], T], *, create_table: bool) -> T:
        client = self._client(table)
        try:
            try:
                return op(client)
            except ResourceNotFoundError as exc:
                if error_code(exc) != "TableNotFound":
                    raise
                if not create_table:
                    raise NotFound() from exc  # update of an entity in a table that does not exist
            log.info("creating table %s on first write", table)
            with self._lock:
                self._known_tables.discard(table)
            self.ensure_table(table)
            return op(client)
        except AzureError as exc:
            raise translate_storage_error(exc, what) from exc


def ensure_tables(store: TableStore, names: Iterable[str]) -> None:
    """Create every table up front (the local host calls this at start); fakes need nothing."""
    if not isinstance(store, AzureTableStore):
        return
    for name in names:
        store.ensure_table(name)


def _to_sdk(entity: Entity) -> dict[str, Any]:
    pk, rk = encode_key(entity.partition_key), encode_key(entity.row_key)
    body: dict[str, Any] = {"PartitionKey": pk, "RowKey": rk}
    for name, value in normalize_entity_data(entity.data).items():
        if isinstance(value, int) and not isinstance(value, bool) and not _INT32_MIN <= value <= _INT32_MAX:
            body[name] = EntityProperty(value, EdmType.INT64)  # the SDK refuses plain ints past 32 bits
        else:
            body[name] = value
    if is_hashed(pk):
        body[RAW_PARTITION_KEY] = entity.partition_key
    if is_hashed(rk):
        body[RAW_ROW_KEY] = entity.row_key
    return body


def _stored(entity: Entity, body: dict[str, Any], metadata: dict[str, Any]) -> Entity:
    """What a write stored, as ``get`` would return it (normalised data, the new ETag)."""
    data = {name: _plain(value) for name, value in body.items() if name not in _SYSTEM_PROPERTIES}
    return Entity(entity.partition_key, entity.row_key, data, metadata.get("etag"))


def _from_sdk(item: Any) -> Entity:
    pk = str(item["PartitionKey"])
    rk = str(item["RowKey"])
    raw_pk = item.get(RAW_PARTITION_KEY) if is_hashed(pk) else decode_key(pk)
    raw_rk = item.get(RAW_ROW_KEY) if is_hashed(rk) else decode_key(rk)
    data = {name: _plain(value) for name, value in item.items() if name not in _SYSTEM_PROPERTIES}
    metadata = getattr(item, "metadata", {}) or {}
    return Entity(str(raw_pk), str(raw_rk), data, metadata.get("etag"))


def _plain(value: Any) -> EntityValue:
    """SDK wrapper types -> the plain values of ``EntityValue``."""
    if isinstance(value, EntityProperty):
        value = value.value
    if isinstance(value, datetime):
        # TablesEntityDatetime carries the service's string form; services get a plain aware datetime.
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return datetime(
            aware.year, aware.month, aware.day, aware.hour, aware.minute, aware.second, aware.microsecond,
            tzinfo=aware.tzinfo,
        ).astimezone(UTC)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)  # Edm.Guid or binary written by another tool: keep it readable, never crash
