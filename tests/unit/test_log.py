"""Log records are redacted and carry the correlation id."""

from __future__ import annotations

import logging

import pytest

from core.log import RedactingFilter, correlation, new_correlation_id, redact


def test_tokens_and_secrets_are_masked() -> None:
    """Bearer tokens, JWTs and key=value secrets never survive into a log line."""
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlAAAA"
    text = f"Authorization: Bearer abc.def.ghi token={jwt} client_secret=hunter2 clientState=s3cr3t&x=1"
    out = redact(text)
    for secret in ("abc.def.ghi", jwt, "hunter2", "s3cr3t"):
        assert secret not in out
    assert "x=1" in out


def test_filter_adds_correlation_id_and_redacts_args(caplog: pytest.LogCaptureFixture) -> None:
    """A record formatted with a secret argument is redacted and tagged with the request's id."""
    logger = logging.getLogger("test.redaction")
    handler_filter = RedactingFilter()
    caplog.handler.addFilter(handler_filter)
    try:
        with correlation("req-123"), caplog.at_level(logging.INFO):
            logger.info("refresh_token=%s", "rt-very-secret")
    finally:
        caplog.handler.removeFilter(handler_filter)
    record = caplog.records[-1]
    assert record.correlation_id == "req-123"  # type: ignore[attr-defined]
    assert "rt-very-secret" not in caplog.text


def test_correlation_ids_from_callers_are_validated() -> None:
    """A well-formed caller id is kept; anything else is replaced."""
    assert new_correlation_id("abc-123") == "abc-123"
    assert new_correlation_id("bad id\nwith newline") != "bad id\nwith newline"
    assert len(new_correlation_id(None)) == 32
