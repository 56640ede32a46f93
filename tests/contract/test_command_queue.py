"""The CommandQueue contract, proved against the in-memory fake and Azure Queue Storage (Azurite)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from azure.storage.queue import QueueClient, QueueServiceClient

from core.adapters.queues import AzureCommandQueue, ensure_queues
from core.adapters.rules import MAX_MESSAGE_BYTES
from core.domain.errors import StorageUnavailable
from core.ports import CommandQueue
from local.azurite import Azurite, connection_string, free_port
from tests.contract.conftest import AzuriteProbe, QueueProbe

COMMAND = {"kind": "create_event", "tenant": "t-1", "attendees": ["zoë@contoso.com"], "n": 3, "ok": True}


def test_sent_command_is_received_as_the_same_json(
    queue_pair: tuple[CommandQueue, QueueProbe], unique_name: str
) -> None:
    """A consumer receives exactly the JSON object that was sent (the queue is created on first send)."""
    queue, probe = queue_pair
    queue.send(unique_name, COMMAND)
    queue.send(unique_name, {"kind": "second"})
    received = probe.receive(unique_name)
    assert sorted(received, key=lambda m: str(m["kind"])) == [COMMAND, {"kind": "second"}]


def test_delayed_command_stays_hidden_until_its_delay_passes(
    queue_pair: tuple[CommandQueue, QueueProbe], unique_name: str
) -> None:
    """A command sent with delay_seconds is invisible at first and arrives once the delay has passed."""
    queue, probe = queue_pair
    queue.send(unique_name, {"kind": "retry"}, delay_seconds=1)
    assert probe.receive(unique_name) == []
    assert probe.receive_within(unique_name, 5) == [{"kind": "retry"}]


def test_command_over_the_queue_limit_is_refused_before_sending(
    queue_pair: tuple[CommandQueue, QueueProbe], unique_name: str
) -> None:
    """A command whose base64 form would pass 64 KiB raises ValueError and nothing is enqueued."""
    queue, probe = queue_pair
    with pytest.raises(ValueError, match="at most"):
        queue.send(unique_name, {"blob": "x" * MAX_MESSAGE_BYTES})
    assert probe.receive(unique_name) == []


def test_command_at_the_limit_is_accepted(queue_pair: tuple[CommandQueue, QueueProbe], unique_name: str) -> None:
    """The largest allowed command (48 KiB of JSON, 64 KiB once base64-encoded) is delivered intact."""
    queue, probe = queue_pair
    message = {"blob": "x" * (MAX_MESSAGE_BYTES - len('{"blob":""}'))}
    queue.send(unique_name, message)
    assert probe.receive(unique_name) == [message]


@pytest.mark.parametrize(
    ("message", "delay", "error"),
    [
        ({"when": object()}, 0, TypeError),
        (["not", "an", "object"], 0, TypeError),
        ({"x": float("nan")}, 0, ValueError),
        ({"x": 1}, -1, ValueError),
        ({"x": 1}, 8 * 24 * 3600, ValueError),
    ],
    ids=["not-json", "not-an-object", "nan", "negative-delay", "delay-over-7-days"],
)
def test_invalid_commands_are_refused(
    queue_pair: tuple[CommandQueue, QueueProbe], unique_name: str, message: Any, delay: float, error: type
) -> None:
    """Non-JSON values, non-object commands, NaN and delays outside 0..7 days raise before sending."""
    queue, probe = queue_pair
    with pytest.raises(error):
        queue.send(unique_name, message, delay_seconds=delay)
    assert probe.receive(unique_name) == []


def test_ping_answers_when_the_queue_service_is_up(queue_pair: tuple[CommandQueue, QueueProbe]) -> None:
    """ping returns quietly when the queue service is reachable."""
    queue, _ = queue_pair
    try:
        queue.ping()
    except StorageUnavailable:
        pytest.fail("ping reported a reachable queue service as unavailable")


# --- Azure adapter only ---


def test_ping_reads_one_known_queue_and_never_lists_the_account(azurite: Azurite) -> None:
    """ping reads the access-tests queue's properties (the identity is granted per queue), never list_queues."""
    queue = AzureCommandQueue.from_connection_string(azurite.connection_string)

    def forbidden(*_a: object, **_k: object) -> None:
        raise AssertionError("ping listed the account's queues")

    queue._service.list_queues = forbidden  # type: ignore[method-assign]
    queue.ping()


def test_messages_are_base64_of_compact_utf8_json(azurite: Azurite, unique_name: str) -> None:
    """On the wire a message is base64 of compact UTF-8 JSON: what the Functions queue trigger decodes."""
    AzureCommandQueue.from_connection_string(azurite.connection_string).send(unique_name, COMMAND)
    (raw,) = AzuriteProbe(azurite.connection_string).raw(unique_name)
    text = base64.b64decode(raw, validate=True).decode("utf-8")
    assert text == json.dumps(COMMAND, separators=(",", ":"), ensure_ascii=False)
    assert "zoë" in text


def test_messages_never_expire(azurite: Azurite, unique_name: str) -> None:
    """Commands are sent with no time-to-live, so an outage longer than 7 days drops nothing."""
    AzureCommandQueue.from_connection_string(azurite.connection_string).send(unique_name, {"kind": "x"})
    client = QueueClient.from_connection_string(azurite.connection_string, unique_name)
    (message,) = client.peek_messages()
    assert message.expires_on is not None and message.expires_on.year == 9999


def test_queue_down_is_storage_unavailable() -> None:
    """send and ping against an unreachable queue service raise StorageUnavailable, quickly."""
    port = free_port()
    queue = AzureCommandQueue.from_connection_string(connection_string(port, port, port), retry_total=0)
    started = time.monotonic()
    with pytest.raises(StorageUnavailable):
        queue.send("commands", {"kind": "x"})
    with pytest.raises(StorageUnavailable):
        queue.ping()
    assert time.monotonic() - started < 10


def test_ensure_queues_creates_queues_and_their_poison_queues(azurite: Azurite, unique_name: str) -> None:
    """ensure_queues creates each queue and its <name>-poison queue, and can run again harmlessly."""
    names = [unique_name + "-a", unique_name + "-b"]
    ensure_queues(AzureCommandQueue.from_connection_string(azurite.connection_string), names)
    ensure_queues(AzureCommandQueue.from_connection_string(azurite.connection_string), names)
    service = QueueServiceClient.from_connection_string(azurite.connection_string)
    listed = {q.name for q in service.list_queues(name_starts_with=unique_name)}
    assert listed == {*names, *(n + "-poison" for n in names)}
