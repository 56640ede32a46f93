"""The product developer's walkthrough (examples/product_walkthrough) runs against the local stack as documented."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from local import azurite
from tests.e2e.conftest import Stack

ROOT = Path(__file__).resolve().parents[2]


def test_walkthrough_books_for_a_user_and_the_outlook_move_reaches_the_receiver_signed(stack: Stack) -> None:
    """App-only booking for Alice, a move in the simulated Outlook, and the example receiver verifies both events."""
    env = {**os.environ, "API_URL": stack.api_url, "SIM_URL": stack.sim.url,
           "RECEIVER_PORT": str(azurite.free_port()), "WAIT_SECONDS": "10"}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "product_walkthrough" / "walkthrough.py")],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "session.booked" in done.stdout and "session.rescheduled" in done.stdout
