"""The domain and services layers stay free of vendor SDKs."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("azure", "msal", "requests", "jwt", "local")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_domain_and_services_import_no_sdk() -> None:
    """core/domain and core/services import no azure, msal, requests or PyJWT (adapters do that)."""
    offenders = []
    for folder in ("core/domain", "core/services"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            bad = _imports(path) & set(FORBIDDEN)
            if bad:
                offenders.append(f"{path.relative_to(ROOT)}: {sorted(bad)}")
    assert offenders == []


def test_deployed_code_never_imports_local() -> None:
    """Nothing deployed (core/, functions/, function_app.py) imports the local/ tooling."""
    files = [ROOT / "function_app.py", *(ROOT / "core").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]
    offenders = [str(p.relative_to(ROOT)) for p in files if "local" in _imports(p)]
    assert offenders == []
