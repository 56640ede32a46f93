"""Per-user and service-account connections: delegated sign-in, status and disconnect.

Two connection methods use delegated tokens instead of the app's own (see
docs/connection-methods.md):

- ``perUser``: each user connects their own calendar (``User.Read``,
  ``Calendars.ReadWrite``, ``MailboxSettings.Read``; MSAL adds ``offline_access``,
  ``openid`` and ``profile`` itself).
- ``serviceAccount``: an admin signs in *as* the tenant's scheduling mailbox
  (``Calendars.ReadWrite.Shared`` instead of ``Calendars.ReadWrite``) through the same
  route, with ``{"purpose": "serviceAccount", "mailbox": ...}`` in the body.

The sign-in (``start`` then ``callback``):

1. ``start`` asks the ``DelegatedAuthFlow`` port (MSAL's auth code flow with PKCE) for
   the authorize URL. Its ``state`` is ``<tid>.<32 random bytes>``; the flow dict (PKCE
   verifier, nonce, raw state, redirect URI) is kept server-side in ``oauthstates`` under
   PartitionKey tid, RowKey SHA-256 of the random part, bound to the caller's (tid,
   oid), for 10 minutes, **sealed** (``Sealer``, AES-GCM, the row key as associated data:
   storage never holds the verifier or the state readable, and a sealed flow opens only
   for its own row). For the service account, the mailbox the admin named is resolved to
   its object id here, through Graph with the tenant identity (the connected scheduling
   mailbox's token, else the app's own); an unknown mailbox is 422 ``mailbox_not_found``.
   When neither identity may read the directory (the first connection in a tenant with
   no application consent), the name itself is kept.
2. ``callback`` (anonymous browser redirect) deletes that row with its ETag before
   anything acts on it (single use: a replay finds nothing), redeems the code, checks
   that the account that signed in is the bound caller (per-user) or **the mailbox the
   admin named** (service account: the resolved object id, or else the sign-in name,
   ``connection_wrong_mailbox`` otherwise), stores the token cache through the port, records
   the connection, and answers with the app URL to redirect to:
   ``?connection=connected`` or ``?connection=error&code=...`` (+ ``adminConsentUrl``
   when the tenant blocks user consent). It never raises for the browser's input and
   never echoes the state or Microsoft's text.

Connections live in table ``connections`` (PartitionKey tid): RowKey = the user's oid
for per-user connections, RowKey ``service-account`` for the tenant's scheduling
mailbox (its oid and UPN). ``needsReconnect`` is set by the delegated token provider
when a refresh token dies; sessions keep their last known state meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlencode, urlparse

from core.domain.aadsts import aadsts_in, consent_error_code
from core.domain.calendar import GraphIdentity
from core.domain.commands import AlertKind
from core.domain.errors import (
    AuthorizationError,
    Conflict,
    DependencyError,
    Forbidden,
    GraphAuthError,
    GraphRequestRejected,
    OutsideAppScope,
    ServiceAccountNotConnected,
    ServiceError,
    UnsealFailed,
    UserNotFound,
    ValidationFailed,
)
from core.domain.integration import ConnectionMethod, Integration
from core.names import user_token_secret_name
from core.ports import CalendarGateway, Clock, DelegatedAuthFlow, Sealer, SignedInUser, TableStore
from core.services.alerts import OwnerAlerts
from core.services.authz import Caller
from core.services.identity import GraphIdentities
from core.services.stores.codec import opt_str
from core.services.stores.connections import (
    ConnectionPurpose,
    ConnectionRecord,
    ConnectionRepository,
    ConnectionStatus,
    require_connected,
)
from core.services.stores.integrations import IntegrationRepository
from core.services.stores.oauth_states import STATE_TTL, OAuthStateStore, is_expired, new_state
from core.services.stores.secrets import SecretRegistry
from core.settings import Settings

log = logging.getLogger("core.services.connections")

CALLBACK_PATH: Final = "/api/me/connection/callback"

# Stable codes of the callback redirect (besides the AADSTS ones of core/domain/aadsts.py).
STATE_INVALID: Final = "connection_state_invalid"
STATE_EXPIRED: Final = "connection_state_expired"
WRONG_USER: Final = "connection_wrong_user"
WRONG_TENANT: Final = "connection_tenant_mismatch"
WRONG_MAILBOX: Final = "connection_wrong_mailbox"
CHECK_UNAVAILABLE: Final = "connection_check_unavailable"
ADMIN_CONSENT_REQUIRED: Final = "admin_consent_required"
# User consent blocked by the tenant: only an admin can grant the delegated permissions.
_ADMIN_CONSENT_CODES: Final = frozenset({65001, 90094, 90095})



_PURPOSE_BY_STATE: Final = {p.state_purpose: p for p in ConnectionPurpose}

# --- the service -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectionView:
    """GET /api/me/connection."""

    connected: bool
    method: ConnectionMethod | None
    needs_reconnect: bool = False
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class CallbackParams:
    """What Microsoft appends to the sign-in redirect (``admin_consent`` when an admin used the consent link)."""

    code: str | None = None
    state: str | None = None
    session_state: str | None = None
    error: str | None = None
    error_description: str | None = None
    admin_consent: str | None = None

    def as_response(self) -> dict[str, str]:
        """The auth response MSAL checks (only the parameters that were present)."""
        raw = {"code": self.code, "state": self.state, "session_state": self.session_state}
        return {k: v for k, v in raw.items() if v}


@dataclass(frozen=True, slots=True)
class ConnectionOutcome:
    """Where to send the browser after the callback."""

    redirect_url: str
    connected: bool
    tenant_id: str | None = None
    code: str | None = None


@dataclass(frozen=True, slots=True)
class _BoundState:
    tenant_id: str
    user_id: str
    purpose: ConnectionPurpose
    flow: dict[str, Any]
    login_hint: str | None
    mailbox_oid: str | None = None  # service account: the named mailbox's object id, when it could be resolved


def _flow_context(tenant_id: str, row_key: str) -> str:
    """What a pending sign-in's sealed flow is bound to: its own row."""
    return f"oauthstate:{tenant_id}:{row_key}"


SubscriptionRemoval = Callable[[str, str], object]



class ConnectionService:
    """Starts and completes delegated sign-ins, reports and removes connections (module docstring)."""

    def __init__(
        self,
        *,
        tables: TableStore,
        clock: Clock,
        settings: Settings,
        flow: DelegatedAuthFlow,
        sealer: Sealer,
        gateway: CalendarGateway | None = None,
        remove_subscriptions: SubscriptionRemoval | None = None,
        random_token: Callable[[int], str] = secrets.token_urlsafe,
    ) -> None:
        self.tables = tables
        self.sealer = sealer
        self._gateway = gateway
        self.clock = clock
        self.settings = settings
        self.flow = flow
        self.secret_names = SecretRegistry(tables)
        self.states = OAuthStateStore(tables)
        self.remove_subscriptions = remove_subscriptions
        self.random_token = random_token
        self.connections = ConnectionRepository(tables)
        self.integrations = IntegrationRepository(tables)
        self.identities = GraphIdentities(self.integrations, self.connections)

    @property
    def redirect_uri(self) -> str:
        return f"{self.settings.public_base_url}{CALLBACK_PATH}"

    @property
    def graph_resource(self) -> str:
        parsed = urlparse(self.settings.graph_base_url)
        return f"{parsed.scheme}://{parsed.netloc}"

    # -- POST /api/me/connection ----------------------------------------------------------------

    def start(self, caller: Caller, purpose: ConnectionPurpose = ConnectionPurpose.USER,
              mailbox: str | None = None) -> str:
        """The authorize URL of a delegated sign-in bound to the caller (single-use state, 10 minutes)."""
        integration = self._integration(caller.tenant_id)
        if purpose is ConnectionPurpose.SERVICE_ACCOUNT:
            if not caller.is_admin:
                raise Forbidden("Connecting the scheduling mailbox needs the Integration.Admin role.",
                                code="admin_role_required")
            self._require_method(integration, ConnectionMethod.SERVICE_ACCOUNT)
            if not mailbox:
                raise ValidationFailed("Name the scheduling mailbox to sign in as (mailbox).",
                                       details={"fields": [{"loc": ["body", "mailbox"], "msg": "required",
                                                            "type": "missing"}]})
            login_hint: str | None = mailbox
            mailbox_oid = self._resolve_mailbox(caller.tenant_id, mailbox)
        else:
            if mailbox:
                raise ValidationFailed("mailbox is only for connecting the service account.")
            self._require_method(integration, ConnectionMethod.PER_USER)
            login_hint = caller.username  # a hint for Microsoft's page only, never a decision
            mailbox_oid = None
        if not integration.enabled:
            raise Conflict("Your organisation's administrator has paused the calendar integration.",
                           code="integration_disabled")
        now = self.clock.now()
        tenant_id = caller.tenant_id
        self._purge_states(tenant_id, now)
        state, key = new_state(tenant_id, self.random_token)
        scopes = [f"{self.graph_resource}/{s}" for s in purpose.scopes]
        started = self.flow.begin(tenant_id, scopes, self.redirect_uri, state, login_hint)
        self.states.put(
            tenant_id,
            key,
            {
                "purpose": purpose.state_purpose,
                "userOid": caller.object_id,
                "loginHint": login_hint.lower() if login_hint and purpose is ConnectionPurpose.SERVICE_ACCOUNT
                else None,
                "mailboxOid": mailbox_oid,
                "createdAt": now,
                "expiresAt": now + STATE_TTL,
                "flow": self.sealer.seal(json.dumps(dict(started.flow)), _flow_context(tenant_id, key)),
            },
        )
        log.info("delegated sign-in started", extra={"tenant": tenant_id, "purpose": purpose.value})
        return started.authorize_url

    # -- GET /api/me/connection/callback ------------------------------------------------------

    def callback(self, params: CallbackParams) -> ConnectionOutcome:
        """Finish a sign-in; never raises for the browser's input (see the module docstring)."""
        if params.admin_consent and not params.state and not params.code:
            # An admin followed the admin-consent link we handed out: nothing to redeem or trust.
            return ConnectionOutcome(self._app_url("admin_consent_done"), False)
        bound, tenant_id, problem = self._consume_state(params.state)
        if bound is None:
            return self._refuse(problem or STATE_INVALID, tenant_id)
        if params.error:
            return self._refuse(self._sign_in_error(params.error, params.error_description), bound.tenant_id,
                                bound.purpose)
        try:
            signed_in = self.flow.redeem(bound.tenant_id, bound.flow, params.as_response())
        except AuthorizationError as exc:
            code = ADMIN_CONSENT_REQUIRED if exc.aadsts in _ADMIN_CONSENT_CODES else exc.code
            return self._refuse(code, bound.tenant_id, bound.purpose)
        except DependencyError:
            return self._refuse(CHECK_UNAVAILABLE, bound.tenant_id)
        except ServiceError as exc:
            return self._refuse(exc.code, bound.tenant_id)
        if signed_in.tenant_id.lower() != bound.tenant_id:
            return self._refuse(WRONG_TENANT, bound.tenant_id)
        signed_in_oid = signed_in.object_id.lower()
        if bound.purpose is ConnectionPurpose.USER and signed_in_oid != bound.user_id:
            # Someone else signed in on Microsoft's page: their tokens are never stored for this caller.
            return self._refuse(WRONG_USER, bound.tenant_id)
        if bound.purpose is ConnectionPurpose.SERVICE_ACCOUNT and signed_in_oid == bound.user_id:
            # The admin signed in as themselves rather than as the scheduling mailbox.
            return self._refuse(WRONG_USER, bound.tenant_id)
        if bound.purpose is ConnectionPurpose.SERVICE_ACCOUNT and not self._is_named_mailbox(bound, signed_in):
            # Whoever signed in is not the mailbox the admin named: their tokens are never stored.
            return self._refuse(WRONG_MAILBOX, bound.tenant_id)

        now = self.clock.now()
        self.flow.keep(bound.tenant_id, signed_in_oid, signed_in)
        self.secret_names.remember(bound.tenant_id, user_token_secret_name(bound.tenant_id, signed_in_oid))
        if bound.purpose is ConnectionPurpose.SERVICE_ACCOUNT:
            previous = self.connections.service_account(bound.tenant_id)
            if previous is not None and previous.user_id != signed_in_oid:
                self._forget_tokens(bound.tenant_id, previous.user_id)
            record = ConnectionRecord(
                tenant_id=bound.tenant_id, user_id=signed_in_oid, purpose=ConnectionPurpose.SERVICE_ACCOUNT,
                status=ConnectionStatus.CONNECTED, username=signed_in.username, connected_at=now,
                updated_at=now, connected_by=bound.user_id,
            )
        else:
            record = ConnectionRecord(
                tenant_id=bound.tenant_id, user_id=signed_in_oid, purpose=ConnectionPurpose.USER,
                status=ConnectionStatus.CONNECTED, connected_at=now, updated_at=now,
            )
        self.connections.save(record)
        log.info("delegated connection stored", extra={"tenant": bound.tenant_id, "purpose": bound.purpose.value})
        return ConnectionOutcome(self._app_url("connected"), True, bound.tenant_id)

    # -- GET /api/me/connection --------------------------------------------------------------------

    def status(self, caller: Caller) -> ConnectionView:
        """Whether the caller's calendar is reachable under the tenant's method, and why not."""
        found = self.integrations.get(caller.tenant_id)
        if found is None:
            return ConnectionView(False, None)
        integration = found.value
        if integration.method is ConnectionMethod.DOMAIN_WIDE:
            return ConnectionView(integration.active, integration.method)
        if integration.method is ConnectionMethod.SERVICE_ACCOUNT:
            record = self.connections.service_account(caller.tenant_id)
            if record is None:
                return ConnectionView(False, integration.method, reason="service_account_not_connected")
        else:
            record = self.connections.get(caller.tenant_id, caller.object_id)
            if record is None:
                return ConnectionView(False, integration.method)
        if record.needs_reconnect:
            return ConnectionView(False, integration.method, True, record.reason)
        return ConnectionView(True, integration.method)

    def require_connected(self, tenant_id: str, user_id: str) -> ConnectionRecord:
        """The user's live connection, or 409 (see ``require_connected``)."""
        return require_connected(self.connections, tenant_id, user_id)

    # -- DELETE /api/me/connection -------------------------------------------------------------------

    def disconnect(self, caller: Caller) -> None:
        """Forget the caller's tokens and subscriptions; an admin of a service-account tenant
        disconnects the scheduling mailbox. Idempotent."""
        tenant_id = caller.tenant_id
        found = self.integrations.get(tenant_id)
        if found is not None and found.value.method is ConnectionMethod.SERVICE_ACCOUNT and caller.is_admin:
            record = self.connections.service_account(tenant_id)
            if record is not None:
                self._remove_subscriptions(tenant_id, record.user_id)
                self._forget_tokens(tenant_id, record.user_id)
                self.connections.delete_service_account(tenant_id)
                log.info("service account disconnected", extra={"tenant": tenant_id})
        per_user = found is not None and found.value.method is ConnectionMethod.PER_USER
        if per_user or self.connections.get(tenant_id, caller.object_id) is not None:
            # Subscriptions first: part B deletes them with the user's own token, which goes next.
            # (Domain-wide tenants keep theirs: the app's token serves them, nothing is per user.)
            self._remove_subscriptions(tenant_id, caller.object_id)
            self._forget_tokens(tenant_id, caller.object_id)
            self.connections.delete(tenant_id, caller.object_id)

    # -- internals --------------------------------------------------------------------------------

    def admin_consent_url(self, tenant_id: str, purpose: ConnectionPurpose = ConnectionPurpose.USER) -> str:
        """The v2 admin-consent URL granting the delegated permissions for the whole tenant
        (what an admin must open when the tenant blocks user consent)."""
        scopes = [f"{self.graph_resource}/{s}" for s in purpose.scopes] + ["offline_access"]
        query = urlencode({
            "client_id": self.settings.entra_client_id,
            "scope": " ".join(scopes),
            "redirect_uri": self.redirect_uri,
        })
        return f"{self.settings.authority_host}/{tenant_id}/v2.0/adminconsent?{query}"

    def _resolve_mailbox(self, tenant_id: str, mailbox: str) -> str | None:
        """The named mailbox's object id, read with the tenant identity: the connected scheduling mailbox's
        token, else the app's own. None when neither may read the directory (the first connection in a
        tenant without application consent): the callback then matches the sign-in name instead.
        422 ``mailbox_not_found`` when Graph does not know the mailbox."""
        if self._gateway is None:
            return None
        candidates: list[GraphIdentity] = []
        with contextlib.suppress(ServiceAccountNotConnected):
            candidates.append(self.identities.for_tenant(tenant_id))
        app = GraphIdentities.app_only(tenant_id)
        if app not in candidates:
            candidates.append(app)
        for who in candidates:
            try:
                found = self._gateway.get_user(who, mailbox)
            except UserNotFound as exc:
                raise ValidationFailed(
                    "Microsoft 365 knows no mailbox by that name in your organisation.", code="mailbox_not_found",
                    details={"fields": [{"loc": ["body", "mailbox"], "msg": "no such mailbox",
                                         "type": "mailbox_not_found"}]},
                ) from exc
            except (AuthorizationError, GraphAuthError, OutsideAppScope, GraphRequestRejected) as exc:
                log.info("service-account mailbox not resolvable with this identity (%s)", exc.code,
                         extra={"tenant": tenant_id})
                continue
            return found.user_id.lower()
        return None

    @staticmethod
    def _is_named_mailbox(bound: _BoundState, signed_in: SignedInUser) -> bool:
        """Is whoever signed in the mailbox the admin named? By object id when it was resolved, else by the
        sign-in name (the id token's ``preferred_username``, the UPN for work accounts)."""
        if bound.mailbox_oid:
            return signed_in.object_id.lower() == bound.mailbox_oid
        return bool(bound.login_hint) and (signed_in.username or "").lower() == bound.login_hint

    def _integration(self, tenant_id: str) -> Integration:
        found = self.integrations.get(tenant_id)
        if found is None:
            raise Conflict("Your organisation has not set up the calendar integration yet.",
                           code="integration_not_configured")
        return found.value

    @staticmethod
    def _require_method(integration: Integration, method: ConnectionMethod) -> None:
        if integration.method is not method:
            raise Conflict(
                f"Your organisation connects calendars with the {integration.method.value} method, "
                f"not {method.value}.",
                code="connection_method_mismatch",
                details={"method": integration.method.value},
            )

    def _consume_state(self, state: str | None) -> tuple[_BoundState | None, str | None, str | None]:
        """(bound state, tenant, problem): the row is deleted (with its ETag) before anything acts on it."""
        tenant_id, row = self.states.take(state)
        if row is None or tenant_id is None:
            return None, tenant_id, STATE_INVALID
        purpose = _PURPOSE_BY_STATE.get(str(row.data.get("purpose") or ""))
        if purpose is None:
            return None, tenant_id, STATE_INVALID
        if is_expired(row, self.clock.now()):
            return None, tenant_id, STATE_EXPIRED
        user = row.data.get("userOid")
        try:
            sealed = str(row.data.get("flow") or "")
            flow = json.loads(self.sealer.unseal(sealed, _flow_context(tenant_id, row.row_key)))
        except (UnsealFailed, ValueError):
            flow = None  # tampered with, sealed for another row, or written before flows were sealed
        if not isinstance(user, str) or not user or not isinstance(flow, dict):
            return None, tenant_id, STATE_INVALID
        mailbox_oid = opt_str(row.data.get("mailboxOid"))
        bound = _BoundState(tenant_id, user.lower(), purpose, flow, opt_str(row.data.get("loginHint")),
                            mailbox_oid.lower() if mailbox_oid else None)
        return bound, tenant_id, None

    def _sign_in_error(self, error: str, description: str | None) -> str:
        code = aadsts_in(description)
        if code in _ADMIN_CONSENT_CODES or (code is None and error == "consent_required"):
            return ADMIN_CONSENT_REQUIRED
        return consent_error_code(error, description)

    def _refuse(self, code: str, tenant_id: str | None,
                purpose: ConnectionPurpose = ConnectionPurpose.USER) -> ConnectionOutcome:
        log.warning("delegated sign-in refused", extra={"tenant": tenant_id or "-", "status": code})
        extra: dict[str, str] = {}
        if code == ADMIN_CONSENT_REQUIRED and tenant_id is not None:
            # The link grants what the refused sign-in asked for (Calendars.ReadWrite.Shared for the mailbox).
            extra["adminConsentUrl"] = self.admin_consent_url(tenant_id, purpose)
        return ConnectionOutcome(self._app_url("error", code, extra), False, tenant_id, code)

    def _app_url(self, outcome: str, code: str | None = None, extra: Mapping[str, str] | None = None) -> str:
        params = {"connection": outcome}
        if code is not None:
            params["code"] = code
        params.update(extra or {})
        return f"{self.settings.app_url}/?{urlencode(params)}"

    def _purge_states(self, tenant_id: str, now: datetime) -> None:
        self.states.purge_expired(tenant_id, tuple(_PURPOSE_BY_STATE), now)

    def _forget_tokens(self, tenant_id: str, user_id: str) -> None:
        self.flow.forget(tenant_id, user_id)
        self.secret_names.forget(tenant_id, user_token_secret_name(tenant_id, user_id))

    def _remove_subscriptions(self, tenant_id: str, user_id: str) -> None:
        if self.remove_subscriptions is None:
            return
        try:
            self.remove_subscriptions(tenant_id, user_id)
        except ServiceError as exc:
            # Graph drops a subscription nobody renews; the renewal timer skips forgotten mailboxes.
            log.warning("disconnect: subscription not removed", extra={"tenant": tenant_id, "status": exc.code})


class ConnectionHealth:
    """``ReconnectNotifier``: flags the connections that ride on a dead token and alerts the owner once."""

    def __init__(self, connections: ConnectionRepository, alerts: OwnerAlerts, clock: Clock) -> None:
        self.connections = connections
        self.alerts = alerts
        self.clock = clock

    def needs_reconnect(self, tenant_id: str, user_id: str, reason: str) -> None:
        if self.connections.mark_needs_reconnect(tenant_id, user_id, reason, self.clock.now()):
            self.alerts.notify(
                tenant_id, AlertKind.USER_RECONNECT_REQUIRED,
                detail=f"A connected calendar (user {user_id}) must be connected again (reason {reason}).",
            )
