"""The stack the fuzzer talks to: the host as its own process, Contoso and Fabrikam both onboarded.

It is a ``ProcessStack`` (tests/faults/procstack.py: the e2e ``Stack`` API over a host
process with its own Azurite) rather than the e2e session fixture: the fuzzer makes
hundreds of writes in two tenants, and a private stack keeps them out of every other
test's data and leaves the in-process container alone.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.simulator import seed
from tests.faults.procstack import ProcessStack


@pytest.fixture(scope="session")
def fuzz_stack() -> Iterator[ProcessStack]:
    """A private local stack with both simulator tenants onboarded through the real admin flow."""
    try:
        stack = ProcessStack.create()
    except RuntimeError as exc:  # Azurite missing outside CI: same policy as the azurite fixture
        pytest.skip(f"local stack not available: {exc}")
    try:
        stack.onboard(seed.CONTOSO, seed.CONTOSO_ADMIN, owner_email="owner@contoso.test")
        stack.onboard(seed.FABRIKAM, seed.FABRIKAM_ADMIN, owner_email="owner@fabrikam.test")
        yield stack
    finally:
        stack.close()
