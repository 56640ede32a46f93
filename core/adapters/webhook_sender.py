"""WebhookSender over ``requests``: Standard Webhooks signatures, address checks and address pinning.

Every attempt (and every registration, ``check_url``):

1. checks the URL's shape (https only; http only to loopback in local mode) with
   ``core.domain.product_events.check_url_shape``;
2. resolves the host and refuses it if **any** address it resolves to is loopback (except
   in local mode), private, link-local, CGNAT, multicast, unspecified, reserved or a cloud
   metadata address (``blocked_address``), so a name cannot hide an internal address
   behind a public one;
3. connects to the address it just checked: the connection pool is keyed by that address
   and the request carries the original ``Host`` and, for https, the original name for SNI
   and certificate verification. A DNS answer that changes between the check and the
   connect (rebinding) therefore never reaches an unchecked address.

The POST: ``Content-Type: application/json``, ``webhook-id``, ``webhook-timestamp``
(seconds) and ``webhook-signature`` (``v1,<base64 HMAC-SHA256>`` per secret, space
separated, computed by the ``standardwebhooks`` package), 3 s to connect and 7 s for the
answer's headers (10 s in all), redirects not followed, no proxies, the response body
never read. Failures come back as a ``WebhookAttempt`` with a short error code; nothing
about the endpoint's answer is logged beyond its status.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import requests
from requests.adapters import HTTPAdapter
from standardwebhooks.webhooks import Webhook

from core.domain.errors import ValidationFailed
from core.domain.product_events import UrlParts, address_problem, blocked_address, check_url_shape
from core.ports import WebhookAttempt

log = logging.getLogger(__name__)

CONNECT_TIMEOUT: Final = 3.0
READ_TIMEOUT: Final = 7.0
USER_AGENT: Final = "m365-scheduling-integration-webhooks/1"
_PIN_ATTRIBUTE: Final = "_webhook_pinned_address"

Resolver = Callable[[str, int], list[str]]


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (IPv4 and IPv6), in the resolver's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in seen:
            seen.append(address)
    return seen


def sign(secret: str, message_id: str, timestamp: datetime, body: str) -> str:
    """One ``v1,<signature>`` for ``secret`` (the ``standardwebhooks`` package's scheme)."""
    return Webhook(secret).sign(message_id, timestamp.astimezone(UTC), body)


class _PinningAdapter(HTTPAdapter):
    """Connects to the address pinned on the request, never to what the URL's host resolves to now."""

    def build_connection_pool_key_attributes(  # type: ignore[override]
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        built = super().build_connection_pool_key_attributes(request, verify, cert)
        host_params: dict[str, Any] = dict(built[0])
        pool_kwargs: dict[str, Any] = dict(built[1])
        pinned = getattr(request, _PIN_ATTRIBUTE, None)
        if not isinstance(pinned, str):
            raise ValueError("webhook requests must be pinned to a checked address")
        original = host_params["host"]
        host_params["host"] = pinned
        if host_params.get("scheme") == "https":
            pool_kwargs["server_hostname"] = original
            pool_kwargs["assert_hostname"] = original
        return host_params, pool_kwargs


class RequestsWebhookSender:
    """The ``WebhookSender`` port (module docstring)."""

    def __init__(self, *, local_mode: bool, resolver: Resolver = resolve, verify: bool | str = True,
                 timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT)) -> None:
        self.local_mode = local_mode
        self.resolver = resolver
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy: it would connect for us, defeating the pinning
        self.session.verify = verify
        adapter = _PinningAdapter(pool_connections=16, pool_maxsize=32, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)

    def _addresses(self, parts: UrlParts) -> list[str]:
        try:
            found = self.resolver(parts.host, parts.port)
        except (OSError, UnicodeError) as exc:
            raise ValidationFailed("The URL's host name does not resolve.", code="url_unresolvable") from exc
        if not found:
            raise ValidationFailed("The URL's host name does not resolve.", code="url_unresolvable")
        for address in found:
            problem = blocked_address(address, local_mode=self.local_mode)
            if problem is not None:
                raise address_problem(problem)
        return found

    def check_url(self, url: str) -> None:
        self._addresses(check_url_shape(url, local_mode=self.local_mode))

    def deliver(
        self, url: str, *, message_id: str, timestamp: datetime, body: str, secrets: Sequence[str]
    ) -> WebhookAttempt:
        started = time.perf_counter()

        def took() -> int:
            return int((time.perf_counter() - started) * 1000)

        try:
            parts = check_url_shape(url, local_mode=self.local_mode)
            addresses = self._addresses(parts)
        except ValidationFailed as exc:
            code = "dns_failed" if exc.code == "url_unresolvable" else "address_refused"
            return WebhookAttempt(None, took(), code)
        signature = " ".join(sign(secret, message_id, timestamp, body) for secret in secrets)
        default_port = 443 if parts.scheme == "https" else 80
        host_header = parts.host if parts.port == default_port else f"{parts.host}:{parts.port}"
        if ":" in parts.host and not host_header.startswith("["):
            host_header = f"[{parts.host}]" if parts.port == default_port else f"[{parts.host}]:{parts.port}"
        headers = {
            "Host": host_header,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": message_id,
            "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": signature,
        }
        prepared = requests.Request("POST", url, headers=headers, data=body.encode("utf-8")).prepare()
        setattr(prepared, _PIN_ATTRIBUTE, addresses[0])
        try:
            response = self.session.send(prepared, timeout=self.timeout, allow_redirects=False,
                                         stream=True)
        except requests.exceptions.SSLError:
            return WebhookAttempt(None, took(), "tls_failed")
        except requests.exceptions.Timeout:
            return WebhookAttempt(None, took(), "timeout")
        except requests.exceptions.ConnectionError:
            return WebhookAttempt(None, took(), "connection_failed")
        except requests.exceptions.RequestException:
            return WebhookAttempt(None, took(), "request_failed")
        status = response.status_code
        response.close()  # the body is never read
        return WebhookAttempt(status, took(), None if 200 <= status < 300 else f"http_{status}")
