"""Authentication and the per-route access rules, applied by ``functions.endpoint``.

``authenticate(req, auth, ...)`` turns the ``Authorization`` header into a ``Caller``
or raises: 401 (with a ``WWW-Authenticate: Bearer`` challenge) when the token is
missing or invalid, 403 when it is valid but not allowed here. The rules themselves
live in ``core.services.authz`` (roles, organizer/participant) and
``core.services.tenancy`` (onboarded tenants); this module only applies them per
``Auth`` kind.

The validator and the tenant gate are built lazily per container (tests swap the
container; a worker builds them once). ``set_validator`` lets tests and the local
host inject a validator with their own key source.
"""

from __future__ import annotations

import enum
import threading

import azure.functions as func

from core.adapters.jwt_validator import JwtValidator, TokenClaims
from core.bootstrap import Container
from core.domain.errors import Forbidden, InsufficientScope, InvalidToken, MissingToken, TenantNotOnboarded
from core.services.authz import Caller, require_admin, require_pairing_writer
from core.services.tenancy import TenantGate
from core.settings import Settings


class Auth(enum.Enum):
    """Who may call a route."""

    ANONYMOUS = "anonymous"
    USER = "user"  # a signed-in user of an onboarded tenant (delegated token with the API scope)
    ADMIN = "admin"  # USER + the Integration.Admin app role
    PAIRING_WRITER = "pairing_writer"  # ADMIN, or an app-only token with Pairings.ReadWrite.All






_lock = threading.Lock()
_validator: tuple[Settings, JwtValidator] | None = None
_injected_validator: JwtValidator | None = None
_gate: tuple[Container, TenantGate] | None = None


def set_validator(validator: JwtValidator | None) -> None:
    """Use this validator for every request (tests, local host); ``None`` goes back to the lazy default."""
    global _injected_validator, _validator  # noqa: PLW0603 - one validator per worker
    with _lock:
        _injected_validator = validator
        _validator = None


def validator_for(settings: Settings) -> JwtValidator:
    """The worker's validator for these settings (built on first use; JWKS fetched lazily)."""
    global _validator  # noqa: PLW0603
    if _injected_validator is not None:
        return _injected_validator
    with _lock:
        if _validator is None or _validator[0] is not settings:
            _validator = (settings, JwtValidator(settings))
        return _validator[1]


def tenant_gate(container: Container) -> TenantGate:
    """The worker's onboarded-tenant gate for this container (its cache lives as long as the container)."""
    global _gate  # noqa: PLW0603
    with _lock:
        if _gate is None or _gate[0] is not container:
            _gate = (container, TenantGate(container.tables))
        return _gate[1]


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
    claims = validator_for(settings).validate(bearer_token(req))
    caller = caller_from(claims)
    if caller.is_app:
        if auth is not Auth.PAIRING_WRITER:
            raise Forbidden("App-only tokens cannot call this route.", code="user_token_required")
    elif settings.api_scope not in caller.scopes:
        raise InsufficientScope(settings.api_scope)

    gate = tenant_gate(container)
    if not gate.is_onboarded(caller.tenant_id) and not (onboarding and settings.tenant_may_onboard(caller.tenant_id)):
        if onboarding:
            raise Forbidden("This deployment does not serve your organisation.", code="tenant_not_allowed")
        raise TenantNotOnboarded()

    if auth is Auth.ADMIN:
        require_admin(caller)
    elif auth is Auth.PAIRING_WRITER:
        require_pairing_writer(caller)
    return caller
