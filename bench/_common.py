"""Shared helpers for the bench scripts: percentiles, one summary line per figure, the machine, a stack.

Every ``bench/*.py`` is runnable alone (``.venv/bin/python bench/<name>.py [--quick]``) and
``make bench`` runs them all, this one included: run directly it prints the machine the
figures come from, which docs/benchmarks.md records next to them.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Valid local-mode settings: importing function_app validates them (check_settings_at_startup),
# nothing here opens a connection.
LOCAL_IMPORT_ENV: dict[str, str] = {
    "LOCAL_MODE": "true",
    "AzureWebJobsStorage": (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
        "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
        "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
    ),
    "ENTRA_CLIENT_ID": "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa",
    "PUBLIC_BASE_URL": "http://127.0.0.1:7071",
    "APP_URL": "http://127.0.0.1:7071",
}


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1): p99 of 100 values is the 99th smallest, never interpolated."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_line(label: str, values_ms: Sequence[float], unit: str = "ms") -> str:
    """``label: n=.. p50=.. p99=.. max=..`` for a list of latencies."""
    return (
        f"{label}: n={len(values_ms)} p50={statistics.median(values_ms):.2f} {unit} "
        f"p99={percentile(values_ms, 0.99):.2f} {unit} max={max(values_ms):.2f} {unit}"
    )


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser with the ``--quick`` flag every bench script has (a small smoke size)."""
    first = (doc or "").strip().splitlines()[0] if doc else None
    p = argparse.ArgumentParser(description=first)
    p.add_argument("--quick", action="store_true", help="a small smoke size (seconds, not minutes)")
    return p


def machine() -> dict[str, str]:
    """What the figures ran on: CPU model, cores, RAM, Python, OS."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count() or "?"),
        "ram": ram,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }


def machine_line() -> str:
    m = machine()
    return f"machine: {m['cpu']}, {m['cores']} cores, {m['ram']} RAM, Python {m['python']}, {m['os']}"


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


if __name__ == "__main__":
    print(machine_line())
