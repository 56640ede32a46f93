"""The integration status machine and the AADSTS -> stable code tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.adapters.aadsts import error_from_msal
from core.domain.aadsts import (
    AADSTS_ERRORS,
    CONSENT_MESSAGES,
    OAUTH_ERRORS,
    aadsts_in,
    consent_error_code,
    error_class,
)
from core.domain.errors import (
    AppNotInTenant,
    AuthorizationError,
    ConditionalAccessBlocked,
    Conflict,
    ConsentMissing,
    CredentialInvalid,
    ReconnectRequired,
    TenantLacksService,
    TenantNotFound,
)
from core.domain.integration import Integration, IntegrationStatus

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
S = IntegrationStatus


@pytest.mark.parametrize(
    ("path"),
    [
        [S.CONSENT_PENDING, S.TESTING, S.CONNECTED],
        [S.CONSENT_PENDING, S.TESTING, S.DEGRADED, S.CONNECTED],
        [S.CONSENT_PENDING, S.TESTING, S.FAILED, S.CONSENT_PENDING, S.TESTING, S.CONNECTED],
        [S.CONSENT_PENDING, S.TESTING, S.CONNECTED, S.FAILED, S.CONNECTED],
        [S.CONSENT_PENDING, S.DISCONNECTED, S.CONSENT_PENDING],
        [S.CONSENT_PENDING, S.TESTING, S.CONNECTED, S.DISCONNECTED, S.CONSENT_PENDING, S.TESTING],
    ],
)
def test_admin_journeys_are_allowed_transitions(path: list[IntegrationStatus]) -> None:
    """The journeys the admin flow takes (set-up, consent, tests, failure, disconnect, re-consent) are legal."""
    integration = Integration(tenant_id="t")
    for step in path:
        integration = integration.transition(step, NOW)
    assert integration.status is path[-1]


@pytest.mark.parametrize(
    ("start", "to"),
    [
        (S.NOT_CONFIGURED, S.CONNECTED),
        (S.NOT_CONFIGURED, S.TESTING),
        (S.CONSENT_PENDING, S.CONNECTED),
        (S.DISCONNECTED, S.TESTING),
        (S.DISCONNECTED, S.CONNECTED),
    ],
)
def test_shortcuts_past_consent_are_refused(start: IntegrationStatus, to: IntegrationStatus) -> None:
    """Nothing reaches testing/connected without going through consent; the refusal is a 409 with a code."""
    with pytest.raises(Conflict) as caught:
        Integration(tenant_id="t", status=start).transition(to, NOW)
    assert caught.value.code == "invalid_status_change"


def test_any_status_can_be_disconnected() -> None:
    """DELETE works whatever the status."""
    for status in IntegrationStatus:
        assert Integration(tenant_id="t", status=status).transition(S.DISCONNECTED, NOW).status is S.DISCONNECTED


def test_status_since_moves_only_when_the_status_changes() -> None:
    """Staying failed keeps the original 'since' (alerts say since when), a change resets it."""
    failed = Integration(tenant_id="t", status=S.CONNECTED).transition(S.FAILED, NOW)
    again = failed.transition(S.FAILED, NOW + timedelta(hours=3), reason="x")
    assert again.status_since == NOW
    assert again.transition(S.CONNECTED, NOW + timedelta(hours=4)).status_since == NOW + timedelta(hours=4)


def test_disabled_integration_is_not_active_but_keeps_its_configuration() -> None:
    """enabled=False stops calendar work; the record (owner, method, status) is untouched."""
    integration = Integration(tenant_id="t", status=S.CONNECTED, owner_email="o@x.test", enabled=False)
    assert integration.onboarded and not integration.active
    assert integration.owner_email == "o@x.test"


# --- AADSTS --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "description", "code"),
    [
        ("access_denied", "AADSTS65004: User declined to consent to access the app.", "consent_declined"),
        ("access_denied", None, "consent_declined"),
        ("invalid_request", "AADSTS90094: The grant requires admin permission.", "admin_consent_required"),
        ("invalid_request", "AADSTS90095: Admin consent is required.", "admin_consent_required"),
        ("unauthorized_client", "AADSTS700016: Application with identifier 'x' was not found.", "app_not_in_tenant"),
        ("invalid_request", "AADSTS650052: The app needs access to a service.", "tenant_lacks_exchange_online"),
        ("access_denied", "AADSTS53003: Access has been blocked by Conditional Access.", "conditional_access_blocked"),
        ("invalid_request", "AADSTS90002: Tenant 'x' not found.", "tenant_not_found"),
        ("invalid_request", "AADSTS500011: The resource principal was not found.", "resource_not_in_tenant"),
        ("consent_required", "AADSTS65001: The user or administrator has not consented.", "consent_missing"),
        ("server_error", "AADSTS99999: Something new.", "consent_temporarily_unavailable"),
        ("server_error", None, "consent_temporarily_unavailable"),
        ("temporarily_unavailable", None, "consent_temporarily_unavailable"),
        ("invalid_client", None, "app_credential_invalid"),
        ("weird", "no code here", "consent_failed"),
    ],
)
def test_consent_page_errors_map_to_stable_codes(error: str, description: str | None, code: str) -> None:
    """The callback's error/AADSTS pair becomes a stable snake_case code, decided by the number, not the text."""
    assert consent_error_code(error, description) == code
    assert code in CONSENT_MESSAGES


def test_aadsts_number_is_found_anywhere_in_the_description() -> None:
    """Microsoft prefixes or embeds the code; the text around it never matters."""
    assert aadsts_in("AADSTS65004: declined") == 65004
    assert aadsts_in("Trace: x. AADSTS700016: not found") == 700016
    assert aadsts_in("AADSTS: nothing") is None
    assert aadsts_in(None) is None


@pytest.mark.parametrize(
    ("codes", "oauth", "cls"),
    [
        ([65001], None, ConsentMissing),
        ([700016], "unauthorized_client", AppNotInTenant),
        ([90002], None, TenantNotFound),
        ([650052], None, TenantLacksService),
        ([7000222], "invalid_client", CredentialInvalid),
        ([53003], None, ConditionalAccessBlocked),
        ([700082], "invalid_grant", ReconnectRequired),
        ([], "invalid_grant", ReconnectRequired),
        ([123], None, AuthorizationError),
    ],
)
def test_error_class_table_is_shared_with_the_msal_adapter(
    codes: list[int], oauth: str | None, cls: type[AuthorizationError]
) -> None:
    """The domain table and the MSAL adapter agree for every code (one mapping, two callers)."""
    assert error_class(codes, oauth) is cls
    assert type(error_from_msal({"error": oauth or "x", "error_codes": codes})) is cls


def test_every_mapped_class_has_a_plain_language_message() -> None:
    """Each stable code the consent callback can report explains itself to the admin."""
    for cls in {*AADSTS_ERRORS.values(), *OAUTH_ERRORS.values()}:
        assert cls.default_code in CONSENT_MESSAGES
