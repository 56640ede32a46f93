"""scripts/register-app.sh against a scripted Azure CLI: the application it PATCHes declares the
app roles and the idtyp claim, keeps existing role ids on a re-run, and asks Graph for the
published permission ids."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.infra.fake_az import FakeAz, error, ok
from tests.infra.test_graph_permissions import published

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "register-app.sh"
GRAPH = "00000003-0000-0000-c000-000000000000"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
APPLICATION_ROLES = {"Pairings.ReadWrite.All", "Sessions.ReadWrite.All", "Webhooks.ReadWrite.All"}


def graph_service_principal() -> dict[str, Any]:
    """Microsoft Graph's service principal as `az ad sp show` returns it, ids from the pinned table."""
    table = published()
    return {
        "appRoles": [{"value": n, "id": i} for (n, k), i in table.items() if k == "Application"],
        "oauth2PermissionScopes": [{"value": n, "id": i} for (n, k), i in table.items() if k == "Delegated"],
    }


def _fake(tmp_path: Path, app: dict[str, Any]) -> FakeAz:
    fake = FakeAz(tmp_path)
    fake.on("account show", answers=[ok({"tenantId": "99999999-0000-0000-0000-000000000000"})])
    fake.on("ad app list", answers=[ok([{"appId": CLIENT_ID}])])
    fake.on("ad app show", answers=[ok(app)])
    fake.on("ad sp show", f"--id {GRAPH}", answers=[ok(graph_service_principal())])
    fake.on("rest --method PATCH", answers=[ok(None)])
    fake.on("ad sp list", answers=[ok([{"id": "sp-object-id"}])])
    return fake


def _patched(fake: FakeAz) -> dict[str, Any]:
    (body,) = [c.files["--body"] for c in fake.calls() if "rest --method PATCH" in c.line]
    data = json.loads(body)
    assert isinstance(data, dict)
    return data


def _roles(app: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["value"]: r for r in app["appRoles"]}


def test_first_run_declares_the_application_roles_and_the_idtyp_claim(tmp_path: Path) -> None:
    """The PATCHed app has the three application roles, Integration.Admin for users, idtyp in access tokens."""
    fake = _fake(tmp_path, {"id": "app-object-id", "appRoles": [], "api": {}, "passwordCredentials": []})
    result = fake.run(SCRIPT, {}, interpreter="bash")
    assert result.returncode == 0, result.stderr
    app = _patched(fake)
    roles = _roles(app)
    assert set(roles) == APPLICATION_ROLES | {"Integration.Admin"}
    for value in APPLICATION_ROLES:
        assert roles[value]["allowedMemberTypes"] == ["Application"] and roles[value]["isEnabled"] is True
    assert roles["Integration.Admin"]["allowedMemberTypes"] == ["User"]
    assert len({r["id"] for r in roles.values()}) == 4
    assert app["optionalClaims"]["accessToken"] == [{"name": "idtyp"}]
    assert app["api"]["requestedAccessTokenVersion"] == 2


def test_rerun_keeps_existing_scope_and_role_ids(tmp_path: Path) -> None:
    """Existing scope and role ids are reused (Graph refuses to change enabled ones); new roles get new ids."""
    existing = {
        "id": "app-object-id",
        "api": {"oauth2PermissionScopes": [{"value": "access_as_user", "id": "aaaaaaaa-0000-0000-0000-000000000001"}]},
        "appRoles": [
            {"value": "Integration.Admin", "id": "aaaaaaaa-0000-0000-0000-000000000002"},
            {"value": "Pairings.ReadWrite.All", "id": "aaaaaaaa-0000-0000-0000-000000000003"},
            {"value": "Sessions.ReadWrite.All", "id": "aaaaaaaa-0000-0000-0000-000000000004"},
        ],
        "passwordCredentials": [],
    }
    fake = _fake(tmp_path, existing)
    result = fake.run(SCRIPT, {}, "--client-id", CLIENT_ID, interpreter="bash")
    assert result.returncode == 0, result.stderr
    app = _patched(fake)
    roles = _roles(app)
    for role in existing["appRoles"]:
        assert roles[role["value"]]["id"] == role["id"]
    assert app["api"]["oauth2PermissionScopes"][0]["id"] == "aaaaaaaa-0000-0000-0000-000000000001"
    assert roles["Webhooks.ReadWrite.All"]["id"] not in {r["id"] for r in existing["appRoles"]}


def test_requested_graph_permissions_are_the_published_ids_and_types(tmp_path: Path) -> None:
    """requiredResourceAccess lists Graph ids whose type (Role/Scope) matches Microsoft's table."""
    fake = _fake(tmp_path, {"id": "app-object-id", "appRoles": [], "api": {}, "passwordCredentials": []})
    result = fake.run(SCRIPT, {}, interpreter="bash")
    assert result.returncode == 0, result.stderr
    (graph,) = _patched(fake)["requiredResourceAccess"]
    assert graph["resourceAppId"] == GRAPH
    by_id = {guid: kind for (_name, kind), guid in published().items()}
    for access in graph["resourceAccess"]:
        expected = {"Role": "Application", "Scope": "Delegated"}[access["type"]]
        assert by_id.get(access["id"]) == expected, access
    assert len(graph["resourceAccess"]) == 10


def test_graph_lookup_failure_falls_back_to_the_same_published_ids(tmp_path: Path) -> None:
    """When Graph's service principal cannot be read, the well-known ids used are the same published ones."""
    fake = _fake(tmp_path, {"id": "app-object-id", "appRoles": [], "api": {}, "passwordCredentials": []})
    denied = error("Forbidden", "Authorization_RequestDenied")
    fake.rules.insert(0, {"match": ["ad sp show", GRAPH], "answers": [denied]})
    result = fake.run(SCRIPT, {}, interpreter="bash")
    assert result.returncode == 0, result.stderr
    ids = {a["id"] for a in _patched(fake)["requiredResourceAccess"][0]["resourceAccess"]}
    assert ids <= set(published().values())
