"""azure.yaml is what azd accepts (its published JSON schema) and `azd up` provisions before
it packages, because the web service's prepackage hook needs provisioning outputs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft201909Validator

from tests.infra import bicep_text

ROOT = Path(__file__).resolve().parents[2]
# Azure/azure-dev schemas/v1.0/azure.yaml.json (commit in ../shared/azure/README.md).
SCHEMA = ROOT.parent / "shared" / "azure" / "azd" / "azure.yaml.v1.json"
# What azd runs for `azd up` when azure.yaml has no workflows.up (azd-up-workflow docs:
# packaging, then provisioning, then deployment).
AZD_DEFAULT_UP = ["package --all", "provision", "deploy --all"]
# The azd environment values web/write-config.mjs refuses to run without.
WRITE_CONFIG_NEEDS = ("API_BASE_URL", "WEB_URL", "ENTRA_CLIENT_ID")


def _load(text: str) -> dict[str, Any]:
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def schema_errors(document: dict[str, Any]) -> list[str]:
    """Every violation of azd's schema, as 'path: message' lines.

    The schema leaves the top level open (additionalProperties: true), so a misspelt
    top-level key such as `workflow:` would be silently ignored by azd; it is reported here too.
    """
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = Draft201909Validator(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    out = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]
    out += [f"<root>: unknown top-level key {key!r}" for key in document if key not in schema["properties"]]
    return out


def up_steps(document: dict[str, Any]) -> list[str]:
    """The azd commands `azd up` runs, in order (azd's default when workflows.up is absent)."""
    workflow = document.get("workflows", {}).get("up")
    if workflow is None:
        return list(AZD_DEFAULT_UP)
    steps = workflow["steps"] if isinstance(workflow, dict) else workflow
    out: list[str] = []
    for step in steps:
        command = step["azd"]
        out.append(command if isinstance(command, str) else " ".join(command["args"]))
    return out


def provision_precedes_packaging(steps: list[str]) -> bool:
    """True when `provision` runs before every step that packages (package or deploy)."""
    verbs = [s.split()[0] for s in steps]
    if "provision" not in verbs or "deploy" not in verbs:
        return False
    first_provision = verbs.index("provision")
    return all(i > first_provision for i, v in enumerate(verbs) if v in ("package", "deploy"))


def test_azure_yaml_is_valid_against_azd_schema() -> None:
    """The checked-in azure.yaml has no key or value azd's v1.0 schema rejects."""
    assert schema_errors(_load((ROOT / "azure.yaml").read_text(encoding="utf-8"))) == []


def test_schema_check_reports_misspelt_keys_and_bad_values() -> None:
    """Seeded mistakes are reported: a misspelt hook, a misspelt top-level key, an unknown hook shell."""
    original = (ROOT / "azure.yaml").read_text(encoding="utf-8")
    hook_typo = schema_errors(_load(original.replace("\n  postdeploy:", "\n  postdeploi:")))
    assert any(e.startswith("hooks:") and "postdeploi" in e for e in hook_typo), hook_typo
    top_typo = schema_errors(_load(original.replace("\nworkflows:", "\nworkflow:")))
    assert any("'workflow'" in e for e in top_typo), top_typo
    bad_shell = _load(original)
    bad_shell["hooks"]["postdeploy"]["posix"]["shell"] = "fish"
    assert any(e.startswith("hooks/postdeploy:") for e in schema_errors(bad_shell))


def test_azd_up_provisions_before_it_packages_or_deploys() -> None:
    """workflows.up runs provision first, then deploy --all (which packages with the outputs present)."""
    steps = up_steps(_load((ROOT / "azure.yaml").read_text(encoding="utf-8")))
    assert provision_precedes_packaging(steps), steps
    assert any(s.split()[0] == "deploy" and "--all" in s.split() for s in steps), steps


def test_default_azd_up_order_is_detected_as_wrong() -> None:
    """Without workflows.up (azd's package-provision-deploy order) the order check fails."""
    document = _load((ROOT / "azure.yaml").read_text(encoding="utf-8"))
    document.pop("workflows")
    assert not provision_precedes_packaging(up_steps(document))
    swapped = {"workflows": {"up": {"steps": [{"azd": "deploy --all"}, {"azd": "provision"}]}}}
    assert not provision_precedes_packaging(up_steps(swapped))


def test_write_config_inputs_are_provisioning_outputs() -> None:
    """Every value the web prepackage hook needs is an output of infra/main.bicep (so provisioning supplies it)."""
    document = _load((ROOT / "azure.yaml").read_text(encoding="utf-8"))
    assert document["services"]["web"]["hooks"]["prepackage"]["run"] == "node web/write-config.mjs"
    script = (ROOT / "web" / "write-config.mjs").read_text(encoding="utf-8")
    needed = set(re.findall(r'need\("(\w+)"\)', script))
    assert needed == set(WRITE_CONFIG_NEEDS), needed
    outputs = set(re.findall(r"^output\s+(\w+)\s", bicep_text.read("main.bicep"), re.M))
    assert needed <= outputs, needed - outputs
