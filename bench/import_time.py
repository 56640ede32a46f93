"""Benchmark: import time of ``function_app`` against a bare azure-functions app (cold start cost we own).

Each run is a fresh interpreter (``.pyc`` files already compiled: one discarded warm-up
run), timing, inside the process, from before ``import azure.functions`` to a registered
app: the bare app is ``func.FunctionApp()`` with one HTTP route, ours is ``import
function_app`` (every blueprint plus the settings check). Median of N runs; budget: our
app under 500 ms on this machine, heavy SDKs (azure-data-tables, azure-storage-queue,
azure-identity, msal, Key Vault, ACS) imported lazily at first use, not at import.

Then one ``python -X importtime`` run lists the third-party top-level packages our
import adds to the bare one, by cumulative time, with the project module that first
pulled each in: the list to act on when over budget.

Run: ``.venv/bin/python bench/import_time.py [--runs 15] [--quick]``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import LOCAL_IMPORT_ENV, ROOT, parser

BUDGET_MS = 500.0
# SDKs that must not be imported by ``import function_app`` (they cost tens to hundreds of ms each).
HEAVY = ("azure.data", "azure.storage", "azure.identity", "azure.keyvault", "azure.communication", "msal")

BARE = (
    "import time; t = time.perf_counter()\n"
    "import azure.functions as func\n"
    "app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)\n"
    "@app.route(route='ping')\n"
    "def ping(req: func.HttpRequest) -> func.HttpResponse:\n"
    "    return func.HttpResponse('ok')\n"
    "print((time.perf_counter() - t) * 1000)\n"
)
OURS = (
    "import time; t = time.perf_counter()\n"
    "import azure.functions\n"
    "import function_app\n"
    "print((time.perf_counter() - t) * 1000)\n"
)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE", "KEY_VAULT", "ACS_"))}
    env.update(LOCAL_IMPORT_ENV)
    env["PYTHONDONTWRITEBYTECODE"] = "0"
    return env


def one_run(code: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *extra, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True, check=True
    )


def timed(code: str, runs: int) -> list[float]:
    one_run(code)  # warm-up: byte-compile, page cache
    return [float(one_run(code).stdout.strip().splitlines()[-1]) for _ in range(runs)]


@dataclass(frozen=True, slots=True)
class Imported:
    name: str
    self_us: int
    cumulative_us: int
    depth: int


def _parse(code: str) -> list[Imported]:
    rows: list[Imported] = []
    for line in one_run(code, "-X", "importtime").stderr.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[0].startswith("import time:") or "self [us]" in line:
            continue
        name = parts[2]
        rows.append(
            Imported(
                name=name.strip(),
                self_us=int(parts[0].split(":")[1]),
                cumulative_us=int(parts[1]),
                depth=(len(name) - len(name.lstrip(" "))) // 2,
            )
        )
    return rows


def _importer(rows: list[Imported], index: int) -> str:
    """The nearest project module (function_app, functions.*, core.*) above ``rows[index]``."""
    depth = rows[index].depth
    for row in rows[index + 1 :]:
        if row.depth < depth:
            depth = row.depth
            if row.name == "function_app" or row.name.startswith(("functions.", "core.")):
                return row.name
    return "?"


def added_packages(limit: int = 12) -> list[tuple[str, float, str]]:
    """Third-party top-level packages our import adds to the bare app's: (package, ms, first importer)."""
    bare = {r.name.split(".")[0] for r in _parse(BARE)}
    ours = _parse(OURS)
    found: dict[str, tuple[float, str]] = {}
    for i, row in enumerate(ours):
        top = row.name.split(".")[0]
        if top in bare or top in sys.stdlib_module_names or top in ("function_app", "functions", "core"):
            continue
        # A package's own top-level line carries the cumulative time of the whole package.
        if row.name == top or row.name.startswith(HEAVY):
            key = row.name if row.name.startswith(HEAVY) else top
            ms = row.cumulative_us / 1000
            if key not in found or ms > found[key][0]:
                found[key] = (ms, _importer(ours, i))
    ranked = sorted(((k, v[0], v[1]) for k, v in found.items()), key=lambda t: -t[1])
    return ranked[:limit]


def project_modules(limit: int = 8) -> list[tuple[str, float]]:
    """Our own modules with the largest self time (schema building, regexes, tables at import)."""
    rows = [r for r in _parse(OURS) if r.name == "function_app" or r.name.startswith(("functions.", "core."))]
    return [(r.name, r.self_us / 1000) for r in sorted(rows, key=lambda r: -r.self_us)[:limit]]


def heavy_eager() -> list[str]:
    """Heavy SDK modules that ``import function_app`` imports eagerly (should be empty)."""
    return sorted({r.name for r in _parse(OURS) if r.name.startswith(HEAVY) and r.name.count(".") <= 2})


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--runs", type=int, default=None, help="fresh interpreters per app (default 15, quick 5)")
    args = p.parse_args()
    runs = args.runs or (5 if args.quick else 15)
    bare = timed(BARE, runs)
    ours = timed(OURS, runs)
    bare_ms, ours_ms = statistics.median(bare), statistics.median(ours)
    verdict = "within" if ours_ms < BUDGET_MS else "OVER"
    print(f"import bare azure-functions app: median {bare_ms:.0f} ms (min {min(bare):.0f}, {runs} runs)")
    print(f"import function_app: median {ours_ms:.0f} ms (min {min(ours):.0f}, {runs} runs), "
          f"{verdict} the {BUDGET_MS:.0f} ms budget")
    print(f"import time ratio function_app / bare: {ours_ms / bare_ms:.2f}x (+{ours_ms - bare_ms:.0f} ms)")
    eager = heavy_eager()
    print(f"heavy SDKs imported eagerly: {', '.join(eager) if eager else 'none'}")
    added = added_packages()
    print("third-party packages added by function_app (cumulative ms, first importer): "
          + "; ".join(f"{name} {ms:.0f} ({by})" for name, ms, by in added))
    print("largest self time in project modules: "
          + "; ".join(f"{name} {ms:.1f} ms" for name, ms in project_modules()))


if __name__ == "__main__":
    main()
