"""The shared HTTP session trusts the local CA only in local mode, whatever the environment says."""

from __future__ import annotations

import pytest
import requests

from core.adapters.http import build_session
from core.settings import Settings

BASE = {
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "ENTRA_CLIENT_ID": "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa",
    "AZURE_CLIENT_ID": "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb",
    "PUBLIC_BASE_URL": "https://api.example.com",
    "APP_URL": "https://app.example.com",
    "KEY_VAULT_URI": "https://kv-test.vault.azure.net/",
    "ACS_ENDPOINT": "https://acs-test.communication.azure.com",
    "ALERT_SENDER_ADDRESS": "DoNotReply@alerts.example.com",
}


def test_local_ca_wins_over_requests_ca_bundle_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """In local mode the simulator CA is used even when REQUESTS_CA_BUNDLE points elsewhere."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    settings = Settings.from_env({**BASE, "LOCAL_MODE": "true", "LOCAL_CA_BUNDLE": "/tmp/sim-ca.pem"})
    session = build_session(settings)
    prepared = session.prepare_request(requests.Request("GET", "https://127.0.0.1:7443/v1.0/users"))
    merged = session.merge_environment_settings(prepared.url, {}, None, None, None)
    assert merged["verify"] == "/tmp/sim-ca.pem"


def test_production_uses_the_system_trust_store() -> None:
    """Outside local mode verification is on with the default CAs."""
    session = build_session(Settings.from_env(BASE))
    assert session.verify is True and session.trust_env is True
