"""Integration set-up: the tenant's record, admin consent, disconnect, and the audit trail.

What a customer's admin does first: configure the integration (vendor, method, owner
email, sample size...), then grant admin consent for the whole Microsoft tenant, then
read the access test. This service owns those steps:

- ``configure`` (PUT /api/integration): create or update with the ETag read, every
  change written to the ``audit`` table (who, when, field: old -> new; no secrets);
  ``not_configured`` becomes ``consent_pending``.
- ``consent_url`` (POST /api/integration/consent): a v2 admin-consent URL whose
  ``state`` is ``<tid>.<32 random bytes>``: the row in ``oauthstates`` is keyed by
  the SHA-256 of the random part (the raw state is never stored), bound to the
  admin's (tid, oid), single-use and valid for 10 minutes.
- ``complete_consent`` (the anonymous browser callback): consume the state (delete
  with its ETag first, so a replay finds nothing), map ``error``/AADSTS to a stable
  code, require the returned tenant to equal the state's, then *prove* consent by
  getting an app-only token for the tenant and reading the admin's user object; on
  success the integration becomes ``testing`` and an access test is queued. Always
  answers with the app URL to redirect to (``?consent=granted``, ``?consent=verifying``
  or ``?consent=error&code=...``), never with the state or Microsoft's text.
- Consent propagation: right after consent Entra ID can refuse the app's first token
  for a while (AADSTS700016 / 65001; microsoft-graph-docs-contrib issues #7087 and #4160,
  microsoft-authentication-library-for-dotnet #2612: "retry with back-off"). When the
  first proof fails that way the callback records consent ``verifying`` and queues a
  ``verify_consent`` job (``access-tests`` queue) that forgets cached tokens and proves
  again after 2, 4, 8, 16 s and then every 30 s, for ``PROOF_WINDOW`` (10 minutes) from
  the callback; only then is it reported as a failure (consent ``pending`` with the code)
  and the owner alerted. Each step is claimed on the consent row with its ETag, so a
  redelivered message never forks a second chain or grants twice.
- ``disconnect`` (DELETE): status ``disconnected``, the tenant's subscriptions and
  secrets deleted, OAuth states and alert/test pointers cleared so a later consent
  starts clean (the configuration itself is kept).
- ``require_active``: the check other features call before calendar work.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlencode

from core.domain.aadsts import consent_error_code
from core.domain.access_test import AccessTestReport
from core.domain.commands import AlertKind, ConsentVerifyCommand
from core.domain.errors import (
    AuthorizationError,
    Conflict,
    DependencyError,
    GraphAuthError,
    GraphError,
    ServiceError,
    ValidationFailed,
)
from core.domain.integration import (
    MAX_SAMPLE_SIZE,
    ONBOARDED,
    ConnectionMethod,
    Integration,
    IntegrationStatus,
    PairingPolicy,
)
from core.log import correlation_id
from core.names import Queues
from core.ports import CalendarGateway, Clock, CommandQueue, SecretStore, TableStore, TokenProvider
from core.services.access_test import AccessTestService, update_integration
from core.services.alerts import OwnerAlerts
from core.services.identity import GraphIdentities
from core.services.stores.access_tests import AccessTestStore
from core.services.stores.audit import AuditTrail
from core.services.stores.integrations import IntegrationRepository
from core.services.stores.oauth_states import STATE_TTL, OAuthStateStore, is_expired, new_state
from core.services.stores.secrets import TenantSecrets
from core.settings import Settings

log = logging.getLogger("core.services.integration")

STATE_PURPOSE: Final = "admin_consent"

# Stable codes the callback reports besides the AADSTS ones (core/domain/aadsts.py).
STATE_INVALID: Final = "consent_state_invalid"
STATE_EXPIRED: Final = "consent_state_expired"
TENANT_MISMATCH: Final = "consent_tenant_mismatch"
CHECK_UNAVAILABLE: Final = "consent_check_unavailable"
NOT_GRANTED: Final = "consent_failed"
_REVOKED_REASONS: Final = frozenset({"app_not_in_tenant", "consent_missing", "graph_token_rejected"})
# Proof failures that can be Entra still propagating a fresh consent (or briefly unavailable).
PROPAGATING: Final = frozenset({"app_not_in_tenant", "consent_missing", "graph_token_rejected", CHECK_UNAVAILABLE})
PROOF_WINDOW: Final = timedelta(minutes=10)
PROOF_DELAYS: Final = (2.0, 4.0, 8.0, 16.0)  # then every PROOF_STEP seconds until the window closes
PROOF_STEP: Final = 30.0
VERIFYING: Final = "verifying"


def proof_delay(attempt: int) -> float:
    """Seconds before re-proof ``attempt`` (1-based): 2, 4, 8, 16, then 30 s steps."""
    return PROOF_DELAYS[attempt - 1] if attempt <= len(PROOF_DELAYS) else PROOF_STEP


@dataclass(frozen=True, slots=True)
class IntegrationChanges:
    """What PUT /api/integration asks for (``None`` keeps the current value)."""

    vendor: str
    method: ConnectionMethod
    owner_email: str
    enabled: bool | None = None
    pairing_policy: PairingPolicy | None = None
    access_test_sample_size: int | None = None


@dataclass(frozen=True, slots=True)
class ConsentView:
    """Where admin consent stands: none, pending, granted, declined or revoked."""

    status: str
    updated_at: datetime | None = None
    error_code: str | None = None


@dataclass(frozen=True, slots=True)
class IntegrationView:
    integration: Integration
    configured: bool
    consent: ConsentView
    last_test: AccessTestReport | None


@dataclass(frozen=True, slots=True)
class ConsentCallback:
    """The query Microsoft appends to the admin-consent redirect."""

    state: str | None = None
    admin_consent: str | None = None
    tenant: str | None = None
    error: str | None = None
    error_description: str | None = None


@dataclass(frozen=True, slots=True)
class ConsentOutcome:
    """Where to send the browser, and the tenant the state named (for the tenant-gate cache)."""

    redirect_url: str
    granted: bool
    tenant_id: str | None = None
    code: str | None = None











SubscriptionCleanup = Callable[[str], object]


class IntegrationService:
    """Set-up, consent, disconnect and the active check (see the module docstring)."""

    def __init__(
        self,
        *,
        tables: TableStore,
        clock: Clock,
        settings: Settings,
        gateway: CalendarGateway | None,
        secrets_store: SecretStore,
        alerts: OwnerAlerts,
        access_tests: AccessTestService,
        tokens: TokenProvider | None = None,
        delete_subscriptions: SubscriptionCleanup | None = None,
        random_token: Callable[[int], str] = secrets.token_urlsafe,
        queues: CommandQueue | None = None,
    ) -> None:
        self.tables = tables
        self.queues = queues if queues is not None else access_tests.queues
        self.clock = clock
        self.settings = settings
        self._gateway = gateway
        self.alerts = alerts
        self.access_tests = access_tests
        self.tokens = tokens
        self.delete_subscriptions = delete_subscriptions
        self.random_token = random_token
        self.repo = IntegrationRepository(tables)
        self.audit = AuditTrail(tables, clock)
        self.tenant_secrets = TenantSecrets(tables, secrets_store)
        self.states = OAuthStateStore(tables)
        self.reports = AccessTestStore(tables, settings.entra_client_id)

    @property
    def gateway(self) -> CalendarGateway:
        if self._gateway is None:
            raise DependencyError("Microsoft Graph is not configured for this process.")
        return self._gateway

    # -- reading ------------------------------------------------------------------------

    def view(self, tenant_id: str) -> IntegrationView:
        found = self.repo.get(tenant_id)
        integration = found.value if found else Integration(tenant_id=tenant_id, enabled=False)
        return IntegrationView(
            integration=integration,
            configured=found is not None,
            consent=self._consent_view(integration),
            last_test=self.reports.latest(tenant_id),
        )

    def require_active(self, tenant_id: str) -> Integration:
        """The tenant's integration if calendar work may happen now; 409 ``integration_disabled`` /
        ``integration_not_connected`` otherwise. Other features call this before touching Graph."""
        found = self.repo.get(tenant_id)
        if found is None or found.value.status not in ONBOARDED:
            raise Conflict(
                "Your organisation has not connected Microsoft 365 yet.", code="integration_not_connected"
            )
        if not found.value.enabled:
            raise Conflict(
                "Your organisation's administrator has paused the calendar integration.", code="integration_disabled"
            )
        return found.value

    # -- PUT ------------------------------------------------------------------------------

    def configure(self, tenant_id: str, actor: str, changes: IntegrationChanges) -> IntegrationView:
        """Create or update the integration (ETag-guarded: a concurrent change is a 409)."""
        if changes.access_test_sample_size is not None and not 1 <= changes.access_test_sample_size <= MAX_SAMPLE_SIZE:
            raise ValidationFailed(f"accessTestSampleSize must be 1 to {MAX_SAMPLE_SIZE}.")
        now = self.clock.now()
        found = self.repo.get(tenant_id)
        current = found.value if found else Integration(tenant_id=tenant_id)
        updated = replace(
            current,
            vendor=changes.vendor,
            method=changes.method,
            owner_email=changes.owner_email,
            enabled=current.enabled if changes.enabled is None else changes.enabled,
            pairing_policy=changes.pairing_policy or current.pairing_policy,
            access_test_sample_size=changes.access_test_sample_size or current.access_test_sample_size,
        )
        if updated.status is IntegrationStatus.NOT_CONFIGURED:
            updated = updated.transition(IntegrationStatus.CONSENT_PENDING, now)
        diff = _diff(current, updated, created=found is None)
        if not diff and found is not None:
            return self.view(tenant_id)
        updated = replace(updated, updated_at=now)
        self.repo.save(updated, found.etag if found else None)
        self.audit.record(tenant_id, actor, "create" if found is None else "update", diff)
        if found is not None and current.method is not updated.method:
            # Another method means other credentials: forget cached ones and test the new path.
            if self.tokens is not None:
                self.tokens.invalidate(tenant_id)
            if updated.active:
                self.access_tests.start(tenant_id, actor, replace_running=True)  # the running one tests the old path
        return self.view(tenant_id)

    # -- consent ------------------------------------------------------------------------------

    def consent_url(self, tenant_id: str, admin_oid: str) -> str:
        """A v2 admin-consent URL for the caller's own tenant, carrying a fresh single-use state."""
        now = self.clock.now()
        self._purge_states(tenant_id, now)
        state, key = new_state(tenant_id, self.random_token)
        self.states.put(
            tenant_id, key,
            {"adminOid": admin_oid, "purpose": STATE_PURPOSE, "createdAt": now, "expiresAt": now + STATE_TTL},
        )

        def pending(current: Integration) -> Integration | None:
            if current.status in (IntegrationStatus.NOT_CONFIGURED, IntegrationStatus.DISCONNECTED):
                return replace(current.transition(IntegrationStatus.CONSENT_PENDING, now), updated_at=now)
            return None

        if self.repo.get(tenant_id) is None:
            fresh = Integration(tenant_id=tenant_id).transition(IntegrationStatus.CONSENT_PENDING, now)
            try:
                self.repo.save(replace(fresh, updated_at=now), None)
            except Conflict:
                self._update(tenant_id, pending)
        else:
            self._update(tenant_id, pending)
        self._set_consent(tenant_id, "pending", None)
        self.audit.record(tenant_id, admin_oid, "consent_requested")
        query = urlencode(
            {
                "client_id": self.settings.entra_client_id,
                "scope": self.settings.graph_scope,
                "redirect_uri": f"{self.settings.public_base_url}/api/integration/consent/callback",
                "state": state,
            }
        )
        return f"{self.settings.authority_host}/{tenant_id}/v2.0/adminconsent?{query}"

    def complete_consent(self, callback: ConsentCallback) -> ConsentOutcome:
        """Check the state, prove consent, start the access test; never raises for the browser's input."""
        tenant_id, admin_oid, problem = self._consume_state(callback.state)
        if problem is not None:
            return self._refuse(problem, tenant_id)
        assert tenant_id is not None and admin_oid is not None
        if callback.error:
            code = consent_error_code(callback.error, callback.error_description)
            self._set_consent(tenant_id, "declined", code)
            self.audit.record(tenant_id, admin_oid, "consent_refused", {"code": [None, code]})
            return self._refuse(code, tenant_id)
        if (callback.admin_consent or "").lower() != "true":
            return self._refuse(NOT_GRANTED, tenant_id)
        if (callback.tenant or "").strip().lower() != tenant_id:
            self.audit.record(tenant_id, admin_oid, "consent_refused", {"code": [None, TENANT_MISMATCH]})
            return self._refuse(TENANT_MISMATCH, tenant_id)

        proof = self._prove(tenant_id, admin_oid)
        if proof in PROPAGATING:
            return self._start_verifying(tenant_id, admin_oid, proof)
        if proof is not None:
            self._set_consent(tenant_id, "pending", proof)
            self.audit.record(tenant_id, admin_oid, "consent_unproven", {"code": [None, proof]})
            return self._refuse(proof, tenant_id)
        self._grant(tenant_id, admin_oid)
        return ConsentOutcome(self._app_url("granted"), True, tenant_id)

    # -- consent propagation ----------------------------------------------------------------

    def verify_consent(self, command: ConsentVerifyCommand) -> str:
        """One re-proof step (the ``verify_consent`` job): ``granted``, ``retrying``, ``failed`` or ``stale``."""
        tenant_id, now = command.tenant_id, self.clock.now()
        if not self.repo.claim_verification(tenant_id, command.step, now):
            log.info("consent re-proof: stale or duplicate step ignored", extra={"tenant": tenant_id})
            return "stale"
        proof = self._prove(tenant_id, command.admin_oid)
        if proof is None:
            self._grant(tenant_id, command.admin_oid)
            log.info("admin consent proven after %d re-proof(s)", command.attempt + 1, extra={"tenant": tenant_id})
            return "granted"
        nxt = command.attempt + 1
        delay = proof_delay(nxt)
        if proof in PROPAGATING and now + timedelta(seconds=delay) - command.since <= PROOF_WINDOW:
            self._schedule_proof(ConsentVerifyCommand(tenant_id, command.admin_oid, command.chain, nxt,
                                                      command.since, command.correlation_id), proof, delay)
            return "retrying"
        self._give_up(tenant_id, command.admin_oid, proof, now - command.since)
        return "failed"

    def on_verify_poison(self, command: ConsentVerifyCommand) -> None:
        """A re-proof step failed every delivery (storage or the queue kept failing): say so, alert once."""
        self._give_up(command.tenant_id, command.admin_oid, CHECK_UNAVAILABLE, self.clock.now() - command.since)

    def _start_verifying(self, tenant_id: str, admin_oid: str, proof: str) -> ConsentOutcome:
        chain = self.random_token(12)
        first = ConsentVerifyCommand(tenant_id, admin_oid, chain, 1, self.clock.now(), correlation_id.get())
        self.audit.record(tenant_id, admin_oid, "consent_verifying", {"code": [None, proof]})
        try:
            self._schedule_proof(first, proof, proof_delay(1))
        except ServiceError as exc:
            log.error("consent re-proof could not be queued", extra={"tenant": tenant_id, "status": exc.code})
            self._set_consent(tenant_id, "pending", proof)
            return self._refuse(CHECK_UNAVAILABLE, tenant_id)
        log.warning("admin consent not yet usable (%s); verifying with back-off", proof, extra={"tenant": tenant_id})
        return ConsentOutcome(self._app_url(VERIFYING), False, tenant_id, proof)

    def _schedule_proof(self, command: ConsentVerifyCommand, proof: str, delay: float) -> None:
        """Point the consent row at the next step, then queue it (a lost send leaves a row no message
        matches: the poison path and the owner's retry cover it)."""
        self.repo.set_consent(command.tenant_id, VERIFYING, proof, self.clock.now(), verification=command.step)
        self.queues.send(Queues.ACCESS_TESTS, command.to_message(), delay_seconds=delay)

    def _give_up(self, tenant_id: str, admin_oid: str, proof: str, waited: timedelta) -> None:
        self._set_consent(tenant_id, "pending", proof)
        self.audit.record(tenant_id, admin_oid, "consent_unproven", {"code": [None, proof]})
        minutes = max(1, round(waited.total_seconds() / 60))
        self.alerts.notify(
            tenant_id, AlertKind.TOKEN_FAILURE,
            detail=f"Admin consent was granted, but Microsoft Entra ID still refused the app a token for your "
                   f"organisation after {minutes} minute(s) ({proof}). Grant consent again from the admin screen.",
        )
        log.warning("admin consent could not be proven in time", extra={"tenant": tenant_id, "status": proof})

    def _grant(self, tenant_id: str, admin_oid: str) -> None:
        """Consent proven: testing, consent granted, alerts cleared, the first access test queued."""
        now = self.clock.now()

        def granted(current: Integration) -> Integration:
            base = current
            if base.status in (IntegrationStatus.NOT_CONFIGURED, IntegrationStatus.DISCONNECTED):
                base = base.transition(IntegrationStatus.CONSENT_PENDING, now)
            moved = base.transition(IntegrationStatus.TESTING, now)
            return replace(moved, consent_granted_at=now, consent_granted_by=admin_oid, updated_at=now)

        if self._update(tenant_id, granted) is None:
            self.repo.save(granted(Integration(tenant_id=tenant_id)), None)
        self._set_consent(tenant_id, "granted", None)
        self.audit.record(tenant_id, admin_oid, "consent_granted")
        for kind in (AlertKind.CONSENT_REVOKED, AlertKind.TOKEN_FAILURE):
            self.alerts.resolve(tenant_id, kind)
        try:
            self.access_tests.start(tenant_id, admin_oid, replace_running=True)
        except ServiceError as exc:
            # Consent stands; the admin can start the test again and the timer reruns it.
            log.error("could not queue the first access test", extra={"tenant": tenant_id, "status": exc.code})
        log.info("admin consent granted and proven", extra={"tenant": tenant_id})

    # -- DELETE ---------------------------------------------------------------------------

    def disconnect(self, tenant_id: str, actor: str) -> Integration | None:
        """Stop everything for the tenant and forget its credentials; the configuration stays."""
        now = self.clock.now()

        def disconnected(current: Integration) -> Integration:
            moved = current.transition(IntegrationStatus.DISCONNECTED, now, reason="disconnected_by_admin")
            return replace(moved, consent_granted_at=None, consent_granted_by=None, last_access_test_id=None)

        result = self._update(tenant_id, disconnected)
        removed: dict[str, list[Any]] = {}
        if self.delete_subscriptions is not None:
            try:
                removed["subscriptions"] = [None, self.delete_subscriptions(tenant_id)]
            except ServiceError as exc:
                # Graph drops subscriptions that are not renewed, and renewals skip disconnected tenants.
                log.warning("disconnect: subscriptions not deleted", extra={"tenant": tenant_id, "status": exc.code})
                removed["subscriptions"] = [None, f"failed: {exc.code}"]
        removed["secrets"] = [None, self.tenant_secrets.delete_all(tenant_id)]
        self.states.delete_all(tenant_id)
        self.repo.clear_consent(tenant_id)
        self.reports.forget_latest(tenant_id)
        for kind in AlertKind:
            self.alerts.resolve(tenant_id, kind)
        if self.tokens is not None:
            self.tokens.invalidate(tenant_id)
        self.audit.record(tenant_id, actor, "disconnect", removed)
        log.info("integration disconnected", extra={"tenant": tenant_id})
        return result

    # -- internals -------------------------------------------------------------------------

    def _update(self, tenant_id: str, change: Callable[[Integration], Integration | None]) -> Integration | None:
        return update_integration(self.repo, tenant_id, change)

    def _consume_state(self, state: str | None) -> tuple[str | None, str | None, str | None]:
        """(tenant, admin oid, problem code): the state is deleted before anything acts on it."""
        tenant_id, row = self.states.take(state)
        if row is None or row.data.get("purpose") != STATE_PURPOSE:
            return tenant_id, None, STATE_INVALID
        if is_expired(row, self.clock.now()):
            return tenant_id, None, STATE_EXPIRED
        admin = row.data.get("adminOid")
        if not isinstance(admin, str) or not admin:
            return tenant_id, None, STATE_INVALID
        return tenant_id, admin, None

    def _prove(self, tenant_id: str, admin_oid: str) -> str | None:
        """Get an app-only token for the tenant and read a user with it: None when that worked."""
        if self.tokens is not None:
            self.tokens.invalidate(tenant_id)  # a token or failure cached before consent must not count
        try:
            self.gateway.get_user(GraphIdentities.app_only(tenant_id), admin_oid)
        except (AuthorizationError, GraphAuthError) as exc:
            return exc.code
        except DependencyError:
            return CHECK_UNAVAILABLE
        except GraphError:
            return None  # Graph accepted the token and answered about the user: consent works
        return None

    def _refuse(self, code: str, tenant_id: str | None) -> ConsentOutcome:
        log.warning("admin consent refused", extra={"tenant": tenant_id or "-", "status": code})
        return ConsentOutcome(self._app_url("error", code), False, tenant_id, code)

    def _app_url(self, outcome: str, code: str | None = None) -> str:
        params = {"consent": outcome} if code is None else {"consent": outcome, "code": code}
        return f"{self.settings.app_url}/?{urlencode(params)}"

    def _purge_states(self, tenant_id: str, now: datetime) -> None:
        self.states.purge_expired(tenant_id, (STATE_PURPOSE,), now)

    def _set_consent(self, tenant_id: str, status: str, code: str | None) -> None:
        self.repo.set_consent(tenant_id, status, code, self.clock.now())

    def _consent_view(self, integration: Integration) -> ConsentView:
        row = self.repo.consent(integration.tenant_id)
        if (
            integration.status is IntegrationStatus.FAILED
            and integration.consent_granted_at is not None
            and integration.status_reason in _REVOKED_REASONS
        ):
            return ConsentView("revoked", integration.status_since, integration.status_reason)
        if row is None:
            if integration.consent_granted_at is not None:
                return ConsentView("granted", integration.consent_granted_at)
            return ConsentView("none")
        return ConsentView(row.status, row.updated_at, row.error_code)


_AUDITED: Final = (
    ("vendor", "vendor"),
    ("method", "method"),
    ("owner_email", "ownerEmail"),
    ("enabled", "enabled"),
    ("pairing_policy", "pairingPolicy"),
    ("access_test_sample_size", "accessTestSampleSize"),
    ("status", "status"),
)


def _plain(value: object) -> object:
    return value.value if hasattr(value, "value") else value


def _diff(before: Integration, after: Integration, *, created: bool) -> dict[str, list[Any]]:
    """Changed fields as ``{name: [old, new]}`` (all fields when created)."""
    out: dict[str, list[Any]] = {}
    for attr, name in _AUDITED:
        old, new = _plain(getattr(before, attr)), _plain(getattr(after, attr))
        if created or old != new:
            out[name] = [None if created else old, new]
    return out
