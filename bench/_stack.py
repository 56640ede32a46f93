"""The whole local stack for the bench scripts that time it end to end (as the e2e tests run it).

``local_stack`` starts Azurite (in memory), the Microsoft 365 simulator and the local Functions
host serving ``function_app`` with the e2e settings, and stops them again; a bench only says
what to measure.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench._common import LOCAL_IMPORT_ENV
from core.bootstrap import build_container, set_container
from core.settings import Settings
from local import azurite as azurite_mod
from local.host import Host, QueueOptions
from local.simulator import start_simulator
from tests.e2e.conftest import LOCAL_CLIENT_SECRET, ROOT, Stack, _write_secret, stack_env

# Idle queues polled every 0.5 s (as ``make run`` does); None keeps host.json's settings.
FAST_POLL = QueueOptions(max_polling_interval=0.5, visibility_timeout=1.0, max_dequeue_count=5, batch_size=16)


@contextmanager
def local_stack(name: str, *, poll: QueueOptions | None = None, quiet: bool = False) -> Iterator[Stack]:
    """The running stack (``quiet``: the host logs errors only), torn down when the block ends."""
    for key, value in LOCAL_IMPORT_ENV.items():  # importing the app checks its settings; the stack's come later
        os.environ.setdefault(key, value)
    import function_app

    work = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    az = azurite_mod.ephemeral(in_memory=True)
    host_port = azurite_mod.free_port()
    sim = start_simulator(port=0, ca_dir=work / "ca", service_url=f"http://127.0.0.1:{host_port}")
    env = stack_env(sim, host_port, az.connection_string, work / "secrets", work / "outbox")
    if quiet:
        env = {**env, "LOG_LEVEL": "ERROR"}
    _write_secret(work / "secrets", "entra-client-secret", LOCAL_CLIENT_SECRET)
    container = build_container(Settings.from_env(env))
    set_container(container)
    host = Host(function_app.app, env=env, host_json=ROOT / "host.json", port=host_port,
                storage_connection_string=az.connection_string, poll=poll)
    host.start()
    try:
        yield Stack(api_url=host.api_url, sim=sim, host=host, env=env, outbox=work / "outbox", container=container)
    finally:
        host.stop()
        sim.stop()
        az.stop()
        set_container(None)
