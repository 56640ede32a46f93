"""Settings are read once, typed, and every problem is reported at once."""

from __future__ import annotations

import pytest

from core.settings import SETTING_NAMES, Settings, SettingsError

GOOD = {
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "ENTRA_CLIENT_ID": "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa",
    "AZURE_CLIENT_ID": "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb",
    "PUBLIC_BASE_URL": "https://api.example.com/",
    "APP_URL": "https://app.example.com",
    "KEY_VAULT_URI": "https://kv-test.vault.azure.net/",
    "ACS_ENDPOINT": "https://acs-test.communication.azure.com",
    "ALERT_SENDER_ADDRESS": "DoNotReply@alerts.example.com",
}


def test_valid_environment_gives_typed_settings_with_defaults() -> None:
    """A minimal valid environment yields typed values and public-cloud defaults."""
    s = Settings.from_env(GOOD)
    assert s.entra_client_id == "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
    assert s.api_audience == s.entra_client_id
    assert s.public_base_url == "https://api.example.com"
    assert s.graph_scope == "https://graph.microsoft.com/.default"
    assert s.jwks_url == "https://login.microsoftonline.com/common/discovery/v2.0/keys"
    assert s.local_mode is False
    assert s.tenant_may_onboard("11111111-1111-4111-8111-111111111111")


def test_every_problem_is_reported_in_one_error_naming_each_variable() -> None:
    """Missing and invalid values are listed together, each with its variable name and what is expected."""
    env = {
        "ENTRA_CLIENT_ID": "not-a-guid",
        "APP_URL": "ftp://x",
        "ACCESS_TEST_SCHEDULE": "0 3 * * *",
        "LOG_LEVEL": "LOUD",
    }
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    text = str(info.value)
    expected = ("AzureWebJobsStorage", "ENTRA_CLIENT_ID", "PUBLIC_BASE_URL", "APP_URL")
    expected += ("ACCESS_TEST_SCHEDULE", "LOG_LEVEL")
    for name in expected:
        assert name in text
    assert "six fields" in text
    assert len(info.value.problems) >= 6


def test_identity_based_storage_needs_both_endpoints() -> None:
    """Identity-based storage is accepted only with table and queue endpoints."""
    env = {k: v for k, v in GOOD.items() if k != "AzureWebJobsStorage"}
    env["AzureWebJobsStorage__tableServiceUri"] = "https://acct.table.core.windows.net"
    with pytest.raises(SettingsError, match="AzureWebJobsStorage"):
        Settings.from_env(env)
    env["AzureWebJobsStorage__queueServiceUri"] = "https://acct.queue.core.windows.net"
    s = Settings.from_env(env)
    assert s.storage.connection_string is None
    assert s.storage.queue_uri == "https://acct.queue.core.windows.net"


def test_local_trust_is_never_on_by_default() -> None:
    """A local CA bundle without LOCAL_MODE=true is refused, and http URLs need local mode."""
    with pytest.raises(SettingsError, match="LOCAL_CA_BUNDLE"):
        Settings.from_env({**GOOD, "LOCAL_CA_BUNDLE": "/tmp/ca.pem"})
    with pytest.raises(SettingsError, match="PUBLIC_BASE_URL"):
        Settings.from_env({**GOOD, "PUBLIC_BASE_URL": "http://127.0.0.1:7071"})
    local = Settings.from_env(
        {**GOOD, "LOCAL_MODE": "true", "LOCAL_CA_BUNDLE": "/tmp/ca.pem", "PUBLIC_BASE_URL": "http://127.0.0.1:7071"}
    )
    assert local.local_mode and local.local_ca_bundle == "/tmp/ca.pem"


def test_allowed_tenants_list_restricts_onboarding() -> None:
    """ALLOWED_TENANTS limits which tenants may onboard; '*' allows any."""
    allowed = "11111111-1111-4111-8111-111111111111"
    s = Settings.from_env({**GOOD, "ALLOWED_TENANTS": allowed.upper()})
    assert s.tenant_may_onboard(allowed)
    assert not s.tenant_may_onboard("22222222-2222-4222-8222-222222222222")
    assert Settings.from_env({**GOOD, "ALLOWED_TENANTS": "*"}).allowed_tenants is None


def test_secret_like_values_are_not_echoed_in_errors() -> None:
    """An invalid storage setting is reported without repeating its value."""
    env = {**GOOD, "AzureWebJobsStorage__clientId": "AccountKey=supersecret"}
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert "supersecret" not in str(info.value)


def test_setting_names_table_covers_every_variable_read() -> None:
    """Every environment variable from_env reads is documented in SETTING_NAMES (infra checks against it)."""
    seen: list[str] = []

    class Spy(dict[str, str]):
        def get(self, key: str, default: str | None = None) -> str:  # type: ignore[override]
            seen.append(key)
            return super().get(key, default or "")

    with pytest.raises(SettingsError):
        Settings.from_env(Spy())
    assert set(seen) <= set(SETTING_NAMES)
    assert set(SETTING_NAMES) - set(seen) == {"AzureWebJobsStorage__blobServiceUri", "AzureWebJobsStorage__credential"}


def test_unresolved_key_vault_reference_is_treated_as_unset() -> None:
    """A Key Vault reference App Service could not resolve is never used as the webhook key."""
    env = {**GOOD, "WEBHOOK_URL_CODE": "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/x)"}
    assert Settings.from_env(env).webhook_url_code is None
    assert Settings.from_env({**GOOD, "WEBHOOK_URL_CODE": "abc"}).webhook_url_code == "abc"


def test_a_deployment_must_name_its_key_vault_and_mail_service() -> None:
    """Without LOCAL_MODE=true, a missing KEY_VAULT_URI or ACS_ENDPOINT fails start-up naming each (no silent fallback
    to local file secrets or the local outbox mailer); ACS needs its sender address too."""
    bare = {k: v for k, v in GOOD.items() if k not in ("KEY_VAULT_URI", "ACS_ENDPOINT", "ALERT_SENDER_ADDRESS")}
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(bare)
    text = str(caught.value)
    assert "KEY_VAULT_URI" in text and "ACS_ENDPOINT" in text and "LOCAL_MODE=true" in text
    with pytest.raises(SettingsError, match="ALERT_SENDER_ADDRESS"):
        Settings.from_env({k: v for k, v in GOOD.items() if k != "ALERT_SENDER_ADDRESS"})
    local = Settings.from_env({**bare, "LOCAL_MODE": "true"})
    assert local.key_vault_uri is None and local.acs_endpoint is None


def test_the_container_never_falls_back_to_local_adapters_in_a_deployment() -> None:
    """Settings built around the check (not local mode, no vault) still stop build_container with the same message."""
    from dataclasses import replace

    from core.bootstrap import build_container

    settings = replace(Settings.from_env(GOOD), key_vault_uri=None)
    with pytest.raises(SettingsError, match="KEY_VAULT_URI"):
        build_container(settings)


def test_product_server_client_ids_default_to_none_accepted() -> None:
    """Without PRODUCT_SERVER_CLIENT_IDS no app-only token is accepted; with it, the listed ids (lower-cased)."""
    assert Settings.from_env(GOOD).product_server_client_ids == frozenset()
    s = Settings.from_env({**GOOD, "PRODUCT_SERVER_CLIENT_IDS": " CCCCCCCC-cccc-4ccc-8ccc-cccccccccccc ,"
                                                                 "dddddddd-dddd-4ddd-8ddd-dddddddddddd"})
    assert s.product_server_client_ids == {"cccccccc-cccc-4ccc-8ccc-cccccccccccc",
                                           "dddddddd-dddd-4ddd-8ddd-dddddddddddd"}
    with pytest.raises(SettingsError) as info:
        Settings.from_env({**GOOD, "PRODUCT_SERVER_CLIENT_IDS": "my-product-server"})
    assert "PRODUCT_SERVER_CLIENT_IDS" in str(info.value)


def test_near_reconciliation_runs_every_15_minutes_by_default() -> None:
    """RECONCILE_NEAR_SCHEDULE defaults to every 15 minutes and must be a six-field NCRONTAB."""
    assert Settings.from_env(GOOD).reconcile_near_schedule == "0 */15 * * * *"
    with pytest.raises(SettingsError) as info:
        Settings.from_env({**GOOD, "RECONCILE_NEAR_SCHEDULE": "*/15 * * * *"})
    assert "RECONCILE_NEAR_SCHEDULE" in str(info.value)
