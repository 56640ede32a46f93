"""The local stack stays consistent across restarts, as `make run` twice on the same data must.

Azurite keeps sessions and subscription rows on disk; the simulator keeps its tenants in its state
file beside them (``local/simulator/persist.py``). So after stopping everything and starting it
again on the same data, a move made in the simulated Outlook reaches the session booked before
the restart: the subscription, the event and the tokens are all still known to "Microsoft 365".

The stack here is the fault suite's process stack (Azurite on disk, the host as a process) with
the simulator started on a fixed port and a state file, so all three can be stopped and started.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from local import azurite as azurite_mod
from local.simulator import seed, start_simulator
from tests.e2e.conftest import LOCAL_CLIENT_SECRET, _write_secret, stack_env
from tests.e2e.test_booking_e2e import book, events_of, free_slot, pair, session, wait_status
from tests.faults.procstack import GRAPH_LIKE_RETRIES, ProcessStack

TENANT = seed.CONTOSO


def _at(value: Any) -> datetime:
    """A UTC instant from the API's ISO string or the simulator's UTC ``dateTimeTimeZone``."""
    text = value["dateTime"] if isinstance(value, dict) else str(value)
    text = re.sub(r"(\.\d{6})\d+", r"\1", text).replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[tuple[ProcessStack, int, Path]]:
    """Azurite on disk, the simulator on a fixed port with a state file, the host as a process."""
    ports = (azurite_mod.free_port(), azurite_mod.free_port(), azurite_mod.free_port())
    emulator = azurite_mod.start(ports=ports, location=tmp_path / "azurite", reuse=False)
    host_port, sim_port = azurite_mod.free_port(), azurite_mod.free_port()
    state_file = tmp_path / "azurite" / "m365-simulator.json"
    sim = start_simulator(port=sim_port, ca_dir=tmp_path / "ca", service_url=f"http://127.0.0.1:{host_port}",
                          notification_retry_delays=GRAPH_LIKE_RETRIES, state_file=state_file)
    env = stack_env(sim, host_port, emulator.connection_string, tmp_path / "secrets", tmp_path / "outbox")
    env["LOG_LEVEL"] = "WARNING"
    _write_secret(tmp_path / "secrets", "entra-client-secret", LOCAL_CLIENT_SECRET)
    stack = ProcessStack(api_url=f"http://127.0.0.1:{host_port}/api", sim=sim, host=None,  # type: ignore[arg-type]
                         container=None, env=env, outbox=tmp_path / "outbox",  # type: ignore[arg-type]
                         work=tmp_path, host_port=host_port, azurite_ports=ports, azurite=emulator)
    try:
        stack.start_host()
        yield stack, sim_port, state_file
    finally:
        stack.close()


def test_outlook_changes_reach_a_session_booked_before_a_full_restart(
    restartable: tuple[ProcessStack, int, Path],
) -> None:
    """Book, stop Azurite, simulator and host, start them again on the same data, move the event in Outlook:
    the session follows (its start moves and its source becomes outlook)."""
    stack, sim_port, state_file = restartable
    stack.onboard(TENANT, seed.CONTOSO_ADMIN)  # asserts the callback says consent=granted
    alice = stack.token(seed.ALICE)
    pairing = pair(stack, "alice", "bob")
    start = free_slot(stack, alice, pairing, day_offset=12)
    sid = book(stack, alice, pairing, start)
    booked = wait_status(stack, alice, sid, "booked")
    stack.wait_for(lambda: any(seed.ALICE_ID in s["resource"] and s["tenantId"] == TENANT
                               for s in stack.control("GET", "/_sandbox/subscriptions")))
    [event] = [e for e in events_of(stack, "alice")
               if e.get("transactionId") and _at(e["start"]) == _at(booked["start"])]

    # Everything stops, then starts again on the same Azurite folder and simulator state file.
    stack.stop_host()
    stack.sim.stop()
    stack.stop_azurite()
    assert state_file.is_file()
    stack.start_azurite()
    stack.sim = start_simulator(port=sim_port, ca_dir=stack.work / "ca",
                                service_url=f"http://127.0.0.1:{stack.host_port}",
                                notification_retry_delays=GRAPH_LIKE_RETRIES, state_file=state_file)
    stack.start_host()

    assert session(stack, alice, sid)["status"] == "booked"  # the token minted before the restart still works
    new_start = _at(booked["start"]) + timedelta(hours=1)
    stack.control("POST", f"/_sandbox/users/{seed.ALICE}/events/{event['id']}/move",
                  {"start": new_start.isoformat(), "end": (new_start + timedelta(minutes=30)).isoformat()})

    def moved() -> dict[str, Any] | None:
        doc = session(stack, alice, sid)
        return doc if _at(doc["start"]) == new_start else None

    followed = stack.wait_for(moved, timeout=60)
    assert followed["source"] == "outlook"
    assert _at(followed["end"]) == new_start + timedelta(minutes=30)
