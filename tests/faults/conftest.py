"""Registers the ``faults`` marker (until pyproject lists it) for the fault-injection suite."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "faults: fault-injection runs on the local stack (host killed, Azurite restarted)"
    )
