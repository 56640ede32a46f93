"""infra/hooks/postdeploy.sh against a scripted Azure CLI: it creates the webhook key only on a
clear "absent", retries unclear answers with back-off and then fails without touching the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.infra.fake_az import FakeAz, error, ok

SCRIPT = Path(__file__).resolve().parents[2] / "infra" / "hooks" / "postdeploy.sh"
ENV = {"AZURE_RESOURCE_GROUP": "rg-prod", "SERVICE_API_NAME": "func-api-abc", "AZURE_KEY_VAULT_NAME": "kv-abc"}
EXISTING_KEY = "existing-key-value-0123456789"
BACKOFF = [5, 10, 20, 40, 80]

HOST_NOT_STARTED = error("Bad Request", "BadRequest", "Encountered an error (ServiceUnavailable) from host runtime.")
FORBIDDEN = error("Forbidden", "AuthorizationFailed", "The client does not have authorization to perform action")
SECRET_NOT_FOUND = error("Not Found", "SecretNotFound", "A secret with (name/id) webhook-url-code was not found")


def keys(**function_keys: str) -> dict[str, object]:
    """A listkeys answer with these function keys."""
    return ok({"masterKey": "master-secret", "functionKeys": function_keys, "systemKeys": {}})


@pytest.fixture
def az(tmp_path: Path) -> FakeAz:
    """A fake az that knows the subscription and restarts; each test scripts the rest."""
    fake = FakeAz(tmp_path)
    fake.on("account show", answers=[ok({"id": "00000000-0000-0000-0000-000000000001"})])
    fake.on("functionapp restart", answers=[ok(None)])
    return fake


def _puts(fake: FakeAz, url_part: str) -> list[str]:
    return [c.files["--body"] for c in fake.calls() if "--method put" in c.line and url_part in c.line]


def _key_puts(fake: FakeAz) -> list[str]:
    return _puts(fake, "/functionKeys/graph-webhook")


def _secret_puts(fake: FakeAz) -> list[str]:
    return _puts(fake, "/secrets/webhook-url-code")


def _restarted(fake: FakeAz) -> bool:
    return any("functionapp restart" in c.line for c in fake.calls())


def test_existing_key_and_secret_are_kept(az: FakeAz) -> None:
    """Key present and secret present: nothing is written and the app is not restarted."""
    az.on("listkeys", answers=[keys(**{"graph-webhook": EXISTING_KEY, "default": "d"})])
    az.on("--method get", "/secrets/webhook-url-code", answers=[ok({"id": "x"})])
    result = az.run(SCRIPT, ENV)
    assert result.returncode == 0, result.stderr
    assert _key_puts(az) == [] and _secret_puts(az) == [] and not _restarted(az)
    assert "keeping it" in result.stdout
    assert EXISTING_KEY not in result.stdout + result.stderr


def test_clearly_absent_key_is_created_and_stored(az: FakeAz) -> None:
    """functionKeys lacks graph-webhook: a random key is created, stored in the vault, the app restarted."""
    az.on("listkeys", answers=[keys(default="d")])
    az.on("--method put", "/functionKeys/graph-webhook", answers=[ok({"name": "graph-webhook"})])
    az.on("--method get", "/secrets/webhook-url-code", answers=[SECRET_NOT_FOUND])
    az.on("--method put", "/secrets/webhook-url-code", answers=[ok({"id": "x"})])
    result = az.run(SCRIPT, ENV)
    assert result.returncode == 0, result.stderr
    (key_body,) = _key_puts(az)
    (secret_body,) = _secret_puts(az)
    value = json.loads(key_body)["properties"]["value"]
    assert len(value) >= 48 and json.loads(secret_body)["properties"]["value"] == value
    assert _restarted(az)
    assert value not in result.stdout + result.stderr
    assert all(value not in c.line for c in az.calls()), "the key must never be on a command line"


def test_forbidden_is_retried_with_backoff_then_fails_without_creating_a_key(az: FakeAz) -> None:
    """A persistent 403 from listkeys is not "no key": five back-off sleeps, exit 1, no key or secret written."""
    az.on("listkeys", answers=[FORBIDDEN])
    result = az.run(SCRIPT, ENV)
    assert result.returncode == 1
    assert _key_puts(az) == [] and _secret_puts(az) == [] and not _restarted(az)
    assert az.sleeps() == BACKOFF
    assert "no clear answer after 6 attempts" in result.stderr and "Forbidden" in result.stderr


def test_host_not_started_then_started_keeps_the_existing_key(az: FakeAz) -> None:
    """Two 'host not started' answers, then the key: it is kept after two back-off sleeps."""
    az.on("listkeys", answers=[HOST_NOT_STARTED, HOST_NOT_STARTED, keys(**{"graph-webhook": EXISTING_KEY})])
    az.on("--method get", "/secrets/webhook-url-code", answers=[ok({"id": "x"})])
    result = az.run(SCRIPT, ENV)
    assert result.returncode == 0, result.stderr
    assert az.sleeps() == [5, 10]
    assert _key_puts(az) == [] and _secret_puts(az) == []


def test_host_not_started_then_started_without_the_key_creates_it(az: FakeAz) -> None:
    """'Host not started', then a clear answer without the key: only then is a key created."""
    az.on("listkeys", answers=[HOST_NOT_STARTED, keys()])
    az.on("--method put", "/functionKeys/graph-webhook", answers=[ok({})])
    az.on("--method get", "/secrets/webhook-url-code", answers=[SECRET_NOT_FOUND])
    az.on("--method put", "/secrets/webhook-url-code", answers=[ok({})])
    result = az.run(SCRIPT, ENV)
    assert result.returncode == 0, result.stderr
    assert az.sleeps() == [5]
    assert len(_key_puts(az)) == 1 and len(_secret_puts(az)) == 1


def test_answer_without_function_keys_is_not_taken_as_absent(az: FakeAz) -> None:
    """A 200 without a functionKeys object (host still starting) is unclear: retried, then a loud failure."""
    az.on("listkeys", answers=[ok({"masterKey": None})])
    result = az.run(SCRIPT, ENV)
    assert result.returncode == 1
    assert _key_puts(az) == []
    assert "without the host's functionKeys" in result.stderr


def test_existing_key_is_copied_to_a_missing_secret(az: FakeAz) -> None:
    """Key present, secret 404: the existing key (not a new one) is written to the vault."""
    az.on("listkeys", answers=[keys(**{"graph-webhook": EXISTING_KEY})])
    az.on("--method get", "/secrets/webhook-url-code", answers=[SECRET_NOT_FOUND])
    az.on("--method put", "/secrets/webhook-url-code", answers=[ok({})])
    result = az.run(SCRIPT, ENV)
    assert result.returncode == 0, result.stderr
    assert _key_puts(az) == []
    (secret_body,) = _secret_puts(az)
    assert json.loads(secret_body)["properties"]["value"] == EXISTING_KEY
    assert EXISTING_KEY not in result.stdout + result.stderr


def test_unreadable_secret_is_not_taken_as_absent(az: FakeAz) -> None:
    """A 403 on the vault secret is retried and then fails: the secret is not overwritten blindly."""
    az.on("listkeys", answers=[keys(**{"graph-webhook": EXISTING_KEY})])
    az.on("--method get", "/secrets/webhook-url-code", answers=[FORBIDDEN])
    result = az.run(SCRIPT, ENV)
    assert result.returncode == 1
    assert _secret_puts(az) == [] and not _restarted(az)
    assert az.sleeps() == BACKOFF


def test_webhook_vault_name_overrides_the_main_vault(az: FakeAz) -> None:
    """With WEBHOOK_KEY_VAULT_NAME set, the secret is read and written in that vault."""
    az.on("listkeys", answers=[keys(**{"graph-webhook": EXISTING_KEY})])
    az.on("--method get", "/vaults/kvw-abc/secrets/webhook-url-code", answers=[SECRET_NOT_FOUND])
    az.on("--method put", "/vaults/kvw-abc/secrets/webhook-url-code", answers=[ok({})])
    result = az.run(SCRIPT, {**ENV, "WEBHOOK_KEY_VAULT_NAME": "kvw-abc"})
    assert result.returncode == 0, result.stderr
    assert len(_secret_puts(az)) == 1
