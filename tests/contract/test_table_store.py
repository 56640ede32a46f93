"""The TableStore contract, proved against the in-memory fake and Azure Table Storage (Azurite)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from azure.data.tables import TableClient, TableServiceClient

from core.adapters.tables import AzureTableStore, ensure_tables
from core.domain.errors import ConcurrencyConflict, Conflict, NotFound, StorageUnavailable
from core.domain.keys import MAX_KEY_CHARS
from core.names import Tables
from core.ports import Entity, EntityValue, TableStore
from local.azurite import Azurite, connection_string, free_port

GRAPH_ID = (
    "AAMkAGI2TG93AAA/+"
    + "Zm9vYmFyLzEyMyszNDU2Nzg5MC9hYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5eg+/" * 5
    + "AAENAAAiIsqMbYjsT5e-T7KzowPTAAAPq1bBAAA="
)
ODD_KEYS = [
    "a/b",
    "back\\slash",
    "#hash",
    "why?",
    "100%",
    "%2F-not-a-slash",
    "tab\there",
    "line\nbreak",
    "\x00nul\x1f",
    "del\x7f",
    "Ada.Lovelace+cal@contoso.com",
    "Zoë 😀",
    "it's quoted",
    "~h~looks-hashed",
    GRAPH_ID,
]


def test_inserted_entity_reads_back_with_its_etag(table_store: TableStore, table: str) -> None:
    """insert returns the entity with an ETag, and get returns the same keys, data and ETag."""
    stored = table_store.insert(table, Entity("tenant-1", "user-1", {"name": "Ada", "count": 3, "ok": True}))
    assert stored.etag
    got = table_store.get(table, "tenant-1", "user-1")
    assert got == Entity("tenant-1", "user-1", {"name": "Ada", "count": 3, "ok": True}, stored.etag)


def test_get_of_a_missing_entity_or_table_is_none(table_store: TableStore, table: str) -> None:
    """A missing entity, even in a table that was never written, reads as None."""
    assert table_store.get(table, "p", "r") is None
    table_store.insert(table, Entity("p", "other"))
    assert table_store.get(table, "p", "r") is None


def test_inserting_an_existing_key_is_an_already_exists_conflict(table_store: TableStore, table: str) -> None:
    """A second insert of the same key raises Conflict with code already_exists, not a concurrency error."""
    table_store.insert(table, Entity("p", "r", {"v": 1}))
    with pytest.raises(Conflict) as caught:
        table_store.insert(table, Entity("p", "r", {"v": 2}))
    assert caught.value.code == "already_exists"
    assert not isinstance(caught.value, ConcurrencyConflict)
    assert table_store.get(table, "p", "r").data == {"v": 1}  # type: ignore[union-attr]


def test_second_writer_with_a_stale_etag_loses(table_store: TableStore, table: str) -> None:
    """Two writers read the same version; the second update raises ConcurrencyConflict and changes nothing."""
    table_store.insert(table, Entity("p", "r", {"owner": "nobody"}))
    first = table_store.get(table, "p", "r")
    second = table_store.get(table, "p", "r")
    assert first is not None and second is not None
    winner = table_store.update(table, Entity("p", "r", {"owner": "first"}, first.etag))
    assert winner.etag and winner.etag != first.etag
    with pytest.raises(ConcurrencyConflict):
        table_store.update(table, Entity("p", "r", {"owner": "second"}, second.etag))
    assert table_store.get(table, "p", "r") == Entity("p", "r", {"owner": "first"}, winner.etag)


def test_update_replaces_all_properties(table_store: TableStore, table: str) -> None:
    """update is a replace: properties left out of the new data are gone."""
    stored = table_store.insert(table, Entity("p", "r", {"a": 1, "b": 2}))
    table_store.update(table, Entity("p", "r", {"b": 3}, stored.etag))
    assert table_store.get(table, "p", "r").data == {"b": 3}  # type: ignore[union-attr]


def test_update_without_etag_replaces_unconditionally(table_store: TableStore, table: str) -> None:
    """An update with etag=None wins whatever the current version is."""
    table_store.insert(table, Entity("p", "r", {"v": 1}))
    table_store.update(table, Entity("p", "r", {"v": 2}))
    assert table_store.get(table, "p", "r").data == {"v": 2}  # type: ignore[union-attr]


def test_update_of_a_missing_entity_is_not_found(table_store: TableStore, table: str) -> None:
    """update never creates: a missing entity (or table) raises NotFound, with or without an ETag."""
    with pytest.raises(NotFound):
        table_store.update(table, Entity("p", "r", {"v": 1}))
    stored = table_store.insert(table, Entity("p", "other"))
    with pytest.raises(NotFound):
        table_store.update(table, Entity("p", "r", {"v": 1}))
    with pytest.raises(NotFound):
        table_store.update(table, Entity("p", "r", {"v": 1}, stored.etag))
    assert table_store.get(table, "p", "r") is None


def test_upsert_inserts_then_replaces(table_store: TableStore, table: str) -> None:
    """upsert creates a missing entity and replaces an existing one, each time with a new ETag."""
    created = table_store.upsert(table, Entity("p", "r", {"a": 1}))
    replaced = table_store.upsert(table, Entity("p", "r", {"b": 2}))
    assert created.etag and replaced.etag and created.etag != replaced.etag
    assert table_store.get(table, "p", "r") == Entity("p", "r", {"b": 2}, replaced.etag)


def test_delete_of_a_missing_entity_is_fine(table_store: TableStore, table: str) -> None:
    """Deleting what is not there (no table, no entity, with or without an ETag) is not an error."""
    table_store.delete(table, "p", "r")
    table_store.insert(table, Entity("p", "other"))
    table_store.delete(table, "p", "r")
    table_store.delete(table, "p", "r", etag='W/"1"')
    assert table_store.get(table, "p", "other") is not None


def test_delete_with_a_stale_etag_is_a_concurrency_conflict(table_store: TableStore, table: str) -> None:
    """A delete conditioned on an old ETag fails and keeps the entity; with the current ETag it deletes."""
    old = table_store.insert(table, Entity("p", "r", {"v": 1}))
    current = table_store.update(table, Entity("p", "r", {"v": 2}, old.etag))
    with pytest.raises(ConcurrencyConflict):
        table_store.delete(table, "p", "r", etag=old.etag)
    assert table_store.get(table, "p", "r") is not None
    table_store.delete(table, "p", "r", etag=current.etag)
    assert table_store.get(table, "p", "r") is None


@pytest.mark.parametrize("key", ODD_KEYS, ids=lambda k: repr(k)[:24])
def test_any_string_is_a_usable_key(table_store: TableStore, table: str, key: str) -> None:
    """Keys with / \\ # ? %, control characters, emails and long Graph ids round-trip through get and query."""
    stored = table_store.upsert(table, Entity(key, key, {"v": 1}))
    assert table_store.get(table, key, key) == Entity(key, key, {"v": 1}, stored.etag)
    assert [(e.partition_key, e.row_key) for e in table_store.query(table, key)] == [(key, key)]
    table_store.delete(table, key, key, etag=stored.etag)
    assert table_store.get(table, key, key) is None


def test_very_long_keys_are_hashed_but_read_back_raw(table_store: TableStore, table: str) -> None:
    """Keys too long for Table Storage round-trip exactly, with no bookkeeping leaking into data."""
    long_pk = "tenant/" + "p" * (MAX_KEY_CHARS * 2)
    long_rk = GRAPH_ID * 4
    assert len(long_rk) > MAX_KEY_CHARS
    stored = table_store.insert(table, Entity(long_pk, long_rk, {"v": "x"}))
    assert stored.partition_key == long_pk and stored.data == {"v": "x"}
    assert table_store.get(table, long_pk, long_rk) == Entity(long_pk, long_rk, {"v": "x"}, stored.etag)
    assert [e.row_key for e in table_store.query(table, long_pk)] == [long_rk]
    updated = table_store.update(table, Entity(long_pk, long_rk, {"v": "y"}, stored.etag))
    assert table_store.get(table, long_pk, long_rk).data == {"v": "y"}  # type: ignore[union-attr]
    table_store.delete(table, long_pk, long_rk, etag=updated.etag)
    assert table_store.get(table, long_pk, long_rk) is None


def test_query_returns_one_partition_in_row_key_order_within_range(table_store: TableStore, table: str) -> None:
    """query keeps to its partition, sorts by row key, treats from as inclusive and to as exclusive."""
    stamps = [f"2026-01-0{d}T09:00:00Z" for d in (5, 3, 1, 4, 2)]
    for stamp in stamps:
        table_store.insert(table, Entity("room@contoso.com", stamp, {"at": stamp}))
    table_store.insert(table, Entity("other@contoso.com", "2026-01-03T09:00:00Z"))
    everything = [e.row_key for e in table_store.query(table, "room@contoso.com")]
    assert everything == sorted(stamps)
    ranged = table_store.query(
        table, "room@contoso.com", row_key_from="2026-01-02T09:00:00Z", row_key_to="2026-01-04T09:00:00Z"
    )
    assert [e.row_key for e in ranged] == ["2026-01-02T09:00:00Z", "2026-01-03T09:00:00Z"]
    limited = table_store.query(table, "room@contoso.com", row_key_from="2026-01-02", limit=2)
    assert [e.row_key for e in limited] == ["2026-01-02T09:00:00Z", "2026-01-03T09:00:00Z"]
    assert all(e.etag for e in table_store.query(table, "room@contoso.com"))


def test_query_of_a_missing_table_or_partition_is_empty(table_store: TableStore, table: str) -> None:
    """Querying where nothing was written yields nothing (no error)."""
    assert list(table_store.query(table, "nobody")) == []
    table_store.insert(table, Entity("someone", "r"))
    assert list(table_store.query(table, "nobody")) == []
    assert list(table_store.query(table, "someone", limit=0)) == []


def test_datetimes_come_back_aware_utc(table_store: TableStore, table: str) -> None:
    """Aware datetimes round-trip as plain aware UTC datetimes with microseconds; other offsets become UTC."""
    utc = datetime(2026, 3, 29, 0, 59, 59, 123456, tzinfo=UTC)
    paris = datetime(2026, 3, 29, 3, 30, tzinfo=timezone(timedelta(hours=2)))
    table_store.insert(table, Entity("p", "r", {"utc": utc, "paris": paris}))
    data = table_store.get(table, "p", "r").data  # type: ignore[union-attr]
    assert data == {"utc": utc, "paris": datetime(2026, 3, 29, 1, 30, tzinfo=UTC)}
    for value in data.values():
        assert type(value) is datetime
        assert value.utcoffset() == timedelta(0)


def test_naive_datetimes_are_refused(table_store: TableStore, table: str) -> None:
    """A naive datetime is refused instead of being guessed as local time."""
    with pytest.raises(ValueError, match="naive"):
        table_store.insert(table, Entity("p", "r", {"when": datetime(2026, 1, 1, 9, 0)}))


def test_property_values_round_trip_and_none_is_absent(table_store: TableStore, table: str) -> None:
    """Strings, ints beyond 32 bits, floats and booleans keep type and value; None properties are absent."""
    data: dict[str, EntityValue] = {
        "text": "ünïcode ✓", "empty": "", "small": -7, "big": 2**40, "ratio": 0.25, "whole": 2.0,
        "yes": True, "no": False, "gone": None,
    }
    stored = table_store.insert(table, Entity("p", "r", data))
    expected = {k: v for k, v in data.items() if v is not None}
    assert stored.data == expected
    got = table_store.get(table, "p", "r")
    assert got is not None and got.data == expected
    assert {k: type(v) for k, v in got.data.items()} == {k: type(v) for k, v in expected.items()}


@pytest.mark.parametrize("name", ["PartitionKey", "RowKey", "Timestamp", "_rawRowKey", "has space", "1st", "a-b"])
def test_reserved_or_invalid_property_names_are_refused(table_store: TableStore, table: str, name: str) -> None:
    """System and bookkeeping property names, and names Table Storage cannot hold, raise ValueError."""
    with pytest.raises(ValueError):
        table_store.upsert(table, Entity("p", "r", {name: "x"}))


def test_ping_answers_when_storage_is_up(table_store: TableStore) -> None:
    """ping returns quietly when storage is reachable."""
    try:
        table_store.ping()
    except StorageUnavailable:
        pytest.fail("ping reported reachable storage as unavailable")


# --- Azure adapter only ---


def _unreachable_store() -> AzureTableStore:
    port = free_port()  # nothing listens there
    return AzureTableStore.from_connection_string(connection_string(port, port, port), retry_total=0)


def test_storage_down_is_storage_unavailable() -> None:
    """Every operation against unreachable storage raises StorageUnavailable, quickly, with no Azure error."""
    store = _unreachable_store()
    started = time.monotonic()
    for call in (
        lambda: store.get("t", "p", "r"),
        lambda: store.insert("t", Entity("p", "r")),
        lambda: store.update("t", Entity("p", "r")),
        lambda: store.upsert("t", Entity("p", "r")),
        lambda: store.delete("t", "p", "r"),
        lambda: list(store.query("t", "p")),
        store.ping,
    ):
        with pytest.raises(StorageUnavailable) as caught:
            call()
        assert caught.value.__cause__ is not None
    assert time.monotonic() - started < 10


def test_ping_reads_a_provisioned_table_and_never_lists_the_account(azurite: Azurite) -> None:
    """ping reads one row of integrations (the identity's Table Data Contributor is per table): an account-level
    list_tables would need a role the deployment no longer grants. It answers before the table exists, too."""
    store = AzureTableStore.from_connection_string(azurite.connection_string)

    def forbidden(*_a: object, **_k: object) -> None:
        raise AssertionError("ping listed the account's tables")

    store._service.list_tables = forbidden  # type: ignore[method-assign]
    store.ping()
    store.upsert(Tables.INTEGRATIONS, Entity("ping-test", "r", {"x": 1}))
    store.ping()


def test_ensure_tables_creates_tables_and_is_idempotent(azurite: Azurite, unique_name: str) -> None:
    """ensure_tables creates every named table, and running it again (or on a new process) is harmless."""
    names = [unique_name + "a", unique_name + "b"]
    ensure_tables(AzureTableStore.from_connection_string(azurite.connection_string), names)
    fresh = AzureTableStore.from_connection_string(azurite.connection_string)
    ensure_tables(fresh, names)
    with TableServiceClient.from_connection_string(azurite.connection_string) as service:
        listed = {t.name for t in service.list_tables()}
    assert set(names) <= listed


def test_query_follows_continuations_across_pages(azurite: Azurite, unique_name: str) -> None:
    """With pages of two, a query still yields every entity in order, and a limit stops mid-page."""
    store = AzureTableStore.from_connection_string(azurite.connection_string)
    store.page_size = 2
    keys = [f"r{i:02d}" for i in range(7)]
    for key in keys:
        store.insert(unique_name, Entity("p", key))
    assert [e.row_key for e in store.query(unique_name, "p")] == keys
    assert [e.row_key for e in store.query(unique_name, "p", row_key_from="r01", limit=5)] == keys[1:6]


def test_hashed_key_bookkeeping_stays_out_of_the_stored_data(azurite: Azurite, unique_name: str) -> None:
    """A hashed key keeps its original in _rawPartitionKey/_rawRowKey on the row, never in Entity.data."""
    store = AzureTableStore.from_connection_string(azurite.connection_string)
    raw = "x" * (MAX_KEY_CHARS + 1)
    store.insert(unique_name, Entity("p", raw, {"v": 1}))
    with TableClient.from_connection_string(azurite.connection_string, unique_name) as client:
        (row,) = client.list_entities()
    assert row["RowKey"].startswith("~h~") and row["_rawRowKey"] == raw
    assert store.get(unique_name, "p", raw).data == {"v": 1}  # type: ignore[union-attr]
