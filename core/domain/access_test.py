"""The access test's pure rules: classify why a mailbox is unreachable, say what to do, sum it up.

The test samples users, asks getSchedule about them (20 per call) and reads every sampled
calendar through ``$batch`` (a hybrid mailbox answers free/busy but no REST call); every sampled
user ends in exactly one ``AccessReason``:

    probe / schedule answer                                        reason
    ├── reachable                                                  accessible
    ├── MailboxUnavailable  (MailboxNotEnabledForRESTAPI; hybrid)  mailbox_on_premises_or_unlicensed
    ├── OutsideAppScope     (403 ErrorAccessDenied on the mailbox) outside_app_scope
    ├── UserNotFound        (ErrorInvalidUser, 404, getSchedule 5009) user_not_found
    ├── Throttled / TransientGraphError (5xx, 429 after retries)  transient_error
    └── anything else                                              other

Per-user tenants are tested per connection instead (each sampled user's own token):
``not_connected`` (never signed in), ``needs_reconnect`` (their refresh token died), or
the probe of their calendar as above. Service-account tenants probe each sampled
calendar with the scheduling mailbox's token: a 403 there is ``no_delegate_access``.

Each reason has a remediation hint; the one for ``outside_app_scope`` carries the
Exchange Online PowerShell for the deployment's app id. The report keeps object ids
and UPNs (the admin acts on them) and nothing else about people.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final, TypeVar

from core.domain.errors import (
    AuthorizationError,
    DependencyError,
    GraphAuthError,
    MailboxUnavailable,
    OutsideAppScope,
    ServiceError,
    Throttled,
    TransientGraphError,
    UserNotFound,
)
from core.domain.integration import DEFAULT_SAMPLE_SIZE, MAX_SAMPLE_SIZE, IntegrationStatus
from core.domain.schedule_codes import schedule_error

T = TypeVar("T")

SCHEDULE_BATCH: Final = 20  # getSchedule takes at most 20 addresses
MAX_CANDIDATES: Final = 999  # the sample is drawn from the first page of up to 999 users


class AccessReason(StrEnum):
    ACCESSIBLE = "accessible"
    MAILBOX_ON_PREMISES_OR_UNLICENSED = "mailbox_on_premises_or_unlicensed"
    OUTSIDE_APP_SCOPE = "outside_app_scope"
    USER_NOT_FOUND = "user_not_found"
    TRANSIENT_ERROR = "transient_error"
    OTHER = "other"
    NOT_CONNECTED = "not_connected"  # per-user: never connected their calendar
    NEEDS_RECONNECT = "needs_reconnect"  # per-user: their connection expired or was revoked
    NO_DELEGATE_ACCESS = "no_delegate_access"  # service account: no delegate right on this calendar


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


def classify(error: ServiceError | None) -> AccessReason:
    """The reason for one probe outcome (``None`` = the mailbox answered)."""
    if error is None:
        return AccessReason.ACCESSIBLE
    if isinstance(error, MailboxUnavailable):
        return AccessReason.MAILBOX_ON_PREMISES_OR_UNLICENSED
    if isinstance(error, OutsideAppScope):
        return AccessReason.OUTSIDE_APP_SCOPE
    if isinstance(error, UserNotFound):
        return AccessReason.USER_NOT_FOUND
    if isinstance(error, Throttled | TransientGraphError | DependencyError):
        return AccessReason.TRANSIENT_ERROR
    return AccessReason.OTHER


def classify_schedule_code(code: str | None) -> AccessReason:
    """The reason a getSchedule per-schedule ``responseCode`` names (``other`` when unknown), read
    through the table availability shares (``core/domain/schedule_codes.py``)."""
    if code is None:
        return AccessReason.ACCESSIBLE
    cls = schedule_error(code)
    return AccessReason.OTHER if cls is None else classify(cls())


def is_token_failure(error: ServiceError) -> bool:
    """Does this error mean the app has no working token for the tenant (not one mailbox's problem)?"""
    return isinstance(error, AuthorizationError | GraphAuthError)


def _powershell(command: str) -> str:
    """One command as a fenced code block (the web console shows it with a copy button)."""
    return f"```powershell\n{command}\n```"


def remediation_hint(reason: AccessReason, app_id: str) -> str | None:
    """What the admin can do about a reason (``None`` for accessible users).

    Plain text; where a step is a command, the hint is Markdown-style paragraphs separated by
    a blank line, each command alone in a fenced ```` ```powershell ```` block, one step each,
    so clients can show it as copyable code (the web console does) and read it as text.
    """
    if reason is AccessReason.ACCESSIBLE:
        return None
    if reason is AccessReason.OUTSIDE_APP_SCOPE:
        return "\n\n".join((
            "Your organisation limits which mailboxes this app may reach, and this user is outside that scope. "
            "Add the user to the mail-enabled security group the policy is scoped to, or widen the scope, in "
            "Exchange Online PowerShell (one of the two mechanisms below).",
            "Step 1, both mechanisms: connect to Exchange Online.",
            _powershell("Connect-ExchangeOnline"),
            "Application access policy (legacy; changes can take over an hour). Step 2: scope the app to the group.",
            _powershell(f"New-ApplicationAccessPolicy -AppId {app_id} -PolicyScopeGroupId <group@yourdomain> "
                        '-AccessRight RestrictAccess -Description "Calendar integration"'),
            "Step 3: check that the user is now in scope.",
            _powershell(f"Test-ApplicationAccessPolicy -Identity <user@yourdomain> -AppId {app_id}"),
            "Or RBAC for Applications (first remove the tenant-wide Calendars.ReadWrite grant in Entra ID so the "
            "scope applies). Step 2: register the app's service principal in Exchange Online.",
            _powershell(f"New-ServicePrincipal -AppId {app_id} -ObjectId <enterprise app object id> "
                        '-DisplayName "Calendar integration"'),
            "Step 3: define the scope by group membership.",
            _powershell('New-ManagementScope -Name "Calendar integration users" '
                        "-RecipientRestrictionFilter \"MemberOfGroup -eq '<group distinguished name>'\""),
            "Step 4: give the app calendar access within that scope.",
            _powershell(f'New-ManagementRoleAssignment -App {app_id} -Role "Application Calendars.ReadWrite" '
                        '-CustomResourceScope "Calendar integration users"'),
        ))
    if reason is AccessReason.MAILBOX_ON_PREMISES_OR_UNLICENSED:
        return (
            "Only Exchange Online mailboxes are supported. This mailbox is on-premises or hybrid, has no "
            "Exchange Online licence, or is inactive: assign an Exchange Online licence, migrate the mailbox "
            "to Exchange Online, or leave this user out of scheduling."
        )
    if reason is AccessReason.USER_NOT_FOUND:
        return (
            "Microsoft 365 could not resolve this user or address (deleted, renamed, or a mail address "
            "without a mailbox). Check the account in the Microsoft 365 admin center."
        )
    if reason is AccessReason.TRANSIENT_ERROR:
        return "Microsoft 365 did not answer in time for this mailbox. Run the test again later."
    if reason is AccessReason.NOT_CONNECTED:
        return (
            "This user has not connected their Microsoft 365 calendar yet: they sign in once from the app "
            "(Connect calendar). If your organisation blocks user consent, an administrator grants the "
            "delegated permissions once for everyone with the admin-consent link the app shows."
        )
    if reason is AccessReason.NEEDS_RECONNECT:
        return (
            "This user's connection expired or was revoked (password reset, sign-in frequency policy, "
            "long inactivity, or consent withdrawn): they sign in again from the app."
        )
    if reason is AccessReason.NO_DELEGATE_ACCESS:
        return "\n\n".join((
            "The scheduling mailbox has no delegate access to this user's calendar, so their sessions are "
            "booked in its \"Scheduler\" calendar with the user invited instead. To give it access, in "
            "Exchange Online PowerShell:",
            "Step 1: connect to Exchange Online.",
            _powershell("Connect-ExchangeOnline"),
            "Step 2: make the scheduling mailbox a delegate (Editor) of the user's calendar.",
            _powershell("Add-MailboxFolderPermission -Identity <user@yourdomain>:\\Calendar "
                        "-User <scheduling mailbox> -AccessRights Editor -SharingPermissionFlags Delegate"),
        ))
    return (
        "Microsoft 365 refused access to this calendar for another reason. "
        "Run the test again; if it persists, contact support."
    )


def hints_by_reason(app_id: str) -> dict[AccessReason, str]:
    """Every reason's hint (the report stores them once, not once per user)."""
    out: dict[AccessReason, str] = {}
    for reason in AccessReason:
        hint = remediation_hint(reason, app_id)
        if hint is not None:
            out[reason] = hint
    return out


def clamp_sample_size(requested: int | None) -> int:
    """The sample size to use: the configured one, at least 1, at most ``MAX_SAMPLE_SIZE``."""
    if requested is None:
        return DEFAULT_SAMPLE_SIZE
    return max(1, min(requested, MAX_SAMPLE_SIZE))


def draw_sample(candidates: Sequence[T], size: int, seed: str) -> list[T]:
    """A deterministic random sample (same seed, same users), in the candidates' order."""
    pool = list(candidates[:MAX_CANDIDATES])
    if len(pool) <= size:
        return pool
    picked = set(random.Random(seed).sample(range(len(pool)), size))  # noqa: S311 - sampling, not security
    return [item for i, item in enumerate(pool) if i in picked]




@dataclass(frozen=True, slots=True)
class UserResult:
    """One sampled user's outcome: ids only (the admin acts on the UPN)."""

    user_id: str
    user_principal_name: str | None
    reason: AccessReason


@dataclass(frozen=True, slots=True)
class AccessTestReport:
    """A stored access-test report (counts are derived from ``users``, so they always add up)."""

    tenant_id: str
    test_id: str
    status: RunStatus
    started_at: datetime
    requested_by: str | None = None
    finished_at: datetime | None = None
    users: tuple[UserResult, ...] = ()
    error_code: str | None = None
    graph_calls: int | None = None

    @property
    def sampled(self) -> int:
        return len(self.users)

    @property
    def accessible(self) -> int:
        return sum(1 for u in self.users if u.reason is AccessReason.ACCESSIBLE)

    @property
    def inaccessible(self) -> int:
        return self.sampled - self.accessible

    @property
    def by_reason(self) -> dict[AccessReason, int]:
        counts: dict[AccessReason, int] = {}
        for user in self.users:
            counts[user.reason] = counts.get(user.reason, 0) + 1
        return counts

    @property
    def finished(self) -> bool:
        return self.status is not RunStatus.RUNNING

    def outcome_status(self) -> IntegrationStatus:
        """What the integration's status becomes: all reachable -> connected, some -> degraded, none -> failed."""
        if self.status is RunStatus.FAILED or self.sampled == 0 or self.accessible == 0:
            return IntegrationStatus.FAILED
        if self.accessible == self.sampled:
            return IntegrationStatus.CONNECTED
        return IntegrationStatus.DEGRADED

    def problem_reasons(self) -> frozenset[AccessReason]:
        """Reasons that are the tenant's configuration, not a passing hiccup."""
        return frozenset(
            r for r in self.by_reason if r not in (AccessReason.ACCESSIBLE, AccessReason.TRANSIENT_ERROR)
        )


_RANK: Final = {IntegrationStatus.CONNECTED: 0, IntegrationStatus.DEGRADED: 1, IntegrationStatus.FAILED: 2}


def regressed(previous: AccessTestReport | None, current: AccessTestReport) -> bool:
    """Did reachability get worse since the previous finished report?

    Samples differ between runs (drawn per test), so raw counts are not compared:
    worse means a worse outcome (connected -> degraded -> failed), or a kind of
    problem the previous report did not have.
    """
    if previous is None or not previous.finished:
        return False
    before, after = previous.outcome_status(), current.outcome_status()
    if _RANK[after] > _RANK[before]:
        return True
    return bool(current.problem_reasons() - previous.problem_reasons())
