"""Authentication and the per-route access rules, applied by ``functions.endpoint``.

``authenticate(req, auth, ...)`` turns the ``Authorization`` header into a ``Caller``
or raises: 401 (with a ``WWW-Authenticate: Bearer`` challenge) when the token is
missing or invalid, 403 when it is valid but not allowed here. The rules themselves
live in ``core.services.authz`` (roles, organizer/participant) and
``core.services.tenancy`` (onboarded tenants); this module only applies them per
``Auth`` kind.

The validator and the tenant gate are the container's (``container.token_validator``,
``container.tenant_gate``): tests install a container with their own validator.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

import azure.functions as func

from core.bootstrap import Container
from core.domain.errors import Forbidden, InsufficientScope, InvalidToken, MissingToken, TenantNotOnboarded
from core.services.authz import Caller, require_admin, require_pairing_writer, require_webhook_manager

if TYPE_CHECKING:
    from core.ports import TokenClaims


class Auth(enum.Enum):
    """Who may call a route."""

    ANONYMOUS = "anonymous"
    USER = "user"  # a signed-in user of an onboarded tenant (delegated token with the API scope)
    ADMIN = "admin"  # USER + the Integration.Admin app role
    PAIRING_WRITER = "pairing_writer"  # ADMIN, or an app-only token with Pairings.ReadWrite.All
    WEBHOOK_MANAGER = "webhook_manager"  # ADMIN, or an app-only token with Webhooks.ReadWrite.All

    @property
    def admits_app_tokens(self) -> bool:
        return self in (Auth.PAIRING_WRITER, Auth.WEBHOOK_MANAGER)


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
    if caller.is_app:
        if not auth.admits_app_tokens:
            raise Forbidden("App-only tokens cannot call this route.", code="user_token_required")
    elif settings.api_scope not in caller.scopes:
        raise InsufficientScope(settings.api_scope)

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
    return caller
