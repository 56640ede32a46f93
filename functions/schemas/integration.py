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

    status: Literal["none", "pending", "verifying", "granted", "declined", "revoked"] = Field(
        description="verifying: consent was granted at Microsoft's page and the service is proving it while "
        "Microsoft Entra ID propagates it (up to 10 minutes)."
    )
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


DATA_USAGE = (
    "The service stores only the metadata of events booked through it: the Outlook event id, "
    "start and end times, the organizer and attendees' responses, and the room address. It never "
    "stores an event's subject or body, and it reads other people's calendars as free/busy only. "
    "Your own calendar entries are shown to you live and are not kept."
)

PERMISSIONS: tuple[Permission, ...] = (
    Permission(
        name="Calendars.ReadWrite",
        type="application",
        access="readWrite",
        method="domainWide",
        purpose="Create, move and cancel the sessions booked through the service, read free/busy "
        "for scheduling, and be told when someone changes a booked session in Outlook.",
    ),
    Permission(
        name="User.Read.All",
        type="application",
        access="read",
        method="domainWide",
        purpose="Find people by email and check, in the access test, which mailboxes the app can reach.",
    ),
    Permission(
        name="MailboxSettings.Read",
        type="application",
        access="read",
        method="domainWide",
        purpose="Read each person's time zone and working hours so slots fall inside them.",
    ),
    Permission(
        name="Place.Read.All",
        type="application",
        access="read",
        method="domainWide",
        purpose="List meeting rooms and room lists so a session can book a room.",
    ),
    Permission(
        name="User.Read",
        type="delegated",
        access="read",
        method="perUser",
        purpose="Know who signed in, to connect the right calendar.",
    ),
    Permission(
        name="User.ReadBasic.All",
        type="delegated",
        access="read",
        method="perUser",
        purpose="Find your pairing partner and colleagues by name or email (basic profile only).",
    ),
    Permission(
        name="Calendars.ReadWrite",
        type="delegated",
        access="readWrite",
        method="perUser",
        purpose="Create, move and cancel your sessions in your calendar and read your free/busy.",
    ),
    Permission(
        name="MailboxSettings.Read",
        type="delegated",
        access="read",
        method="perUser",
        purpose="Read your time zone and working hours.",
    ),
    Permission(
        name="offline_access",
        type="delegated",
        access="read",
        method="perUser",
        purpose="Keep your connection working without signing in every hour (you can disconnect at any time).",
    ),
    Permission(
        name="User.Read",
        type="delegated",
        access="read",
        method="serviceAccount",
        purpose="Know which scheduling mailbox signed in.",
    ),
    Permission(
        name="User.ReadBasic.All",
        type="delegated",
        access="read",
        method="serviceAccount",
        purpose="Find the people whose calendars the scheduling mailbox manages (basic profile only).",
    ),
    Permission(
        name="Calendars.ReadWrite.Shared",
        type="delegated",
        access="readWrite",
        method="serviceAccount",
        purpose="Book, move and cancel sessions in the calendars the scheduling mailbox has delegate access to.",
    ),
    Permission(
        name="MailboxSettings.Read",
        type="delegated",
        access="read",
        method="serviceAccount",
        purpose="Read time zones and working hours for scheduling.",
    ),
    Permission(
        name="offline_access",
        type="delegated",
        access="read",
        method="serviceAccount",
        purpose="Keep the scheduling mailbox connected without signing in every hour.",
    ),
)


class AuditQuery(Query):
    limit: int = Field(default=50, ge=1, le=200)
    before: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        default=None, description="The `next` cursor of the previous page.")


class AuditEntry(Reply):
    """One entry: an admin's change (what changed, from what to what; never a secret) or one request an app
    made (the app's client id, the user it acted for, the ids involved, the answer's status and error code)."""

    at: datetime
    actor: str = Field(description="An admin's object id, or `app:<client id>` for the product's server.")
    action: str = Field(description="What was done: a change's name, or the route's operation for an app.")
    on_behalf_of: str | None = Field(default=None, description="The user an app acted for (object id).")
    ids: dict[str, str] | None = Field(default=None, description="The ids involved (session, pairing...).")
    status: int | None = Field(default=None, description="The HTTP status an app's request got.")
    code: str | None = Field(default=None, description="The error code, when an app's request was refused.")
    changes: dict[str, list[object]] | None = Field(
        default=None, description="An admin's change: field -> [before, after].")


class AuditPage(Reply):
    entries: list[AuditEntry]
    next: str | None = Field(default=None, description="Pass as `before` for the following (older) page.")
