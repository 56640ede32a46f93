"""The SecretStore contract, proved against the fake, the local file store and Key Vault (fake vault)."""

from __future__ import annotations

import pytest

from core.adapters.rules import MAX_SECRET_BYTES
from core.domain.errors import SecretStoreUnavailable
from core.ports import SecretStore

TID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OID = "00000000-0000-4000-8000-000000000001"
NAMES = [
    f"user-token-{TID}-{OID}",
    "app-credential",
    "App-Credential",
    "app_credential",
    "app credential",
    "app/credential",
    "app.credential",
    "1st-secret",
    "-leading-dash",
    "zoë",
    "%41",
    "A",
    "a",
    "x" * 127,
    "x" * 128,
    "y/" * 200,
]


def test_missing_secret_is_none(secret_store: SecretStore) -> None:
    """get of a name never set returns None."""
    assert secret_store.get("never-set") is None


def test_set_then_get_returns_the_value(secret_store: SecretStore) -> None:
    """A set value reads back exactly, including newlines and non-ASCII text."""
    secret_store.set(f"user-token-{TID}-{OID}", "0.AAAA-refresh\ntoken ✓")
    assert secret_store.get(f"user-token-{TID}-{OID}") == "0.AAAA-refresh\ntoken ✓"


def test_set_overwrites(secret_store: SecretStore) -> None:
    """A second set replaces the value."""
    secret_store.set("webhook-signing-key", "one")
    secret_store.set("webhook-signing-key", "two")
    assert secret_store.get("webhook-signing-key") == "two"


def test_delete_forgets_and_missing_delete_is_fine(secret_store: SecretStore) -> None:
    """delete makes get return None; deleting a missing name is not an error."""
    secret_store.set("gone-soon", "v")
    secret_store.delete("gone-soon")
    assert secret_store.get("gone-soon") is None
    secret_store.delete("gone-soon")
    secret_store.delete("never-there")


def test_a_deleted_name_can_be_set_again(secret_store: SecretStore) -> None:
    """Setting a name after deleting it stores the new value (Key Vault: recovers the soft-deleted secret)."""
    secret_store.set("reconnected-user", "old")
    secret_store.delete("reconnected-user")
    secret_store.set("reconnected-user", "new")
    assert secret_store.get("reconnected-user") == "new"


def test_distinct_names_never_share_a_secret(secret_store: SecretStore) -> None:
    """Any names, including ones the vault cannot hold as they are, keep their own values."""
    for index, name in enumerate(NAMES):
        secret_store.set(name, f"value-{index}")
    assert [secret_store.get(name) for name in NAMES] == [f"value-{i}" for i in range(len(NAMES))]


def test_largest_value_is_kept_and_larger_is_refused(secret_store: SecretStore) -> None:
    """A 25 KiB value is stored; one byte more raises ValueError and leaves the old value."""
    secret_store.set("big", "v" * MAX_SECRET_BYTES)
    assert secret_store.get("big") == "v" * MAX_SECRET_BYTES
    with pytest.raises(ValueError):
        secret_store.set("big", "v" * (MAX_SECRET_BYTES + 1))
    assert secret_store.get("big") == "v" * MAX_SECRET_BYTES


def test_ping_answers_when_the_store_is_up(secret_store: SecretStore) -> None:
    """ping returns quietly when the store is reachable."""
    try:
        secret_store.ping()
    except SecretStoreUnavailable:
        pytest.fail("ping reported a reachable store as unavailable")
