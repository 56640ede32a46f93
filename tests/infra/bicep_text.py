"""Just enough Bicep reading for the infra checks (no Bicep compiler can be installed here).

Bicep object literals are brace-delimited with one `key: value` per line, so finding a
resource by its declaration and matching braces is reliable for the files in infra/.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"


@cache
def read(rel: str) -> str:
    """Text of one file under infra/, comments removed (so commented-out code never counts)."""
    text = (INFRA / rel).read_text(encoding="utf-8")
    return "\n".join(_strip_comment(line) for line in text.splitlines())


def all_files() -> list[str]:
    """Every .bicep file under infra/, relative to infra/."""
    return sorted(p.relative_to(INFRA).as_posix() for p in INFRA.rglob("*.bicep"))


def _code_chars(text: str) -> list[tuple[int, str, bool]]:
    """(index, char, inside a string literal) for each character; handles \\' escapes."""
    out: list[tuple[int, str, bool]] = []
    in_string = False
    escaped = False
    for i, ch in enumerate(text):
        if in_string and escaped:
            escaped = False
        elif in_string and ch == "\\":
            escaped = True
        elif ch == "'":
            in_string = not in_string
            out.append((i, ch, True))
            continue
        out.append((i, ch, in_string))
    return out


def _strip_comment(line: str) -> str:
    for i, _ch, in_string in _code_chars(line):
        if not in_string and line.startswith("//", i):
            return line[:i]
    return line


def block_after(text: str, start: int) -> str:
    """The brace-balanced block that opens at the first '{' at or after start (braces in strings ignored)."""
    open_at = text.index("{", start)
    depth = 0
    for i, ch, in_string in _code_chars(text[open_at:]):
        if in_string:
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[open_at : open_at + i + 1]
    raise ValueError("unbalanced braces")


def resources(text: str, type_prefix: str) -> dict[str, str]:
    """Symbolic name -> body of every resource whose type starts with type_prefix (e.g. 'Microsoft.Web/sites@')."""
    out: dict[str, str] = {}
    declaration = r"^resource\s+(\w+)\s+'" + re.escape(type_prefix) + r"[^']*'\s*(?:existing\s*)?=\s*(\[)?"
    pattern = re.compile(declaration, re.M)
    for match in pattern.finditer(text):
        out[match.group(1)] = block_after(text, match.end() - (1 if match.group(2) else 0))
    return out


def top_level_keys(block: str) -> dict[str, str]:
    """key -> raw value text of the direct children of one object literal (one key per line)."""
    keys: dict[str, str] = {}
    depth = 0
    for line in block.splitlines():
        if depth == 1:
            match = re.match(r"^\s*'?([\w.-]+)'?\s*:\s*(.*)$", line)
            if match:
                keys[match.group(1)] = match.group(2).strip()
        depth += _brace_delta(line)
    return keys


def _brace_delta(line: str) -> int:
    delta = 0
    for _i, ch, in_string in _code_chars(line):
        if not in_string and ch in "{[":
            delta += 1
        elif not in_string and ch in "}]":
            delta -= 1
    return delta


def string_array(text: str, var_name: str) -> list[str]:
    """The string items of `var <name> = [ ... ]` (one quoted item per line)."""
    match = re.search(r"^var\s+" + re.escape(var_name) + r"\s*=\s*\[(.*?)^\]", text, re.M | re.S)
    if not match:
        raise AssertionError(f"var {var_name} not found")
    return re.findall(r"^\s*'([^']*)'\s*$", match.group(1), re.M)


def app_settings() -> dict[str, str]:
    """The function app's settings: keys of the Microsoft.Web/sites/config 'appsettings' resource."""
    text = read("app/api.bicep")
    for body in resources(text, "Microsoft.Web/sites/config@").values():
        if re.search(r"^\s*name:\s*'appsettings'", body, re.M):
            props = re.search(r"^\s*properties:\s*\{", body, re.M)
            assert props, "appsettings resource has no properties block"
            return top_level_keys(block_after(body, props.start()))
    raise AssertionError("no Microsoft.Web/sites/config 'appsettings' resource in infra/app/api.bicep")
