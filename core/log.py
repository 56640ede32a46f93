"""Structured logs with a correlation id, and a last line of defence against leaks.

Code never logs tokens, secrets, clientState values or event content in the first
place; ``RedactingFilter`` additionally masks anything shaped like a bearer token,
JWT, or ``key=value`` secret that slips into a message, so one careless f-string does
not become a leak. ``tests/test_no_secrets_in_logs.py`` checks every record of the
suite.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

correlation_id: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="-")

_CORRELATION_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"eyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*"),
    re.compile(
        r"(?i)((?:client_secret|clientstate|client_state|refresh_token|access_token|code_verifier|"
        r"code|password|secret|token|sig|assertion|client_assertion)[\"']?\s*[=:]\s*[\"']?)[^\s&\"',}]+"
    ),
]


def redact(text: str) -> str:
    """Mask token-, JWT- and secret-shaped substrings."""
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "***", text)
    return text


def new_correlation_id(candidate: str | None = None) -> str:
    """Use the caller's id when it is well-formed; otherwise make one."""
    if candidate and _CORRELATION_RE.match(candidate):
        return candidate
    return uuid.uuid4().hex


@contextmanager
def correlation(cid: str) -> Iterator[str]:
    """Tag every log record inside the block with ``cid``."""
    token = correlation_id.set(cid)
    try:
        yield cid
    finally:
        correlation_id.reset(token)


def message_correlation(carried: str | None, message_id: str | None = None) -> contextlib.AbstractContextManager[str]:
    """The correlation scope of one queue message.

    Commands carry the id of the request that queued them (``carried``) so a booking
    can be followed from the HTTP call to the Outlook write; a message without one
    (timers, Graph notifications) uses its queue message id, else a fresh id.
    """
    return correlation(new_correlation_id(carried or message_id))


class RedactingFilter(logging.Filter):
    """Adds ``correlation_id`` to every record and redacts the rendered message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = correlation_id.get()
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not crash logging
            message = str(record.msg)
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg = cleaned
            record.args = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "correlationId": getattr(record, "correlation_id", correlation_id.get()),
        }
        for key in ("tenant", "event", "count", "status", "queue", "function", "durationMs", "route"):
            if hasattr(record, key):
                doc[key] = getattr(record, key)
        if record.exc_info and record.exc_info[0] is not None:
            doc["exception"] = record.exc_info[0].__name__
        return json.dumps(doc, default=str)


_configured = False


def configure_logging(level: str = "INFO", *, json_output: bool = False) -> None:
    """Install the redacting filter on the root handlers (idempotent)."""
    global _configured  # noqa: PLW0603 - process-wide logging setup happens once
    root = logging.getLogger()
    if not _configured:
        if not root.handlers:
            handler = logging.StreamHandler()
            text_format = "%(levelname)s %(name)s [%(correlation_id)s] %(message)s"
            handler.setFormatter(JsonFormatter() if json_output else logging.Formatter(text_format))
            root.addHandler(handler)
        for existing in root.handlers:
            existing.addFilter(RedactingFilter())
        _configured = True
    root.setLevel(level)
    for noisy in ("azure.core.pipeline.policies.http_logging_policy", "azure.identity", "urllib3", "msal"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
