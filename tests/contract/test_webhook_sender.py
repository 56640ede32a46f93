"""The WebhookSender contract, on the fake and on the requests adapter: which URLs may receive webhooks.

The same rules in both: https only (http to loopback in local mode), and a host whose name
resolves to any refused address (private, loopback, link-local, CGNAT, multicast,
unspecified, metadata) is 422 ``url_address_not_allowed``; at delivery, a refused address is
an attempt that failed with ``address_refused`` and sent nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.adapters.webhook_sender import RequestsWebhookSender
from core.domain.errors import ValidationFailed
from core.ports import WebhookSender
from tests.support.fake_webhooks import FakeWebhookSender

HOSTS = {
    "public.example": ["52.96.10.10"],
    "mixed.example": ["52.96.10.10", "10.0.0.8"],
    "metadata.example": ["169.254.169.254"],
    "cgnat.example": ["100.64.3.4"],
    "v6private.example": ["fd00::5"],
    "loopback.example": ["127.0.0.1"],
    "nowhere.example": [],
}


def _resolver(host: str, port: int) -> list[str]:
    if host in HOSTS:
        return list(HOSTS[host])
    return [host]  # an address literal resolves to itself


@pytest.fixture(params=["fake", "requests"])
def make_sender(request: pytest.FixtureRequest) -> object:
    def make(local_mode: bool = False) -> WebhookSender:
        if request.param == "fake":
            return FakeWebhookSender(local_mode=local_mode, hosts={k: list(v) for k, v in HOSTS.items()})
        return RequestsWebhookSender(local_mode=local_mode, resolver=_resolver)

    return make


@pytest.mark.parametrize(("url", "code"), [
    ("https://mixed.example/hook", "url_address_not_allowed"),
    ("https://metadata.example/hook", "url_address_not_allowed"),
    ("https://cgnat.example/hook", "url_address_not_allowed"),
    ("https://v6private.example/hook", "url_address_not_allowed"),
    ("https://loopback.example/hook", "url_address_not_allowed"),
    ("https://[::1]/hook", "url_address_not_allowed"),
    ("https://nowhere.example/hook", "url_unresolvable"),
    ("http://public.example/hook", "url_not_https"),
])
def test_unsafe_urls_are_refused_at_registration(make_sender: object, url: str, code: str) -> None:
    """Each refused URL is a ValidationFailed with its code, the same for the fake and the adapter."""
    sender = make_sender()  # type: ignore[operator]
    with pytest.raises(ValidationFailed) as caught:
        sender.check_url(url)
    assert caught.value.code == code


def test_public_https_urls_pass(make_sender: object) -> None:
    """A host resolving only to public addresses may receive webhooks."""
    make_sender().check_url("https://public.example/hook")  # type: ignore[operator]


def test_loopback_over_http_passes_only_in_local_mode(make_sender: object) -> None:
    """http://127.0.0.1 is fine in local mode, refused otherwise."""
    make_sender(True).check_url("http://127.0.0.1:9/hook")  # type: ignore[operator]
    with pytest.raises(ValidationFailed):
        make_sender(False).check_url("http://127.0.0.1:9/hook")  # type: ignore[operator]


def test_a_refused_address_at_delivery_sends_nothing(make_sender: object) -> None:
    """Delivering to a name that now resolves to a metadata address fails with address_refused."""
    sender = make_sender()  # type: ignore[operator]
    attempt = sender.deliver("https://metadata.example/hook", message_id="evt_1", timestamp=datetime.now(UTC),
                             body="{}", secrets=["whsec_" + "A" * 43])
    assert (attempt.status, attempt.error, attempt.delivered) == (None, "address_refused", False)
