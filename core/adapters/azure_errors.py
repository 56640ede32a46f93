"""Translate azure.core exceptions into the domain error tree.

Table, Queue and Key Vault adapters all receive the same azure.core exception
classes; this module is the one place that decides what each one means for a
service. The mapping for storage:

    ResourceModifiedError / 412        -> ConcurrencyConflict (lost an ETag race)
    ResourceExistsError / 409          -> Conflict (``already_exists`` when the item exists)
    ResourceNotFoundError / 404        -> NotFound
    408, 429, 5xx, connection errors,
    timeouts, authentication failures  -> StorageUnavailable (retry later; ops must look)
    any other 4xx                      -> ServiceError ``storage_request_rejected`` (a bug here)

Messages never carry the Azure text (it can echo keys or values); the status and
service error code are logged instead.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from core.domain.errors import (
    ConcurrencyConflict,
    Conflict,
    NotFound,
    ServiceError,
    StorageUnavailable,
)

log = logging.getLogger(__name__)

# Service error codes meaning "the thing you create is already there".
_EXISTS_CODES = frozenset({"EntityAlreadyExists", "TableAlreadyExists", "QueueAlreadyExists"})


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of an azure.core error, if it came from a response."""
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def error_code(exc: BaseException) -> str | None:
    """The service's error code (``TableNotFound``, ``QueueNotFound``, ``SecretNotFound``...).

    Some SDK paths set ``error_code`` (sometimes as an enum), others only leave the
    code in the response body, in the Table (``odata.error``), Queue (XML) or Key
    Vault (``error``) format.
    """
    code: Any = getattr(exc, "error_code", None)
    if code:
        return str(getattr(code, "value", code))
    response = getattr(exc, "response", None)
    if response is None:
        return None
    try:
        text = response.text()
    except Exception:  # a body we cannot read simply has no code
        return None
    if not text:
        return None
    try:
        body = json.loads(text)
    except ValueError:
        start = text.find("<Code>")
        end = text.find("</Code>")
        return text[start + 6 : end] if 0 <= start < end else None
    if isinstance(body, dict):
        envelope = body.get("odata.error") or body.get("error")
        if isinstance(envelope, dict) and isinstance(envelope.get("code"), str):
            return str(envelope["code"])
    return None


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying later: no answer, timeouts, throttling, 5xx."""
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return True
    status = status_of(exc)
    return status is None or status in (408, 429) or status >= 500


def translate_storage_error(exc: AzureError, what: str) -> ServiceError:
    """The domain error for a Table/Queue failure; ``what`` names the operation in logs."""
    status = status_of(exc)
    code = error_code(exc)
    log.warning("storage %s failed: %s status=%s code=%s", what, type(exc).__name__, status, code)
    if isinstance(exc, ResourceModifiedError) or status == 412:
        return ConcurrencyConflict()
    if isinstance(exc, ResourceExistsError) or status == 409:
        if code in _EXISTS_CODES:
            return Conflict("The item already exists.", code="already_exists")
        return Conflict()
    if isinstance(exc, ResourceNotFoundError) or status == 404:
        return NotFound()
    if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
        return StorageUnavailable("Storage refused our credentials; the deployment owner must check access.")
    if isinstance(exc, HttpResponseError) and status is not None and not is_transient(exc):
        return ServiceError("Storage rejected the request.", code="storage_request_rejected")
    return StorageUnavailable()
