"""The two Mailer adapters: ACS Email (through a fake EmailClient) and the local outbox folder."""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import responses
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError

from core.adapters.mailer_acs import AcsMailer
from core.adapters.mailer_local import LocalOutboxMailer
from core.domain.errors import DependencyError
from core.settings import Settings

SENDER = "DoNotReply@alerts.example.com"
MI_CLIENT = "99999999-9999-4999-8999-999999999999"


@dataclass
class FakePoller:
    outcome: MutableMapping[str, Any] | Exception
    timeouts: list[float | None] = field(default_factory=list)

    def result(self, timeout: float | None = None) -> MutableMapping[str, Any]:
        self.timeouts.append(timeout)
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


@dataclass
class FakeEmailClient:
    """Stands in for azure.communication.email.EmailClient: records messages, answers as configured."""

    outcome: MutableMapping[str, Any] | Exception = field(default_factory=lambda: {"id": "op-1", "status": "Succeeded"})
    raise_on_send: Exception | None = None
    sent: list[MutableMapping[str, Any]] = field(default_factory=list)
    pollers: list[FakePoller] = field(default_factory=list)

    def begin_send(self, message: MutableMapping[str, Any], **kwargs: Any) -> FakePoller:
        if self.raise_on_send is not None:
            raise self.raise_on_send
        self.sent.append(message)
        poller = FakePoller(self.outcome)
        self.pollers.append(poller)
        return poller


def test_acs_sends_plain_text_from_the_configured_sender() -> None:
    """One message: sender, one recipient, subject and plainText only (no HTML), waited for with a timeout."""
    client = FakeEmailClient()
    AcsMailer(client, SENDER, timeout=12).send("owner@contoso.test", "Subject", "Body text")
    assert client.sent == [
        {
            "senderAddress": SENDER,
            "recipients": {"to": [{"address": "owner@contoso.test"}]},
            "content": {"subject": "Subject", "plainText": "Body text"},
        }
    ]
    assert client.pollers[0].timeouts == [12]


@pytest.mark.parametrize(
    ("client", "code"),
    [
        (FakeEmailClient(outcome={"id": "op-1", "status": "Failed", "error": {"code": "x"}}), "mail_not_sent"),
        (FakeEmailClient(raise_on_send=HttpResponseError(message="503")), "mailer_unavailable"),
        (FakeEmailClient(raise_on_send=ServiceRequestError(message="dns")), "mailer_unavailable"),
        (FakeEmailClient(outcome=HttpResponseError(message="poll failed")), "mailer_unavailable"),
        (FakeEmailClient(raise_on_send=ClientAuthenticationError(message="no role")), "mailer_unauthorized"),
        (FakeEmailClient(outcome=TimeoutError()), "mailer_unavailable"),
    ],
)
def test_acs_failures_become_dependency_errors(client: FakeEmailClient, code: str) -> None:
    """Any SDK failure or an unsuccessful final status is a retryable DependencyError with a stable code."""
    with pytest.raises(DependencyError) as caught:
        AcsMailer(client, SENDER).send("owner@contoso.test", "s", "t")
    assert caught.value.code == code


def _settings(**extra: str) -> Settings:
    env = {
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "ENTRA_CLIENT_ID": "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa",
        "ENTRA_CREDENTIAL": "secret",
        "PUBLIC_BASE_URL": "https://func.example.com",
        "APP_URL": "https://app.example.com",
        "KEY_VAULT_URI": "https://kv-test.vault.azure.net/",
        **extra,
    }
    return Settings.from_env(env)


def test_acs_from_settings_sends_through_the_endpoint_as_the_user_assigned_identity() -> None:
    """The real SDK path: an IMDS token for AZURE_CLIENT_ID, then POST emails:send on ACS_ENDPOINT and one poll."""
    settings = _settings(
        ACS_ENDPOINT="https://alerts.communication.azure.com", ALERT_SENDER_ADDRESS=SENDER, AZURE_CLIENT_ID=MI_CLIENT
    )
    operation = "https://alerts.communication.azure.com/emails/operations/op1?api-version=2025-09-01"
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        imds = mock.add(
            responses.GET,
            re.compile(r"http://169\.254\.169\.254/metadata/identity/oauth2/token.*"),
            json={"access_token": "mi-token", "expires_in": "3600", "expires_on": "9999999999",
                  "resource": "https://communication.azure.com", "token_type": "Bearer"},
        )
        send = mock.add(
            responses.POST,
            re.compile(r"https://alerts\.communication\.azure\.com/emails:send.*"),
            status=202,
            json={"id": "op1", "status": "Running"},
            headers={"Operation-Location": operation, "Retry-After": "0"},
        )
        mock.add(responses.GET, operation, json={"id": "op1", "status": "Succeeded"})
        AcsMailer.from_settings(settings).send("owner@contoso.test", "Subject", "Body")
    assert f"client_id={MI_CLIENT}" in (imds.calls[0].request.url or "")
    request = send.calls[0].request
    assert request.headers["Authorization"] == "Bearer mi-token"
    body = json.loads(request.body or b"{}")
    assert body["senderAddress"] == SENDER and body["content"] == {"subject": "Subject", "plainText": "Body"}


def test_acs_needs_endpoint_and_sender() -> None:
    """Without ACS settings (possible only in local mode) the ACS mailer refuses to build, with a code saying why."""
    with pytest.raises(DependencyError) as caught:
        AcsMailer.from_settings(_settings(LOCAL_MODE="true"))
    assert caught.value.code == "mailer_not_configured"


def test_outbox_writes_one_private_json_file_per_message(tmp_path: Path) -> None:
    """Each message is its own 0600 file in a 0700 folder, readable back in order."""
    outbox = tmp_path / "outbox"
    mailer = LocalOutboxMailer(outbox)
    mailer.send("owner@contoso.test", "First", "one")
    mailer.send("owner@contoso.test", "Second", "two\nlines")
    files = sorted(outbox.glob("*.json"))
    assert len(files) == 2
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    assert stat.S_IMODE(outbox.stat().st_mode) == 0o700
    assert [(m["to"], m["subject"], m["text"]) for m in mailer.messages()] == [
        ("owner@contoso.test", "First", "one"),
        ("owner@contoso.test", "Second", "two\nlines"),
    ]
    assert not list(outbox.glob(".*.tmp"))


def test_outbox_that_cannot_be_written_is_a_dependency_error(tmp_path: Path) -> None:
    """A file where the folder should be (or no permission) makes the send fail visibly, not silently."""
    blocker = tmp_path / "outbox"
    blocker.write_text("not a folder")
    with pytest.raises(DependencyError):
        LocalOutboxMailer(blocker).send("o@x.test", "s", "t")
    assert LocalOutboxMailer(tmp_path / "missing").messages() == []
    assert os.path.isfile(blocker)
