"""The local host's queue polling on a developer's machine."""

from __future__ import annotations

from pathlib import Path

from local.host.cli import local_queue_options
from local.host.config import HostJson

ROOT = Path(__file__).resolve().parents[2]


def test_make_run_polls_idle_queues_every_half_second_and_keeps_the_rest_of_host_json() -> None:
    """host.json's 2 s back-off becomes 0.5 s locally; batch size, dequeue count and encoding are host.json's."""
    deployed = HostJson.load(ROOT / "host.json").queues
    local = local_queue_options(ROOT / "host.json")
    assert deployed.max_polling_interval == 2.0 and local.max_polling_interval == 0.5
    assert (local.batch_size, local.max_dequeue_count, local.message_encoding, local.visibility_timeout) == (
        deployed.batch_size, deployed.max_dequeue_count, deployed.message_encoding, deployed.visibility_timeout)
