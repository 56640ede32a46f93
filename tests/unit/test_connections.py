"""ConnectionService: state binding, expiry, single use, the right account, consent errors, status, disconnect."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from core.adapters.sealer import AesGcmSealer
from core.domain.errors import (
    ConsentMissing,
    Forbidden,
    ServiceError,
    TransientGraphError,
    ValidationFailed,
)
from core.domain.integration import ConnectionMethod, Integration, IntegrationStatus
from core.names import Tables, user_token_secret_name
from core.ports import SignedInUser
from core.services.authz import ROLE_INTEGRATION_ADMIN, Caller
from core.services.connections import CallbackParams, ConnectionService
from core.services.identity import GraphIdentities
from core.services.stores.connections import (
    SERVICE_ACCOUNT_SCOPES,
    USER_SCOPES,
    ConnectionPurpose,
    ConnectionRepository,
)
from core.services.stores.integrations import IntegrationRepository
from core.services.stores.secrets import TenantSecrets
from core.settings import Settings
from tests.support.auth_flow import FakeAuthFlow
from tests.support.fake_graph import FakeCalendarGateway, FakeTokenProvider
from tests.support.memory import FixedClock, InMemorySecretStore, InMemoryTableStore

TENANT = "aaaaaaaa-0000-4000-8000-00000000000a"
OTHER_TENANT = "bbbbbbbb-0000-4000-8000-00000000000b"
ALICE = "a0000000-0000-4000-8000-000000000001"
BOB = "a0000000-0000-4000-8000-000000000002"
MAILBOX = "a0000000-0000-4000-8000-00000000005a"
CAROL = "a0000000-0000-4000-8000-000000000003"
NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
APP = "https://app.example.com"


def settings() -> Settings:
    return Settings.from_env({
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "ENTRA_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
        "ENTRA_CREDENTIAL": "secret",
        "PUBLIC_BASE_URL": "https://func.example.com",
        "APP_URL": APP,
        "KEY_VAULT_URI": "https://kv-test.vault.azure.net/",
        "ACS_ENDPOINT": "https://acs-test.communication.azure.com",
        "ALERT_SENDER_ADDRESS": "DoNotReply@alerts.example.com",
    })




class World:
    def __init__(self, method: ConnectionMethod = ConnectionMethod.PER_USER, *, app_consent: bool = True) -> None:
        self.tables = InMemoryTableStore()
        self.secrets = InMemorySecretStore()
        self.clock = FixedClock(NOW)
        self.flow = FakeAuthFlow(self.secrets, SignedInUser(TENANT, ALICE, "alice@a.example", '{"cache": "opaque"}'))
        self.removed: list[tuple[str, str]] = []
        self.tokens = FakeTokenProvider([TENANT] if app_consent else [])
        self.graph = FakeCalendarGateway(tokens=self.tokens, clock=self.clock)
        for oid, upn in ((ALICE, "alice@a.example"), (BOB, "bob@a.example"), (MAILBOX, "sched@a.example"),
                         (CAROL, "carol@a.example")):
            self.graph.add_user(TENANT, upn, user_id=oid)
        self.sealer = AesGcmSealer(InMemorySecretStore())  # its key apart from the token caches asserted on
        self.service = ConnectionService(
            tables=self.tables, clock=self.clock, settings=settings(), flow=self.flow, sealer=self.sealer,
            gateway=self.graph, remove_subscriptions=lambda t, u: self.removed.append((t, u)),
        )
        self.set_method(method)

    def set_method(self, method: ConnectionMethod, enabled: bool = True) -> None:
        repo = IntegrationRepository(self.tables)
        found = repo.get(TENANT)
        integration = Integration(TENANT, method=method, status=IntegrationStatus.CONNECTED, enabled=enabled)
        repo.save(integration, found.etag if found else None)

    def state_of(self, url: str) -> str:
        return parse_qs(urlsplit(url).query)["state"][0]

    def sign_in(self, caller: Caller, **body: Any) -> CallbackParams:
        url = self.service.start(caller, **body)
        return CallbackParams(code="the-code", state=self.state_of(url))


def user(oid: str = ALICE, *, admin: bool = False, tenant: str = TENANT) -> Caller:
    roles = frozenset({ROLE_INTEGRATION_ADMIN}) if admin else frozenset()
    return Caller(tenant, oid, roles=roles, username=f"{oid[-4:]}@a.example")


def outcome_query(url: str) -> dict[str, str]:
    assert url.startswith(APP + "/?")
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


# --- start ---------------------------------------------------------------------------------------


def test_start_keeps_the_flow_server_side_bound_to_the_caller_under_a_hashed_state() -> None:
    """The authorize URL's state names the tenant; the row is keyed by a hash and holds the flow and the caller."""
    w = World()
    url = w.service.start(user())
    state = w.state_of(url)
    tenant, _, raw = state.partition(".")
    assert tenant == TENANT and len(raw) >= 32
    rows = list(w.tables.query(Tables.OAUTH_STATES, TENANT))
    assert len(rows) == 1 and raw not in rows[0].row_key
    assert rows[0].data["userOid"] == ALICE and rows[0].data["purpose"] == "user_connection"
    assert rows[0].data["expiresAt"] == NOW + timedelta(minutes=10)
    assert w.flow.begun[0]["redirect_uri"] == "https://func.example.com/api/me/connection/callback"
    assert w.flow.begun[0]["scope"] == [f"https://graph.microsoft.com/{s}" for s in USER_SCOPES]
    assert w.flow.begun[0]["login_hint"] == user().username


def test_per_user_sign_in_needs_a_per_user_tenant() -> None:
    """A domain-wide tenant's user has nothing to connect: 409 connection_method_mismatch."""
    w = World(ConnectionMethod.DOMAIN_WIDE)
    with pytest.raises(ServiceError) as caught:
        w.service.start(user())
    assert caught.value.code == "connection_method_mismatch" and caught.value.http_status == 409


def test_service_account_sign_in_is_for_admins_of_service_account_tenants_only() -> None:
    """A non-admin gets 403; an admin must name the mailbox; the flow asks for Calendars.ReadWrite.Shared."""
    w = World(ConnectionMethod.SERVICE_ACCOUNT)
    with pytest.raises(Forbidden):
        w.service.start(user(), ConnectionPurpose.SERVICE_ACCOUNT, "sched@a.example")
    with pytest.raises(ValidationFailed):
        w.service.start(user(admin=True), ConnectionPurpose.SERVICE_ACCOUNT, None)
    w.service.start(user(admin=True), ConnectionPurpose.SERVICE_ACCOUNT, "sched@a.example")
    assert w.flow.begun[0]["login_hint"] == "sched@a.example"
    assert w.flow.begun[0]["scope"] == [f"https://graph.microsoft.com/{s}" for s in SERVICE_ACCOUNT_SCOPES]


# --- callback ------------------------------------------------------------------------------------


def test_callback_stores_the_cache_marks_connected_and_redirects() -> None:
    """The bound user signing in ends connected: cache in the secret store (remembered), row, redirect."""
    w = World()
    outcome = w.service.callback(w.sign_in(user()))
    assert outcome.connected and outcome_query(outcome.redirect_url) == {"connection": "connected"}
    name = user_token_secret_name(TENANT, ALICE)
    assert w.secrets.get(name) == '{"cache": "opaque"}'
    assert name in TenantSecrets(w.tables, w.secrets).names(TENANT)
    record = ConnectionRepository(w.tables).get(TENANT, ALICE)
    assert record is not None and not record.needs_reconnect
    assert w.service.status(user()).connected


def test_state_is_single_use() -> None:
    """Replaying the same callback finds no state: refused, nothing redeemed twice."""
    w = World()
    params = w.sign_in(user())
    assert w.service.callback(params).connected
    again = w.service.callback(params)
    assert not again.connected and outcome_query(again.redirect_url)["code"] == "connection_state_invalid"
    assert w.flow.redeemed == 1


def test_expired_state_is_refused_and_consumed() -> None:
    """A callback after 10 minutes is refused as expired, and the row is gone."""
    w = World()
    params = w.sign_in(user())
    w.clock.advance(minutes=10, seconds=1)
    outcome = w.service.callback(params)
    assert outcome_query(outcome.redirect_url)["code"] == "connection_state_expired"
    assert list(w.tables.query(Tables.OAUTH_STATES, TENANT)) == []
    assert w.flow.redeemed == 0


def test_unknown_or_malformed_state_is_refused_without_redeeming() -> None:
    """A made-up state (right shape or not) never reaches the token endpoint."""
    w = World()
    w.sign_in(user())
    for state in (None, "garbage", f"{TENANT}.{'x' * 43}", f"{OTHER_TENANT}.{'y' * 43}"):
        outcome = w.service.callback(CallbackParams(code="c", state=state))
        assert outcome_query(outcome.redirect_url)["code"] == "connection_state_invalid"
    assert w.flow.redeemed == 0


def test_someone_else_signing_in_is_refused_and_nothing_is_stored() -> None:
    """The state is Alice's but Bob signed in on Microsoft's page: wrong user, no tokens kept for anyone."""
    w = World()
    w.flow.signed_in = SignedInUser(TENANT, BOB, "bob@a.example", "{}")
    outcome = w.service.callback(w.sign_in(user()))
    assert outcome_query(outcome.redirect_url)["code"] == "connection_wrong_user"
    assert w.secrets.names() == []
    assert ConnectionRepository(w.tables).get(TENANT, BOB) is None
    assert ConnectionRepository(w.tables).get(TENANT, ALICE) is None


def test_an_account_of_another_tenant_is_refused() -> None:
    """Same object id but another tenant in the id token: refused as a tenant mismatch."""
    w = World()
    w.flow.signed_in = SignedInUser(OTHER_TENANT, ALICE, None, "{}")
    outcome = w.service.callback(w.sign_in(user()))
    assert outcome_query(outcome.redirect_url)["code"] == "connection_tenant_mismatch"
    assert w.secrets.names() == []


@pytest.mark.parametrize(
    ("error", "description"),
    [
        ("access_denied", "AADSTS90094: Admin consent is required for the permissions requested."),
        ("consent_required", "AADSTS65001: The user or administrator has not consented to use the application."),
        ("consent_required", None),
    ],
)
def test_user_consent_blocked_redirects_with_the_admin_consent_link(error: str, description: str | None) -> None:
    """65001/90094 at sign-in: admin_consent_required plus a v2 admin-consent URL with explicit delegated scopes."""
    w = World()
    params = replace(w.sign_in(user()), code=None, error=error, error_description=description)
    query = outcome_query(w.service.callback(params).redirect_url)
    assert query["connection"] == "error" and query["code"] == "admin_consent_required"
    link = urlsplit(query["adminConsentUrl"])
    assert link.path == f"/{TENANT}/v2.0/adminconsent"
    link_query = parse_qs(link.query)
    assert link_query["client_id"] == ["11111111-2222-3333-4444-555555555555"]
    scopes = link_query["scope"][0].split()
    assert "https://graph.microsoft.com/Calendars.ReadWrite" in scopes and ".default" not in link_query["scope"][0]
    assert "AADSTS" not in query["adminConsentUrl"]
    assert w.flow.redeemed == 0


def test_consent_blocked_at_the_token_endpoint_also_gives_the_admin_link() -> None:
    """A ConsentMissing 65001 while redeeming maps to admin_consent_required too."""
    w = World()
    w.flow.fail_with = ConsentMissing(aadsts=65001, oauth_error="invalid_grant")
    query = outcome_query(w.service.callback(w.sign_in(user())).redirect_url)
    assert query["code"] == "admin_consent_required" and "adminConsentUrl" in query


def test_declined_sign_in_and_entra_outage_give_stable_codes() -> None:
    """access_denied 65004 is consent_declined; Entra not answering is connection_check_unavailable."""
    w = World()
    declined = replace(w.sign_in(user()), code=None, error="access_denied",
                       error_description="AADSTS65004: User declined to consent to access the app.")
    assert outcome_query(w.service.callback(declined).redirect_url)["code"] == "consent_declined"
    w.flow.fail_with = TransientGraphError()
    query = outcome_query(w.service.callback(w.sign_in(user())).redirect_url)
    assert query["code"] == "connection_check_unavailable"


def test_admin_consent_return_without_state_changes_nothing() -> None:
    """An admin coming back from the admin-consent link is told so; no state is consumed, nothing stored."""
    w = World()
    w.sign_in(user())
    outcome = w.service.callback(CallbackParams(admin_consent="True"))
    assert outcome_query(outcome.redirect_url) == {"connection": "admin_consent_done"}
    assert len(list(w.tables.query(Tables.OAUTH_STATES, TENANT))) == 1


def test_service_account_callback_records_the_mailbox_not_the_admin() -> None:
    """The admin signs in as the scheduling mailbox: the service-account row names the mailbox and who connected it."""
    w = World(ConnectionMethod.SERVICE_ACCOUNT)
    w.flow.signed_in = SignedInUser(TENANT, MAILBOX, "sched@a.example", "{}")
    admin = user(BOB, admin=True)
    outcome = w.service.callback(w.sign_in(admin, purpose=ConnectionPurpose.SERVICE_ACCOUNT,
                                           mailbox="sched@a.example"))
    assert outcome.connected
    account = ConnectionRepository(w.tables).service_account(TENANT)
    assert account is not None and account.user_id == MAILBOX and account.connected_by == BOB
    assert account.username == "sched@a.example"
    assert w.service.status(user()).connected  # every user of the tenant is served by the mailbox
    identities = GraphIdentities(IntegrationRepository(w.tables), ConnectionRepository(w.tables))
    assert identities.for_user(TENANT, ALICE).user_id == MAILBOX


def test_service_account_sign_in_by_anyone_but_the_named_mailbox_is_refused() -> None:
    """The admin named sched@; Carol signs in on Microsoft's page: connection_wrong_mailbox, nothing stored,
    because the named mailbox was resolved to its object id at start (Graph, the tenant identity)."""
    w = World(ConnectionMethod.SERVICE_ACCOUNT)
    w.flow.signed_in = SignedInUser(TENANT, CAROL, "carol@a.example", "{}")
    params = w.sign_in(user(BOB, admin=True), purpose=ConnectionPurpose.SERVICE_ACCOUNT, mailbox="sched@a.example")
    [row] = w.tables.query(Tables.OAUTH_STATES, TENANT)
    assert row.data["mailboxOid"] == MAILBOX
    assert outcome_query(w.service.callback(params).redirect_url)["code"] == "connection_wrong_mailbox"
    assert ConnectionRepository(w.tables).service_account(TENANT) is None
    assert w.secrets.get(user_token_secret_name(TENANT, CAROL)) is None


def test_service_account_mailbox_unknown_to_graph_is_refused_at_start() -> None:
    """Naming a mailbox Graph cannot resolve is 422 mailbox_not_found before any sign-in begins."""
    w = World(ConnectionMethod.SERVICE_ACCOUNT)
    with pytest.raises(ValidationFailed) as caught:
        w.service.start(user(BOB, admin=True), purpose=ConnectionPurpose.SERVICE_ACCOUNT, mailbox="nobody@a.example")
    assert caught.value.code == "mailbox_not_found" and w.flow.begun == []


def test_without_directory_access_the_sign_in_name_must_be_the_named_mailbox() -> None:
    """No identity may read the directory yet (no app consent, no mailbox connected): the callback compares the
    signed-in account's name with the named mailbox instead, case-insensitively."""
    w = World(ConnectionMethod.SERVICE_ACCOUNT, app_consent=False)
    w.flow.signed_in = SignedInUser(TENANT, CAROL, "carol@a.example", "{}")
    params = w.sign_in(user(BOB, admin=True), purpose=ConnectionPurpose.SERVICE_ACCOUNT, mailbox="Sched@a.example")
    assert outcome_query(w.service.callback(params).redirect_url)["code"] == "connection_wrong_mailbox"
    w.flow.signed_in = SignedInUser(TENANT, MAILBOX, "SCHED@a.example", "{}")
    params = w.sign_in(user(BOB, admin=True), purpose=ConnectionPurpose.SERVICE_ACCOUNT, mailbox="sched@a.example")
    assert w.service.callback(params).connected


def test_pending_sign_in_keeps_its_flow_sealed_and_bound_to_its_row() -> None:
    """The stored flow shows neither the PKCE verifier nor the raw state; moved to another row it does not open."""
    w = World()
    url = w.service.start(user())
    state = w.state_of(url)
    [row] = w.tables.query(Tables.OAUTH_STATES, TENANT)
    stored = str(row.data["flow"])
    assert "v" * 43 not in stored and state not in stored and state.partition(".")[2] not in stored
    other = w.service.start(user(BOB))
    others = [r for r in w.tables.query(Tables.OAUTH_STATES, TENANT) if r.row_key != row.row_key]
    from core.ports import Entity

    w.tables.upsert(Tables.OAUTH_STATES, Entity(TENANT, others[0].row_key, {**others[0].data, "flow": stored}))
    swapped = w.service.callback(CallbackParams(code="c", state=w.state_of(other)))
    assert outcome_query(swapped.redirect_url)["code"] == "connection_state_invalid"
    assert w.service.callback(CallbackParams(code="c", state=state)).connected


def test_service_account_sign_in_as_the_admin_themselves_is_refused() -> None:
    """Signing in with the admin's own account instead of the mailbox is refused."""
    w = World(ConnectionMethod.SERVICE_ACCOUNT)
    w.flow.signed_in = SignedInUser(TENANT, BOB, "bob@a.example", "{}")
    params = w.sign_in(user(BOB, admin=True), purpose=ConnectionPurpose.SERVICE_ACCOUNT, mailbox="sched@a.example")
    assert outcome_query(w.service.callback(params).redirect_url)["code"] == "connection_wrong_user"
    assert ConnectionRepository(w.tables).service_account(TENANT) is None


# --- status and disconnect --------------------------------------------------------------------


def test_status_reports_needs_reconnect_with_the_reason() -> None:
    """After the token provider flags the connection, GET says needsReconnect and why."""
    w = World()
    w.service.callback(w.sign_in(user()))
    assert ConnectionRepository(w.tables).mark_needs_reconnect(TENANT, ALICE, "700082", NOW)
    view = w.service.status(user())
    assert (view.connected, view.needs_reconnect, view.reason) == (False, True, "700082")
    assert not ConnectionRepository(w.tables).mark_needs_reconnect(TENANT, ALICE, "700082", NOW)
    with pytest.raises(ServiceError) as caught:
        w.service.require_connected(TENANT, ALICE)
    assert caught.value.code == "calendar_reconnect_required"


def test_status_of_a_domain_wide_tenant_is_connected_without_signing_in() -> None:
    """Domain-wide users never connect: they are connected when the integration is active."""
    view = World(ConnectionMethod.DOMAIN_WIDE).service.status(user())
    assert view.connected and view.method is ConnectionMethod.DOMAIN_WIDE and not view.needs_reconnect


def test_disconnect_forgets_tokens_row_and_subscriptions() -> None:
    """DELETE removes the secret (and its record), the connection row, and asks for the subscriptions' removal."""
    w = World()
    w.service.callback(w.sign_in(user()))
    w.service.disconnect(user())
    assert w.secrets.names() == []
    assert TenantSecrets(w.tables, w.secrets).names(TENANT) == []
    assert ConnectionRepository(w.tables).get(TENANT, ALICE) is None
    assert w.removed == [(TENANT, ALICE)]
    assert not w.service.status(user()).connected
    w.service.disconnect(user())  # idempotent


def test_disconnect_in_a_domain_wide_tenant_leaves_subscriptions_alone() -> None:
    """The app's own subscriptions serve domain-wide tenants; a user's DELETE must not remove them."""
    w = World(ConnectionMethod.DOMAIN_WIDE)
    w.service.disconnect(user())
    assert w.removed == []


def test_admin_disconnects_the_service_account() -> None:
    """An admin's DELETE in a service-account tenant forgets the mailbox's tokens and row."""
    w = World(ConnectionMethod.SERVICE_ACCOUNT)
    w.flow.signed_in = SignedInUser(TENANT, MAILBOX, "sched@a.example", "{}")
    admin = user(BOB, admin=True)
    w.service.callback(w.sign_in(admin, purpose=ConnectionPurpose.SERVICE_ACCOUNT, mailbox="sched@a.example"))
    w.service.disconnect(admin)
    assert ConnectionRepository(w.tables).service_account(TENANT) is None
    assert w.secrets.names() == []
    assert w.service.status(user()).reason == "service_account_not_connected"


