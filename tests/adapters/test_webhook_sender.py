"""The requests WebhookSender against real local servers: headers, Standard Webhooks signatures, status
handling, no redirects, time limits, TLS by name while connecting to the pinned address."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.adapters.webhook_sender import RequestsWebhookSender
from local.certs import ensure_ca
from tests.support.receiver import Receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ROTATED = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def _sender(**kw: Any) -> RequestsWebhookSender:
    return RequestsWebhookSender(local_mode=True, **kw)


def test_a_delivery_carries_standard_webhooks_headers_that_verify(receiver: Receiver) -> None:
    """POST with content type, webhook-id/-timestamp and one signature per secret; standardwebhooks verifies
    with either secret; the status and latency come back."""
    body = '{"type":"ping","timestamp":"2026-01-01T00:00:00.000Z","data":{}}'
    attempt = _sender().deliver(receiver.url, message_id="evt_01", timestamp=datetime.now(UTC), body=body,
                                secrets=[SECRET, ROTATED])
    assert attempt.delivered and attempt.status == 200 and attempt.latency_ms >= 0
    [got] = receiver.received
    assert got.headers["content-type"] == "application/json" and got.headers["webhook-id"] == "evt_01"
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    assert receiver.verify(SECRET, got)["type"] == "ping" and receiver.verify(ROTATED, got)["type"] == "ping"
    assert got.body.decode() == body


def test_redirects_are_not_followed_and_errors_are_reported(receiver: Receiver) -> None:
    """A 302 is a failed attempt (nothing follows it); a 500 is reported with its status."""
    for status in (302, 500, 410):
        receiver.answer = lambda headers, body, s=status: s  # type: ignore[misc]
        attempt = _sender().deliver(receiver.url, message_id="evt_2", timestamp=datetime.now(UTC), body="{}",
                                    secrets=[SECRET])
        assert (attempt.status, attempt.delivered, attempt.error) == (status, False, f"http_{status}")
    assert len(receiver.received) == 3


def test_a_slow_endpoint_times_out() -> None:
    """An endpoint slower than the time limit is a failed attempt with error timeout."""
    slow = Receiver(delay=1.5).start()
    try:
        attempt = _sender(timeout=(1.0, 0.5)).deliver(slow.url, message_id="evt_3", timestamp=datetime.now(UTC),
                                                      body="{}", secrets=[SECRET])
    finally:
        slow.stop()
    assert (attempt.status, attempt.error) == (None, "timeout")


def test_nobody_listening_is_a_connection_failure() -> None:
    """A refused connection is a failed attempt with error connection_failed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    attempt = _sender().deliver(f"http://127.0.0.1:{port}/hook", message_id="e", timestamp=datetime.now(UTC),
                                body="{}", secrets=[SECRET])
    assert (attempt.status, attempt.error) == (None, "connection_failed")


def test_the_connection_goes_to_the_checked_address_even_if_dns_changes(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the sender resolves the name once (loopback, allowed in local mode) and connects there;
    anything resolving the name again would get an internal address and fail. The request arrives, with the
    original Host, and TLS verified for the name."""
    ca = ensure_ca(tmp_path / "ca")
    server = Receiver(tls=(str(ca.server_cert_pem), str(ca.server_key_pem))).start()
    real = socket.getaddrinfo
    rebound: list[str] = []

    def rebinding(host: Any, *args: Any, **kw: Any) -> Any:
        if host == "localhost":
            rebound.append(host)
            return real("10.255.255.1", *args, **kw)
        return real(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    sender = _sender(verify=str(ca.ca_pem), resolver=lambda host, port: ["127.0.0.1"], timeout=(1.0, 2.0))
    try:
        attempt = sender.deliver(f"https://localhost:{server.port}/hook", message_id="evt_4",
                                 timestamp=datetime.now(UTC), body="{}", secrets=[SECRET])
    finally:
        server.stop()
    assert attempt.delivered and rebound == []
    assert server.received[0].headers["host"] == f"localhost:{server.port}"


def test_tls_is_verified_for_the_url_name_while_connecting_to_the_pinned_address(tmp_path: Path) -> None:
    """https://localhost verifies against the certificate's name; another name pinned to the same address
    fails TLS (the name is checked, not the address)."""
    ca = ensure_ca(tmp_path / "ca")
    server = Receiver(tls=(str(ca.server_cert_pem), str(ca.server_key_pem))).start()
    try:
        sender = _sender(verify=str(ca.ca_pem), resolver=lambda host, port: ["127.0.0.1"])
        good = sender.deliver(f"https://localhost:{server.port}/hook", message_id="evt_5",
                              timestamp=datetime.now(UTC), body="{}", secrets=[SECRET])
        wrong = sender.deliver(f"https://hooks.test:{server.port}/hook", message_id="evt_6",
                               timestamp=datetime.now(UTC), body="{}", secrets=[SECRET])
    finally:
        server.stop()
    assert good.delivered, good
    assert (wrong.status, wrong.error) == (None, "tls_failed")
    assert server.received[0].headers["host"] == f"localhost:{server.port}"
