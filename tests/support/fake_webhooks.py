"""A fake ``WebhookSender``: the same URL rules as the real adapter, a scripted receiver, a record of every POST.

Name resolution is a table (``hosts``: name -> addresses; unknown names resolve to a public
address), so unit tests prove the private-address rules without DNS. Every delivery is
recorded with the exact headers the real adapter sends, signed by the ``standardwebhooks``
package, so tests verify signatures the way a receiver would.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from core.adapters.webhook_sender import sign
from core.domain.errors import ValidationFailed
from core.domain.product_events import address_problem, blocked_address, check_url_shape
from core.ports import WebhookAttempt

PUBLIC_ADDRESS = "52.96.10.10"


@dataclass(frozen=True, slots=True)
class SentWebhook:
    url: str
    headers: dict[str, str]
    body: str

    @property
    def event_id(self) -> str:
        return self.headers["webhook-id"]

    def verify(self, secret: str) -> Any:
        """The payload when one of the ``v1`` signatures is ``secret``'s (``WebhookVerificationError`` otherwise).

        The signature is recomputed by the ``standardwebhooks`` package; its ``verify`` also compares the
        timestamp with the wall clock, which unit tests move by days, so the end-to-end tests (real
        time, a real receiver) are where ``Webhook.verify`` itself runs.
        """
        at = datetime.fromtimestamp(int(self.headers["webhook-timestamp"]), UTC)
        expected = Webhook(secret).sign(self.headers["webhook-id"], at, self.body)
        if expected not in self.headers["webhook-signature"].split(" "):
            raise WebhookVerificationError("No matching signature found")
        return json.loads(self.body)


Answer = int | str | None  # a status, an error code (no response), or None for 200


@dataclass
class FakeWebhookSender:
    local_mode: bool = False
    hosts: dict[str, list[str]] = field(default_factory=dict)
    sent: list[SentWebhook] = field(default_factory=list)
    # Per URL, the answers of the next attempts in order (then ``default``).
    script: dict[str, list[Answer]] = field(default_factory=dict)
    default: Answer = 200
    answer: Callable[[SentWebhook], Answer] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _check(self, url: str) -> None:
        parts = check_url_shape(url, local_mode=self.local_mode)
        addresses = self.hosts.get(parts.host)
        if addresses is None and parts.host == "localhost":
            addresses = ["127.0.0.1"]
        if addresses is None:
            addresses = [parts.host] if blocked_address(parts.host, local_mode=True) != "address_invalid" else [
                PUBLIC_ADDRESS]
        if not addresses:
            raise ValidationFailed("The URL's host name does not resolve.", code="url_unresolvable")
        for address in addresses:
            problem = blocked_address(address, local_mode=self.local_mode)
            if problem is not None:
                raise address_problem(problem)

    def check_url(self, url: str) -> None:
        self._check(url)

    def deliver(
        self, url: str, *, message_id: str, timestamp: datetime, body: str, secrets: Sequence[str]
    ) -> WebhookAttempt:
        try:
            self._check(url)
        except ValidationFailed:
            return WebhookAttempt(None, 0, "address_refused")
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": " ".join(sign(s, message_id, timestamp, body) for s in secrets),
        }
        sent = SentWebhook(url, headers, body)
        with self._lock:
            self.sent.append(sent)
            queued = self.script.get(url)
            answer = queued.pop(0) if queued else (self.answer(sent) if self.answer else self.default)
        if isinstance(answer, str):
            return WebhookAttempt(None, 5, answer)
        status = 200 if answer is None else answer
        return WebhookAttempt(status, 5, None if 200 <= status < 300 else f"http_{status}")

    def ids(self) -> list[str]:
        return [s.event_id for s in self.sent]
