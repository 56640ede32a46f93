"""Who may do what: every authorization rule of the API in one place, keyed by (tid, oid).

The caller is whoever the validated bearer token names: ``tenant_id`` (``tid``) and
``object_id`` (``oid``). Display names and UPNs ride along for display only; no rule
here ever looks at them (``preferred_username`` can be edited by users in some
tenants and is not unique across tenants).

The product's server calls with app-only tokens (``is_app``): its client id (``azp``)
must be allow-listed by the deployment (``require_known_app``), and each route kind
names the app role it needs. On the session and availability routes it acts *for* a
named user of the tenant (``acting_for``): the caller then *is* that user (same rules,
same keys, no roles of its own), with the acting app kept in ``acting_app`` for the
audit trail.

Tenant isolation is structural: resources are always read with PartitionKey = the
caller's tenant (every store in ``core/services/stores`` takes the tenant id first), so
another tenant's id is simply not found and answers 404, never 403 (which would
confirm that the id exists elsewhere).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from core.domain.errors import Forbidden, NotFound

ROLE_INTEGRATION_ADMIN: Final = "Integration.Admin"
ROLE_PAIRINGS_WRITER: Final = "Pairings.ReadWrite.All"
ROLE_SESSIONS_WRITER: Final = "Sessions.ReadWrite.All"
ROLE_WEBHOOKS_WRITER: Final = "Webhooks.ReadWrite.All"


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated principal of a request. ``tenant_id``/``object_id`` are lower-case GUIDs."""

    tenant_id: str
    object_id: str
    roles: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    is_app: bool = False
    display_name: str | None = None  # display only, never used for a decision
    username: str | None = None  # preferred_username: display only, never used for a decision
    app_id: str | None = None  # the client the token was issued to (azp): the SPA, or the product's server
    acting_app: str | None = None  # set when an app acts for this user (X-On-Behalf-Of): the app's client id

    @property
    def key(self) -> tuple[str, str]:
        """The identity every rule and rate limit is keyed by."""
        return (self.tenant_id, self.object_id)

    @property
    def is_admin(self) -> bool:
        return not self.is_app and self.acting_app is None and ROLE_INTEGRATION_ADMIN in self.roles

    @property
    def by_app(self) -> bool:
        """Is an app behind this request (app-only, or acting for a user)? Such requests are audited."""
        return self.is_app or self.acting_app is not None

    def is_user(self, object_id: str) -> bool:
        """Whether ``object_id`` names this caller (case-insensitive GUID comparison)."""
        return not self.is_app and object_id.lower() == self.object_id


def require_admin(caller: Caller) -> None:
    """Admin routes: a signed-in user holding the ``Integration.Admin`` app role."""
    if not caller.is_admin:
        raise Forbidden("This needs the Integration.Admin role in your organisation.", code="admin_role_required")


def require_pairing_writer(caller: Caller) -> None:
    """Pairing writes: an admin, or the product's server (app-only token with ``Pairings.ReadWrite.All``)."""
    if caller.is_admin:
        return
    if caller.is_app and ROLE_PAIRINGS_WRITER in caller.roles:
        return
    raise Forbidden(
        "This needs the Integration.Admin role, or an app token with Pairings.ReadWrite.All.",
        code="pairing_writer_required",
    )


def require_known_app(caller: Caller, allowed_client_ids: frozenset[str]) -> None:
    """App-only tokens: only from the product server's client id(s) the deployment allow-lists."""
    if not caller.is_app:
        return
    if caller.app_id is None or caller.app_id not in allowed_client_ids:
        raise Forbidden("This deployment does not accept app-only tokens from this application.",
                        code="app_not_allowed")


def require_sessions_app(caller: Caller) -> None:
    """Acting for a user: an app-only token with ``Sessions.ReadWrite.All``."""
    if caller.is_app and ROLE_SESSIONS_WRITER in caller.roles:
        return
    raise Forbidden("This needs a user's token, or an app token with Sessions.ReadWrite.All.",
                    code="sessions_role_required")


def acting_for(app: Caller, user_object_id: str) -> Caller:
    """The caller an app becomes when it acts for ``user_object_id`` (an object id of its tenant).

    The user's rules apply (organizer, participant, rate limits); none of the app's roles
    carry over, so an app acting for a user is never an admin.
    """
    require_sessions_app(app)
    return Caller(
        tenant_id=app.tenant_id,
        object_id=user_object_id.lower(),
        is_app=False,
        app_id=app.app_id,
        acting_app=app.app_id or app.object_id,
    )


def require_webhook_manager(caller: Caller) -> None:
    """Webhook endpoints: an admin, or the product's server (app-only token with ``Webhooks.ReadWrite.All``)."""
    if caller.is_admin:
        return
    if caller.is_app and ROLE_WEBHOOKS_WRITER in caller.roles:
        return
    raise Forbidden(
        "This needs the Integration.Admin role, or an app token with Webhooks.ReadWrite.All.",
        code="webhook_manager_required",
    )


def require_same_tenant(resource_tenant_id: str, caller: Caller) -> None:
    """A resource of another tenant is reported as missing (404), never as forbidden."""
    if resource_tenant_id.lower() != caller.tenant_id:
        raise NotFound()




def require_participant(organizer_id: str, attendee_ids: Iterable[str], caller: Caller) -> None:
    """Session reads: the organizer and the attendees only; anyone else gets 404 (the session is not theirs)."""
    if caller.is_user(organizer_id) or any(caller.is_user(a) for a in attendee_ids):
        return
    raise NotFound()


def require_organizer(organizer_id: str, attendee_ids: Iterable[str], caller: Caller) -> None:
    """Session changes: the organizer only. Attendees may read, so they get 403; strangers get 404."""
    if caller.is_user(organizer_id):
        return
    require_participant(organizer_id, attendee_ids, caller)
    raise Forbidden("Only the organizer can change this session.", code="organizer_only")
