"""The access test's pure rules: classification of every Graph error shape, hints, sampling, outcomes."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from core.domain.access_test import (
    AccessReason,
    AccessTestReport,
    RunStatus,
    UserResult,
    clamp_sample_size,
    classify,
    classify_schedule_code,
    draw_sample,
    hints_by_reason,
    is_token_failure,
    regressed,
    remediation_hint,
)
from core.domain.errors import (
    AppNotInTenant,
    ConsentMissing,
    DependencyError,
    GraphAuthError,
    GraphConflict,
    GraphRequestRejected,
    ItemNotFound,
    MailboxUnavailable,
    OutsideAppScope,
    ServiceError,
    Throttled,
    TransientGraphError,
    UserNotFound,
)
from core.domain.integration import DEFAULT_SAMPLE_SIZE, MAX_SAMPLE_SIZE, IntegrationStatus
from core.domain.schedule_codes import SCHEDULE_ERRORS

APP_ID = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
R = AccessReason


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (None, R.ACCESSIBLE),
        (MailboxUnavailable(graph_code="MailboxNotEnabledForRESTAPI", status=404), R.MAILBOX_ON_PREMISES_OR_UNLICENSED),
        (MailboxUnavailable(graph_code="MailboxNotSupportedForRESTAPI"), R.MAILBOX_ON_PREMISES_OR_UNLICENSED),
        (OutsideAppScope(graph_code="ErrorAccessDenied", status=403), R.OUTSIDE_APP_SCOPE),
        (UserNotFound(graph_code="ErrorInvalidUser", status=404), R.USER_NOT_FOUND),
        (UserNotFound(graph_code="Request_ResourceNotFound", status=404), R.USER_NOT_FOUND),
        (Throttled(retry_after=10), R.TRANSIENT_ERROR),
        (TransientGraphError(), R.TRANSIENT_ERROR),
        (DependencyError(), R.TRANSIENT_ERROR),
        (ItemNotFound(graph_code="ErrorItemNotFound", status=404), R.OTHER),
        (GraphConflict(status=409), R.OTHER),
        (GraphRequestRejected(graph_code="BadRequest", status=400), R.OTHER),
        (ServiceError(), R.OTHER),
    ],
)
def test_every_probe_outcome_has_one_reason(error: ServiceError | None, reason: AccessReason) -> None:
    """Each error the gateway can give for one mailbox lands in exactly one documented reason."""
    assert classify(error) is reason


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (None, R.ACCESSIBLE),
        ("MailboxNotEnabledForRESTAPI", R.MAILBOX_ON_PREMISES_OR_UNLICENSED),
        ("ErrorAccessDenied", R.OUTSIDE_APP_SCOPE),
        ("5009", R.USER_NOT_FOUND),
        ("errorinvaliduser", R.USER_NOT_FOUND),
        ("ErrorServerBusy", R.TRANSIENT_ERROR),
        ("NoScheduleReturned", R.USER_NOT_FOUND),
        ("ErrorMailRecipientNotFound", R.USER_NOT_FOUND),
        ("MailboxNotSupportedForRESTAPI", R.MAILBOX_ON_PREMISES_OR_UNLICENSED),
        ("something-new", R.OTHER),
    ],
)
def test_getschedule_response_codes_are_classified(code: str | None, reason: AccessReason) -> None:
    """getSchedule's per-schedule responseCode (HTTP stays 200) names a reason; unknown codes are 'other'."""
    assert classify_schedule_code(code) is reason


@pytest.mark.parametrize("code", [*SCHEDULE_ERRORS, "MAILBOXNOTENABLEDFORRESTAPI", "something-new"])
def test_access_test_and_availability_read_every_schedule_code_alike(code: str) -> None:
    """One responseCode table serves both: the access test's reason and availability's participant status agree."""
    from core.domain.calendar import Schedule
    from core.services.availability import reason_for_schedule

    status, _ = reason_for_schedule(Schedule(address="x@contoso.test", error_code=code))
    reason = classify_schedule_code(code)
    if reason in (R.MAILBOX_ON_PREMISES_OR_UNLICENSED, R.OUTSIDE_APP_SCOPE, R.USER_NOT_FOUND):
        assert status == reason.value
    else:
        assert status == "other"  # availability reports only mailbox problems by name


def test_token_failures_are_not_a_mailbox_problem() -> None:
    """Consent revoked or a rejected token ends the whole test; mailbox errors do not."""
    assert is_token_failure(AppNotInTenant(aadsts=700016))
    assert is_token_failure(ConsentMissing())
    assert is_token_failure(GraphAuthError(status=401))
    assert not is_token_failure(OutsideAppScope())
    assert not is_token_failure(TransientGraphError())


def test_outside_scope_hint_carries_powershell_for_this_app() -> None:
    """The scope hint gives both the application access policy and RBAC for Applications lines with the app id."""
    hint = remediation_hint(R.OUTSIDE_APP_SCOPE, APP_ID)
    assert hint is not None
    assert f"New-ApplicationAccessPolicy -AppId {APP_ID}" in hint
    assert "-AccessRight RestrictAccess" in hint
    assert f"New-ManagementRoleAssignment -App {APP_ID}" in hint
    assert '"Application Calendars.ReadWrite"' in hint and "-CustomResourceScope" in hint


@pytest.mark.parametrize("reason", [R.OUTSIDE_APP_SCOPE, R.NO_DELEGATE_ACCESS])
def test_powershell_comes_as_one_fenced_block_per_step(reason: R) -> None:
    """Every command is alone in a ```powershell block, each after its own step sentence; no command hides in prose."""
    hint = remediation_hint(reason, APP_ID)
    assert hint is not None
    blocks = hint.split("\n\n")
    code = [b for b in blocks if b.startswith("```")]
    prose = [b for b in blocks if not b.startswith("```")]
    assert code and all(b.startswith("```powershell\n") and b.endswith("\n```") and b.count("\n") == 2
                        for b in code)
    commands = [b.split("\n")[1] for b in code]
    assert commands[0] == "Connect-ExchangeOnline"
    assert all(not any(c.split()[0] in p for c in commands) for p in prose)
    for before, block in itertools.pairwise(blocks):
        if block.startswith("```"):
            assert "Step" in before  # each command is one numbered step


def test_every_problem_reason_has_a_hint_and_accessible_has_none() -> None:
    """Admins get something to do for every reason; on-premises says only cloud mailboxes work."""
    hints = hints_by_reason(APP_ID)
    assert set(hints) == set(R) - {R.ACCESSIBLE}
    assert "Only Exchange Online mailboxes are supported" in hints[R.MAILBOX_ON_PREMISES_OR_UNLICENSED]
    assert remediation_hint(R.ACCESSIBLE, APP_ID) is None


def test_sample_is_deterministic_per_seed_and_bounded() -> None:
    """Same test id, same users; a different id usually differs; never more than asked or than exist."""
    users = [f"u{i:03d}" for i in range(300)]
    first = draw_sample(users, 25, "test-1")
    assert first == draw_sample(users, 25, "test-1")
    assert first != draw_sample(users, 25, "test-2")
    assert len(first) == 25 and len(set(first)) == 25 and set(first) <= set(users)
    assert draw_sample(users[:10], 25, "x") == users[:10]


def test_sample_size_defaults_and_caps() -> None:
    """None means the default; sizes are clamped to 1..MAX."""
    assert clamp_sample_size(None) == DEFAULT_SAMPLE_SIZE
    assert clamp_sample_size(0) == 1
    assert clamp_sample_size(10_000) == MAX_SAMPLE_SIZE


def _report(*reasons: AccessReason, status: RunStatus = RunStatus.COMPLETED) -> AccessTestReport:
    users = tuple(UserResult(f"id{i}", f"u{i}@x.test", r) for i, r in enumerate(reasons))
    return AccessTestReport("t", "id", status, NOW, users=users)


def test_counts_add_up_and_status_follows_reachability() -> None:
    """sampled = accessible + inaccessible = sum(byReason); all -> connected, some -> degraded, none -> failed."""
    report = _report(R.ACCESSIBLE, R.ACCESSIBLE, R.OUTSIDE_APP_SCOPE, R.USER_NOT_FOUND)
    assert (report.sampled, report.accessible, report.inaccessible) == (4, 2, 2)
    assert sum(report.by_reason.values()) == report.sampled
    assert report.outcome_status() is IntegrationStatus.DEGRADED
    assert _report(R.ACCESSIBLE).outcome_status() is IntegrationStatus.CONNECTED
    assert _report(R.OUTSIDE_APP_SCOPE).outcome_status() is IntegrationStatus.FAILED
    assert _report().outcome_status() is IntegrationStatus.FAILED
    assert _report(R.ACCESSIBLE, status=RunStatus.FAILED).outcome_status() is IntegrationStatus.FAILED


def test_regression_means_a_worse_outcome_or_a_new_kind_of_problem() -> None:
    """Random samples make raw counts noisy: only a worse status or a new non-transient reason regresses."""
    healthy = _report(R.ACCESSIBLE, R.ACCESSIBLE)
    degraded = _report(R.ACCESSIBLE, R.OUTSIDE_APP_SCOPE)
    assert regressed(healthy, degraded)
    assert regressed(degraded, _report(R.OUTSIDE_APP_SCOPE))
    assert regressed(degraded, _report(R.ACCESSIBLE, R.OUTSIDE_APP_SCOPE, R.USER_NOT_FOUND))
    assert not regressed(degraded, _report(R.ACCESSIBLE, R.ACCESSIBLE, R.OUTSIDE_APP_SCOPE))
    assert not regressed(healthy, healthy)
    assert not regressed(None, degraded)
    assert not regressed(degraded, healthy)
    assert not regressed(degraded, _report(R.ACCESSIBLE, R.OUTSIDE_APP_SCOPE, R.TRANSIENT_ERROR))
