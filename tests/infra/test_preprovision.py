"""infra/hooks/preprovision.sh against a scripted az/azd: it rejects bad APP_URL and network
inputs, and switches the Key Vault create mode to `recover` only for this environment's
soft-deleted vaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra.fake_az import FakeAz, error, ok

SCRIPT = Path(__file__).resolve().parents[2] / "infra" / "hooks" / "preprovision.sh"
ENV = {"AZURE_ENV_NAME": "scheduling-prod", "AZURE_LOCATION": "swedencentral", "APP_URL": "https://app.contoso.com"}
SUBNET = "/subscriptions/s/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet/subnets/apps"


def deleted_vault(name: str, env: str = "scheduling-prod", location: str = "swedencentral") -> dict[str, object]:
    """One entry of `az keyvault list-deleted` output."""
    vault_id = f"/subscriptions/s/resourceGroups/rg-{env}/providers/Microsoft.KeyVault/vaults/{name}"
    vault_id = f"/subscriptions/s/resourceGroups/rg-{env}/providers/Microsoft.KeyVault/vaults/{name}"
    return {
        "name": name,
        "properties": {"location": location, "tags": {"azd-env-name": env}, "purgeProtectionEnabled": True,
                       "vaultId": vault_id},
    }


@pytest.fixture
def az(tmp_path: Path) -> FakeAz:
    return FakeAz(tmp_path)


def test_soft_deleted_vault_of_this_environment_is_recovered(az: FakeAz) -> None:
    """A soft-deleted kv- vault tagged with this environment in this region sets KEY_VAULT_CREATE_MODE=recover."""
    az.on("keyvault list-deleted", answers=[ok([
        deleted_vault("kv-abc123"),
        deleted_vault("kv-other", env="scheduling-test"),
        deleted_vault("kv-elsewhere", location="westeurope"),
    ])])
    result = az.run(SCRIPT, ENV)
    assert result.returncode == 0, result.stderr
    assert "env set KEY_VAULT_CREATE_MODE recover" in az.azd_calls()
    assert "env set WEBHOOK_KEY_VAULT_CREATE_MODE default" in az.azd_calls()
    assert "kv-abc123" in result.stdout and "kv-other" not in result.stdout


def test_webhook_vault_is_recovered_separately(az: FakeAz) -> None:
    """A soft-deleted kvw- vault (networkMode ipRules) sets its own create mode."""
    az.on("keyvault list-deleted", answers=[ok([deleted_vault("kvw-abc123")])])
    result = az.run(SCRIPT, ENV)
    assert result.returncode == 0, result.stderr
    assert az.azd_calls() == ["env set KEY_VAULT_CREATE_MODE default", "env set WEBHOOK_KEY_VAULT_CREATE_MODE recover"]


def test_no_deleted_vault_means_default(az: FakeAz) -> None:
    """With nothing soft-deleted both create modes are `default` (recover would fail on a missing vault)."""
    az.on("keyvault list-deleted", answers=[ok([])])
    result = az.run(SCRIPT, ENV)
    assert result.returncode == 0, result.stderr
    assert az.azd_calls() == ["env set KEY_VAULT_CREATE_MODE default", "env set WEBHOOK_KEY_VAULT_CREATE_MODE default"]


def test_failure_to_list_deleted_vaults_stops_provisioning(az: FakeAz) -> None:
    """If deleted vaults cannot be listed the hook fails loudly instead of guessing `default`."""
    az.on("keyvault list-deleted", answers=[error("Forbidden", "AuthorizationFailed")])
    result = az.run(SCRIPT, ENV)
    assert result.returncode == 1
    assert "could not list soft-deleted Key Vaults" in result.stderr and "Forbidden" in result.stderr
    assert az.azd_calls() == []


@pytest.mark.parametrize("url", [
    "", "http://app.contoso.com", "app.contoso.com", "https://", "https://app.contoso.com/?x=1",
    "https://app.contoso.com/#/home", "https://app contoso.com", "https://<your-app>", "ftp://app.contoso.com",
])
def test_bad_app_url_is_rejected_before_anything_is_provisioned(az: FakeAz, url: str) -> None:
    """Obviously bad APP_URL values stop the hook with a message, before az is even called."""
    result = az.run(SCRIPT, {**ENV, "APP_URL": url})
    assert result.returncode == 1
    assert "APP_URL" in result.stderr
    assert az.calls() == []


@pytest.mark.parametrize("url", ["https://app.contoso.com", "https://contoso.com/scheduling/", "https://x.io:8443/a-b_c"])
def test_good_app_url_passes(az: FakeAz, url: str) -> None:
    """Ordinary https URLs (with a path or a port) pass."""
    az.on("keyvault list-deleted", answers=[ok([])])
    assert az.run(SCRIPT, {**ENV, "APP_URL": url}).returncode == 0


def test_ip_rules_mode_needs_a_subnet(az: FakeAz) -> None:
    """NETWORK_MODE=ipRules without a subnet resource id fails; with one it passes."""
    az.on("keyvault list-deleted", answers=[ok([])])
    missing = az.run(SCRIPT, {**ENV, "NETWORK_MODE": "ipRules"})
    assert missing.returncode == 1 and "INTEGRATION_SUBNET_ID" in missing.stderr
    good = az.run(SCRIPT, {**ENV, "NETWORK_MODE": "ipRules", "INTEGRATION_SUBNET_ID": SUBNET})
    assert good.returncode == 0, good.stderr
    unknown = az.run(SCRIPT, {**ENV, "NETWORK_MODE": "private"})
    assert unknown.returncode == 1 and "public or ipRules" in unknown.stderr
