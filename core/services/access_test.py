"""The access test: can the app reach a sample of the tenant's calendars, and if not, why?

A queue job (``access-tests``, message ``{"kind": "access_test", "tenantId", "testId",
"requestedBy"}``) started by the consent callback, by an admin (POST
/api/integration/access-tests) or by the daily timer (every enabled tenant, each at a
stable jittered delay so tenants do not all hit Graph at once). Per run:

1. list the tenant's enabled users with a mailbox (first page of up to 999) and draw
   a deterministic sample seeded by the test id (N from the integration, default 25);
2. getSchedule in groups of 20 addresses, anchored on a reachable mailbox (the admin
   who asked, else a sampled user; a failing anchor is itself a classified result and
   the next candidate takes over);
3. ``probe_mailboxes`` (``$batch``, 20 per request): a REST read of every sampled
   calendar (``GET /users/{id}/calendar?$select=id``), which classifies each failure exactly
   and catches what free/busy cannot see: with hybrid free/busy an on-premises mailbox
   answers getSchedule while the event reads and writes the service needs fail
   (``MailboxNotEnabledForRESTAPI``), so getSchedule alone is not "accessible";
4. store the report, move the integration to connected / degraded / failed, alert the
   owner when reachability got worse, and clear alerts when healthy.

Per connection method (docs/connection-methods.md): per-user tenants sample the directory
(when the app may list it) plus the connected users and report, per user, connected
and reachable with their own token, ``not_connected`` or ``needs_reconnect``;
service-account tenants probe each sampled calendar with the scheduling mailbox's token
(``$batch``), a 403 being ``no_delegate_access``. The connected / degraded / failed
rules apply to these counts alike.

Graph calls, the floor: for n sampled users, one ``/users`` page (up to 999), ``ceil(n/20)``
getSchedule calls (20 schedules each, Graph's limit) and ``ceil(n/20)`` ``$batch`` requests (20
parts each, Graph's limit): ``1 + 2 * ceil(n/20)``, 21 for 200 users, plus one getSchedule per
anchor that turns out unreachable. Each mailbox needs both answers (free/busy for availability,
a calendar read for booking), and neither call can carry more than 20.

One test at a time per tenant: ``start`` answers 409 ``access_test_running`` while one runs
(unless a new consent or connection method makes it moot), so tests cannot be queued without
end.

The job is idempotent per test id: a redelivered message for a finished test does
nothing, a running one simply runs again. ``Throttled`` re-enqueues the same message
after ``retry_after``; a token failure ends the test as ``failed``, marks the
integration failed and sends one ``consent_revoked`` / ``token_failure`` alert.
"""

from __future__ import annotations

import hashlib
import logging
import math
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from core.domain.access_test import (
    SCHEDULE_BATCH,
    AccessReason,
    AccessTestReport,
    RunStatus,
    UserResult,
    clamp_sample_size,
    classify,
    classify_schedule_code,
    draw_sample,
    is_token_failure,
    regressed,
    remediation_hint,
)
from core.domain.calendar import DirectoryUser, GraphIdentity
from core.domain.commands import AccessTestCommand, AlertKind, chunks
from core.domain.errors import (
    AppNotInTenant,
    AuthorizationError,
    ConcurrencyConflict,
    Conflict,
    ConsentMissing,
    DependencyError,
    DirectoryUnreadable,
    GraphAuthError,
    GraphRequestRejected,
    MailboxUnavailable,
    NotFound,
    OutsideAppScope,
    ServiceAccountNotConnected,
    ServiceError,
    Throttled,
    TransientGraphError,
    UserNotFound,
)
from core.domain.integration import ONBOARDED, ConnectionMethod, Integration, IntegrationStatus
from core.names import Queues
from core.ports import CalendarGateway, Clock, CommandQueue, TableStore, TokenProvider
from core.services.alerts import OwnerAlerts
from core.services.identity import GraphIdentities
from core.services.stores.access_tests import AccessTestStore, UnreachableMailboxes
from core.services.stores.codec import Versioned
from core.services.stores.connections import ConnectionRepository
from core.services.stores.integrations import IntegrationRepository

log = logging.getLogger("core.services.access_test")

JITTER_SECONDS: Final = 3600
MAX_ANCHOR_ATTEMPTS: Final = 5
DEFAULT_RETRY_AFTER: Final = 30.0
LIST_PAGE_SIZE: Final = 999
_SAVE_ATTEMPTS: Final = 5
RUNNING_STALE: Final = timedelta(minutes=30)  # a test still "running" after this is considered lost
_PAUSED: Final = frozenset(
    {IntegrationStatus.NOT_CONFIGURED, IntegrationStatus.CONSENT_PENDING, IntegrationStatus.DISCONNECTED}
)






def jitter_seconds(tenant_id: str, spread: int = JITTER_SECONDS) -> int:
    """A stable per-tenant delay in [0, spread): the same tenant always runs at the same offset."""
    digest = hashlib.sha256(tenant_id.lower().encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % max(1, spread)


def update_integration(
    repo: IntegrationRepository,
    tenant_id: str,
    change: Callable[[Integration], Integration | None],
    attempts: int = _SAVE_ATTEMPTS,
) -> Integration | None:
    """Read-modify-write with ETag, re-reading on a lost race (workers). ``change`` returns None to skip."""
    for _ in range(attempts):
        found = repo.get(tenant_id)
        if found is None:
            return None
        updated = change(found.value)
        if updated is None:
            return found.value
        try:
            return repo.save(updated, found.etag).value
        except ConcurrencyConflict:
            continue
    raise ConcurrencyConflict("The integration kept changing while the access test saved its result.")


# --- the job ---------------------------------------------------------------------------------


@dataclass
class _Probe:
    """Running state of one test's Graph work."""

    calls: int = 0
    ok: set[str] = field(default_factory=set)
    known: dict[str, ServiceError] = field(default_factory=dict)  # failed anchors: their own classified error
    failed: dict[str, str | None] = field(default_factory=dict)  # user id -> getSchedule error code (None: call failed)
    bad_anchors: set[str] = field(default_factory=set)


class AccessTestService:
    """Starts, runs and reports access tests (see the module docstring)."""

    def __init__(
        self,
        *,
        tables: TableStore,
        queues: CommandQueue,
        clock: Clock,
        gateway: CalendarGateway | None,
        alerts: OwnerAlerts,
        app_id: str,
        tokens: TokenProvider | None = None,
        window: timedelta = timedelta(hours=1),
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.tables = tables
        self.queues = queues
        self.clock = clock
        self._gateway = gateway
        self.alerts = alerts
        self.app_id = app_id
        self.tokens = tokens
        self.window = window
        self.new_id = new_id
        self.integrations = IntegrationRepository(tables)
        self.connections = ConnectionRepository(tables)
        self.identities = GraphIdentities(self.integrations, self.connections)
        self.store = AccessTestStore(tables, app_id)
        self.unreachable = UnreachableMailboxes(tables)

    @property
    def gateway(self) -> CalendarGateway:
        if self._gateway is None:
            raise DependencyError("Microsoft Graph is not configured for this process.")
        return self._gateway

    # -- API --------------------------------------------------------------------------

    def start(self, tenant_id: str, requested_by: str | None, correlation_id: str | None = None, *,
              replace_running: bool = False) -> AccessTestReport:
        """Queue a test now (admin or consent callback); the report shows ``running`` at once.

        While a test runs another is refused with 409 ``access_test_running`` (tests cannot be
        queued without end); ``replace_running`` is for a change that makes the running one moot
        (a new connection method). A test ``running`` for longer than ``RUNNING_STALE`` is
        considered lost (its worker died; its poison handler may not have run yet).
        """
        found = self.integrations.get(tenant_id)
        if found is None or found.value.status not in ONBOARDED:
            raise Conflict(
                "Connect Microsoft 365 (admin consent) before running an access test.",
                code="integration_not_connected",
            )
        if not found.value.enabled:
            raise Conflict("The integration is disabled; enable it to run an access test.", code="integration_disabled")
        latest = self.store.latest(tenant_id)
        if (not replace_running and latest is not None and latest.status is RunStatus.RUNNING
                and self.clock.now() - latest.started_at < RUNNING_STALE):
            raise Conflict("An access test is already running; its report appears when it finishes.",
                           code="access_test_running", details={"id": latest.test_id})
        report = AccessTestReport(
            tenant_id=tenant_id,
            test_id=self.new_id(),
            status=RunStatus.RUNNING,
            started_at=self.clock.now(),
            requested_by=requested_by,
        )
        self.store.add(report)
        self.store.point(tenant_id, latest=report.test_id)
        command = AccessTestCommand(tenant_id, report.test_id, requested_by, correlation_id)
        self.queues.send(Queues.ACCESS_TESTS, command.to_message())
        return report

    def latest(self, tenant_id: str) -> AccessTestReport:
        report = self.store.latest(tenant_id)
        if report is None:
            raise NotFound("No access test has run for your organisation yet.", code="access_test_not_found")
        return report

    def hint(self, reason: AccessReason) -> str | None:
        return remediation_hint(reason, self.app_id)

    # -- timer ------------------------------------------------------------------------

    def schedule_reruns(self) -> int:
        """Enqueue one test per enabled, onboarded tenant, each delayed by its stable jitter."""
        queued = 0
        for tenant_id in self.integrations.tenants():
            found = self.integrations.get(tenant_id)
            if found is None or not found.value.active:
                continue
            command = AccessTestCommand(tenant_id, self.new_id())
            self.queues.send(Queues.ACCESS_TESTS, command.to_message(), delay_seconds=jitter_seconds(tenant_id))
            queued += 1
        return queued

    # -- worker -----------------------------------------------------------------------

    def run(self, command: AccessTestCommand) -> AccessTestReport | None:
        """Run one test to its report; ``None`` when it was re-enqueued because Graph throttled."""
        tenant_id = command.tenant_id
        found = self.store.get(tenant_id, command.test_id)
        if found is not None and found.value.finished:
            log.info("access test already finished; duplicate message ignored", extra={"tenant": tenant_id})
            return found.value
        if found is None:
            report = AccessTestReport(
                tenant_id, command.test_id, RunStatus.RUNNING, self.clock.now(), requested_by=command.requested_by
            )
            try:
                found = self.store.add(report)
            except Conflict:
                again = self.store.get(tenant_id, command.test_id)
                if again is None:
                    raise
                if again.value.finished:
                    return again.value
                found = again
            self.store.point(tenant_id, latest=command.test_id)
        integration = self.integrations.get(tenant_id)
        if integration is None or not integration.value.active:
            return self._finish_inactive(found, integration)

        method = integration.value.method
        try:
            probe = _Probe(calls=1)
            if method is ConnectionMethod.PER_USER:
                results = self._per_user(tenant_id, integration.value, command.test_id, probe)
            elif method is ConnectionMethod.SERVICE_ACCOUNT:
                results = self._service_account(tenant_id, integration.value, command.test_id, probe)
            else:
                who = self.identities.for_tenant(tenant_id, integration=integration.value)
                sample = self._sample(who, integration.value, command.test_id)
                results = self._probe(who, sample, command.requested_by, probe)
        except (ServiceAccountNotConnected, DirectoryUnreadable) as exc:
            return self._not_connected(found, exc)
        except Throttled as exc:
            delay = max(1.0, exc.retry_after or DEFAULT_RETRY_AFTER)
            log.warning("access test throttled; re-enqueued", extra={"tenant": tenant_id, "durationMs": delay * 1000})
            self.queues.send(Queues.ACCESS_TESTS, command.to_message(), delay_seconds=delay)
            return None
        except ServiceError as exc:
            if is_token_failure(exc):
                return self._token_failed(found, exc)
            raise
        report = replace(
            found.value,
            status=RunStatus.COMPLETED,
            finished_at=self.clock.now(),
            users=tuple(results),
            graph_calls=probe.calls,
        )
        return self._complete(found.etag, report)

    def on_poison(self, message: Mapping[str, Any]) -> None:
        """A test failed every delivery attempt: show it failed and tell the owner (never a silent drop)."""
        command = AccessTestCommand.from_message(message)
        found = self.store.get(command.tenant_id, command.test_id)
        if found is not None and not found.value.finished:
            failed = replace(
                found.value, status=RunStatus.FAILED, finished_at=self.clock.now(), error_code="access_test_crashed"
            )
            self.store.save(failed, None)
        self.alerts.notify(
            command.tenant_id,
            AlertKind.POISON_MESSAGE,
            detail="An access test failed on every attempt (Microsoft 365 or storage kept failing).",
        )

    # -- steps ------------------------------------------------------------------------

    def _sample(self, who: GraphIdentity, integration: Integration, seed: str) -> list[DirectoryUser]:
        candidates: list[DirectoryUser] = []
        for user in self.gateway.list_users(who, page_size=LIST_PAGE_SIZE):
            if user.mail:
                candidates.append(user)
            if len(candidates) >= LIST_PAGE_SIZE:
                break
        return draw_sample(candidates, clamp_sample_size(integration.access_test_sample_size), seed)

    def _anchors(self, tenant_id: str, sample: Sequence[DirectoryUser], requested_by: str | None) -> Iterator[str]:
        """Anchor candidates, most likely reachable first: the admin who asked, users the previous
        report reached, then the sample in order."""
        if requested_by:
            yield requested_by
        previous = self.store.last_finished(tenant_id)
        if previous is not None:
            yield from (u.user_id for u in previous.users if u.reason is AccessReason.ACCESSIBLE)
        for user in sample:
            yield user.user_id

    def _probe(
        self, who: GraphIdentity, sample: Sequence[DirectoryUser], requested_by: str | None, probe: _Probe
    ) -> list[UserResult]:
        start = self.clock.now().astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        end = start + self.window
        interval = max(5, min(1440, int(self.window.total_seconds() // 60)))
        candidates = self._anchors(who.tenant_id, sample, requested_by)
        anchor: str | None = next(candidates, None)
        sampled_ids = {u.user_id for u in sample}

        for group in chunks(sample, SCHEDULE_BATCH):
            schedules = None
            attempts = 0
            while anchor is not None and attempts < MAX_ANCHOR_ATTEMPTS:
                try:
                    probe.calls += 1
                    schedules = self.gateway.get_schedule(
                        who, anchor, [u.mail or u.user_id for u in group], start, end, interval_minutes=interval
                    )
                    break
                except (MailboxUnavailable, OutsideAppScope, UserNotFound) as exc:
                    # The anchor itself is unreachable: that is its result; try the next candidate.
                    if anchor in sampled_ids:
                        probe.known[anchor] = exc
                    probe.bad_anchors.add(anchor)
                    attempts += 1
                    anchor = self._next_anchor(candidates, probe)
                except TransientGraphError:
                    break
            if schedules is None:
                for user in group:
                    if user.user_id not in probe.known:
                        probe.failed[user.user_id] = None
                continue
            for user, schedule in zip(group, schedules, strict=True):
                if schedule.ok:
                    probe.ok.add(user.user_id)
                elif user.user_id not in probe.known:
                    probe.failed[user.user_id] = schedule.error_code

        outcomes: dict[str, ServiceError | None] = {}
        # Every sampled mailbox also gets a REST read of its calendar, in the same $batch as the
        # failures: free/busy alone calls a hybrid (on-premises) mailbox reachable while the event
        # reads and writes the service needs fail on it (MailboxNotEnabledForRESTAPI).
        to_probe = [u.user_id for u in sample if u.user_id not in probe.known]
        if to_probe:
            probe.calls += math.ceil(len(to_probe) / SCHEDULE_BATCH)
            try:
                outcomes = self.gateway.probe_mailboxes(who, to_probe)
            except TransientGraphError as exc:
                outcomes = dict.fromkeys(to_probe, exc)
        results: list[UserResult] = []
        for user in sample:
            uid = user.user_id
            if uid in probe.known:
                reason = classify(probe.known[uid])
            else:
                error = outcomes.get(uid)
                if error is not None and is_token_failure(error):
                    raise error
                if uid in probe.ok:
                    # Free/busy answered: the calendar read decides (accessible, or e.g. hybrid); a read
                    # that got no answer (Graph busy) does not overrule free/busy.
                    transient = classify(error) is AccessReason.TRANSIENT_ERROR
                    reason = AccessReason.ACCESSIBLE if transient else classify(error)
                else:
                    reason = self._reason(error, probe.failed.get(uid))
            results.append(UserResult(uid, user.user_principal_name, reason))
        return results

    # -- per connection method --------------------------------------------------------------

    def _per_user(self, tenant_id: str, integration: Integration, seed: str, probe: _Probe) -> list[UserResult]:
        """Connected versus not-yet-connected users; connected ones are probed with their own token.

        The directory is listed with the tenant identity when the app may (admin consent);
        without it only the connected users are known, and the report says so by its size.
        """
        candidates: dict[str, DirectoryUser] = {}
        try:
            directory = self.identities.for_tenant(tenant_id, integration=integration)
            for user in self.gateway.list_users(directory, page_size=LIST_PAGE_SIZE):
                if user.mail:
                    candidates.setdefault(user.user_id.lower(), user)
                if len(candidates) >= LIST_PAGE_SIZE:
                    break
        except Throttled:
            raise
        except ServiceError as exc:
            log.info("access test: the directory cannot be listed (%s); sampling connected users only", exc.code,
                     extra={"tenant": tenant_id})
        records = {r.user_id.lower(): r for r in self.connections.users(tenant_id)}
        for user_id in records:
            candidates.setdefault(user_id, DirectoryUser(user_id=user_id, display_name=None,
                                                         user_principal_name=None, mail=None))
        sample = draw_sample(list(candidates.values()), clamp_sample_size(integration.access_test_sample_size), seed)
        results: list[UserResult] = []
        for user in sample:
            uid = user.user_id.lower()
            record = records.get(uid)
            if record is None:
                reason = AccessReason.NOT_CONNECTED
            elif record.needs_reconnect:
                reason = AccessReason.NEEDS_RECONNECT
            else:
                probe.calls += 1
                try:
                    self.gateway.get_calendar(self.identities.for_user(tenant_id, uid, integration=integration), uid)
                    reason = AccessReason.ACCESSIBLE
                except Throttled:
                    raise
                except AuthorizationError:
                    # The delegated provider has marked the connection and alerted the owner.
                    reason = AccessReason.NEEDS_RECONNECT
                except ServiceError as exc:
                    reason = classify(exc)
            results.append(UserResult(user.user_id, user.user_principal_name, reason))
        return results

    def _service_account(
        self, tenant_id: str, integration: Integration, seed: str, probe: _Probe
    ) -> list[UserResult]:
        """Which sampled calendars the scheduling mailbox can reach, probed with its own token."""
        who = self.identities.for_tenant(tenant_id, integration=integration)
        account = who.user_id or ""
        try:
            listed = self._sample(who, integration, seed)
        except (GraphRequestRejected, OutsideAppScope) as exc:
            raise DirectoryUnreadable(details={"graph_code": exc.graph_code}) from exc
        sample = [u for u in listed if u.user_id.lower() != account.lower()]
        outcomes: dict[str, ServiceError | None] = {}
        if sample:
            probe.calls += math.ceil(len(sample) / SCHEDULE_BATCH)
            try:
                outcomes = self.gateway.probe_mailboxes(who, [u.user_id for u in sample])
            except TransientGraphError as exc:
                outcomes = {u.user_id: exc for u in sample}
        results: list[UserResult] = []
        for user in sample:
            error = outcomes.get(user.user_id)
            if error is not None and is_token_failure(error):
                raise error
            if isinstance(error, Throttled):
                raise error
            reason = AccessReason.NO_DELEGATE_ACCESS if isinstance(error, OutsideAppScope) else classify(error)
            results.append(UserResult(user.user_id, user.user_principal_name, reason))
        return results

    def _not_connected(self, found: Versioned[AccessTestReport], exc: ServiceError) -> AccessTestReport:
        """A service-account tenant whose admin has not connected the mailbox yet (or whose mailbox may
        not list the directory): a failed test with that code, no alert (the admin is setting up and
        sees it on the integration page)."""
        now = self.clock.now()
        failed = replace(found.value, status=RunStatus.FAILED, finished_at=now, error_code=exc.code)

        def apply(current: Integration) -> Integration | None:
            if current.status in _PAUSED:
                return None
            moved = current.transition(IntegrationStatus.FAILED, now, reason=exc.code)
            return replace(moved, last_access_test_id=failed.test_id)

        update_integration(self.integrations, failed.tenant_id, apply)
        self.store.save(failed, found.etag)
        self.store.point(failed.tenant_id, latest=failed.test_id)
        return failed

    @staticmethod
    def _next_anchor(candidates: Iterator[str], probe: _Probe) -> str | None:
        if probe.ok:
            return next(iter(probe.ok))
        for candidate in candidates:
            if candidate not in probe.bad_anchors:
                return candidate
        return None

    @staticmethod
    def _reason(error: ServiceError | None, schedule_code: str | None) -> AccessReason:
        if error is not None:
            return classify(error)
        if schedule_code is None:
            return AccessReason.ACCESSIBLE  # only the getSchedule call failed; the calendar answered
        reason = classify_schedule_code(schedule_code)
        # The calendar answers but free/busy does not: scheduling would still fail for this user.
        return AccessReason.OTHER if reason is AccessReason.ACCESSIBLE else reason

    # -- outcomes ----------------------------------------------------------------------

    def _complete(self, etag: str | None, report: AccessTestReport) -> AccessTestReport:
        tenant_id = report.tenant_id
        previous = self.store.last_finished(tenant_id)
        outcome = report.outcome_status()
        reason = {
            IntegrationStatus.CONNECTED: None,
            IntegrationStatus.DEGRADED: "some_mailboxes_unreachable",
        }.get(outcome, "no_mailbox_reachable")

        def apply(current: Integration) -> Integration | None:
            if current.status in _PAUSED:
                return None  # disconnected (or reset) while the test ran: leave it alone
            moved = current.transition(outcome, self.clock.now(), reason=reason)
            return replace(moved, last_access_test_id=report.test_id)

        update_integration(self.integrations, tenant_id, apply)
        self.alerts.resolve(tenant_id, AlertKind.CONSENT_REVOKED)
        self.alerts.resolve(tenant_id, AlertKind.TOKEN_FAILURE)
        if regressed(previous, report):
            before = f" (previous test: {previous.accessible} of {previous.sampled})" if previous else ""
            self.alerts.notify(
                tenant_id, AlertKind.ACCESS_TEST_REGRESSED, detail=f"{self._summary(report)}{before}."
            )
        elif outcome is IntegrationStatus.CONNECTED:
            self.alerts.resolve(tenant_id, AlertKind.ACCESS_TEST_REGRESSED)
        # Booking refuses mailboxes found on premises, hybrid or unlicensed at request time.
        self.unreachable.record(tenant_id, report.users, report.test_id, self.clock.now())
        # The report is written last: once it reads finished, the status and alerts are in place.
        self.store.save(report, etag)
        self.store.point(tenant_id, latest=report.test_id, finished=report.test_id)
        log.info(
            "access test finished",
            extra={"tenant": tenant_id, "status": outcome.value, "count": report.sampled},
        )
        return report

    @staticmethod
    def _summary(report: AccessTestReport) -> str:
        reasons = ", ".join(
            f"{r.value} {n}" for r, n in sorted(report.by_reason.items()) if r is not AccessReason.ACCESSIBLE
        )
        text = f"{report.accessible} of {report.sampled} sampled calendars are reachable"
        return f"{text}; not reachable: {reasons}" if reasons else text

    def _finish_inactive(
        self, found: Versioned[AccessTestReport], integration: Versioned[Integration] | None
    ) -> AccessTestReport:
        code = "integration_disabled" if integration is not None and not integration.value.enabled else (
            "integration_not_connected"
        )
        failed = replace(found.value, status=RunStatus.FAILED, finished_at=self.clock.now(), error_code=code)
        self.store.save(failed, found.etag)
        log.info("access test skipped: integration not active", extra={"tenant": failed.tenant_id})
        return failed

    def _token_failed(self, found: Versioned[AccessTestReport], exc: ServiceError) -> AccessTestReport:
        tenant_id = found.value.tenant_id
        now = self.clock.now()
        if self.tokens is not None:
            self.tokens.invalidate(tenant_id)
        failed = replace(found.value, status=RunStatus.FAILED, finished_at=now, error_code=exc.code)
        since: list[datetime] = []

        def apply(current: Integration) -> Integration | None:
            if current.status in _PAUSED:
                return None
            if current.status is IntegrationStatus.FAILED and current.status_since is not None:
                since.append(current.status_since)
            moved = current.transition(IntegrationStatus.FAILED, now, reason=exc.code)
            return replace(moved, last_access_test_id=failed.test_id)

        update_integration(self.integrations, tenant_id, apply)
        revoked = isinstance(exc, ConsentMissing | AppNotInTenant | GraphAuthError)
        kind = AlertKind.CONSENT_REVOKED if revoked else AlertKind.TOKEN_FAILURE
        aadsts = getattr(exc, "aadsts", None)
        detail = f"Microsoft Entra ID refused the app a token for your organisation ({exc.code}"
        detail += f", AADSTS{aadsts})." if aadsts else ")."
        self.alerts.notify(tenant_id, kind, detail=detail, since=since[0] if since else now)
        self.store.save(failed, found.etag)
        self.store.point(tenant_id, latest=failed.test_id)
        log.warning("access test: no token for the tenant", extra={"tenant": tenant_id, "status": exc.code})
        return failed
