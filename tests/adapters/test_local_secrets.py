"""Local file secret store specifics: owner-only permissions, atomic writes, reversible safe file names."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.adapters.local_secrets import MAX_FILE_NAME, LocalFileSecretStore, decode_file_name, encode_file_name
from core.domain.errors import SecretStoreUnavailable

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A permissive umask, so the store's own modes are what is tested."""
    previous = os.umask(0)
    yield
    os.umask(previous)


@posix_only
def test_folder_is_0700_and_files_are_0600(tmp_path: Path, open_umask: None) -> None:
    """Secrets are readable by the owner only, whatever the umask."""
    store = LocalFileSecretStore(tmp_path / "nested" / "secrets")
    store.set("user-token-t-o", "refresh")
    assert _mode(store.directory) == 0o700
    (secret_file,) = store.directory.iterdir()
    assert _mode(secret_file) == 0o600


@posix_only
def test_an_existing_wider_folder_is_tightened(tmp_path: Path) -> None:
    """A secrets folder created earlier with wider permissions is narrowed to 0700 on write."""
    folder = tmp_path / "secrets"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)  # noqa: S103 - the wide folder is the situation under test
    LocalFileSecretStore(folder).set("a", "v")
    assert _mode(folder) == 0o700


def test_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    """After a set (and an overwrite) the folder holds exactly one file per secret."""
    store = LocalFileSecretStore(tmp_path / "secrets")
    store.set("one", "1")
    store.set("one", "2")
    store.set("two", "2")
    assert sorted(p.name for p in store.directory.iterdir()) == ["one", "two"]


def test_a_failed_write_keeps_the_previous_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the write fails before the rename, the old value stays and no temporary file is left."""
    store = LocalFileSecretStore(tmp_path / "secrets")
    store.set("token", "old")

    def broken_replace(_src: object, _dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(SecretStoreUnavailable):
        store.set("token", "new")
    monkeypatch.undo()
    assert store.get("token") == "old"
    assert [p.name for p in store.directory.iterdir()] == ["token"]


def test_missing_folder_reads_as_no_secret(tmp_path: Path) -> None:
    """get before anything was stored (no folder yet) returns None and creates nothing."""
    store = LocalFileSecretStore(tmp_path / "not-yet")
    assert store.get("anything") is None
    assert not store.directory.exists()


def test_unusable_folder_is_secret_store_unavailable(tmp_path: Path) -> None:
    """A path that cannot be a folder (a file is in the way) makes set and ping raise SecretStoreUnavailable."""
    blocker = tmp_path / "secrets"
    blocker.write_text("not a folder")
    store = LocalFileSecretStore(blocker)
    with pytest.raises(SecretStoreUnavailable):
        store.set("a", "v")
    with pytest.raises(SecretStoreUnavailable):
        store.ping()


@given(st.text(min_size=1, max_size=16))  # 16 characters encode to at most 192: never hashed
def test_file_names_are_safe_and_reversible(name: str) -> None:
    """Encoded names hold only [a-z0-9_-%], never start with a dot, and decode back to the secret name."""
    encoded = encode_file_name(name)
    assert set(encoded) <= set("abcdefghijklmnopqrstuvwxyz0123456789_-%ABCDEF")
    assert decode_file_name(encoded) == name


@given(st.lists(st.text(max_size=120), min_size=2, max_size=20, unique=True))
def test_file_names_are_distinct_even_on_case_insensitive_disks(names: list[str]) -> None:
    """Distinct secret names map to file names that differ even after case folding."""
    assert len({encode_file_name(n).lower() for n in names}) == len(names)


def test_long_names_are_hashed_within_file_name_limits(tmp_path: Path) -> None:
    """A name whose encoding is too long becomes a fixed-length hashed file name and still works."""
    name = "é" * 500
    encoded = encode_file_name(name)
    assert encoded.startswith("~h-") and len(encoded) <= MAX_FILE_NAME
    store = LocalFileSecretStore(tmp_path / "secrets")
    store.set(name, "v")
    assert store.get(name) == "v"
