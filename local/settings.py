"""The local environment: what ``func start`` would put in the worker's environment, without Core Tools.

Layering, lowest first: ``LOCAL_DEFAULTS`` (a working stack against Azurite and the
Microsoft 365 simulator), then ``local.settings.json`` ``Values`` when the file
exists (func start's format), then the real process environment, which always wins -
the same precedence ``func start`` uses. ``Host.CORS`` from the file fills
``CORS_ALLOWED_ORIGINS`` when that is not set otherwise.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from local import azurite

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_FILE = ROOT / "local.settings.json"
SIMULATOR_PORT = 7443
HOST_PORT = 7071
SIMULATOR_CLIENT_ID = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
DEV_STORAGE = "UseDevelopmentStorage=true"

LOCAL_DEFAULTS: dict[str, str] = {
    "FUNCTIONS_WORKER_RUNTIME": "python",
    "AzureWebJobsFeatureFlags": "EnableWorkerIndexing",
    "AzureWebJobsStorage": azurite.connection_string(*azurite.DEFAULT_PORTS),
    "LOCAL_MODE": "true",
    "LOCAL_CA_BUNDLE": ".local/ca/ca.pem",
    "AUTHORITY_HOST": f"https://127.0.0.1:{SIMULATOR_PORT}",
    "GRAPH_BASE_URL": f"https://127.0.0.1:{SIMULATOR_PORT}/v1.0",
    "ENTRA_CLIENT_ID": SIMULATOR_CLIENT_ID,
    "ENTRA_CREDENTIAL": "secret",
    "PUBLIC_BASE_URL": f"http://127.0.0.1:{HOST_PORT}",
    "APP_URL": f"http://127.0.0.1:{HOST_PORT}",
    "CORS_ALLOWED_ORIGINS": f"http://127.0.0.1:{HOST_PORT},http://localhost:5173",
    "ALLOWED_TENANTS": "*",
    "LOCAL_SECRETS_DIR": ".local/secrets",
    "LOCAL_OUTBOX_DIR": ".local/outbox",
    "ACCESS_TEST_SCHEDULE": "0 0 3 * * *",
    "RENEWAL_SCHEDULE": "0 */30 * * * *",
    "RECONCILE_SCHEDULE": "0 15 */2 * * *",
    "RECONCILE_NEAR_SCHEDULE": "0 */15 * * * *",
    # The simulator's product server (local/simulator/state.py PRODUCT_SERVER_CLIENT_ID): app-only tokens.
    "PRODUCT_SERVER_CLIENT_IDS": "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb",
    "LOG_LEVEL": "INFO",
}


class LocalSettingsError(Exception):
    """local.settings.json cannot be used (the message names the file and the problem)."""


def read_settings_file(path: Path) -> dict[str, str]:
    """``Values`` of a func-start local.settings.json, plus ``Host.CORS`` as CORS_ALLOWED_ORIGINS."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise LocalSettingsError(f"{path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise LocalSettingsError(f"{path}: expected a JSON object")
    if doc.get("IsEncrypted"):
        raise LocalSettingsError(f"{path}: encrypted settings are not supported locally (set IsEncrypted false)")
    values = doc.get("Values") or {}
    if not isinstance(values, dict):
        raise LocalSettingsError(f"{path}: Values must be an object of strings")
    out = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}
    host = doc.get("Host") or {}
    cors = host.get("CORS") if isinstance(host, dict) else None
    if isinstance(cors, str) and cors.strip() and "CORS_ALLOWED_ORIGINS" not in out:
        out["CORS_ALLOWED_ORIGINS"] = cors.strip()
    return out


def load_env(
    settings_file: Path | None = SETTINGS_FILE,
    environ: Mapping[str, str] | None = None,
    defaults: Mapping[str, str] = LOCAL_DEFAULTS,
) -> dict[str, str]:
    """The merged environment the app should run with (see the module docstring)."""
    env = dict(defaults)
    if settings_file is not None and settings_file.exists():
        env.update(read_settings_file(settings_file))
    env.update(os.environ if environ is None else environ)
    if env.get("AzureWebJobsStorage", "").replace(" ", "").lower().rstrip(";") == DEV_STORAGE.lower():
        env["AzureWebJobsStorage"] = azurite.connection_string(*azurite.DEFAULT_PORTS)
    return env


def parse_connection_string(value: str) -> dict[str, str]:
    """``Key=Value;...`` into a dict (keys as written)."""
    parts = (p.split("=", 1) for p in value.split(";") if "=" in p)
    return {k.strip(): v.strip() for k, v in parts}


def azurite_ports(connection_string: str) -> tuple[int, int, int] | None:
    """Blob, queue and table ports when the connection string points at a local emulator, else None."""
    fields = {k.lower(): v for k, v in parse_connection_string(connection_string).items()}
    if fields.get("usedevelopmentstorage", "").lower() == "true":
        return azurite.DEFAULT_PORTS
    ports: list[int] = []
    for key, default in zip(("blobendpoint", "queueendpoint", "tableendpoint"), azurite.DEFAULT_PORTS, strict=True):
        endpoint = fields.get(key)
        if endpoint is None:
            ports.append(default)
            continue
        parsed = urlsplit(endpoint)
        if parsed.hostname not in ("127.0.0.1", "localhost"):
            return None
        ports.append(parsed.port or default)
    if "queueendpoint" not in fields and "tableendpoint" not in fields:
        return None
    return ports[0], ports[1], ports[2]
