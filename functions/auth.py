"""Authentication and the per-route access rules, applied by ``functions.endpoint``.

``authenticate(req, auth, ...)`` turns the ``Authorization`` header into a ``Caller``
or raises: 401 (with a ``WWW-Authenticate: Bearer`` challenge) when the token is
missing or invalid, 403 when it is valid but not allowed here. The rules themselves
live in ``core.services.authz`` (roles, organizer/participant) and
``core.services.tenancy`` (onboarded tenants); this module only applies them per
``Auth`` kind.

App-only tokens (the product's server) are accepted only from client ids the
deployment allow-lists (``PRODUCT_SERVER_CLIENT_IDS``, else 403 ``app_not_allowed``) and
only on the kinds that name an app role. On ``SESSION_USER`` routes the app acts for a
user named in ``X-On-Behalf-Of`` (object id or email of its tenant); the returned caller
*is* that user, with ``acting_app`` set (``core.services.authz.acting_for``).
``SESSION_READER`` routes (session reads) also let the app read as itself, across its
tenant, when it names nobody. A route
opts in by declaring ``auth=Auth.SESSION_USER``; nothing else in its handler changes, so
every feature behind such a route (series, offered hours...) is reachable by the
product's server the same way. The header is refused from user tokens and on routes
that do not act for a user.

The validator and the tenant gate are the container's (``container.token_validator``,
``container.tenant_gate``): tests install a container with their own validator.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

import azure.functions as func

from core.bootstrap import Container
from core.domain.errors import (
    Forbidden,
    InsufficientScope,
    InvalidToken,
    MissingToken,
    TenantNotOnboarded,
    ValidationFailed,
)
from core.services.authz import (
    Caller,
    acting_for,
    require_admin,
    require_known_app,
    require_pairing_writer,
    require_sessions_app,
    require_webhook_manager,
)

if TYPE_CHECKING:
    from core.ports import TokenClaims


class Auth(enum.Enum):
    """Who may call a route."""

    ANONYMOUS = "anonymous"
    USER = "user"  # a signed-in user of an onboarded tenant (delegated token with the API scope)
    # USER, or an app-only token with Sessions.ReadWrite.All acting for the user named in X-On-Behalf-Of
    SESSION_USER = "session_user"
    # SESSION_USER; or that app token without X-On-Behalf-Of, reading across its tenant (session reads)
    SESSION_READER = "session_reader"
    ADMIN = "admin"  # USER + the Integration.Admin app role
    PAIRING_WRITER = "pairing_writer"  # ADMIN, or an app-only token with Pairings.ReadWrite.All
    WEBHOOK_MANAGER = "webhook_manager"  # ADMIN, or an app-only token with Webhooks.ReadWrite.All


ON_BEHALF_OF_HEADER = "X-On-Behalf-Of"
# Kinds an app-only token may call (each checks its own app role).
APP_KINDS = frozenset({Auth.PAIRING_WRITER, Auth.SESSION_USER, Auth.SESSION_READER, Auth.WEBHOOK_MANAGER})
ACTING_KINDS = frozenset({Auth.SESSION_USER, Auth.SESSION_READER})


def bearer_token(req: func.HttpRequest) -> str:
    """The token of ``Authorization: Bearer <token>``; 401 when absent or malformed."""
    header = req.headers.get("authorization") or ""
    scheme, _, token = header.strip().partition(" ")
    if not header.strip():
        raise MissingToken()
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("The Authorization header must be 'Bearer <token>'.")
    return token.strip()


def caller_from(claims: TokenClaims) -> Caller:
    return Caller(
        tenant_id=claims.tenant_id,
        object_id=claims.object_id,
        roles=claims.roles,
        scopes=claims.scopes,
        is_app=claims.is_app,
        display_name=claims.name,
        username=claims.username,
        app_id=claims.app_id,
    )


def authenticate(req: func.HttpRequest, auth: Auth, container: Container, *, onboarding: bool = False) -> Caller | None:
    """Apply ``auth`` to the request; the caller, or ``None`` for anonymous routes.

    ``onboarding`` marks the integration set-up routes: an admin of a tenant that has
    not onboarded yet gets in there when the deployment allows that tenant
    (``ALLOWED_TENANTS``); everywhere else only onboarded tenants do.
    """
    if auth is Auth.ANONYMOUS:
        return None
    settings = container.settings
    claims = container.token_validator.validate(bearer_token(req))
    caller = caller_from(claims)
    on_behalf_of = req.headers.get(ON_BEHALF_OF_HEADER)
    if caller.is_app:
        if auth not in APP_KINDS:
            raise Forbidden("App-only tokens cannot call this route.", code="user_token_required")
        require_known_app(caller, settings.product_server_client_ids)
        if on_behalf_of is not None and auth not in ACTING_KINDS:
            raise Forbidden(f"{ON_BEHALF_OF_HEADER} is not accepted on this route.", code="on_behalf_of_not_allowed")
    else:
        if settings.api_scope not in caller.scopes:
            raise InsufficientScope(settings.api_scope)
        if on_behalf_of is not None:
            raise Forbidden(f"{ON_BEHALF_OF_HEADER} is only accepted from app-only tokens.",
                            code="on_behalf_of_not_allowed")

    gate = container.tenant_gate
    if not gate.is_onboarded(caller.tenant_id) and not (onboarding and settings.tenant_may_onboard(caller.tenant_id)):
        if onboarding:
            raise Forbidden("This deployment does not serve your organisation.", code="tenant_not_allowed")
        raise TenantNotOnboarded()

    if auth is Auth.ADMIN:
        require_admin(caller)
    elif auth is Auth.PAIRING_WRITER:
        require_pairing_writer(caller)
    elif auth is Auth.WEBHOOK_MANAGER:
        require_webhook_manager(caller)
    elif auth in ACTING_KINDS and caller.is_app:
        require_sessions_app(caller)
        if on_behalf_of is None and auth is Auth.SESSION_READER:
            return caller  # the product's server reading across its tenant
        if on_behalf_of is None:
            raise ValidationFailed(
                f"An app-only token must name the user it acts for in {ON_BEHALF_OF_HEADER}.",
                code="on_behalf_of_required",
                details={"fields": [{"loc": ["header", ON_BEHALF_OF_HEADER], "msg": "required with an app token"}]},
            )
        caller = acting_for(caller, container.on_behalf.resolve(caller.tenant_id, on_behalf_of))
    return caller
