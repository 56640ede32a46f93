"""A scripted stand-in for the Azure CLI (and `sleep`, `azd`) on PATH, for testing our shell scripts.

A test writes a scenario: rules that match an `az` command line by substrings and answer it,
in order, with JSON (run through the real `--query` JMESPath and `-o` formatting, as the CLI
does) or with an error (stderr + exit 1, as `az rest` reports HTTP failures). The last answer
of a rule repeats. Every call is logged with the files it was handed (`--body @file`,
`--parameters @file`), so tests can check what a script wrote; `sleep` only logs its
argument, so retry back-off costs no time, and `azd` only logs its arguments.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_AZ = r'''#!{python}
import json, os, sys
import jmespath

scenario_path = os.environ["FAKE_AZ_SCENARIO"]
with open(scenario_path) as f:
    scenario = json.load(f)
state_path = scenario_path + ".state"
try:
    with open(state_path) as f:
        state = json.load(f)
except FileNotFoundError:
    state = {{}}
args = sys.argv[1:]
line = " ".join(args)
files = {{}}
for flag in ("--body", "--parameters"):
    if flag in args:
        value = args[args.index(flag) + 1]
        if value.startswith("@"):
            with open(value[1:]) as f:
                files[flag] = f.read()
with open(os.environ["FAKE_AZ_LOG"], "a") as f:
    f.write(json.dumps({{"args": args, "files": files}}) + "\n")

answer = None
for i, rule in enumerate(scenario["rules"]):
    if all(token in line for token in rule["match"]):
        used = state.get(str(i), 0)
        answers = rule["answers"]
        answer = answers[min(used, len(answers) - 1)]
        state[str(i)] = used + 1
        break
with open(state_path, "w") as f:
    json.dump(state, f)
if answer is None:
    sys.stderr.write("ERROR: fake az has no rule for: " + line + "\n")
    sys.exit(2)
if "error" in answer:
    sys.stderr.write("ERROR: " + answer["error"] + "\n")
    sys.exit(answer.get("exit", 1))
result = answer.get("json")
if "--query" in args:
    result = jmespath.search(args[args.index("--query") + 1], result)
output = "json"
for flag in ("-o", "--output"):
    if flag in args:
        output = args[args.index(flag) + 1]


def tsv(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (dict, list)):
        items = value.values() if isinstance(value, dict) else value
        return "\t".join(tsv(v) for v in items)
    return str(value)


if output == "none" or result is None and output == "tsv":
    pass
elif output == "tsv":
    if isinstance(result, list) and all(isinstance(r, (dict, list)) for r in result):
        for row in result:
            print(tsv(row))
    elif isinstance(result, list):
        for item in result:
            print(tsv(item))
    else:
        print(tsv(result))
else:
    print(json.dumps(result, indent=2))
'''

_SLEEP = r'''#!/bin/sh
echo "$1" >> "$FAKE_SLEEP_LOG"
'''

_AZD = r'''#!/bin/sh
echo "$*" >> "$FAKE_AZD_LOG"
'''


@dataclass
class Call:
    """One logged `az` invocation: its arguments and the files it read."""

    args: list[str]
    files: dict[str, str]

    @property
    def line(self) -> str:
        return " ".join(self.args)


@dataclass
class FakeAz:
    """A bin/ folder holding the fake `az` and `sleep`, and the run's logs."""

    root: Path
    rules: list[dict[str, Any]] = field(default_factory=list)

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def on(self, *match: str, answers: list[dict[str, Any]]) -> FakeAz:
        """Answer command lines containing every `match` substring with `answers`, in order."""
        self.rules.append({"match": list(match), "answers": answers})
        return self

    def install(self) -> None:
        self.bin.mkdir(parents=True, exist_ok=True)
        az = self.bin / "az"
        az.write_text(_AZ.format(python=sys.executable))
        az.chmod(0o755)
        for name, text in (("sleep", _SLEEP), ("azd", _AZD)):
            tool = self.bin / name
            tool.write_text(text)
            tool.chmod(0o755)
        (self.root / "scenario.json").write_text(json.dumps({"rules": self.rules}))

    def run(
        self, script: Path, env: dict[str, str], *args: str, interpreter: str = "sh"
    ) -> subprocess.CompletedProcess[str]:
        """Run `script` with only the fake tools (and the basic system ones) on PATH."""
        self.install()
        full_env = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "HOME": str(self.root),
            "FAKE_AZ_SCENARIO": str(self.root / "scenario.json"),
            "FAKE_AZ_LOG": str(self.root / "az.log"),
            "FAKE_SLEEP_LOG": str(self.root / "sleep.log"),
            "FAKE_AZD_LOG": str(self.root / "azd.log"),
            **env,
        }
        return subprocess.run(
            [interpreter, str(script), *args], env=full_env, capture_output=True, text=True, timeout=60, check=False,
            cwd=self.root,
        )

    def calls(self) -> list[Call]:
        log = self.root / "az.log"
        if not log.exists():
            return []
        return [Call(**json.loads(line)) for line in log.read_text().splitlines()]

    def azd_calls(self) -> list[str]:
        log = self.root / "azd.log"
        return log.read_text().splitlines() if log.exists() else []

    def sleeps(self) -> list[int]:
        log = self.root / "sleep.log"
        return [int(x) for x in log.read_text().split()] if log.exists() else []


def error(http: str, code: str, message: str = "") -> dict[str, Any]:
    """An `az rest` failure the way the CLI prints it: 'Forbidden({"error": ...})'."""
    return {"error": f'{http}({json.dumps({"error": {"code": code, "message": message or code}})})'}


def ok(body: Any) -> dict[str, Any]:
    """A successful JSON answer."""
    return {"json": body}

