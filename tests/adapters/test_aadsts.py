"""MSAL/OAuth error dicts -> AuthorizationError subclasses, by AADSTS code and OAuth error, never by text."""

from __future__ import annotations

from typing import Any

import pytest

from core.adapters.aadsts import aadsts_codes, error_from_msal
from core.domain.errors import (
    AppNotInTenant,
    AuthorizationError,
    ConditionalAccessBlocked,
    ConsentMissing,
    CredentialInvalid,
    ReconnectRequired,
    TenantLacksService,
    TenantNotFound,
    TransientGraphError,
)


def msal_error(error: str, code: int | None, text: str = "Something happened.") -> dict[str, Any]:
    """An error dict shaped like MSAL's (Entra's token endpoint answer)."""
    result: dict[str, Any] = {
        "error": error,
        "error_description": f"AADSTS{code}: {text} Trace ID: t Correlation ID: c" if code else text,
        "timestamp": "2025-01-02 10:00:00Z",
        "trace_id": "trace-1",
        "correlation_id": "corr-1",
    }
    if code:
        result["error_codes"] = [code]
    return result


@pytest.mark.parametrize(
    ("error", "code", "expected"),
    [
        ("invalid_grant", 65001, ConsentMissing),
        ("invalid_grant", 65004, ConsentMissing),
        ("invalid_request", 90094, ConsentMissing),
        ("invalid_request", 90095, ConsentMissing),
        ("invalid_resource", 500011, ConsentMissing),
        ("unauthorized_client", 700016, AppNotInTenant),
        ("invalid_request", 90002, TenantNotFound),
        ("invalid_request", 650052, TenantLacksService),
        ("invalid_client", 7000222, CredentialInvalid),
        ("invalid_client", 7000215, CredentialInvalid),
        ("invalid_client", 700027, CredentialInvalid),
        ("invalid_client", 70021, CredentialInvalid),
        ("invalid_grant", 53003, ConditionalAccessBlocked),
        ("invalid_grant", 700082, ReconnectRequired),
        ("invalid_grant", 70043, ReconnectRequired),
        ("invalid_grant", 50173, ReconnectRequired),
    ],
)
def test_aadsts_code_selects_the_error_class(error: str, code: int, expected: type[AuthorizationError]) -> None:
    """Each documented AADSTS code maps to its plain-language error and keeps code and OAuth error."""
    mapped = error_from_msal(msal_error(error, code))
    assert type(mapped) is expected
    assert isinstance(mapped, AuthorizationError)
    assert mapped.aadsts == code
    assert mapped.oauth_error == error
    assert mapped.details["aadsts"] == code


def test_code_is_parsed_from_description_prefix_when_error_codes_absent() -> None:
    """Without error_codes, 'AADSTS700016:' at the start of the description is the code."""
    result = msal_error("unauthorized_client", 700016)
    del result["error_codes"]
    mapped = error_from_msal(result)
    assert isinstance(mapped, AppNotInTenant)
    assert mapped.aadsts == 700016


def test_message_text_is_not_used_for_branching() -> None:
    """A description that *mentions* consent but has no code is classified by its OAuth error only."""
    mapped = error_from_msal(msal_error("invalid_client", None, "admin has not consented; AADSTS65001 later"))
    assert isinstance(mapped, CredentialInvalid)
    assert aadsts_codes({"error_description": "see AADSTS65001"}) == []


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("invalid_client", CredentialInvalid),
        ("invalid_grant", ReconnectRequired),
        ("consent_required", ConsentMissing),
        ("interaction_required", ReconnectRequired),
        ("access_denied", AuthorizationError),
    ],
)
def test_oauth_error_is_the_fallback(error: str, expected: type[AuthorizationError]) -> None:
    """With no known AADSTS code, the OAuth 'error' string decides."""
    mapped = error_from_msal(msal_error(error, None))
    assert type(mapped) is expected


def test_unknown_code_keeps_aadsts_on_generic_error() -> None:
    """An unmapped AADSTS code still travels on the error for support."""
    mapped = error_from_msal(msal_error("unsupported_grant", 123456))
    assert type(mapped) is AuthorizationError
    assert mapped.aadsts == 123456


def test_temporary_unavailability_is_transient() -> None:
    """Entra's temporarily_unavailable is a retryable dependency error, not an authorization verdict."""
    assert isinstance(error_from_msal(msal_error("temporarily_unavailable", None)), TransientGraphError)


def test_description_text_is_not_kept_but_trace_ids_are() -> None:
    """The description (may name app, tenant, user) is dropped; trace and correlation ids are kept."""
    mapped = error_from_msal(msal_error("invalid_grant", 65001, "App 'Contoso Scheduler' lacks consent"))
    assert "Contoso" not in mapped.message
    assert "Contoso" not in str(mapped.details)
    assert mapped.details["trace_id"] == "trace-1"
    assert mapped.details["correlation_id"] == "corr-1"
