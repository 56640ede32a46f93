"""The Bicep has the shape Flex Consumption, azd and least privilege require. No Bicep
compiler can be installed here, so these structural checks (with checkov and the drift
tests) stand in for `bicep build`."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

from tests.infra import bicep_text
from tests.infra.bicep_check import infra_texts
from tests.infra.bicep_parse import parse_text
from tests.infra.bicep_text import ROOT, block_after, read, resources, top_level_keys

ROLE_IDS = {
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Key Vault Secrets Officer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
}
BROAD_ROLE_IDS = {
    "Owner": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "Contributor": "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "User Access Administrator": "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    "Key Vault Administrator": "00482a5a-887f-4fb3-b363-3b7fe8e74483",
    "Communication and Email Service Owner": "09976791-48a7-449e-bb21-39d1a415f350",
}
# Resource types whose newest GA API version is older than the cut-off below.
LATEST_IS_OLDER = {
    "Microsoft.Insights/components",  # 2020-02-02
    "Microsoft.Insights/diagnosticSettings",  # 2021-05-01-preview
    "Microsoft.Authorization/roleAssignments",  # 2022-04-01
    "Microsoft.Authorization/roleDefinitions",  # 2022-04-01
}
API_VERSION_CUTOFF = date(2023, 1, 1)


def _resource(rel: str, type_prefix: str) -> str:
    found = resources(read(rel), type_prefix)
    assert len(found) == 1, f"expected one {type_prefix} in {rel}, found {list(found)}"
    return next(iter(found.values()))


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_every_parameter_has_a_description() -> None:
    """Each `param` in every Bicep file carries a @description decorator."""
    for rel, text in infra_texts().items():
        for param in parse_text(text, Path(rel)).params.values():
            assert param.decorator("description"), f"{rel}: param {param.name}"


def test_parameters_file_matches_main_bicep() -> None:
    """main.parameters.json names only real parameters and supplies every one without a default."""
    main = read("main.bicep")
    params = dict(re.findall(r"^param\s+(\w+)\s+\w+(\s*=.*)?$", main, re.M))
    supplied = json.loads((ROOT / "infra" / "main.parameters.json").read_text())["parameters"]
    assert set(supplied) <= set(params)
    required = {name for name, default in params.items() if not default}
    assert required <= set(supplied), required - set(supplied)


def test_azure_yaml_deploys_the_python_function_service() -> None:
    """azure.yaml declares the service `api`: Python on Azure Functions, from the repository root."""
    text = (ROOT / "azure.yaml").read_text()
    service = re.search(r"^services:\n  api:\n((?:    .*\n)+)", text, re.M)
    assert service, "no services.api in azure.yaml"
    fields = dict(re.findall(r"^    (\w+): (\S+)$", service.group(1), re.M))
    assert (fields["language"], fields["host"], fields["project"]) == ("python", "function", ".")
    hooks = re.findall(r"^      run: (\S+)$", text, re.M)
    assert hooks and all((ROOT / run).exists() for run in hooks)


def test_resource_names_derive_from_the_resource_token_and_carry_azd_tags() -> None:
    """Names are unique per subscription/environment/region; the app is tagged for azd deploy."""
    main = read("main.bicep")
    token = "var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))"
    assert token in main
    assert "'azd-env-name': environmentName" in main
    for module in ("identity", "monitoring", "storage", "keyVault", "email", "api"):
        match = re.search(r"^module\s+" + module + r"\s", main, re.M)
        assert match, module
        assert "resourceToken}" in block_after(main, match.end()), f"module {module} name not from resourceToken"
    site = _resource("app/api.bicep", "Microsoft.Web/sites@")
    assert "'azd-service-name': 'api'" in site


def test_flex_consumption_plan() -> None:
    """The plan is FC1 / FlexConsumption and Linux (reserved)."""
    plan = _flat(_resource("app/api.bicep", "Microsoft.Web/serverfarms@"))
    assert "sku: { name: 'FC1' tier: 'FlexConsumption' }" in plan
    assert "reserved: true" in plan


def test_function_app_is_flex_python_311_with_identity_based_deployment() -> None:
    """functionAppConfig: blob deployment with the user-assigned identity, scale knobs as parameters, Python 3.11."""
    site = _flat(_resource("app/api.bicep", "Microsoft.Web/sites@"))
    assert "kind: 'functionapp,linux'" in site
    assert "type: 'UserAssigned'" in site
    assert "type: 'blobContainer'" in site
    assert "value: '${deploymentStorage.properties.primaryEndpoints.blob}${deploymentContainerName}'" in site
    assert "authentication: { type: 'UserAssignedIdentity' userAssignedIdentityResourceId: identityId }" in site
    assert "maximumInstanceCount: maximumInstanceCount" in site
    assert "instanceMemoryMB: instanceMemoryMB" in site
    assert "alwaysReady: enableAlwaysReady ? [ { name: 'http', instanceCount: 1 } ] : []" in site
    assert "runtime: { name: 'python' version: '3.11' }" in site


def test_function_app_transport_and_publishing_are_locked_down() -> None:
    """HTTPS only, TLS 1.2, FTPS off, CORS from a parameter, basic-auth publishing disabled."""
    api = read("app/api.bicep")
    site = _flat(_resource("app/api.bicep", "Microsoft.Web/sites@"))
    for needle in ("httpsOnly: true", "minTlsVersion: '1.2'", "ftpsState: 'Disabled'",
                   "allowedOrigins: split(replace(corsOrigins, ' ', ''), ',')"):
        assert needle in site, needle
    policies = resources(api, "Microsoft.Web/sites/basicPublishingCredentialsPolicies@")
    assert sorted(re.search(r"name: '(\w+)'", b).group(1) for b in policies.values()) == ["ftp", "scm"]  # type: ignore[union-attr]
    assert all("allow: false" in b for b in policies.values())


def test_host_storage_is_identity_based() -> None:
    """AzureWebJobsStorage uses the managed identity (credential + clientId + service URIs), never a key."""
    settings = bicep_text.app_settings()
    assert settings["AzureWebJobsStorage__credential"] == "'managedidentity'"
    assert settings["AzureWebJobsStorage__clientId"] == "identityClientId"
    assert settings["AZURE_CLIENT_ID"] == "identityClientId"
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "'ClientId=${identityClientId};Authorization=AAD'"
    assert "AzureWebJobsStorage" not in settings


def test_storage_account_is_entra_only_and_private_to_blobs() -> None:
    """Shared keys off, OAuth by default, TLS 1.2, HTTPS only, no public blob access, deployment container exists."""
    text = read("core/storage.bicep")
    body = _resource("core/storage.bicep", "Microsoft.Storage/storageAccounts@")
    account = top_level_keys(block_after(body, body.index("properties:")))
    expected = {
        "allowSharedKeyAccess": "false", "defaultToOAuthAuthentication": "true", "minimumTlsVersion": "'TLS1_2'",
        "allowBlobPublicAccess": "false", "supportsHttpsTrafficOnly": "true",
    }
    assert {k: account.get(k) for k in expected} == expected
    container = _resource("core/storage.bicep", "Microsoft.Storage/storageAccounts/blobServices/containers@")
    assert "name: deploymentContainerName" in container and "publicAccess: 'None'" in container
    assert "listKeys" not in text and "AccountKey" not in text


def test_key_vault_uses_rbac_soft_delete_and_purge_protection() -> None:
    """RBAC authorization (no access policies), soft delete with retention, purge protection."""
    vault = _flat(_resource("core/keyvault.bicep", "Microsoft.KeyVault/vaults@"))
    for needle in ("enableRbacAuthorization: true", "enableSoftDelete: true",
                   "softDeleteRetentionInDays: softDeleteRetentionInDays", "enablePurgeProtection: true"):
        assert needle in vault, needle
    assert "accessPolicies" not in vault


def test_application_insights_is_workspace_based_with_local_auth_off() -> None:
    """Telemetry goes to Log Analytics and only Entra-authenticated clients may write it."""
    component = _flat(_resource("core/monitoring.bicep", "Microsoft.Insights/components@"))
    assert "DisableLocalAuth: true" in component
    assert "WorkspaceResourceId: logAnalytics.id" in component


def test_email_uses_an_azure_managed_domain_linked_to_communication_services() -> None:
    """Email service + AzureManaged domain + Communication Services linking it; sender address is an output."""
    text = read("core/email.bicep")
    domain = _resource("core/email.bicep", "Microsoft.Communication/emailServices/domains@")
    assert "domainManagement: 'AzureManaged'" in domain
    acs = _flat(_resource("core/email.bicep", "Microsoft.Communication/communicationServices@"))
    assert "linkedDomains: [ managedDomain.id ]" in acs
    sender = "output senderAddress string = 'DoNotReply@${managedDomain.properties.mailFromSenderDomain}'"
    assert sender in text


def test_role_assignments_are_exactly_what_the_app_needs() -> None:
    """Blob owner, queue and table contributor, secrets officer, metrics publisher, and a send-only email role."""
    text = read("app/rbac.bicep")
    for role, guid in ROLE_IDS.items():
        assert guid in text, role
    for role, guid in BROAD_ROLE_IDS.items():
        assert guid not in text, f"{role} is broader than the app needs"
    email_role = _flat(_resource("app/rbac.bicep", "Microsoft.Authorization/roleDefinitions@"))
    actions = re.findall(r"'(Microsoft\.Communication/[^']+)'", email_role)
    assert sorted(actions) == sorted([
        "Microsoft.Communication/CommunicationServices/Read",
        "Microsoft.Communication/CommunicationServices/Write",
        "Microsoft.Communication/EmailServices/write",
    ])
    assert "assignableScopes: [ resourceGroup().id ]" in email_role


def test_role_assignment_names_are_deterministic_per_scope_principal_and_role() -> None:
    """Each assignment is named guid(scope.id, principalId, role), targets that scope, and a service principal."""
    assignments = resources(read("app/rbac.bicep"), "Microsoft.Authorization/roleAssignments@")
    assert len(assignments) == 8
    for symbol, body in assignments.items():
        name = re.search(r"name: guid\((\w+(?:\[i\])?)\.id, principalId, ([\w.]+)\)", body)
        assert name, symbol
        assert f"scope: {name.group(1)}\n" in body, symbol
        assert "principalType: 'ServicePrincipal'" in body, symbol
        assert "principalId: principalId" in body, symbol


def test_outputs_give_the_urls_the_admin_needs_and_no_secret() -> None:
    """API base, webhook and redirect URLs, vault URI and identity ids are outputs; nothing secret is."""
    main = read("main.bicep")
    outputs = dict(re.findall(r"^output\s+(\w+)\s+\w+\s*=\s*(.+)$", main, re.M))
    for name, suffix in {
        "API_BASE_URL": "/api'", "GRAPH_NOTIFICATION_URL": "/api/graph/notifications'",
        "GRAPH_LIFECYCLE_URL": "/api/graph/lifecycle'",
        "CONSENT_REDIRECT_URI": "/api/integration/consent/callback'",
        "SIGNIN_REDIRECT_URI": "/api/me/connection/callback'",
    }.items():
        assert outputs[name].endswith(suffix), name
    assert {"KEY_VAULT_URI", "MANAGED_IDENTITY_CLIENT_ID", "MANAGED_IDENTITY_PRINCIPAL_ID"} <= set(outputs)
    for rel in bicep_text.all_files():
        for line in read(rel).splitlines():
            if line.startswith("output "):
                secretish = re.search(r"listKeys|ConnectionString|secret\(|getSecret|password", line, re.I)
                assert not secretish, f"{rel}: {line}"
        assert "@secure()\noutput" not in read(rel)


def test_api_versions_are_current() -> None:
    """Every resource uses an API version from 2023 on, except types whose newest GA version is older."""
    for rel in bicep_text.all_files():
        for rtype, version in re.findall(r"^resource\s+\w+\s+'([^@']+)@([^']+)'", read(rel), re.M):
            if rtype in LATEST_IS_OLDER:
                continue
            assert "preview" not in version, f"{rel}: {rtype}@{version}"
            assert date.fromisoformat(version[:10]) >= API_VERSION_CUTOFF, f"{rel}: {rtype}@{version}"


def test_no_secret_or_key_is_ever_placed_in_settings_or_templates() -> None:
    """No listKeys, account keys, connection strings with keys, or client secrets anywhere in infra/."""
    for rel in bicep_text.all_files():
        text = read(rel)
        for banned in ("listKeys(", "AccountKey=", "SharedAccessKey", "clientSecret", "listSecrets"):
            assert banned not in text, f"{rel}: {banned}"
