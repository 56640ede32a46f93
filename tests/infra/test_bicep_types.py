"""infra/*.bicep type-checks against Azure's generated Bicep type data (tests/infra/bicep_check.py),
and the checker reports each kind of mistake it exists to catch when one is seeded."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.infra.bicep_check import check, infra_texts, type_data
from tests.infra.bicep_parse import parse_text


def _seeded(rel: str, old: str, new: str) -> list[str]:
    texts = infra_texts()
    assert old in texts[rel], f"seed target not found in {rel}: {old!r}"
    texts[rel] = texts[rel].replace(old, new, 1)
    return [str(p) for p in check(texts)]


def test_every_bicep_file_type_checks_clean() -> None:
    """No finding in any file under infra/: types, versions, properties, values, modules, reads."""
    problems = check()
    assert problems == [], "\n".join(map(str, problems))


def test_parser_sees_every_declaration() -> None:
    """The parser finds exactly the resource, module, param and output lines a plain scan finds."""
    for rel, text in infra_texts().items():
        parsed = parse_text(text, Path(rel))
        for keyword, found in (("resource", parsed.resources), ("module", parsed.modules),
                               ("param", parsed.params), ("output", parsed.outputs)):
            scanned = re.findall(rf"^{keyword}\s+(\w+)", text, re.M)
            assert sorted(scanned) == sorted(found), (rel, keyword)


def test_every_resource_type_and_version_is_in_the_type_data() -> None:
    """Each type@apiVersion used has type data, so every resource was actually checked."""
    for rel, text in infra_texts().items():
        for res in parse_text(text, Path(rel)).resources.values():
            assert type_data().find(res.type, res.api_version), f"{rel}: {res.type}@{res.api_version}"


SEEDS = [
    pytest.param("core/storage.bicep", "allowSharedKeyAccess: false", "allowSharedKeysAccess: false",
                 "storage.properties.allowSharedKeysAccess: unknown property", id="wrong-property-name"),
    pytest.param("core/keyvault.bicep", "name: 'standard'", "name: 'standardd'",
                 "vault.properties.sku.name: 'standardd' is not allowed (expects 'standard' | 'premium')",
                 id="bad-enum-value"),
    pytest.param("core/keyvault.bicep", "    tenantId: tenant().tenantId\n", "",
                 "vault.properties: required property 'tenantId' is missing", id="missing-required-property"),
    pytest.param("core/keyvault.bicep", "vaults@2024-11-01'", "vaults@2099-01-01'",
                 "unknown type Microsoft.KeyVault/vaults@2099-01-01", id="unknown-api-version"),
    pytest.param("app/api.bicep", "    httpsOnly: true", "    httpsOnly: true\n    defaultHostName: 'x'",
                 "functionApp.properties.defaultHostName: read-only property cannot be set", id="read-only-written"),
    pytest.param("core/storage.bicep", "days: deleteRetentionDays\n", "days: 400\n",
                 "deleteRetentionPolicy.days: 400 is outside 1..365", id="integer-bound"),
    pytest.param("app/api.bicep", "name: 'appsettings'", "name: 'appsetings'",
                 "appSettings.name: 'appsetings' is not one of appsettings", id="discriminated-union-variant"),
    pytest.param("app/api.bicep", "name: 'FC1'", "name: 'FC1'\n    capacity: 'one'",
                 "plan.sku.capacity: a string is not allowed (expects int)", id="wrong-value-type"),
    pytest.param("core/storage.bicep", "    parent: tableService", "    parent: queueService",
                 "parent queueService is a Microsoft.Storage/storageAccounts/queueServices", id="wrong-parent"),
    pytest.param("main.bicep", "    retentionInDays: logRetentionInDays\n",
                 "    retentionInDays: logRetentionInDays\n    retention: 3\n",
                 "module monitoring: ./core/monitoring.bicep has no parameter 'retention'", id="unknown-module-param"),
    pytest.param("main.bicep", "    name: 'id-api-${resourceToken}'\n", "",
                 "module identity: required parameter 'name' of ./core/identity.bicep is missing",
                 id="missing-module-param"),
    pytest.param("main.bicep", "monitoring.outputs.logAnalyticsWorkspaceId", "monitoring.outputs.workspaceId",
                 "monitoring.outputs.workspaceId: module ./core/monitoring.bicep has no such output",
                 id="unknown-module-output"),
    pytest.param("main.bicep", "location: webConsoleLocation", "location: 'northeurope'",
                 "module web: parameter location: 'northeurope' is not in its @allowed list",
                 id="module-param-not-allowed"),
    pytest.param("app/api.bicep", "deploymentStorage.properties.primaryEndpoints.blob}${",
                 "deploymentStorage.properties.primaryEndpoint.blob}${",
                 "deploymentStorage.properties.primaryEndpoint: Microsoft.Storage/storageAccounts has no such property",
                 id="unknown-property-read"),
    pytest.param("main.bicep", "name: 'id-api-${resourceToken}'", "name: 'id-api-${resourceTokn}'",
                 "unknown identifier 'resourceTokn'", id="unknown-identifier"),
]


@pytest.mark.parametrize(("rel", "old", "new", "expected"), SEEDS)
def test_checker_reports_a_seeded_mistake(rel: str, old: str, new: str, expected: str) -> None:
    """Each seeded mistake produces a finding naming the file and the offending path."""
    problems = _seeded(rel, old, new)
    assert any(expected in p and p.startswith(rel + ":") for p in problems), problems
