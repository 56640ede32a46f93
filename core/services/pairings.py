"""Pairings: who may book with whom under the tenant's ``registered`` policy.

Written by an admin or by the product's server (app-only token), read by their members.
A write names each member by Entra object id or by email/UPN; both are resolved through
Microsoft Graph once, here, and stored as object id + SMTP address
(``core/services/pairings_repo.py``), so availability and booking never need a directory
lookup for a pair. A member Graph does not know is a 422 that says which one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from core.domain.calendar import GraphIdentity
from core.domain.errors import DependencyError, Forbidden, TenantNotOnboarded, UserNotFound, ValidationFailed
from core.domain.integration import Integration
from core.ports import CalendarGateway, Clock, TableStore
from core.services.authz import Caller
from core.services.identity import GraphIdentities
from core.services.stores.connections import ConnectionRepository
from core.services.stores.integrations import IntegrationRepository
from core.services.stores.pairings import Pairing, PairingRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PairingRequest:
    """PUT /api/pairings/{id} as the service sees it: members as the caller named them."""

    pairing_id: str
    mentor: str
    mentee: str
    active: bool = True


def require_enabled_integration(integrations: IntegrationRepository, tenant_id: str) -> Integration:
    """The tenant's integration, if calendar work is allowed for it (403 otherwise)."""
    found = integrations.get(tenant_id)
    if found is None or not found.value.onboarded:
        raise TenantNotOnboarded()
    if not found.value.enabled:
        raise Forbidden("Calendar features are turned off for your organisation.", code="integration_disabled")
    return found.value


class PairingService:
    """Create, replace, delete and list pairings (see the module docstring)."""

    def __init__(self, gateway: CalendarGateway | None, tables: TableStore, clock: Clock) -> None:
        self._gateway = gateway
        self.clock = clock
        self.pairings = PairingRepository(tables)
        self.integrations = IntegrationRepository(tables)
        self.identities = GraphIdentities(self.integrations, ConnectionRepository(tables))

    @property
    def gateway(self) -> CalendarGateway:
        """Microsoft Graph, needed only by the operations that resolve users or rooms."""
        if self._gateway is None:
            raise DependencyError("Microsoft Graph is not configured for this process.")
        return self._gateway

    def put(self, caller: Caller, request: PairingRequest) -> Pairing:
        """Create or replace a pairing in the caller's tenant; members resolved through Graph."""
        require_enabled_integration(self.integrations, caller.tenant_id)
        who = self.identities.for_tenant(caller.tenant_id)
        mentor_id, mentor_address = self._resolve(who, request.mentor, "mentor")
        mentee_id, mentee_address = self._resolve(who, request.mentee, "mentee")
        if mentor_id.lower() == mentee_id.lower():
            raise ValidationFailed(
                "The mentor and the mentee must be two different people.",
                code="same_person",
                details={"fields": [{"loc": ["body", "mentee"], "msg": "same person as the mentor"}]},
            )
        pairing = Pairing(
            tenant_id=caller.tenant_id,
            pairing_id=request.pairing_id,
            mentor_id=mentor_id,
            mentor_address=mentor_address,
            mentee_id=mentee_id,
            mentee_address=mentee_address,
            active=request.active,
            updated_at=self.clock.now(),
        )
        saved = self.pairings.save(pairing).value
        log.info("pairing saved (active=%s)", saved.active, extra={"tenant": caller.tenant_id})
        return saved

    def delete(self, caller: Caller, pairing_id: str) -> None:
        """Remove a pairing and its index rows; deleting a missing pairing is not an error."""
        self.pairings.delete(caller.tenant_id, pairing_id)

    def list_mine(self, caller: Caller) -> list[Pairing]:
        """The caller's active pairings."""
        return [p for p in self.pairings.list_for_user(caller.tenant_id, caller.object_id) if p.active]

    def _resolve(self, who: GraphIdentity, ref: str, field_name: str) -> tuple[str, str]:
        try:
            user = self.gateway.get_user(who, ref)
        except UserNotFound as exc:
            raise ValidationFailed(
                f"The {field_name} is not a user of your organisation.",
                code="user_not_found",
                details={"fields": [{"loc": ["body", field_name], "msg": "no such user in this organisation"}]},
            ) from exc
        if not user.mail:
            raise ValidationFailed(
                f"The {field_name} has no mailbox, so no sessions can be booked with them.",
                code="user_without_mailbox",
                details={"fields": [{"loc": ["body", field_name], "msg": "this user has no mailbox"}]},
            )
        return user.user_id.lower(), user.mail
