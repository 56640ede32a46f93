"""The host's command line and the real function_app served by the local host."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from core.bootstrap import set_container
from local.azurite import Azurite, free_port
from local.host import Host
from local.host.cli import provision, serve
from local.settings import ROOT, load_env


def test_invalid_settings_exit_1_naming_the_setting(tmp_path: Path) -> None:
    """``python -m local.host`` with a bad setting prints the SettingsError and exits 1 before starting anything."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "ENTRA_CLIENT_ID": "not-a-guid",
        "APP_URL": "ftp://nope",
    }
    result = subprocess.run(
        [sys.executable, "-m", "local.host", "--settings", str(tmp_path / "absent.json"), "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "ENTRA_CLIENT_ID: expected a GUID" in result.stderr
    assert "APP_URL" in result.stderr


def test_port_in_use_is_reported_instead_of_crashing(capsys: pytest.CaptureFixture[str]) -> None:
    """Starting on a port something already listens on says so and returns 1."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = serve(load_env(None, environ={}), port=port)
    assert code == 1
    assert f"127.0.0.1:{port} is already in use" in capsys.readouterr().err


@pytest.fixture
def app_env(azurite: Azurite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The local default settings pointed at the test Azurite, applied to os.environ as the CLI does."""
    env = load_env(None, environ={})
    env["AzureWebJobsStorage"] = azurite.connection_string
    env["LOCAL_SECRETS_DIR"] = str(tmp_path / "secrets")
    env["LOCAL_OUTBOX_DIR"] = str(tmp_path / "outbox")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    set_container(None)
    yield env
    set_container(None)


@pytest.mark.azurite
def test_real_function_app_health_is_ok_against_azurite(app_env: dict[str, str], azurite: Azurite) -> None:
    """The real function_app, discovered from its metadata, answers GET /api/health/ready 200 against Azurite."""
    import function_app

    provision(azurite.connection_string)
    with Host(
        function_app.app,
        env=app_env,
        host_json=ROOT / "host.json",
        port=0,
        storage_connection_string=azurite.connection_string,
        web_dir=ROOT / "no-web-dir-for-this-test",
    ) as host:
        resp = requests.get(f"{host.api_url}/health/ready", timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"status": "ok", "checks": {"tables": "ok", "queues": "ok"}}
