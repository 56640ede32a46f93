"""Build the deployment zip the way `azd deploy` / `func publish` would: the project
folder minus everything `.funcignore` excludes (gitignore-style patterns).

Used by tests/infra/test_package.py to prove that tests, local/, infra/ and other
development-only files never reach Azure, and handy to inspect a package by hand:

    python scripts/build_package.py                 # -> dist/package.zip
    python scripts/build_package.py --list          # print the files instead

The Python dependencies are not vendored: Flex Consumption builds requirements.txt
remotely. A size cap stops a mistaken .funcignore from shipping a virtualenv.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import re
import sys
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MAX_MB = 50


@dataclass(frozen=True, slots=True)
class Rule:
    """One .funcignore line: a compiled pattern, whether it negates, and whether it only matches folders."""

    regex: re.Pattern[str]
    negate: bool
    dir_only: bool


def _translate(pattern: str) -> str:
    """Turn one gitignore glob into a regex over a POSIX relative path."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("/**", i) and i + 3 == len(pattern):
            out.append("/.*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(pattern[i]))
                i += 1
            else:
                out.append(fnmatch.translate(pattern[i : end + 1])[4:-3])
                i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


def parse_rules(lines: Iterable[str]) -> list[Rule]:
    """Parse .funcignore text with gitignore semantics (comments, !negation, trailing /, anchoring)."""
    rules: list[Rule] = []
    for raw in lines:
        line = raw.rstrip("\n").rstrip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        if negate:
            line = line[1:]
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        anchored = "/" in line
        line = line.lstrip("/")
        body = _translate(line)
        prefix = "^" if anchored else "^(?:.*/)?"
        rules.append(Rule(re.compile(prefix + body + "$"), negate, dir_only))
    return rules


def is_ignored(rel_path: str, is_dir: bool, rules: list[Rule]) -> bool:
    """Whether one path is excluded; the last matching rule wins, as in git."""
    ignored = False
    for rule in rules:
        if rule.dir_only and not is_dir:
            continue
        if rule.regex.match(rel_path):
            ignored = not rule.negate
    return ignored


def collect_files(root: Path, rules: list[Rule], extra_excludes: Iterable[Path] = ()) -> Iterator[PurePosixPath]:
    """Walk root, pruning excluded folders (their contents cannot be re-included, as in git)."""
    skip = {p.resolve() for p in extra_excludes}
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        rel_base = base.relative_to(root).as_posix()
        kept: list[str] = []
        for name in sorted(dirnames):
            rel = f"{name}" if rel_base == "." else f"{rel_base}/{name}"
            if (base / name).resolve() in skip or is_ignored(rel, True, rules):
                continue
            kept.append(name)
        dirnames[:] = kept
        for name in sorted(filenames):
            rel = f"{name}" if rel_base == "." else f"{rel_base}/{name}"
            if (base / name).resolve() in skip or is_ignored(rel, False, rules):
                continue
            yield PurePosixPath(rel)


def build(root: Path, output: Path, funcignore: Path | None = None, max_mb: int = DEFAULT_MAX_MB) -> list[str]:
    """Write the zip and return the archived paths; refuse packages over max_mb (uncompressed)."""
    ignore_file = funcignore or root / ".funcignore"
    rules = parse_rules(ignore_file.read_text(encoding="utf-8").splitlines()) if ignore_file.exists() else []
    files = list(collect_files(root, rules, extra_excludes=[output.parent if output.parent != root else output]))
    sizes = {f: (root / f).stat().st_size for f in files}
    total = sum(sizes.values())
    if total > max_mb * 1024 * 1024:
        biggest = sorted(sizes, key=lambda f: sizes[f], reverse=True)[:5]
        top_dirs = sorted({f.parts[0] for f in biggest})
        raise SystemExit(
            f"package would be {total / 1048576:.0f} MB (> {max_mb} MB): check .funcignore; "
            f"largest files are under {', '.join(top_dirs)}"
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for rel in files:
            archive.write(root / rel, rel.as_posix())
    return [f.as_posix() for f in files]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", type=Path, default=ROOT, help="project folder (default: the repository)")
    parser.add_argument("--output", type=Path, default=None, help="zip to write (default: <root>/dist/package.zip)")
    parser.add_argument("--max-mb", type=int, default=DEFAULT_MAX_MB, help="refuse bigger packages")
    parser.add_argument("--list", action="store_true", help="print the files that would be packaged; write nothing")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    output = (args.output or root / "dist" / "package.zip").resolve()
    if args.list:
        funcignore = root / ".funcignore"
        rules = parse_rules(funcignore.read_text(encoding="utf-8").splitlines()) if funcignore.exists() else []
        for rel in collect_files(root, rules, extra_excludes=[output.parent]):
            print(rel)
        return 0
    files = build(root, output, max_mb=args.max_mb)
    print(f"wrote {output} ({len(files)} files)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
