"""Parametrized fixtures: every contract test runs against the in-memory fake and the real adapter.

Tables and queues: the fake, and the Azure adapter on the session's private Azurite.
Secrets: the fake, the local file store, and the Key Vault adapter on a ``responses``
fake vault (with its cache off, so every call reaches the "service").
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pytest
import responses
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient

from core.adapters.keyvault import KeyVaultSecretStore
from core.adapters.local_secrets import LocalFileSecretStore
from core.adapters.queues import AzureCommandQueue
from core.adapters.tables import AzureTableStore
from core.ports import CommandQueue, SecretStore, TableStore
from local.azurite import Azurite
from tests.contract.fake_vault import FakeCredential, FakeKeyVault
from tests.support.memory import FixedClock, InMemoryCommandQueue, InMemorySecretStore, InMemoryTableStore


@pytest.fixture(params=["memory", "azurite"])
def table_store(request: pytest.FixtureRequest) -> TableStore:
    """A TableStore: the in-memory fake, then the Azure adapter on Azurite."""
    if request.param == "memory":
        return InMemoryTableStore()
    azurite: Azurite = request.getfixturevalue("azurite")
    return AzureTableStore.from_connection_string(azurite.connection_string)


@pytest.fixture
def table(unique_name: str) -> str:
    """A table nobody has written to yet (the stores create it on first write)."""
    return unique_name


class QueueProbe(Protocol):
    """How a test sees what a consumer would receive, for each implementation."""

    def receive(self, queue: str) -> list[dict[str, Any]]:
        """Take the messages visible now."""
        ...

    def receive_within(self, queue: str, seconds: float) -> list[dict[str, Any]]:
        """Take messages, letting up to ``seconds`` pass until some are visible."""
        ...


@dataclass
class MemoryProbe:
    fake: InMemoryCommandQueue
    clock: FixedClock

    def receive(self, queue: str) -> list[dict[str, Any]]:
        return [m.body for m in self.fake.take(queue)]

    def receive_within(self, queue: str, seconds: float) -> list[dict[str, Any]]:
        waited = 0.0
        while waited <= seconds:
            found = self.receive(queue)
            if found:
                return found
            self.clock.advance(seconds=0.25)
            waited += 0.25
        return []


@dataclass
class AzuriteProbe:
    """Reads like the Functions host: a plain QueueClient, base64-decode, then JSON."""

    connection_string: str

    def raw(self, queue: str) -> list[str]:
        # A plain client, no decode policy; closed after use so Azurite can stop promptly.
        with QueueClient.from_connection_string(self.connection_string, queue) as client:
            try:
                messages = list(client.receive_messages(max_messages=32))
            except ResourceNotFoundError:
                return []
            for message in messages:
                client.delete_message(message)
        return [str(m.content) for m in messages]

    def receive(self, queue: str) -> list[dict[str, Any]]:
        return [json.loads(base64.b64decode(raw, validate=True).decode("utf-8")) for raw in self.raw(queue)]

    def receive_within(self, queue: str, seconds: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + seconds
        while True:
            found = self.receive(queue)
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.1)  # polling the real queue: the delay is real time


@pytest.fixture(params=["memory", "azurite"])
def queue_pair(request: pytest.FixtureRequest) -> tuple[CommandQueue, QueueProbe]:
    """A CommandQueue and a probe that receives what it sent."""
    if request.param == "memory":
        clock = FixedClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
        fake = InMemoryCommandQueue(now=clock.now)
        return fake, MemoryProbe(fake, clock)
    azurite: Azurite = request.getfixturevalue("azurite")
    return (
        AzureCommandQueue.from_connection_string(azurite.connection_string),
        AzuriteProbe(azurite.connection_string),
    )


@pytest.fixture
def fake_vault() -> Iterator[FakeKeyVault]:
    """A fresh fake Key Vault (its own host, so the SDK's challenge cache starts empty)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield FakeKeyVault().install(mock)


@pytest.fixture(params=["memory", "local", "keyvault"])
def secret_store(request: pytest.FixtureRequest, tmp_path: Path) -> SecretStore:
    """A SecretStore: the fake, the local file store, Key Vault (cache off) on a fake vault."""
    if request.param == "memory":
        return InMemorySecretStore()
    if request.param == "local":
        return LocalFileSecretStore(tmp_path / "secrets")
    vault: FakeKeyVault = request.getfixturevalue("fake_vault")
    return KeyVaultSecretStore(vault.url, FakeCredential(), cache_ttl=0, sleep=lambda _s: None)
