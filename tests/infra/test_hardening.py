"""What the templates compute and declare for the hardening review: Entra-only email, canonical
role ids, Key Vault recovery, appUrl and region checks at provision time, the network modes,
and storage roles scoped to what the app uses (evaluated with tests/infra/bicep_eval.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.infra.bicep_check import type_data
from tests.infra.bicep_eval import Evaluator, GuardFailed
from tests.infra.bicep_parse import BicepFile, Bool, Call, For, Ident, IfBody, Index, Member, Obj, Str, parse_file, walk

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
SUBNET = "/subscriptions/s/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet/subnets/apps"
MAIN_REQUIRED = {"environmentName": "prod", "location": "swedencentral", "entraClientId": "0" * 36,
                 "appUrl": "https://scheduling.contoso.com"}
# The Flex Consumption regions main.bicep offers (source and date in its comment).
FLEX_REGIONS = {
    "australiaeast", "australiasoutheast", "brazilsouth", "canadacentral", "centralindia", "centralus",
    "eastasia", "eastus", "eastus2", "francecentral", "germanywestcentral", "italynorth", "japaneast",
    "koreacentral", "northcentralus", "northeurope", "norwayeast", "southafricanorth", "southcentralus",
    "southeastasia", "southindia", "spaincentral", "swedencentral", "uaenorth", "uksouth", "ukwest",
    "westcentralus", "westeurope", "westus", "westus2", "westus3",
}


def _file(rel: str) -> BicepFile:
    return parse_file(INFRA / rel)


def _prop(obj: Obj, *path: str) -> Any:
    value: Any = obj
    for name in path:
        assert isinstance(value, Obj), path
        value = value.get(name)
        assert value is not None, f"{'.'.join(path)}: {name} missing"
    return value


# --- 3. Email, role ids, Key Vault recovery, appUrl, regions ------------------------------
def test_communication_services_disables_access_keys() -> None:
    """ACS uses an API version whose type has disableLocalAuth, and sets it to true."""
    acs = _file("core/email.bicep").resources["communicationService"]
    info = type_data().find(acs.type, acs.api_version)
    assert info is not None
    props_type = info.nodes[int(info.nodes[info.body]["properties"]["properties"]["type"]["$ref"][2:])]
    assert "disableLocalAuth" in props_type["properties"]
    value = _prop(acs.object, "properties", "disableLocalAuth")
    assert isinstance(value, Bool) and value.value is True


def test_every_role_assignment_uses_the_canonical_role_definition_id() -> None:
    """roleDefinitionId is subscriptionResourceId('Microsoft.Authorization/roleDefinitions', ...) everywhere."""
    found = 0
    for path in INFRA.rglob("*.bicep"):
        for res in parse_file(path).resources.values():
            if res.type != "Microsoft.Authorization/roleAssignments":
                continue
            found += 1
            value = _prop(res.object, "properties", "roleDefinitionId")
            assert isinstance(value, Call) and value.name == "subscriptionResourceId", res.symbol
            first = value.args[0]
            assert isinstance(first, Str) and first.literal == "Microsoft.Authorization/roleDefinitions", res.symbol
    assert found >= 8


def test_key_vault_create_mode_reaches_the_vault() -> None:
    """The preprovision hook's KEY_VAULT_CREATE_MODE flows parameters file -> main.bicep -> vault createMode."""
    params = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert params["keyVaultCreateMode"]["value"] == "${KEY_VAULT_CREATE_MODE=default}"
    assert params["webhookKeyVaultCreateMode"]["value"] == "${WEBHOOK_KEY_VAULT_CREATE_MODE=default}"
    main = _file("main.bicep")
    assert _prop(main.modules["keyVault"].object, "params", "createMode").name == "keyVaultCreateMode"
    assert _prop(main.modules["webhookKeyVault"].object, "params", "createMode").name == "webhookKeyVaultCreateMode"
    kv = _file("core/keyvault.bicep")
    allowed = kv.params["createMode"].decorator("allowed")
    assert allowed and [a.literal for a in allowed.args[0].items] == ["default", "recover"]  # type: ignore[attr-defined]
    assert _prop(kv.resources["vault"].object, "properties", "createMode").name == "createMode"
    hooks = (ROOT / "azure.yaml").read_text()
    assert "run: ./infra/hooks/preprovision.sh" in hooks


@pytest.mark.parametrize("url", ["https://scheduling.contoso.com", "https://contoso.com/app/", "HTTPS://X.IO"])
def test_app_url_guard_accepts_https_urls(url: str) -> None:
    """Valid https URLs pass main.bicep's guard unchanged and give the CORS origin."""
    ev = Evaluator(_file("main.bicep"), {**MAIN_REQUIRED, "appUrl": url})
    assert ev.var("checkedAppUrl") == url
    assert ev.var("appOrigin") == "/".join(url.split("/")[:3])


@pytest.mark.parametrize("url", ["http://scheduling.contoso.com", "scheduling.contoso.com", "https://",
                                 "https://x.com/?a=1", "https://x.com/#/a", "https://x y.com", "https://<app>"])
def test_app_url_guard_rejects_bad_values(url: str) -> None:
    """Obviously bad appUrl values fail the deployment through the guard, with a sentence saying why."""
    with pytest.raises(GuardFailed, match="appUrl must be an https:// URL"):
        Evaluator(_file("main.bicep"), {**MAIN_REQUIRED, "appUrl": url}).var("checkedAppUrl")


def test_modules_receive_the_checked_app_url() -> None:
    """The API module gets the guarded value, so an unguarded appUrl cannot reach the app settings."""
    main = _file("main.bicep")
    assert _prop(main.modules["api"].object, "params", "appUrl").name == "checkedAppUrl"
    assert not any(isinstance(n, Ident) and n.name == "appUrl"
                   for m in main.modules.values() for n in _walk_params(m.object))


def _walk_params(obj: Obj) -> list[Any]:
    params = obj.get("params")
    return walk(params) if params is not None else []


def test_location_offers_only_flex_consumption_regions() -> None:
    """location's @allowed list is the Flex Consumption region list, with its source and date in a comment."""
    main = _file("main.bicep")
    allowed = main.params["location"].decorator("allowed")
    assert allowed is not None
    assert {item.literal for item in allowed.args[0].items} == FLEX_REGIONS  # type: ignore[attr-defined]
    text = (INFRA / "main.bicep").read_text()
    assert "Azure-Samples/functions-quickstart-python-azd-timer" in text and "2026-12-04" in text
    assert "list-flexconsumption-locations" in text


# --- 5. Network modes and scoped storage roles ----------------------------------------------
def _network_acls(rel: str, resource: str, subnet: str, ips: list[str]) -> dict[str, Any]:
    f = _file(rel)
    required = {name: "x" for name, p in f.params.items() if p.default is None}
    ev = Evaluator(f, {**required, "allowedSubnetId": subnet, "allowedIpRanges": ips})
    result = ev.eval(_prop(f.resources[resource].object, "properties", "networkAcls"))
    assert isinstance(result, dict)
    return result


@pytest.mark.parametrize(("rel", "resource"), [("core/storage.bicep", "storage"), ("core/keyvault.bicep", "vault")])
def test_public_mode_keeps_public_endpoints(rel: str, resource: str) -> None:
    """Without a subnet, storage and Key Vault allow their public endpoints (Entra auth still required)."""
    assert _network_acls(rel, resource, "", [])["defaultAction"] == "Allow"


@pytest.mark.parametrize(("rel", "resource"), [("core/storage.bicep", "storage"), ("core/keyvault.bicep", "vault")])
def test_restricted_mode_denies_all_but_the_subnet_and_listed_ips(rel: str, resource: str) -> None:
    """With a subnet, the firewall denies by default and admits the subnet and the listed addresses."""
    acls = _network_acls(rel, resource, SUBNET, ["203.0.113.7", "198.51.100.0/24"])
    assert acls["defaultAction"] == "Deny"
    assert [rule["id"] for rule in acls["virtualNetworkRules"]] == [SUBNET]
    assert [rule["value"] for rule in acls["ipRules"]] == ["203.0.113.7", "198.51.100.0/24"]


def test_ip_rules_mode_wires_the_subnet_everywhere_and_keeps_references_working() -> None:
    """networkMode ipRules restricts storage and the credentials vault, integrates the app, and adds the
    unrestricted webhook-key vault and deployment account; public mode adds neither."""
    main = _file("main.bicep")
    ev = Evaluator(main, {**MAIN_REQUIRED, "networkMode": "ipRules", "integrationSubnetId": SUBNET,
                          "allowedIpRanges": "203.0.113.7, 198.51.100.0/24"})
    assert ev.eval(_prop(main.modules["storage"].object, "params", "allowedSubnetId")) == SUBNET
    assert ev.eval(_prop(main.modules["keyVault"].object, "params", "allowedSubnetId")) == SUBNET
    assert ev.eval(_prop(main.modules["api"].object, "params", "virtualNetworkSubnetId")) == SUBNET
    assert ev.var("ipRanges") == ["203.0.113.7", "198.51.100.0/24"]
    assert ev.eval(_prop(main.modules["storage"].object, "params", "deploymentContainerName")) == ""
    for optional in ("webhookKeyVault", "deploymentStorage"):
        body = main.modules[optional].body
        assert isinstance(body, IfBody) and ev.eval(body.condition) is True
        assert main.modules[optional].object.get("params").get("allowedSubnetId") is None  # type: ignore[union-attr]
    public = Evaluator(main, MAIN_REQUIRED)
    assert public.eval(_prop(main.modules["storage"].object, "params", "allowedSubnetId")) == ""
    assert public.eval(main.modules["webhookKeyVault"].body.condition) is False  # type: ignore[union-attr]
    api_vault = _prop(main.modules["api"].object, "params", "webhookKeyVaultName")
    assert any(isinstance(n, Ident) and n.name == "webhookKeyVault" for n in walk(api_vault))


def test_ip_rules_mode_without_a_subnet_fails_the_deployment() -> None:
    """networkMode ipRules with no integrationSubnetId trips the guard with a message naming it."""
    ev = Evaluator(_file("main.bicep"), {**MAIN_REQUIRED, "networkMode": "ipRules"})
    with pytest.raises(GuardFailed, match="integrationSubnetId"):
        ev.var("checkedSubnetId")


def test_table_contributor_is_scoped_to_each_table_the_app_uses() -> None:
    """Storage Table Data Contributor is assigned per table (a loop over tableNames), never on the account."""
    rbac = _file("app/rbac.bicep")
    tables = rbac.resources["tables"]
    assert tables.existing and isinstance(tables.body, For)
    assignment = rbac.resources["tableContributor"]
    assert isinstance(assignment.body, For)
    scope = _prop(assignment.object, "scope")
    assert isinstance(scope, Index) and isinstance(scope.target, Ident) and scope.target.name == "tables"
    role = _prop(assignment.object, "properties", "roleDefinitionId")
    assert isinstance(role, Call) and isinstance(role.args[1], Member)
    assert role.args[1].name == "storageTableDataContributor"
    text = (INFRA / "app" / "rbac.bicep").read_text()
    for symbol, res in rbac.resources.items():
        if res.type == "Microsoft.Authorization/roleAssignments":
            scope_expr = res.object.get("scope")
            if isinstance(scope_expr, Ident) and scope_expr.name == "storage":
                assert "storageTableDataContributor" not in str(res.object), symbol
    assert "for tableName in tableNames" in text
    main = _file("main.bicep")
    assert _prop(main.modules["rbac"].object, "params", "tableNames").name == "tableNames"


def test_queue_contributor_is_scoped_to_each_queue_and_no_account_table_reader_remains() -> None:
    """Storage Queue Data Contributor is assigned per queue (a loop over queueNames, poison queues included);
    no storage data role other than Blob Data Owner is left on the account (the health pings read one table
    and one queue)."""
    rbac = _file("app/rbac.bicep")
    queues = rbac.resources["queues"]
    assert queues.existing and isinstance(queues.body, For)
    assignment = rbac.resources["queueContributor"]
    assert isinstance(assignment.body, For)
    scope = _prop(assignment.object, "scope")
    assert isinstance(scope, Index) and isinstance(scope.target, Ident) and scope.target.name == "queues"
    text = (INFRA / "app" / "rbac.bicep").read_text()
    assert "storageTableDataReader" not in text and "76199698-9eea-4c19-bc75-cec21354c6b6" not in text
    for symbol, res in rbac.resources.items():
        if res.type == "Microsoft.Authorization/roleAssignments":
            scope_expr = res.object.get("scope")
            if isinstance(scope_expr, Ident) and scope_expr.name == "storage":
                assert symbol == "blobOwner", symbol
    main = _file("main.bicep")
    assert _prop(main.modules["rbac"].object, "params", "queueNames").name == "queueNames"


def test_blob_owner_stays_on_the_account_with_the_reason_given() -> None:
    """Storage Blob Data Owner is account-scoped, and rbac.bicep says why (the Functions host's containers)."""
    rbac = _file("app/rbac.bicep")
    scope = _prop(rbac.resources["blobOwner"].object, "scope")
    assert isinstance(scope, Ident) and scope.name == "storage"
    text = (INFRA / "app" / "rbac.bicep").read_text()
    assert "Storage Blob Data Owner stays on the ACCOUNT" in text and "azure-webjobs-hosts" in text
