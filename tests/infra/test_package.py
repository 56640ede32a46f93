"""The deployment package built from .funcignore holds the app and nothing else:
no tests, no local stack, no infra, no docs, no virtualenvs, no local settings."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_package", ROOT / "scripts" / "build_package.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("build_package", module)
    spec.loader.exec_module(module)
    return module


builder = _load_builder()

# Development-only top-level folders that must never ship.
DEV_ONLY_DIRS = (
    "tests", "local", "infra", "docs", "bench", "scripts", "node_modules",
    ".venv", ".venv-tools", ".git", ".local", ".azurite", "dist",
)


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Paths inside a zip built from the repository with scripts/build_package.py."""
    output = tmp_path_factory.mktemp("package") / "package.zip"
    try:
        files = builder.build(ROOT, output)
    except SystemExit as exc:  # the size cap: something big is not excluded
        pytest.fail(f"package build refused: {exc}")
    import zipfile

    with zipfile.ZipFile(output) as archive:
        names = archive.namelist()
    assert sorted(names) == sorted(files)
    return names


def test_package_contains_the_function_app(package: list[str]) -> None:
    """function_app.py, host.json, requirements.txt and the core/ and functions/ code are in the zip."""
    assert {"function_app.py", "host.json", "requirements.txt"} <= set(package)
    assert any(name.startswith("core/") and name.endswith(".py") for name in package)
    assert any(name.startswith("functions/") and name.endswith(".py") for name in package)
    assert "core/settings.py" in package


def test_package_has_no_development_only_files(package: list[str]) -> None:
    """Nothing under tests/, local/, infra/, docs/, virtualenvs or node_modules; no *.md, no local.settings.json."""
    leaked = [n for n in package if n.split("/", 1)[0] in DEV_ONLY_DIRS]
    assert not leaked, f"development-only files in the package: {leaked[:10]}"
    assert not [n for n in package if n.endswith(".md")]
    assert not [n for n in package if n.rsplit("/", 1)[-1] in ("local.settings.json", "azure.yaml", ".checkov.yaml")]
    assert not [n for n in package if "__pycache__/" in n or n.endswith(".pyc")]


def test_funcignore_excludes_every_development_only_folder() -> None:
    """.funcignore itself names each development-only folder (azd and func publish read it, not this script)."""
    rules = builder.parse_rules((ROOT / ".funcignore").read_text(encoding="utf-8").splitlines())
    kept = [d for d in DEV_ONLY_DIRS if not builder.is_ignored(d, True, rules)]
    assert not kept, f".funcignore does not exclude: {kept}"


@pytest.mark.parametrize(
    ("patterns", "path", "is_dir", "ignored"),
    [
        (["tests"], "tests", True, True),
        (["tests"], "core/tests", True, True),  # unanchored names match at any depth
        (["/tests"], "core/tests", True, False),  # a leading slash anchors to the root
        (["web/src"], "web/src", True, True),
        (["web/src"], "other/web/src", True, False),  # a slash inside anchors too
        (["*.md"], "docs/guide.md", False, True),
        (["*.md", "!KEEP.md"], "KEEP.md", False, False),  # the last matching rule wins
        (["build/"], "build", False, False),  # trailing slash: folders only
        (["build/"], "build", True, True),
        (["**/fixtures"], "a/b/fixtures", True, True),
        (["core/**/*.pyc"], "core/x/y.pyc", False, True),
        ([".venv"], ".venv-tools", True, False),  # exact names, not prefixes
        (["# comment", ""], "anything", False, False),
    ],
)
def test_funcignore_patterns_follow_gitignore_semantics(
    patterns: list[str], path: str, is_dir: bool, ignored: bool
) -> None:
    """The matcher reads .funcignore the way git reads .gitignore (anchoring, negation, folder-only rules)."""
    assert builder.is_ignored(path, is_dir, builder.parse_rules(patterns)) is ignored


def test_files_in_an_excluded_folder_cannot_be_re_included(tmp_path: Path) -> None:
    """As in git, '!' cannot resurrect a file whose folder is excluded: the folder is pruned."""
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "keep.txt").write_text("x")
    (tmp_path / "app.py").write_text("x")
    rules = builder.parse_rules(["secret", "!secret/keep.txt"])
    assert [p.as_posix() for p in builder.collect_files(tmp_path, rules)] == ["app.py"]


def test_build_refuses_an_oversized_package(tmp_path: Path) -> None:
    """A .funcignore that lets a virtualenv through fails the build instead of uploading it."""
    (tmp_path / "big.bin").write_bytes(b"\0" * (2 * 1024 * 1024))
    with pytest.raises(SystemExit, match=r"check \.funcignore"):
        builder.build(tmp_path, tmp_path / "dist" / "p.zip", max_mb=1)


# Markers of a test double: the in-memory fakes and fake gateway live under tests/support/.
TEST_DOUBLE_MARKERS = ("class InMemory", "class FakeCalendarGateway", "class FakeTokenProvider", "class FixedClock")


def test_package_ships_no_test_double_and_no_local_code(package: list[str]) -> None:
    """No shipped module defines a fake or imports tests/ or local/ (the fakes live under tests/support/)."""
    import re

    imports_dev = re.compile(r"^\s*(from|import)\s+(tests|local)(\.|\s)", re.MULTILINE)
    offenders: list[str] = []
    for name in package:
        if not name.endswith(".py"):
            continue
        text = (ROOT / name).read_text(encoding="utf-8")
        if imports_dev.search(text) or any(marker in text for marker in TEST_DOUBLE_MARKERS):
            offenders.append(name)
    assert not offenders, f"test doubles or local-only code in the package: {offenders}"
    assert not [n for n in package if n.rsplit("/", 1)[-1] in ("memory.py", "fake_graph.py")]
