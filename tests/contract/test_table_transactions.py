"""The TableStore entity-group transaction (``transact``), proved on the in-memory fake and on Azurite.

The transactional outbox (core/services/stores/outbox.py) relies on exactly this: a state row
and its outbox rows are written together or not at all, in one partition of one table.
"""

from __future__ import annotations

import pytest

from core.domain.errors import ConcurrencyConflict, Conflict, NotFound
from core.ports import MAX_TRANSACTION_OPS, Entity, TableOp, TableStore


def _rows(store: TableStore, table: str, pk: str = "t1") -> dict[str, dict[str, object]]:
    return {e.row_key: dict(e.data) for e in store.query(table, pk)}


def test_a_transaction_applies_every_operation_and_returns_new_etags(table_store: TableStore, table: str) -> None:
    """insert, update (ETag), upsert and delete in one call all apply; each write returns its new ETag."""
    first = table_store.insert(table, Entity("t1", "state", {"v": 1}))
    table_store.insert(table, Entity("t1", "gone", {"v": 0}))
    out = table_store.transact(table, "t1", [
        TableOp("update", Entity("t1", "state", {"v": 2}, first.etag)),
        TableOp("insert", Entity("t1", "x~1", {"type": "session.booked"})),
        TableOp("upsert", Entity("t1", "x~2", {"type": "session.cancelled"})),
        TableOp("delete", Entity("t1", "gone")),
    ])
    assert [e.row_key if e else None for e in out] == ["state", "x~1", "x~2", None]
    state = table_store.get(table, "t1", "state")
    assert state is not None and out[0] is not None and state.etag == out[0].etag != first.etag
    assert _rows(table_store, table) == {"state": {"v": 2}, "x~1": {"type": "session.booked"},
                                        "x~2": {"type": "session.cancelled"}}


def test_a_stale_etag_fails_the_whole_transaction(table_store: TableStore, table: str) -> None:
    """When one update's ETag no longer matches, ConcurrencyConflict is raised and nothing is written."""
    first = table_store.insert(table, Entity("t1", "state", {"v": 1}))
    table_store.update(table, Entity("t1", "state", {"v": 2}, first.etag))
    with pytest.raises(ConcurrencyConflict):
        table_store.transact(table, "t1", [
            TableOp("insert", Entity("t1", "x~1", {"type": "session.booked"})),
            TableOp("update", Entity("t1", "state", {"v": 3}, first.etag)),
        ])
    assert _rows(table_store, table) == {"state": {"v": 2}}


def test_inserting_an_existing_row_fails_the_whole_transaction(table_store: TableStore, table: str) -> None:
    """An insert of an existing key is Conflict already_exists, and the other operations are not applied."""
    table_store.insert(table, Entity("t1", "x~1", {"v": 1}))
    with pytest.raises(Conflict) as caught:
        table_store.transact(table, "t1", [
            TableOp("upsert", Entity("t1", "state", {"v": 9})),
            TableOp("insert", Entity("t1", "x~1", {"v": 2})),
        ])
    assert caught.value.code == "already_exists"
    assert _rows(table_store, table) == {"x~1": {"v": 1}}


def test_updating_or_deleting_a_missing_row_is_not_found(table_store: TableStore, table: str) -> None:
    """update and delete of a row that does not exist fail the transaction with NotFound."""
    table_store.insert(table, Entity("t1", "here", {"v": 1}))
    for kind in ("update", "delete"):
        with pytest.raises(NotFound):
            table_store.transact(table, "t1", [
                TableOp("upsert", Entity("t1", "x~1", {"v": 1})),
                TableOp(kind, Entity("t1", "missing", {"v": 1})),  # type: ignore[arg-type]
            ])
    assert _rows(table_store, table) == {"here": {"v": 1}}


def test_a_transaction_creates_its_table_on_first_write(table_store: TableStore, table: str) -> None:
    """Like a single insert, a transaction into a table nobody wrote yet creates the table."""
    table_store.transact(table, "t1", [TableOp("insert", Entity("t1", "a", {"v": 1}))])
    assert _rows(table_store, table) == {"a": {"v": 1}}


def test_encoded_keys_work_inside_a_transaction(table_store: TableStore, table: str) -> None:
    """Keys needing encoding (slashes, '#', long Graph ids) behave as in single calls."""
    odd = "AAMkA/+#?" + "x" * 600
    table_store.transact(table, "tenant/1", [TableOp("insert", Entity("tenant/1", odd, {"v": 1}))])
    got = table_store.get(table, "tenant/1", odd)
    assert got is not None and got.data == {"v": 1}


@pytest.mark.parametrize("case", ["empty", "too_many", "other_partition", "same_row_twice"])
def test_malformed_transactions_are_refused_before_anything_is_sent(
    table_store: TableStore, table: str, case: str
) -> None:
    """No operations, more than 100, another partition, or the same row twice: ValueError, nothing written."""
    ops = {
        "empty": [],
        "too_many": [TableOp("upsert", Entity("t1", f"r{i}")) for i in range(MAX_TRANSACTION_OPS + 1)],
        "other_partition": [TableOp("upsert", Entity("t1", "a")), TableOp("upsert", Entity("t2", "b"))],
        "same_row_twice": [TableOp("upsert", Entity("t1", "a")), TableOp("delete", Entity("t1", "a"))],
    }[case]
    with pytest.raises(ValueError):
        table_store.transact(table, "t1", ops)
    assert _rows(table_store, table) == {}


def test_a_full_transaction_of_one_hundred_operations_applies(table_store: TableStore, table: str) -> None:
    """The service's maximum, 100 operations, is accepted and applied as one."""
    table_store.transact(table, "t1", [TableOp("upsert", Entity("t1", f"r{i:03d}", {"i": i})) for i in range(100)])
    assert len(_rows(table_store, table)) == 100
