"""Integration routes (admin of the caller's tenant): set-up, consent, access tests, permissions.

Thin handlers: parse, call one service (core/services/integration.py,
core/services/access_test.py, the container's services),
map the result. The consent callback is anonymous (a browser redirect from Microsoft):
it always answers 302 to the app URL with the outcome. ``permissions`` is static.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import azure.functions as func

from core.domain.integration import ConnectionMethod, PairingPolicy
from functions.auth import Auth
from functions.endpoint import Models, Reply, RequestContext, endpoint

if TYPE_CHECKING:  # services and schemas load on first use, not at import (cold start)
    from core.domain.access_test import AccessTestReport as DomainReport
    from core.services.access_test import AccessTestService
    from core.services.integration import IntegrationView
    from functions.schemas.integration import (
        AccessTestAccepted,
        AccessTestReport,
        AuditPage,
        AuditQuery,
        ConsentCallbackQuery,
        ConsentUrl,
        Integration,
        IntegrationBody,
        Permissions,
    )

bp = func.Blueprint()
M = Models("functions.schemas.integration")

@endpoint(bp, "GET", "integration", auth=Auth.ADMIN, onboarding=True, response=M.Integration,
          summary="The caller's tenant integration and its status", tags=("integration",))
def integration_get(ctx: RequestContext[None]) -> Integration:
    """Admins see their tenant's integration (also before onboarding, when the deployment allows the tenant)."""
    return _integration(ctx.container.integration.view(ctx.caller.tenant_id))


@endpoint(bp, "PUT", "integration", auth=Auth.ADMIN, onboarding=True, body=M.IntegrationBody,
          response=M.Integration, summary="Configure the tenant integration", tags=("integration",),
          extra_statuses=(409,))
def integration_put(ctx: RequestContext[IntegrationBody]) -> Integration:
    """Choose the connection method and the owner who gets alerts."""
    body = ctx.body
    from core.services.integration import IntegrationChanges

    changes = IntegrationChanges(
        vendor=body.vendor,
        method=ConnectionMethod(body.method),
        owner_email=body.owner_email,
        enabled=body.enabled,
        pairing_policy=PairingPolicy(body.pairing_policy) if body.pairing_policy else None,
        access_test_sample_size=body.access_test_sample_size,
    )
    view = ctx.container.integration.configure(ctx.caller.tenant_id, ctx.caller.object_id, changes)
    ctx.container.tenant_gate.forget(ctx.caller.tenant_id)
    return _integration(view)


@endpoint(bp, "DELETE", "integration", auth=Auth.ADMIN, onboarding=True, status=202,
          summary="Disconnect: remove subscriptions and secrets", tags=("integration",))
def integration_delete(ctx: RequestContext[None]) -> Any:
    """Disconnect the tenant (status becomes ``disconnected``)."""
    ctx.container.integration.disconnect(ctx.caller.tenant_id, ctx.caller.object_id)
    ctx.container.tenant_gate.forget(ctx.caller.tenant_id)
    return {"status": "disconnected"}


@endpoint(bp, "POST", "integration/consent", auth=Auth.ADMIN, onboarding=True, response=M.ConsentUrl,
          summary="An admin-consent URL bound to the caller", tags=("integration",))
def integration_consent(ctx: RequestContext[None]) -> ConsentUrl:
    """A single-use, short-lived consent URL bound to (tid, oid)."""
    from functions.schemas.integration import ConsentUrl

    url = ctx.container.integration.consent_url(ctx.caller.tenant_id, ctx.caller.object_id)
    return ConsentUrl(consent_url=url)


@endpoint(bp, "GET", "integration/consent/callback", auth=Auth.ANONYMOUS, query=M.ConsentCallbackQuery,
          status=302, extra_statuses=(302,), summary="Microsoft's admin-consent redirect (browser)",
          tags=("integration",))
def integration_consent_callback(ctx: RequestContext[None, ConsentCallbackQuery]) -> Reply:
    """Checks the state, proves consent, and redirects the browser to the app."""
    q = ctx.query
    from core.services.integration import ConsentCallback

    outcome = ctx.container.integration.complete_consent(
        ConsentCallback(
            state=q.state,
            admin_consent=q.admin_consent,
            tenant=q.tenant,
            error=q.error,
            error_description=q.error_description,
        )
    )
    if outcome.granted and outcome.tenant_id:
        ctx.container.tenant_gate.forget(outcome.tenant_id)
    return Reply(302, None, {"Location": outcome.redirect_url})


@endpoint(bp, "POST", "integration/access-tests", auth=Auth.ADMIN, onboarding=True, status=202,
          response=M.AccessTestAccepted, summary="Start an access test", tags=("integration",),
          extra_statuses=(409,))
def access_test_start(ctx: RequestContext[None]) -> AccessTestAccepted:
    """Queues an access test over a sample of the tenant's mailboxes."""
    from functions.schemas.integration import AccessTestAccepted

    report = ctx.container.access_tests.start(ctx.caller.tenant_id, ctx.caller.object_id, ctx.correlation_id)
    return AccessTestAccepted(id=report.test_id)


@endpoint(bp, "GET", "integration/access-tests/latest", auth=Auth.ADMIN, onboarding=True,
          response=M.AccessTestReport, summary="The latest access-test report", tags=("integration",))
def access_test_latest(ctx: RequestContext[None]) -> AccessTestReport:
    """Counts per reason and a remediation hint per user."""
    service = ctx.container.access_tests
    return _report(service.latest(ctx.caller.tenant_id), service)


def _report(report: DomainReport, service: AccessTestService) -> AccessTestReport:
    from functions.schemas.integration import AccessTestReport, AccessTestUser

    return AccessTestReport(
        id=report.test_id,
        status=report.status.value,
        started_at=report.started_at,
        finished_at=report.finished_at,
        sampled=report.sampled,
        accessible=report.accessible,
        inaccessible=report.inaccessible,
        by_reason={reason.value: count for reason, count in report.by_reason.items()},
        users=[
            AccessTestUser(
                user_id=u.user_id,
                user_principal_name=u.user_principal_name,
                reason=u.reason.value,
                hint=service.hint(u.reason),
            )
            for u in report.users
        ],
        error_code=report.error_code,
    )


def _integration(view: IntegrationView) -> Integration:
    from functions.schemas.integration import AccessTestSummary, ConsentInfo, Integration

    i = view.integration
    test = view.last_test
    return Integration(
        tenant_id=i.tenant_id,
        vendor="outlook365" if view.configured and i.vendor == "outlook365" else None,
        method=i.method.value if view.configured else None,
        owner_email=i.owner_email or None,
        enabled=i.enabled if view.configured else False,
        status=i.status.value,
        status_reason=i.status_reason,
        status_since=i.status_since,
        pairing_policy=i.pairing_policy.value if view.configured else None,
        access_test_sample_size=i.access_test_sample_size if view.configured else None,
        consent=ConsentInfo(
            status=view.consent.status, updated_at=view.consent.updated_at, error_code=view.consent.error_code
        ),
        last_access_test=None
        if test is None
        else AccessTestSummary(
            id=test.test_id,
            status=test.status.value,
            finished_at=test.finished_at,
            sampled=test.sampled,
            accessible=test.accessible,
            inaccessible=test.inaccessible,
        ),
    )


@endpoint(bp, "GET", "integration/permissions", auth=Auth.ANONYMOUS, response=M.Permissions,
          summary="The Microsoft 365 permissions the app asks for, and why", tags=("integration",))
def integration_permissions(ctx: RequestContext[None]) -> Permissions:
    """Static and public: lets an admin review what they are consenting to before signing in."""
    from functions.schemas.integration import DATA_USAGE, PERMISSIONS, Permissions

    return Permissions(permissions=list(PERMISSIONS), data_usage=DATA_USAGE)


@endpoint(bp, "GET", "integration/audit", auth=Auth.ADMIN, query=M.AuditQuery, response=M.AuditPage,
          summary="The organisation's audit trail, newest first: admins' changes and every request of the "
                  "product's server", tags=("integration",))
def integration_audit(ctx: RequestContext[None, AuditQuery]) -> AuditPage:
    """Who did what, when, for whom and with what outcome; ids and statuses only, never content or secrets."""
    from functions.schemas.integration import AuditEntry, AuditPage

    entries, following = ctx.container.audit.page(ctx.caller.tenant_id, limit=ctx.query.limit,
                                                  before=ctx.query.before)
    return AuditPage(entries=[AuditEntry(at=e.at, actor=e.actor, action=e.action, on_behalf_of=e.on_behalf_of,
                                         ids=e.ids or None, status=e.status, code=e.code,
                                         changes=e.changes or None) for e in entries], next=following)
