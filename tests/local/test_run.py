"""The local environment (local.settings.json layering) and `make run`'s orchestration helpers."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

from core.settings import Settings
from local import azurite
from local.run import CLIENT_SECRET_NAME, LOCAL_CLIENT_SECRET, retarget, seed_secrets
from local.settings import LOCAL_DEFAULTS, ROOT, azurite_ports, load_env


def test_defaults_alone_are_valid_settings() -> None:
    """With no local.settings.json and an empty environment the defaults pass Settings.from_env."""
    settings = Settings.from_env(load_env(None, environ={}))
    assert settings.local_mode is True
    assert settings.graph_base_url == "https://127.0.0.1:7443/v1.0"
    assert settings.cors_allowed_origins == ("http://127.0.0.1:7071", "http://localhost:5173")


def test_example_settings_file_is_func_start_format_and_valid() -> None:
    """local.settings.json.example is func start's format, has the worker settings and passes validation."""
    path = ROOT / "local.settings.json.example"
    doc = json.loads(path.read_text())
    assert doc["IsEncrypted"] is False
    assert doc["Values"]["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert doc["Values"]["AzureWebJobsFeatureFlags"] == "EnableWorkerIndexing"
    assert all(isinstance(v, str) for v in doc["Values"].values())
    Settings.from_env(load_env(path, environ={}, defaults={}))


def test_file_values_override_defaults_and_environment_overrides_file(tmp_path: Path) -> None:
    """Precedence is defaults < local.settings.json Values < process environment, as with func start."""
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": {"LOG_LEVEL": "DEBUG", "APP_URL": "http://a.test"}}))
    env = load_env(path, environ={"APP_URL": "http://b.test"})
    assert env["LOG_LEVEL"] == "DEBUG"
    assert env["APP_URL"] == "http://b.test"
    assert env["GRAPH_BASE_URL"] == LOCAL_DEFAULTS["GRAPH_BASE_URL"]


def test_host_cors_fills_allowed_origins_and_dev_storage_means_azurite(tmp_path: Path) -> None:
    """Host.CORS becomes CORS_ALLOWED_ORIGINS, and UseDevelopmentStorage=true the Azurite connection string."""
    path = tmp_path / "local.settings.json"
    doc = {"Values": {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}, "Host": {"CORS": "http://x.test"}}
    path.write_text(json.dumps(doc))
    env = load_env(path, environ={}, defaults={})
    assert env["CORS_ALLOWED_ORIGINS"] == "http://x.test"
    assert env["AzureWebJobsStorage"] == azurite.connection_string(*azurite.DEFAULT_PORTS)


def test_azurite_is_only_started_for_local_endpoints() -> None:
    """Local emulator connection strings give Azurite ports; a real account gives None."""
    assert azurite_ports(azurite.connection_string(1, 2, 3)) == (1, 2, 3)
    assert azurite_ports("UseDevelopmentStorage=true") == azurite.DEFAULT_PORTS
    real = "DefaultEndpointsProtocol=https;AccountName=prod;AccountKey=abc;EndpointSuffix=core.windows.net"
    assert azurite_ports(real) is None


def test_retarget_follows_non_default_ports_only_for_default_values() -> None:
    """Other ports rewrite the default URLs; values someone set explicitly are left alone."""
    env = dict(LOCAL_DEFAULTS)
    env["APP_URL"] = "http://localhost:5173"
    retarget(env, port=7081, sim_port=7453)
    assert env["GRAPH_BASE_URL"] == "https://127.0.0.1:7453/v1.0"
    assert env["PUBLIC_BASE_URL"] == "http://127.0.0.1:7081"
    assert env["APP_URL"] == "http://localhost:5173"


def test_secret_store_is_seeded_once_and_owner_only(tmp_path: Path) -> None:
    """The simulator's client secret is written if missing (0600), and an existing value is kept."""
    secrets_dir = tmp_path / "secrets"
    seed_secrets({"LOCAL_SECRETS_DIR": str(secrets_dir)})
    target = secrets_dir / CLIENT_SECRET_NAME
    assert target.read_text() == LOCAL_CLIENT_SECRET
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    target.write_text("changed-by-developer")
    seed_secrets({"LOCAL_SECRETS_DIR": str(secrets_dir)})
    assert target.read_text() == "changed-by-developer"


def test_second_run_says_the_stack_is_already_running() -> None:
    """`python -m local.run` on a port in use explains that the stack seems to be running and exits 1."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "local.run", "--port", str(port), "--no-simulator"],
            cwd=ROOT,
            env={"PATH": os.environ.get("PATH", "")},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert "already running" in result.stderr
    assert f"127.0.0.1:{port}" in result.stderr
