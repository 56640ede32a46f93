"""The deployed web console sends a Content-Security-Policy without inline or eval script,
that still lets it load its own bundle, reach Microsoft sign-in and (added at deploy time by
web/write-config.mjs) the API's origin, and nothing else."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
SIGN_IN = "https://login.microsoftonline.com"


def directives(policy: str) -> dict[str, list[str]]:
    """CSP text -> {directive: [sources]}."""
    out: dict[str, list[str]] = {}
    for part in policy.split(";"):
        tokens = part.split()
        if tokens:
            out[tokens[0]] = tokens[1:]
    return out


def policy_problems(policy: str) -> list[str]:
    """What makes a console CSP unsafe or broken (empty when fine)."""
    d = directives(policy)
    problems = []
    scripts = d.get("script-src", d.get("default-src"))
    if scripts is None:
        problems.append("no script-src or default-src")
    else:
        for bad in ("'unsafe-inline'", "'unsafe-eval'", "*", "https:", "http:", "data:", "blob:"):
            if bad in scripts:
                problems.append(f"script-src allows {bad}")
    for name, expected in (("default-src", ["'none'"]), ("object-src", ["'none'"]), ("base-uri", ["'none'"]),
                           ("frame-ancestors", ["'none'"])):
        if d.get(name) != expected:
            problems.append(f"{name} should be {' '.join(expected)}")
    if "'unsafe-inline'" in d.get("style-src", []):
        problems.append("style-src allows 'unsafe-inline'")
    if SIGN_IN not in d.get("connect-src", []) or SIGN_IN not in d.get("frame-src", []):
        problems.append("MSAL needs Microsoft sign-in in connect-src and frame-src")
    for name in ("connect-src", "frame-src", "img-src", "style-src"):
        if any(s in ("*", "https:", "http:") for s in d.get(name, [])):
            problems.append(f"{name} allows any host")
    return problems


def _policy() -> str:
    config = json.loads((WEB / "staticwebapp.config.json").read_text(encoding="utf-8"))
    policy = config["globalHeaders"]["Content-Security-Policy"]
    assert isinstance(policy, str)
    return policy


def test_console_sends_a_strict_csp() -> None:
    """staticwebapp.config.json sends a CSP with no 'unsafe-inline'/'unsafe-eval' for scripts and no wildcards."""
    assert policy_problems(_policy()) == []


@pytest.mark.parametrize(("change", "problem"), [
    (("script-src 'self'", "script-src 'self' 'unsafe-inline'"), "script-src allows 'unsafe-inline'"),
    (("script-src 'self'", "script-src 'self' 'unsafe-eval'"), "script-src allows 'unsafe-eval'"),
    (("connect-src 'self'", "connect-src 'self' https:"), "connect-src allows any host"),
    (("object-src 'none'", "object-src 'self'"), "object-src should be 'none'"),
])
def test_policy_check_reports_seeded_weaknesses(change: tuple[str, str], problem: str) -> None:
    """Seeded unsafe sources are reported by the policy check."""
    assert problem in policy_problems(_policy().replace(*change))


def test_console_needs_nothing_the_policy_forbids() -> None:
    """index.html has no inline script or style, and the console code uses no eval, inline styles or foreign hosts."""
    html = (WEB / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script>"
    assert "<style" not in html and " style=" not in html and "javascript:" not in html
    for path in (WEB / "src").rglob("*.ts"):
        code = path.read_text(encoding="utf-8")
        for banned in ("eval(", "new Function(", "setAttribute(\"style\"", ".innerHTML", "document.write"):
            assert banned not in code, f"{path.name}: {banned}"
        assert not re.search(r"[\"'`]https?://", code), f"{path.name}: a hard-coded host the CSP does not list"


def _run_write_config(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    web = tmp_path / "web"
    (web / "dist").mkdir(parents=True)
    shutil.copy(WEB / "write-config.mjs", web / "write-config.mjs")
    shutil.copy(WEB / "staticwebapp.config.json", web / "dist" / "staticwebapp.config.json")
    node = shutil.which("node")
    assert node, "node is needed (make install)"
    return subprocess.run([node, str(web / "write-config.mjs")], env={"PATH": "/usr/bin:/bin", **env},
                          capture_output=True, text=True, timeout=60, check=False)


def test_deploy_step_adds_the_api_origin_to_connect_src(tmp_path: Path) -> None:
    """write-config.mjs adds the API's origin (only) to connect-src of the deployed CSP and keeps it strict."""
    result = _run_write_config(tmp_path, {
        "API_BASE_URL": "https://func-api-abc.azurewebsites.net/api",
        "ENTRA_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
        "WEB_URL": "https://swa-abc.azurestaticapps.net",
    })
    assert result.returncode == 0, result.stderr
    deployed = json.loads((tmp_path / "web" / "dist" / "staticwebapp.config.json").read_text())
    policy = deployed["globalHeaders"]["Content-Security-Policy"]
    assert directives(policy)["connect-src"] == ["'self'", SIGN_IN, "https://func-api-abc.azurewebsites.net"]
    assert directives(policy)["frame-src"] == [SIGN_IN]
    assert policy_problems(policy) == []
    config = json.loads((tmp_path / "web" / "dist" / "config.json").read_text())
    assert config["apiBaseUrl"] == "https://func-api-abc.azurewebsites.net/api"


def test_deploy_step_refuses_a_plain_http_api(tmp_path: Path) -> None:
    """An http API base URL is refused instead of being allowed by the deployed CSP."""
    result = _run_write_config(tmp_path, {
        "API_BASE_URL": "http://func-api-abc.azurewebsites.net/api",
        "ENTRA_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
        "WEB_URL": "https://swa-abc.azurestaticapps.net",
    })
    assert result.returncode == 1 and "not https" in result.stderr
