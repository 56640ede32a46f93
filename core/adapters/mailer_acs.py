"""Owner-alert email through Azure Communication Services Email, signed in with the managed identity.

``AcsMailer.from_settings`` builds an ``azure.communication.email.EmailClient`` for
``ACS_ENDPOINT`` with ``ManagedIdentityCredential(client_id=AZURE_CLIENT_ID)`` (no
connection string or key anywhere). The SDKs are imported lazily so importing this
module costs nothing in processes that never send mail. Sending waits for the
operation to finish (bounded by ``timeout``); any SDK failure or a final status other
than ``Succeeded`` becomes ``DependencyError`` (the queue retries the alert), and
neither the recipient nor the text is logged.

    azure.core HttpResponseError / ServiceRequestError / timeout   -> DependencyError
    ClientAuthenticationError (managed identity has no role)        -> DependencyError ``mailer_unauthorized``
    poller result status != Succeeded                               -> DependencyError ``mail_not_sent``
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any, Protocol

from core.domain.errors import DependencyError
from core.settings import Settings

log = logging.getLogger("core.adapters.mailer_acs")

DEFAULT_TIMEOUT_SECONDS = 60.0


class _Poller(Protocol):
    def result(self, timeout: float | None = None) -> MutableMapping[str, Any]: ...


class EmailSender(Protocol):
    """The slice of ``azure.communication.email.EmailClient`` this adapter uses (tests pass a fake)."""

    def begin_send(self, message: MutableMapping[str, Any], **kwargs: Any) -> _Poller: ...


class AcsMailer:
    """``Mailer`` over ACS Email."""

    def __init__(self, client: EmailSender, sender_address: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self._client = client
        self._sender = sender_address
        self._timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> AcsMailer:
        """The deployed mailer: ``ACS_ENDPOINT`` + ``ALERT_SENDER_ADDRESS``, managed identity auth."""
        if not settings.acs_endpoint or not settings.alert_sender_address:
            raise DependencyError(
                "Owner alerts need ACS_ENDPOINT and ALERT_SENDER_ADDRESS.", code="mailer_not_configured"
            )
        from azure.communication.email import EmailClient
        from azure.identity import ManagedIdentityCredential

        credential = ManagedIdentityCredential(client_id=settings.managed_identity_client_id)
        client = EmailClient(settings.acs_endpoint, credential)
        return cls(client, settings.alert_sender_address)

    @staticmethod
    def message(sender: str, to: str, subject: str, text: str) -> dict[str, Any]:
        """The ACS Email request body: plain text only, no HTML."""
        return {
            "senderAddress": sender,
            "recipients": {"to": [{"address": to}]},
            "content": {"subject": subject, "plainText": text},
        }

    def send(self, to: str, subject: str, text: str) -> None:
        from azure.core.exceptions import AzureError, ClientAuthenticationError

        try:
            poller = self._client.begin_send(self.message(self._sender, to, subject, text))
            result = poller.result(timeout=self._timeout)
        except ClientAuthenticationError as exc:
            log.error("ACS Email refused the managed identity (check its role on the ACS resource)")
            raise DependencyError("The mail service refused our identity.", code="mailer_unauthorized") from exc
        except AzureError as exc:
            log.warning("ACS Email send failed: %s", type(exc).__name__)
            raise DependencyError("The mail service is unavailable.", code="mailer_unavailable") from exc
        except TimeoutError as exc:
            raise DependencyError("The mail service did not answer in time.", code="mailer_unavailable") from exc
        status = str((result or {}).get("status") or "")
        if status.lower() != "succeeded":
            log.warning("ACS Email finished with status %s", status or "unknown")
            raise DependencyError("The mail service did not send the message.", code="mail_not_sent")
