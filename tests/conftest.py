"""Shared fixtures: Azurite for the storage tier (started once per session, never skipped in CI)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from local import azurite as azurite_mod

IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def azurite() -> Iterator[azurite_mod.Azurite]:
    """A private in-memory Azurite for this test session (fails, never skips, when it cannot start in CI)."""
    try:
        instance = azurite_mod.ephemeral(in_memory=True)
    except RuntimeError as exc:
        if IN_CI:
            pytest.fail(f"Azurite is required in CI: {exc}")
        pytest.skip(f"Azurite not available locally: {exc} (run `make test`, which installs it)")
    yield instance
    instance.stop()


@pytest.fixture
def azurite_connection_string(azurite: azurite_mod.Azurite) -> str:
    return azurite.connection_string


@pytest.fixture
def unique_name() -> str:
    """A fresh, valid table/queue name so tests never see each other's data."""
    return "t" + uuid.uuid4().hex[:20]

pytest_plugins = ["tests.log_guard"]
