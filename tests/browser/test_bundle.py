"""The web console's production build: type-checked, small, MSAL only in a lazy chunk, no CDN."""

from __future__ import annotations

import gzip
import re
import subprocess
from pathlib import Path

import pytest

from tests.browser.conftest import ROOT, build_console, unavailable

DIST = ROOT / "web" / "dist"
FIRST_LOAD_GZIP_BUDGET = 40 * 1024  # bytes of index.html + main.js + main.css + static imports, gzipped

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def built() -> Path:
    build_console()
    return DIST


def _static_imports(js: str) -> list[str]:
    return re.findall(r'import\s*(?:[^"\'()]*?from\s*)?"\./([\w.-]+\.js)"', js)


def _first_load(dist: Path) -> list[Path]:
    files = [dist / "index.html", dist / "assets" / "main.css", dist / "assets" / "main.js"]
    seen = {"main.js"}
    queue = ["main.js"]
    while queue:
        for name in _static_imports((dist / "assets" / queue.pop()).read_text()):
            if name not in seen:
                seen.add(name)
                queue.append(name)
                files.append(dist / "assets" / name)
    return files


def test_first_load_is_small_in_local_and_entra_mode(built: Path) -> None:
    """index.html, CSS and the JavaScript loaded up front stay under 40 KB gzipped."""
    total = sum(len(gzip.compress(f.read_bytes(), 9)) for f in _first_load(built))
    assert total < FIRST_LOAD_GZIP_BUDGET, f"first load is {total} B gzipped"


def test_msal_is_bundled_but_only_in_a_lazily_loaded_chunk(built: Path) -> None:
    """MSAL.js ships from npm inside the build (no CDN), and local mode never downloads it."""
    first = {f.name for f in _first_load(built)}
    with_msal = [f.name for f in (built / "assets").glob("*.js") if "login.microsoftonline.com" in f.read_text()]
    assert with_msal, "MSAL is not in the build"
    assert not set(with_msal) & first, f"MSAL is loaded up front: {with_msal}"


def test_nothing_is_loaded_from_another_origin(built: Path) -> None:
    """index.html references only its own files, and the CSP it is served with (a header: the Static Web App's
    config deployed, the local host's locally) forbids scripts from elsewhere."""
    import json

    from local.host.web import CONSOLE_CSP

    html = (built / "index.html").read_text()
    assert not re.search(r'(src|href)="(https?:)?//', html)
    deployed = json.loads((ROOT / "web" / "staticwebapp.config.json").read_text())["globalHeaders"]
    for policy in (deployed["Content-Security-Policy"], CONSOLE_CSP):
        assert "script-src 'self';" in policy and "default-src 'none'" in policy


def test_console_source_type_checks() -> None:
    """tsc --noEmit over web/src under strict settings (esbuild strips types without checking them)."""
    tsc = ROOT / "node_modules" / ".bin" / "tsc"
    if not tsc.exists():
        unavailable("typescript is missing: run `npm ci` (make test does)")
    proc = subprocess.run([str(tsc), "-p", "web/tsconfig.json"], cwd=ROOT, capture_output=True, text=True,
                          timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
