"""Graph's error envelope -> the service's error tree, by HTTP status and ``error.code``.

Graph answers ``{"error": {"code", "message", "innerError": {"request-id", "date"}}}``.
The mapping uses the status, the code and the *shape of the request path* (is it a user,
or something inside a user's mailbox?), never the message text: Microsoft rewords
messages, and they can contain addresses, so they are not copied into our errors.

    Graph answer                                        -> error (core.domain.errors)
    ├── code MailboxNotEnabledForRESTAPI (any status)    -> MailboxUnavailable
    ├── code ErrorInvalidUser (any status)               -> UserNotFound
    ├── code ExtensionError, 403 on a mailbox             -> OutsideAppScope (application policy)
    ├── code ExtensionError, 404 on a mailbox             -> MailboxUnavailable (on-premises mailbox)
    ├── 401                                              -> GraphAuthError
    ├── 403 on /users/{id}/... (a mailbox)               -> OutsideAppScope
    ├── 404 Request_ResourceNotFound on /users/{id}[/..] -> UserNotFound
    ├── other 404                                        -> ItemNotFound
    ├── 409, 412                                         -> GraphConflict
    ├── 429, or 503/504 with Retry-After (budget spent)  -> Throttled(retry_after)
    ├── 503/504 without Retry-After, other 5xx           -> TransientGraphError(retry_after)
    └── other 4xx (403 outside a mailbox included)       -> GraphRequestRejected

Codes are compared case-insensitively: concepts/errors.md lists ``extensionError`` ("the mailbox
is located on premises and the Exchange server does not support federated Microsoft Graph
requests, or an application policy prevents the application from accessing the mailbox"),
Graph sends ``ExtensionError``. A 400 ``ExtensionError`` stays ``GraphRequestRejected``: Graph
also uses it to refuse a subscription expiry beyond the maximum ("Subscription expiration can
only be 4230 minutes in the future.", microsoftgraph/microsoft-graph-docs-contrib#7726), which
the subscription service must see as a refused lifetime.

``graph_code`` and ``status`` are kept on every ``GraphError``; ``details`` carries
Graph's ``request-id`` (what Microsoft support asks for), never the message. The one thing
read from a message is the number in that documented lifetime refusal: it becomes
``details["max_lifetime_minutes"]``, and only an ``ExtensionError`` carrying it is a refused
lifetime (``core/services/subscriptions.py``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from core.domain.errors import (
    GraphAuthError,
    GraphConflict,
    GraphError,
    GraphRequestRejected,
    ItemNotFound,
    MailboxUnavailable,
    OutsideAppScope,
    ServiceError,
    Throttled,
    TransientGraphError,
    UserNotFound,
)

RETRYABLE_STATUSES = frozenset({429, 503, 504})
_MAILBOX_UNAVAILABLE_CODES = frozenset({"mailboxnotenabledforrestapi", "mailboxnotsupportedforrestapi"})
_EXTENSION_ERROR = "extensionerror"
_LIFETIME_REFUSED = re.compile(r"subscription expiration can only be (\d{1,7}) minutes in the future", re.I)
MAX_LIFETIME_DETAIL = "max_lifetime_minutes"
_USER_ROOT = re.compile(r"^/users/[^/]+/?$", re.I)
_USER_CHILD = re.compile(r"^/users/[^/]+/.+", re.I)


def graph_error_code(payload: Any) -> str | None:
    """``error.code`` of a Graph error envelope, if the payload is one."""
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            return str(error["code"])
    return None


def _request_id(payload: Any, headers: Any = None) -> str | None:
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict):
            inner = error.get("innerError") or error.get("innererror")
            if isinstance(inner, dict):
                rid = inner.get("request-id") or inner.get("requestId")
                if isinstance(rid, str):
                    return rid
    if headers is not None:
        rid = headers.get("request-id")
        if isinstance(rid, str):
            return rid
    return None


def parse_retry_after(value: Any, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent/garbled."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def error_from_graph(
    status: int,
    payload: Any,
    path: str,
    *,
    retry_after: float | None = None,
    retry_after_given: bool = False,
    headers: Any = None,
) -> ServiceError:
    """The most specific error for a Graph error answer on ``path`` (relative to the version root).

    ``retry_after`` is what the caller should wait before trying again (Graph's
    ``Retry-After`` when ``retry_after_given``, else our next back-off delay).
    """
    code = graph_code = graph_error_code(payload)
    request_id = _request_id(payload, headers)
    details: dict[str, Any] = {"status": status}
    if graph_code:
        details["graph_code"] = graph_code
    if request_id:
        details["request_id"] = request_id
    clean_path = path.split("?", 1)[0]

    def make(cls: type[GraphError], message: str | None = None) -> GraphError:
        return cls(message, details=details, graph_code=graph_code, status=status, retry_after=retry_after)

    folded = (code or "").lower()
    if folded in _MAILBOX_UNAVAILABLE_CODES:
        return make(MailboxUnavailable)
    if folded == "errorinvaliduser":
        return make(UserNotFound)
    if folded == _EXTENSION_ERROR and _USER_CHILD.match(clean_path) and status in (403, 404):
        return make(OutsideAppScope if status == 403 else MailboxUnavailable)
    if status == 401:
        return make(GraphAuthError)
    if status == 403 and _USER_CHILD.match(clean_path):
        return make(OutsideAppScope)
    if status == 404:
        # Request_ResourceNotFound is a directory code: under /users/{id} it is the user that is missing.
        if (_USER_ROOT.match(clean_path) and code in (None, "ResourceNotFound")) or (
            code == "Request_ResourceNotFound" and (_USER_ROOT.match(clean_path) or _USER_CHILD.match(clean_path))
        ):
            return make(UserNotFound)
        return make(ItemNotFound)
    if status in (409, 412):
        return make(GraphConflict)
    if status == 429 or (status in RETRYABLE_STATUSES and retry_after_given):
        return Throttled(retry_after=retry_after, details=details)
    if status >= 500:
        return TransientGraphError(retry_after=retry_after, details=details)
    if folded == _EXTENSION_ERROR:
        allowed = _lifetime_allowed(payload)
        if allowed is not None:
            details[MAX_LIFETIME_DETAIL] = allowed
    return make(GraphRequestRejected)


def _lifetime_allowed(payload: Any) -> int | None:
    """The N of "Subscription expiration can only be N minutes in the future." (Graph's refusal of an expiry
    beyond the maximum, microsoftgraph/microsoft-graph-docs-contrib#7726), else None."""
    error = payload.get("error") if isinstance(payload, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    match = _LIFETIME_REFUSED.search(message) if isinstance(message, str) else None
    return int(match.group(1)) if match else None
