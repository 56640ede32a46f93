"""The Microsoft Graph permission ids in scripts/register-app.sh (and the table in
docs/app-registration.md) match Microsoft's published ids, names and types."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "register-app.sh"
DOC = ROOT / "docs" / "app-registration.md"
# Verbatim rows of microsoftgraph/microsoft-graph-docs-contrib concepts/includes/permissions-ids.md
# (the id table of concepts/permissions-reference.md); source and commit in the file's header.
TABLE = ROOT / "tests" / "infra" / "data" / "graph-permission-ids.md"
KINDS = {"appRoles": "Application", "oauth2PermissionScopes": "Delegated"}
GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@dataclass(frozen=True)
class Requested:
    variable: str
    name: str
    type: str  # Application | Delegated
    id: str
    line: int


def published() -> dict[tuple[str, str], str]:
    """(permission name, Application|Delegated) -> id, from the pinned table."""
    rows = re.findall(rf"^\|\s*(\S+)\s*\|\s*(Application|Delegated)\s*\|\s*({GUID})\s*\|$",
                      TABLE.read_text(encoding="utf-8"), re.M)
    table = {(name, kind): guid for name, kind, guid in rows}
    assert len(table) == len(rows), "duplicate rows in the pinned table"
    return table


def requested(script: str) -> list[Requested]:
    """Every `VAR="$(graph_id <appRoles|oauth2PermissionScopes> <name> <id>)"` in the script."""
    out = []
    for i, line in enumerate(script.splitlines(), 1):
        match = re.match(rf'^(\w+)="\$\(graph_id (appRoles|oauth2PermissionScopes) (\S+) ({GUID})\)"', line)
        if match:
            out.append(Requested(match.group(1), match.group(3), KINDS[match.group(2)], match.group(4), i))
    return out


def script_problems(script: str) -> list[str]:
    """Mismatches between the script's permission ids/types and the published table."""
    table = published()
    problems = []
    perms = requested(script)
    if not perms:
        problems.append("no graph_id lines found")
    for perm in perms:
        expected = table.get((perm.name, perm.type))
        if expected is None:
            other = "Delegated" if perm.type == "Application" else "Application"
            hint = f" (Microsoft defines it only as {other})" if (perm.name, other) in table else ""
            problems.append(f"line {perm.line}: {perm.name} ({perm.type}) is not in the published table{hint}")
        elif expected != perm.id:
            problems.append(f"line {perm.line}: {perm.name} ({perm.type}) is {expected}, not {perm.id}")
    # requiredResourceAccess: an application permission is a Role, a delegated one a Scope.
    kinds = {p.variable: p.type for p in perms}
    for var, access_type in re.findall(r'\{"id": "\$\{(\w+)\}", "type": "(Role|Scope)"\}', script):
        expected_type = {"Role": "Application", "Scope": "Delegated"}[access_type]
        if kinds.get(var) != expected_type:
            problems.append(f"requiredResourceAccess: {var} is sent as {access_type} but is {kinds.get(var)}")
    return problems


def test_script_permission_ids_match_microsoft_table() -> None:
    """Every Graph permission the registration script requests has Microsoft's id for its name and type."""
    assert script_problems(SCRIPT.read_text(encoding="utf-8")) == []
    assert len(requested(SCRIPT.read_text(encoding="utf-8"))) == 10


def test_docs_table_matches_microsoft_table() -> None:
    """The permission table in docs/app-registration.md gives the published id for each name and type."""
    table = published()
    rows = re.findall(rf"^\| (\S+) \| (Application|Delegated) \| `({GUID})` \|", DOC.read_text(encoding="utf-8"), re.M)
    assert len(rows) == 10
    for name, kind, guid in rows:
        assert table.get((name, kind)) == guid, (name, kind, guid)


def test_checker_reports_a_wrong_permission_id() -> None:
    """A seeded wrong id (one digit changed) is reported with the right id."""
    script = SCRIPT.read_text(encoding="utf-8").replace("df021288-bdef-4463-88db-98f22de89214",
                                                        "df021288-bdef-4463-88db-98f22de89215")
    problems = script_problems(script)
    assert any("User.Read.All (Application) is df021288-bdef-4463-88db-98f22de89214" in p for p in problems), problems


def test_checker_reports_an_application_id_requested_as_delegated() -> None:
    """A seeded type mix-up (an application permission looked up as a delegated scope) is reported."""
    script = SCRIPT.read_text(encoding="utf-8").replace(
        "graph_id oauth2PermissionScopes Calendars.ReadWrite 1ec239c2-d7c9-4623-a91a-a9775856bb36",
        "graph_id oauth2PermissionScopes Calendars.ReadWrite ef54d2bf-783f-4e0f-bca1-3210c0444d99")
    problems = script_problems(script)
    assert any("Calendars.ReadWrite (Delegated) is 1ec239c2" in p for p in problems), problems
    swapped = SCRIPT.read_text(encoding="utf-8").replace('{"id": "${DEL_USER_READ}", "type": "Scope"}',
                                                         '{"id": "${DEL_USER_READ}", "type": "Role"}')
    assert any("DEL_USER_READ is sent as Role" in p for p in script_problems(swapped))


def test_checker_reports_a_permission_missing_from_the_table() -> None:
    """A permission name Microsoft does not publish for that type is reported, not silently accepted."""
    script = SCRIPT.read_text(encoding="utf-8").replace(
        "graph_id oauth2PermissionScopes offline_access", "graph_id appRoles offline_access")
    problems = script_problems(script)
    assert any("offline_access (Application) is not in the published table" in p for p in problems), problems
