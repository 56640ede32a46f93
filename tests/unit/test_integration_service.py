"""Integration set-up on in-memory ports: configuration and audit, consent state tokens, proof, disconnect."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest

from core.domain.commands import AlertKind
from core.domain.errors import Conflict, TransientGraphError
from core.domain.integration import ConnectionMethod, IntegrationStatus, PairingPolicy
from core.names import Queues, Tables
from core.services.integration import ConsentCallback, IntegrationChanges
from tests.support.fake_graph import NORMAL, OUTSIDE_SCOPE
from tests.unit.test_access_test_service import ADMIN_OID, APP_ID, OTHER_TENANT, TENANT, World

CHANGES = IntegrationChanges(vendor="outlook365", method=ConnectionMethod.DOMAIN_WIDE, owner_email="owner@contoso.test")


def consent_world(**seed: str) -> World:
    w = World()
    w.seed(users=seed or {"admin": NORMAL, "alice": NORMAL, "scoped1": OUTSIDE_SCOPE})
    w.integration.configure(TENANT, ADMIN_OID, CHANGES)
    return w


def state_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["state"][0]


def granted(state: str, tenant: str = TENANT) -> ConsentCallback:
    return ConsentCallback(state=state, admin_consent="True", tenant=tenant)


def outcome_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


# --- configuration and audit -----------------------------------------------------------------


def test_first_put_creates_the_record_waiting_for_consent_and_audits_every_field() -> None:
    """not_configured -> consent_pending; the audit row says who created what (no secrets)."""
    w = World()
    view = w.integration.configure(TENANT, ADMIN_OID, CHANGES)
    assert view.integration.status is IntegrationStatus.CONSENT_PENDING
    assert view.consent.status == "none"
    [entry] = w.integration.audit.entries(TENANT)
    assert (entry.actor, entry.action) == (ADMIN_OID, "create")
    assert entry.changes["ownerEmail"] == [None, "owner@contoso.test"]
    assert entry.changes["status"] == [None, "consent_pending"]


def test_updates_audit_only_what_changed_and_a_no_op_put_audits_nothing() -> None:
    """Each change is recorded old -> new, newest first; repeating the same PUT leaves no trace."""
    w = World()
    w.integration.configure(TENANT, ADMIN_OID, CHANGES)
    changed = IntegrationChanges(
        vendor="outlook365", method=ConnectionMethod.PER_USER, owner_email="new@contoso.test", enabled=False,
        pairing_policy=PairingPolicy.SAME_TENANT, access_test_sample_size=50,
    )
    w.clock.advance(minutes=1)
    view = w.integration.configure(TENANT, "someone-else", changed)
    w.clock.advance(minutes=1)
    w.integration.configure(TENANT, "someone-else", changed)
    latest, first = w.integration.audit.entries(TENANT)
    assert first.action == "create" and latest.actor == "someone-else"
    assert latest.changes == {
        "method": ["domainWide", "perUser"],
        "ownerEmail": ["owner@contoso.test", "new@contoso.test"],
        "enabled": [True, False],
        "pairingPolicy": ["registered", "sameTenant"],
        "accessTestSampleSize": [25, 50],
    }
    assert view.integration.access_test_sample_size == 50 and not view.integration.enabled


def test_require_active_refuses_disabled_and_unconnected_tenants() -> None:
    """Other features get a clear 409 code: integration_not_connected or integration_disabled."""
    w = World()
    with pytest.raises(Conflict) as missing:
        w.integration.require_active(TENANT)
    assert missing.value.code == "integration_not_connected"
    w.onboard(enabled=False)
    with pytest.raises(Conflict) as disabled:
        w.integration.require_active(TENANT)
    assert disabled.value.code == "integration_disabled"
    w.onboard(OTHER_TENANT)
    assert w.integration.require_active(OTHER_TENANT).active


# --- consent URL and state --------------------------------------------------------------------


def test_consent_url_is_the_v2_admin_consent_endpoint_for_the_callers_tenant() -> None:
    """Tenant in the path (never common), the app id, Graph's .default scope, our callback, tid-prefixed state."""
    w = consent_world()
    url = w.integration.consent_url(TENANT, ADMIN_OID)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        f"https://login.microsoftonline.com/{TENANT}/v2.0/adminconsent"
    )
    assert query["client_id"] == [APP_ID]
    assert query["scope"] == ["https://graph.microsoft.com/.default"]
    assert query["redirect_uri"] == ["https://func.example.com/api/integration/consent/callback"]
    tid, _, raw = query["state"][0].partition(".")
    assert tid == TENANT and len(raw) >= 43


def test_state_is_stored_only_as_a_hash_bound_to_the_admin_with_a_ten_minute_expiry() -> None:
    """The raw state never reaches storage; the row names the admin and expires 10 minutes later."""
    w = consent_world()
    raw = state_of(w.integration.consent_url(TENANT, ADMIN_OID)).partition(".")[2]
    [row] = w.tables.all(Tables.OAUTH_STATES)
    assert row.partition_key == TENANT and row.row_key == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in repr(row.data)
    assert row.data["adminOid"] == ADMIN_OID and row.data["purpose"] == "admin_consent"
    assert (row.data["expiresAt"] - w.clock.now()).total_seconds() == 600  # type: ignore[operator]


def test_two_requests_give_two_different_states() -> None:
    """States are random per request."""
    w = consent_world()
    first, second = (state_of(w.integration.consent_url(TENANT, ADMIN_OID)) for _ in range(2))
    assert first != second


def test_granted_consent_is_proven_then_testing_and_an_access_test_is_queued() -> None:
    """A valid callback proves consent with an app-only token, moves to testing, queues a test, redirects granted."""
    w = consent_world()
    outcome = w.integration.complete_consent(granted(state_of(w.integration.consent_url(TENANT, ADMIN_OID))))
    assert outcome.granted and outcome.redirect_url == "https://app.example.com/?consent=granted"
    integration = w.repo.get(TENANT)
    assert integration is not None
    assert integration.value.status is IntegrationStatus.TESTING
    assert integration.value.consent_granted_by == ADMIN_OID
    assert w.graph.call_count("get_user", tenant_id=TENANT) == 1
    [job] = w.queues.take(Queues.ACCESS_TESTS)
    assert job.body["tenantId"] == TENANT and job.body["requestedBy"] == ADMIN_OID
    assert w.integration.view(TENANT).consent.status == "granted"


def test_switching_the_method_of_an_active_tenant_reruns_the_access_test() -> None:
    """A new method means new credentials: the access test is queued again for the new path."""
    w = consent_world()
    w.integration.complete_consent(granted(state_of(w.integration.consent_url(TENANT, ADMIN_OID))))
    w.queues.take(Queues.ACCESS_TESTS)
    same = IntegrationChanges(vendor="outlook365", method=ConnectionMethod.DOMAIN_WIDE,
                              owner_email="other@contoso.test")
    w.integration.configure(TENANT, ADMIN_OID, same)
    assert w.queues.take(Queues.ACCESS_TESTS) == []
    switched = IntegrationChanges(vendor="outlook365", method=ConnectionMethod.PER_USER,
                                  owner_email="other@contoso.test")
    w.integration.configure(TENANT, ADMIN_OID, switched)
    [job] = w.queues.take(Queues.ACCESS_TESTS)
    assert job.body["tenantId"] == TENANT


def test_a_replayed_state_is_refused() -> None:
    """Single use: the second callback with the same state finds nothing."""
    w = consent_world()
    state = state_of(w.integration.consent_url(TENANT, ADMIN_OID))
    assert w.integration.complete_consent(granted(state)).granted
    replay = w.integration.complete_consent(granted(state))
    assert not replay.granted and outcome_of(replay.redirect_url)["code"] == ["consent_state_invalid"]


def test_an_expired_state_is_refused_and_consumed() -> None:
    """After 10 minutes the state is useless (and gone)."""
    w = consent_world()
    state = state_of(w.integration.consent_url(TENANT, ADMIN_OID))
    w.clock.advance(minutes=10, seconds=1)
    outcome = w.integration.complete_consent(granted(state))
    assert outcome_of(outcome.redirect_url) == {"consent": ["error"], "code": ["consent_state_expired"]}
    assert w.tables.all(Tables.OAUTH_STATES) == []
    assert w.queues.pending(Queues.ACCESS_TESTS) == []


@pytest.mark.parametrize(
    "state",
    [None, "", "no-dot", f"{TENANT}.short", f"{TENANT}.{'A' * 43}", "not-a-guid." + "A" * 43, f"{TENANT}.{'é' * 43}"],
)
def test_unknown_or_malformed_states_are_refused(state: str | None) -> None:
    """Anything that is not a state we issued ends in consent_state_invalid without touching Graph."""
    w = consent_world()
    w.integration.consent_url(TENANT, ADMIN_OID)
    outcome = w.integration.complete_consent(granted(state or ""))
    assert outcome_of(outcome.redirect_url)["code"] == ["consent_state_invalid"]
    assert w.graph.calls == []


def test_a_state_cannot_be_moved_to_another_tenant() -> None:
    """Swapping the tenant prefix of a valid state (another tenant, or another tenant's admin) finds nothing."""
    w = consent_world()
    raw = state_of(w.integration.consent_url(TENANT, ADMIN_OID)).partition(".")[2]
    outcome = w.integration.complete_consent(granted(f"{OTHER_TENANT}.{raw}", tenant=OTHER_TENANT))
    assert outcome_of(outcome.redirect_url)["code"] == ["consent_state_invalid"]
    assert w.repo.get(OTHER_TENANT) is None


def test_returned_tenant_must_match_the_states_tenant() -> None:
    """Microsoft's tenant parameter alone is never trusted: a mismatch is refused and the state is spent."""
    w = consent_world()
    state = state_of(w.integration.consent_url(TENANT, ADMIN_OID))
    outcome = w.integration.complete_consent(granted(state, tenant=OTHER_TENANT))
    assert outcome_of(outcome.redirect_url)["code"] == ["consent_tenant_mismatch"]
    assert w.integration.complete_consent(granted(state)).code == "consent_state_invalid"
    found = w.repo.get(TENANT)
    assert found is not None and found.value.status is IntegrationStatus.CONSENT_PENDING


def test_consent_is_recorded_for_the_admin_who_asked_for_the_url() -> None:
    """The state binds the admin: whoever completes the browser flow, the grant is recorded for the issuing admin."""
    w = consent_world()
    other_admin = "10000000-0000-4000-8000-0000000000ff"
    state = state_of(w.integration.consent_url(TENANT, other_admin))
    assert w.integration.complete_consent(granted(state)).granted
    found = w.repo.get(TENANT)
    assert found is not None and found.value.consent_granted_by == other_admin
    assert [e.actor for e in w.integration.audit.entries(TENANT)][:2] == [other_admin, other_admin]


def test_declined_consent_redirects_with_a_clear_code_and_stays_pending() -> None:
    """access_denied + AADSTS65004 -> consent=error&code=consent_declined; consent shows declined."""
    w = consent_world()
    state = state_of(w.integration.consent_url(TENANT, ADMIN_OID))
    outcome = w.integration.complete_consent(
        ConsentCallback(state=state, error="access_denied",
                        error_description="AADSTS65004: User declined to consent to access the app.")
    )
    assert outcome.redirect_url == "https://app.example.com/?consent=error&code=consent_declined"
    view = w.integration.view(TENANT)
    assert view.integration.status is IntegrationStatus.CONSENT_PENDING
    assert (view.consent.status, view.consent.error_code) == ("declined", "consent_declined")
    assert w.graph.calls == []


def test_consent_refused_for_good_is_not_accepted() -> None:
    """admin_consent=True but Entra refuses the app's own credential: refused at once with that code."""
    from core.domain.errors import CredentialInvalid

    w = consent_world()
    w.tokens.fail_next(CredentialInvalid(aadsts=7000215))
    state = state_of(w.integration.consent_url(TENANT, ADMIN_OID))
    outcome = w.integration.complete_consent(granted(state))
    assert outcome_of(outcome.redirect_url)["code"] == ["app_credential_invalid"]
    view = w.integration.view(TENANT)
    assert view.integration.status is IntegrationStatus.CONSENT_PENDING
    assert view.consent.error_code == "app_credential_invalid"
    assert w.queues.pending(Queues.ACCESS_TESTS) == []


def _verifying(w: World) -> None:
    """Consent granted at Microsoft's page while Entra has not propagated it yet (AADSTS700016 for now)."""
    w.tokens.revoke_consent(TENANT)
    outcome = w.integration.complete_consent(granted(state_of(w.integration.consent_url(TENANT, ADMIN_OID))))
    assert outcome.redirect_url == "https://app.example.com/?consent=verifying" and not outcome.granted


def _run_proofs(w: World) -> list[str]:
    """Run every queued re-proof as it becomes due (the clock follows the queue's delays)."""
    from core.domain.commands import ConsentVerifyCommand

    results = []
    for _ in range(100):
        pending = w.queues.pending(Queues.ACCESS_TESTS)
        if [m.body["kind"] for m in pending] != ["verify_consent"]:
            return results
        [message] = w.queues.take(Queues.ACCESS_TESTS, include_delayed=True)
        w.clock.set(message.visible_at)
        results.append(w.integration.verify_consent(ConsentVerifyCommand.from_message(message.body)))
    raise AssertionError("the re-proofs never ended")


def test_consent_not_yet_propagated_is_verified_with_backoff_then_granted() -> None:
    """The first token after consent is refused (700016): the callback says verifying, a delayed job re-proves
    (forgetting cached tokens each time) and, once Entra issues tokens, grants and queues the access test."""
    w = consent_world()
    _verifying(w)
    view = w.integration.view(TENANT)
    assert view.consent.status == "verifying" and view.integration.status is IntegrationStatus.CONSENT_PENDING
    [job] = w.queues.pending(Queues.ACCESS_TESTS)
    assert job.body["kind"] == "verify_consent" and (job.visible_at - w.clock.now()).total_seconds() == 2
    assert w.alerts_sent() == []
    from core.domain.commands import ConsentVerifyCommand

    [message] = w.queues.take(Queues.ACCESS_TESTS, include_delayed=True)
    w.clock.set(message.visible_at)
    assert w.integration.verify_consent(ConsentVerifyCommand.from_message(message.body)) == "retrying"
    w.tokens.grant_consent(TENANT)  # Entra caught up
    invalidated = len(w.tokens.invalidated)
    assert _run_proofs(w) == ["granted"]
    assert len(w.tokens.invalidated) > invalidated
    assert w.status() is IntegrationStatus.TESTING and w.integration.view(TENANT).consent.status == "granted"
    [test] = w.queues.take(Queues.ACCESS_TESTS, include_delayed=True)
    assert test.body["kind"] == "access_test" and test.body["requestedBy"] == ADMIN_OID


def test_consent_that_never_propagates_fails_after_ten_minutes_with_one_alert() -> None:
    """Re-proofs after 2, 4, 8, 16 s then every 30 s for 10 minutes; then consent is pending with the code and
    the owner gets exactly one token_failure alert."""
    w = consent_world()
    started = w.clock.now()
    _verifying(w)
    delays: list[float] = []
    last = started
    results: list[str] = []
    from core.domain.commands import ConsentVerifyCommand

    while True:
        taken = w.queues.take(Queues.ACCESS_TESTS, include_delayed=True)
        if not taken:
            break
        [message] = taken
        delays.append((message.visible_at - last).total_seconds())
        last = message.visible_at
        w.clock.set(message.visible_at)
        results.append(w.integration.verify_consent(ConsentVerifyCommand.from_message(message.body)))
    assert delays[:5] == [2, 4, 8, 16, 30] and set(delays[4:]) == {30}
    assert results[-1] == "failed" and set(results[:-1]) == {"retrying"}
    assert (w.clock.now() - started).total_seconds() <= 600 < (w.clock.now() - started).total_seconds() + 30
    view = w.integration.view(TENANT)
    assert (view.consent.status, view.consent.error_code) == ("pending", "app_not_in_tenant")
    assert [a.kind for a in w.alerts_sent()] == [AlertKind.TOKEN_FAILURE]


def test_a_redelivered_reproof_step_neither_forks_nor_grants_twice() -> None:
    """The same verify_consent message delivered twice: the second is stale, one chain and one access test."""
    from core.domain.commands import ConsentVerifyCommand

    w = consent_world()
    _verifying(w)
    w.tokens.grant_consent(TENANT)
    [message] = w.queues.take(Queues.ACCESS_TESTS, include_delayed=True)
    command = ConsentVerifyCommand.from_message(message.body)
    assert [w.integration.verify_consent(command), w.integration.verify_consent(command)] == ["granted", "stale"]
    assert [m.body["kind"] for m in w.queues.take(Queues.ACCESS_TESTS, include_delayed=True)] == ["access_test"]


def test_a_new_consent_or_a_disconnect_ends_a_running_verification() -> None:
    """An admin who starts over (new consent link) or disconnects makes the pending re-proof stale."""
    from core.domain.commands import ConsentVerifyCommand

    w = consent_world()
    _verifying(w)
    [message] = w.queues.take(Queues.ACCESS_TESTS, include_delayed=True)
    w.integration.consent_url(TENANT, ADMIN_OID)
    assert w.integration.verify_consent(ConsentVerifyCommand.from_message(message.body)) == "stale"


def test_entra_outage_during_the_proof_is_verified_again_later() -> None:
    """A transient failure is not a verdict on consent: the callback answers verifying and re-proves."""
    w = consent_world()
    w.tokens.fail_next(TransientGraphError())
    state = state_of(w.integration.consent_url(TENANT, ADMIN_OID))
    outcome = w.integration.complete_consent(granted(state))
    assert outcome_of(outcome.redirect_url) == {"consent": ["verifying"]}
    assert _run_proofs(w) == ["granted"]


def test_consent_without_admin_consent_true_is_refused() -> None:
    """A callback with neither error nor admin_consent=True is not a grant."""
    w = consent_world()
    state = state_of(w.integration.consent_url(TENANT, ADMIN_OID))
    assert w.integration.complete_consent(ConsentCallback(state=state, tenant=TENANT)).code == "consent_failed"


# --- disconnect -----------------------------------------------------------------------------


def test_disconnect_removes_subscriptions_secrets_and_states_but_keeps_the_configuration() -> None:
    """DELETE: disconnected, subscriptions and registered secrets deleted, pending states gone, owner kept."""
    w = consent_world()
    assert w.integration.complete_consent(granted(state_of(w.integration.consent_url(TENANT, ADMIN_OID)))).granted
    w.integration.tenant_secrets.put(TENANT, f"{TENANT}-user-1-refresh", "refresh-token-value")
    w.secrets.set("entra-client-secret", "the app's own credential")
    w.integration.consent_url(TENANT, ADMIN_OID)
    w.integration.disconnect(TENANT, ADMIN_OID)
    found = w.repo.get(TENANT)
    assert found is not None
    assert found.value.status is IntegrationStatus.DISCONNECTED
    assert found.value.owner_email == "owner@contoso.test" and found.value.consent_granted_at is None
    assert w.deleted_subscriptions == [TENANT]
    assert w.secrets.names() == ["entra-client-secret"]
    assert w.tables.all(Tables.OAUTH_STATES) == []
    assert w.integration.audit.entries(TENANT)[0].action == "disconnect"
    with pytest.raises(Conflict):
        w.integration.require_active(TENANT)


def test_a_later_consent_starts_clean() -> None:
    """After disconnect, a new consent goes pending -> testing with no old report or grant carried over."""
    w = consent_world()
    assert w.integration.complete_consent(granted(state_of(w.integration.consent_url(TENANT, ADMIN_OID)))).granted
    w.run_queued()
    w.integration.disconnect(TENANT, ADMIN_OID)
    assert w.integration.view(TENANT).last_test is None
    url = w.integration.consent_url(TENANT, ADMIN_OID)
    assert w.integration.view(TENANT).integration.status is IntegrationStatus.CONSENT_PENDING
    assert w.integration.complete_consent(granted(state_of(url))).granted
    assert w.integration.view(TENANT).integration.status is IntegrationStatus.TESTING
