"""MSAL / OAuth error dicts -> the ``AuthorizationError`` tree.

MSAL does not raise: it returns ``{"error", "error_description", "error_codes", ...}``.
We branch on the AADSTS numbers (``error_codes``, or the ``AADSTSnnnn:`` prefix of the
description when the list is absent) and then on the OAuth ``error`` string, never on
message text: Microsoft rewords messages, codes are stable. The description itself is
not kept (it can name the app, the tenant or a user); ``trace_id``/``correlation_id``
are kept because Microsoft support asks for them.

    error dict
    ├── AADSTS 65001 65004 90094 90095 500011        -> ConsentMissing
    ├── AADSTS 700016                                  -> AppNotInTenant
    ├── AADSTS 90002 90072 50020 900023 / invalid_tenant -> TenantNotFound
    ├── AADSTS 650052                                  -> TenantLacksService
    ├── AADSTS 7000222 7000215 700027 7000112 70021 700211 700212 700213 700024
    │   / error invalid_client                          -> CredentialInvalid
    ├── AADSTS 53000-53004                             -> ConditionalAccessBlocked
    ├── AADSTS 700082 70043 50173 50076 70008 54005 / invalid_grant,
    │   interaction_required                           -> ReconnectRequired
    ├── error consent_required                         -> ConsentMissing
    ├── error temporarily_unavailable, server_error    -> TransientGraphError (retry)
    └── anything else                                  -> AuthorizationError
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from core.domain.aadsts import AADSTS_ERRORS, OAUTH_ERRORS, TRANSIENT_OAUTH_ERRORS
from core.domain.errors import AuthorizationError, ServiceError, TransientGraphError

# The code tables are pure and shared with the admin-consent callback (core/domain/aadsts.py).
_BY_CODE = AADSTS_ERRORS
_BY_ERROR = OAUTH_ERRORS
_TRANSIENT_ERRORS = TRANSIENT_OAUTH_ERRORS
_AADSTS_PREFIX = re.compile(r"^\s*AADSTS(\d+)\b")
_AADSTS_ANYWHERE = re.compile(r"AADSTS(\d+)\b")


def aadsts_codes(result: Mapping[str, Any]) -> list[int]:
    """The AADSTS numbers of an error dict: ``error_codes``, else the description's prefix."""
    codes = [c for c in result.get("error_codes") or () if isinstance(c, int) and not isinstance(c, bool)]
    if codes:
        return codes
    description = result.get("error_description")
    if isinstance(description, str):
        match = _AADSTS_PREFIX.match(description)
        if match:
            return [int(match.group(1))]
    return []


def aadsts_in_text(text: str) -> int | None:
    """The first ``AADSTSnnnn`` number in a text (MSAL's discovery ValueError quotes the response)."""
    match = _AADSTS_ANYWHERE.search(text)
    return int(match.group(1)) if match else None


def error_from_msal(result: Mapping[str, Any]) -> ServiceError:
    """The most specific error for an MSAL/OAuth error dict (never raises itself)."""
    oauth_error = result.get("error") if isinstance(result.get("error"), str) else None
    codes = aadsts_codes(result)
    details = {
        key: result[key]
        for key in ("trace_id", "correlation_id")
        if isinstance(result.get(key), str)
    }
    if codes:
        details["aadsts"] = codes[0]
    if oauth_error:
        details["oauth_error"] = oauth_error
    aadsts = codes[0] if codes else None

    for code in codes:
        cls = _BY_CODE.get(code)
        if cls is not None:
            return cls(aadsts=code, oauth_error=oauth_error, details={**details, "aadsts": code})
    if oauth_error in _TRANSIENT_ERRORS:
        return TransientGraphError(
            "Microsoft Entra ID is temporarily unavailable; try again shortly.", details=details
        )
    cls = _BY_ERROR.get(oauth_error or "", AuthorizationError)
    return cls(aadsts=aadsts, oauth_error=oauth_error, details=details)
