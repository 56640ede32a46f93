"""The Bicep and the code agree: every app setting the code reads is set in Azure (or is
explicitly local-only), every setting the Bicep sets is read (or is a host setting), and
every table and queue the code uses is provisioned."""

from __future__ import annotations

import re

from core.names import Queues, Tables
from core.settings import SETTING_NAMES, Settings
from tests.infra import bicep_text

# Settings the code reads that the deployment deliberately leaves unset, and why.
NOT_SET_IN_AZURE: dict[str, str] = {
    # Deployed storage is identity-based (AzureWebJobsStorage__*); a connection string would
    # need an account key, and shared-key access is disabled on the account.
    "AzureWebJobsStorage": "connection string for local runs (Azurite) only",
    # Local trust of the simulator's issuer and CA: must never be on in Azure.
    "LOCAL_MODE": "developer machines only",
    "LOCAL_CA_BUNDLE": "honoured only with LOCAL_MODE",
    # Deployed secrets live in Key Vault (KEY_VAULT_URI) and alerts go through ACS.
    "LOCAL_SECRETS_DIR": "file secret store of the local stack",
    "LOCAL_OUTBOX_DIR": "file mailer of the local stack",
}

# Settings the Bicep sets that the Functions host reads, not our code.
HOST_ONLY: dict[str, str] = {
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "where the host sends telemetry",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Entra auth for telemetry (local auth is off)",
}

# WEBHOOK_URL_CODE is set, but as a Key Vault reference, never as the key itself: the
# function key is created once by infra/hooks/postdeploy.sh (host key `graph-webhook`,
# mirrored to the vault secret `webhook-url-code`). Bicep listKeys() would have copied the
# key into plain-text settings and deployment history; letting the app read its own keys
# would need management-plane rights on itself.
KEY_VAULT_REFERENCES = {"WEBHOOK_URL_CODE"}

# Plausible values for settings whose Bicep value is an expression resolved at deploy time.
_GUID = "11111111-2222-3333-4444-555555555555"
DEPLOY_TIME_SAMPLES: dict[str, str] = {
    "AzureWebJobsStorage__clientId": _GUID,
    "AzureWebJobsStorage__blobServiceUri": "https://stabc.blob.core.windows.net/",
    "AzureWebJobsStorage__queueServiceUri": "https://stabc.queue.core.windows.net/",
    "AzureWebJobsStorage__tableServiceUri": "https://stabc.table.core.windows.net/",
    "AZURE_CLIENT_ID": _GUID,
    "ENTRA_CLIENT_ID": "66666666-7777-8888-9999-000000000000",
    "API_AUDIENCE": "66666666-7777-8888-9999-000000000000",
    "ALLOWED_TENANTS": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
    "KEY_VAULT_URI": "https://kv-abc.vault.azure.net/",
    "PUBLIC_BASE_URL": "https://func-api-abc.azurewebsites.net",
    "APP_URL": "https://scheduling.example.com/app",
    "CORS_ALLOWED_ORIGINS": "https://scheduling.example.com",
    "WEBHOOK_URL_CODE": "resolved-function-key",
    "ACS_ENDPOINT": "https://acs-abc.unitedstates.communication.azure.com",
    "ALERT_SENDER_ADDRESS": "DoNotReply@0000.azurecomm.net",
    "ACCESS_TEST_SCHEDULE": "0 0 3 * * *",
    "RENEWAL_SCHEDULE": "0 */30 * * * *",
    "RECONCILE_SCHEDULE": "0 15 */2 * * *",
    "RECONCILE_NEAR_SCHEDULE": "0 */15 * * * *",
    "PRODUCT_SERVER_CLIENT_IDS": "77777777-8888-4999-8aaa-bbbbbbbbbbbb",
    "LOG_LEVEL": "INFO",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x;IngestionEndpoint=https://x/",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": f"ClientId={_GUID};Authorization=AAD",
}


def _literal(raw: str) -> str | None:
    """The value of a plain Bicep string literal (no interpolation), else None."""
    match = re.fullmatch(r"'([^'$]*)'", raw)
    return match.group(1) if match else None


def test_every_setting_the_code_reads_is_set_by_the_bicep() -> None:
    """A setting added to core/settings.py fails here until infra/app/api.bicep sets it (or it is allow-listed)."""
    missing = set(SETTING_NAMES) - set(NOT_SET_IN_AZURE) - set(bicep_text.app_settings())
    assert not missing, f"read by the code but not set in infra/app/api.bicep: {sorted(missing)}"


def test_every_setting_the_bicep_sets_is_read_by_the_code_or_the_host() -> None:
    """A stale or misspelt app setting in the Bicep fails here instead of being silently ignored."""
    unread = set(bicep_text.app_settings()) - set(SETTING_NAMES) - set(HOST_ONLY)
    assert not unread, f"set in infra/app/api.bicep but read by nothing: {sorted(unread)}"


def test_allow_lists_name_real_settings_and_are_not_set_in_azure() -> None:
    """The allow-lists cannot rot: local-only names are read by the code and absent from Azure."""
    assert set(NOT_SET_IN_AZURE) <= set(SETTING_NAMES)
    assert not set(NOT_SET_IN_AZURE) & set(bicep_text.app_settings())
    assert not set(HOST_ONLY) & set(SETTING_NAMES)


def test_local_trust_is_never_switched_on_in_azure() -> None:
    """LOCAL_MODE and LOCAL_CA_BUNDLE (trust the simulator) never appear in any Bicep file."""
    for rel in bicep_text.all_files():
        text = bicep_text.read(rel)
        assert "LOCAL_MODE" not in text and "LOCAL_CA_BUNDLE" not in text, rel


def test_webhook_key_is_a_key_vault_reference_not_a_value() -> None:
    """WEBHOOK_URL_CODE points at Key Vault through the app's identity; no listKeys() copies a key into settings."""
    settings = bicep_text.app_settings()
    for name in KEY_VAULT_REFERENCES:
        assert settings[name].startswith("'@Microsoft.KeyVault("), settings[name]
    api = bicep_text.read("app/api.bicep")
    assert re.search(r"keyVaultReferenceIdentity:\s*identityId", api)
    assert all("listKeys" not in bicep_text.read(rel) for rel in bicep_text.all_files())


def test_deployed_settings_pass_the_code_s_own_validation() -> None:
    """The literal values in the Bicep, with deploy-time values filled in, satisfy Settings.from_env."""
    env: dict[str, str] = {}
    for name, raw in bicep_text.app_settings().items():
        literal = _literal(raw)
        env[name] = literal if literal is not None else DEPLOY_TIME_SAMPLES[name]
    settings = Settings.from_env(env)
    assert settings.entra_credential == "federated_identity"
    assert settings.storage.connection_string is None  # identity-based
    assert settings.managed_identity_client_id == settings.storage.client_id
    assert settings.local_mode is False


def test_every_table_the_code_uses_is_provisioned() -> None:
    """infra/main.bicep creates exactly the tables in core.names.Tables.ALL."""
    provisioned = bicep_text.string_array(bicep_text.read("main.bicep"), "tableNames")
    assert sorted(provisioned) == sorted(Tables.ALL)
    assert len(provisioned) == len(set(provisioned))


def test_every_queue_and_its_poison_queue_is_provisioned() -> None:
    """infra/main.bicep creates each queue in core.names.Queues.ALL and its -poison queue, nothing else."""
    provisioned = bicep_text.string_array(bicep_text.read("main.bicep"), "queueNames")
    expected = {name for q in Queues.ALL for name in (q, Queues.poison(q))}
    assert sorted(provisioned) == sorted(expected)


def test_the_table_and_queue_lists_reach_the_storage_module() -> None:
    """The name lists are passed to infra/core/storage.bicep, which loops over them."""
    main = bicep_text.read("main.bicep")
    assert re.search(r"^\s*tableNames:\s*tableNames\s*$", main, re.M)
    assert re.search(r"^\s*queueNames:\s*queueNames\s*$", main, re.M)
    storage = bicep_text.read("core/storage.bicep")
    assert re.search(r"for\s+tableName\s+in\s+tableNames", storage)
    assert re.search(r"for\s+queueName\s+in\s+queueNames", storage)

