"""AADSTS codes and OAuth ``error`` strings -> the ``AuthorizationError`` tree and stable codes.

Pure tables, shared by the MSAL adapter (``core/adapters/aadsts.py``, token requests)
and the admin-consent callback (``core/services/integration.py``, the browser
redirect's ``error``/``error_description``). Both branch on the AADSTS number and then
on the OAuth ``error`` string, never on message text: Microsoft rewords messages,
codes are stable (/entra/identity-platform/reference-error-codes).

The consent page gets a few finer codes than token requests do: "declined" and
"needs an administrator" are different things for the admin reading the screen, while
for a background token request both simply mean "consent is missing".
"""

from __future__ import annotations

import re
from typing import Final

from core.domain.errors import (
    AppNotInTenant,
    AuthorizationError,
    ConditionalAccessBlocked,
    ConsentMissing,
    CredentialInvalid,
    ReconnectRequired,
    TenantLacksService,
    TenantNotFound,
)

AADSTS_ERRORS: Final[dict[int, type[AuthorizationError]]] = {
    **dict.fromkeys((65001, 65004, 90094, 90095, 500011), ConsentMissing),
    700016: AppNotInTenant,
    **dict.fromkeys((90002, 90072, 50020, 900023), TenantNotFound),
    650052: TenantLacksService,
    **dict.fromkeys(
        (7000222, 7000215, 700027, 7000112, 70021, 700211, 700212, 700213, 700024), CredentialInvalid
    ),
    **dict.fromkeys((53000, 53001, 53002, 53003, 53004), ConditionalAccessBlocked),
    **dict.fromkeys((700082, 70043, 50173, 50076, 70008, 54005), ReconnectRequired),
}

OAUTH_ERRORS: Final[dict[str, type[AuthorizationError]]] = {
    "invalid_client": CredentialInvalid,
    "invalid_grant": ReconnectRequired,
    "interaction_required": ReconnectRequired,
    "consent_required": ConsentMissing,
    "invalid_tenant": TenantNotFound,
}

TRANSIENT_OAUTH_ERRORS: Final = frozenset({"temporarily_unavailable", "server_error"})

# Finer codes for what the admin-consent page reports. The redirect carries
# ``admin_consent=True&error=...&error_description=AADSTSnnnn: ...&state=...``
# (MicrosoftDocs/entra-docs docs/identity-platform/v2-admin-consent.md, "Error response":
# the documented example is ``error=consent_required`` with AADSTS65004, so ``error`` alone
# does not say "declined"; the AADSTS number does). Codes and meanings:
# docs/identity-platform/reference-error-codes.md.
CONSENT_DECLINED: Final = "consent_declined"
ADMIN_CONSENT_REQUIRED: Final = "admin_consent_required"
CONSENT_FAILED: Final = "consent_failed"
CONSENT_UNAVAILABLE: Final = "consent_temporarily_unavailable"
REDIRECT_URI_MISMATCH: Final = "redirect_uri_mismatch"
USER_NOT_IN_TENANT: Final = "admin_not_in_tenant"
APP_DISABLED: Final = "app_disabled"
CONSENT_PAGE_CODES: Final[dict[int, str]] = {
    65004: CONSENT_DECLINED,  # the admin declined (or the resource owner denied the request)
    90094: ADMIN_CONSENT_REQUIRED,  # the signer-in is not allowed to grant tenant-wide consent
    90095: ADMIN_CONSENT_REQUIRED,  # admin consent workflow: a request was sent to an admin
    65001: "consent_missing",
    500011: "resource_not_in_tenant",  # the resource (Graph) principal is missing in the tenant
    50011: REDIRECT_URI_MISMATCH,  # the reply address is not registered on the app
    50020: USER_NOT_IN_TENANT,  # the admin signed in from another tenant
    90072: USER_NOT_IN_TENANT,
    7000112: APP_DISABLED,  # the app (or its service principal) is disabled
    90130: "consent_endpoint_unsupported",  # /common is not supported for admin consent
    90033: CONSENT_UNAVAILABLE,  # a transient error; try again
}

# The OAuth ``error`` of a consent redirect without a known AADSTS number.
CONSENT_OAUTH_ERRORS: Final[dict[str, str]] = {
    "access_denied": CONSENT_DECLINED,
    "consent_required": "consent_missing",
    "interaction_required": "consent_missing",
    "unauthorized_client": "app_not_in_tenant",
    "invalid_client": "app_credential_invalid",
    "invalid_request": "consent_request_invalid",
    "temporarily_unavailable": CONSENT_UNAVAILABLE,
    # RFC 6749 4.1.2.1: the authorization server met an unexpected condition; Entra's advice is to retry.
    "server_error": CONSENT_UNAVAILABLE,
}

# Plain-language explanations of every code the consent callback can report (the SPA
# shows ``code``; these are for GET /api/integration and the alert emails).
CONSENT_MESSAGES: Final[dict[str, str]] = {
    CONSENT_DECLINED: "The administrator declined the permissions on Microsoft's consent page.",
    ADMIN_CONSENT_REQUIRED: "Only a global or privileged-role administrator can grant these permissions.",
    "consent_missing": "Microsoft reports that consent was not granted.",
    "resource_not_in_tenant": "Microsoft Graph is not available in your organisation for this app.",
    "app_not_in_tenant": "The app is not (yet) registered in your organisation; grant consent again.",
    "tenant_not_found": "Microsoft does not know this organisation.",
    "tenant_lacks_exchange_online": "Your organisation has no Exchange Online for this app to use.",
    "conditional_access_blocked": "A Conditional Access policy in your organisation blocks this app.",
    "app_credential_invalid": "The service's own credential is invalid; the deployment owner must renew it.",
    "reconnect_required": "The sign-in expired; try again.",
    CONSENT_FAILED: "Microsoft did not grant consent.",
    CONSENT_UNAVAILABLE: "Microsoft's sign-in service had a temporary problem; try again in a minute.",
    REDIRECT_URI_MISMATCH: "The service's consent address is not registered on its app; "
    "the deployment owner must add it.",
    USER_NOT_IN_TENANT: "The administrator signed in with an account from another organisation.",
    APP_DISABLED: "The app is disabled in your organisation; an administrator must enable it.",
    "consent_endpoint_unsupported": "The consent link names no organisation; start again from the admin screen.",
    "consent_request_invalid": "Microsoft refused the consent request as malformed; start again from the admin screen.",
}

_AADSTS = re.compile(r"AADSTS(\d+)\b")


def aadsts_in(text: str | None) -> int | None:
    """The first ``AADSTSnnnn`` number in a text such as an ``error_description``."""
    if not text:
        return None
    match = _AADSTS.search(text)
    return int(match.group(1)) if match else None


def error_class(codes: list[int], oauth_error: str | None) -> type[AuthorizationError]:
    """The most specific ``AuthorizationError`` class for AADSTS ``codes`` and an OAuth ``error``."""
    for code in codes:
        found = AADSTS_ERRORS.get(code)
        if found is not None:
            return found
    return OAUTH_ERRORS.get(oauth_error or "", AuthorizationError)


def consent_error_code(error: str | None, description: str | None) -> str:
    """The stable code for an admin-consent redirect that carried ``error``.

    The AADSTS number inside ``error_description`` decides first; without one,
    ``access_denied`` means the admin declined.
    """
    code = aadsts_in(description)
    if code is not None:
        if code in CONSENT_PAGE_CODES:
            return CONSENT_PAGE_CODES[code]
        if code in AADSTS_ERRORS:
            return AADSTS_ERRORS[code].default_code
    if error in CONSENT_OAUTH_ERRORS:
        return CONSENT_OAUTH_ERRORS[error]
    if error in OAUTH_ERRORS:
        return OAUTH_ERRORS[error].default_code
    return CONSENT_FAILED
