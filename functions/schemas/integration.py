"""Integration (admin of the caller's tenant)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, computed_field

from core.domain.integration import ConnectionMethod, sync_policy
from functions.schemas.common import Email, Query, Reply, RequestBody

Method = Literal["domainWide", "perUser", "serviceAccount"]
IntegrationStatus = Literal[
    "not_configured", "consent_pending", "testing", "connected", "degraded", "failed", "disconnected"
]
AccessReason = Literal[
    "accessible",
    "mailbox_on_premises_or_unlicensed",
    "outside_app_scope",
    "user_not_found",
    "transient_error",
    "other",
    "not_connected",
    "needs_reconnect",
    "no_delegate_access",
]
_Param = Annotated[str, StringConstraints(max_length=2048)]


class IntegrationBody(RequestBody):
    """PUT /api/integration."""

    vendor: Literal["outlook365"]
    method: Method
    owner_email: Email
    enabled: bool | None = None
    pairing_policy: Literal["registered", "sameTenant"] | None = None
    access_test_sample_size: Annotated[int, Field(ge=1, le=500)] | None = None


class ConsentInfo(Reply):
    """Where admin consent stands."""

    status: Literal["none", "pending", "granted", "declined", "revoked"]
    updated_at: datetime | None = None
    error_code: str | None = None


class AccessTestSummary(Reply):
    id: str
    status: Literal["running", "completed", "failed"]
    finished_at: datetime | None = None
    sampled: int = 0
    accessible: int = 0
    inaccessible: int = 0


class Integration(Reply):
    """GET/PUT /api/integration."""

    tenant_id: str
    vendor: Literal["outlook365"] | None = None
    method: Method | None = None
    owner_email: str | None = None
    enabled: bool = False
    status: IntegrationStatus
    status_reason: str | None = None
    status_since: datetime | None = None
    pairing_policy: Literal["registered", "sameTenant"] | None = None
    access_test_sample_size: int | None = None
    consent: ConsentInfo | None = None
    last_access_test: AccessTestSummary | None = None

    @computed_field(description="How Outlook-side changes reach the service: Graph change notifications, or "
                    "polling (service account: Graph sends no notifications for shared calendars).")
    def sync(self) -> Literal["notifications", "polling"] | None:
        if self.method is None:
            return None
        return "polling" if sync_policy(ConnectionMethod(self.method)).mode.value == "polling" else "notifications"

    @computed_field(description="With sync polling: how often (minutes) the calendars are re-read.")
    def sync_interval_minutes(self) -> int | None:
        return None if self.method is None else sync_policy(ConnectionMethod(self.method)).interval_minutes


class ConsentUrl(Reply):
    consent_url: str


class ConsentCallbackQuery(Query):
    """What Microsoft appends to the admin-consent redirect (other parameters are ignored)."""

    model_config = Query.model_config | {"extra": "ignore", "alias_generator": None}

    admin_consent: _Param | None = None
    tenant: _Param | None = None
    scope: _Param | None = None
    state: _Param | None = None
    error: _Param | None = None
    error_description: _Param | None = None


class AccessTestAccepted(Reply):
    id: str
    status: Literal["running"] = "running"


class AccessTestUser(Reply):
    user_id: str
    user_principal_name: str | None = None
    reason: AccessReason
    hint: str | None = None


class AccessTestReport(Reply):
    """GET /api/integration/access-tests/latest."""

    id: str
    status: Literal["running", "completed", "failed"]
    started_at: datetime
    finished_at: datetime | None = None
    sampled: int
    accessible: int
    inaccessible: int
    by_reason: dict[AccessReason, int]
    users: list[AccessTestUser]
    error_code: str | None = None


class Permission(Reply):
    name: str
    type: Literal["application", "delegated"]
    access: Literal["read", "readWrite"]
    purpose: str
    method: Method


class Permissions(Reply):
    """GET /api/integration/permissions: what the app asks Microsoft 365 for, and why."""

    permissions: list[Permission]
    data_usage: str
