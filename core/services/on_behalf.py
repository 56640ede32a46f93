"""Which user an app-only request acts for: the ``X-On-Behalf-Of`` header, resolved to an object id.

The product's server names the user the way the contract names users everywhere
(docs/api.md, Conventions): by Entra object id or by email/UPN, within the token's
tenant.

* An object id (a GUID) is taken as it is, lower-cased, with no Graph call. It is only
  ever used inside the token's tenant partition, so an id that is not a user of that
  tenant owns nothing there and cannot book (bookings need a pairing of that user, or a
  directory look-up of them, both of which fail).
* An email/UPN is resolved through Microsoft Graph (``GET /users/{upn}``) with the
  tenant's identity (``GraphIdentities.for_tenant``, as pairing writes resolve members),
  and cached per process for a few minutes, so a product server acting for the same
  user repeatedly costs one directory read per ``ttl``. Unknown: 422 ``user_not_found``.

Anything else is 422 ``validation_failed`` naming the header.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Final

from core.domain.errors import DependencyError, UserNotFound, ValidationFailed
from core.ports import CalendarGateway, TableStore
from core.services.availability import TtlCache
from core.services.identity import GraphIdentities
from core.services.stores.connections import ConnectionRepository
from core.services.stores.integrations import IntegrationRepository

HEADER: Final = "X-On-Behalf-Of"
CACHE_SECONDS: Final = 300.0
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(rf"^[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]{{1,64}}@{_LABEL}(?:\.{_LABEL})+$")
_MAX_CHARS: Final = 254


def _field_error(msg: str) -> dict[str, object]:
    return {"fields": [{"loc": ["header", HEADER], "msg": msg}]}


class OnBehalfResolver:
    """Resolves ``X-On-Behalf-Of`` values to object ids of the token's tenant (module docstring)."""

    def __init__(
        self,
        gateway: CalendarGateway | None,
        tables: TableStore,
        *,
        ttl_seconds: float = CACHE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._gateway = gateway
        self.identities = GraphIdentities(IntegrationRepository(tables), ConnectionRepository(tables))
        self._cache: TtlCache[tuple[str, str], str] = TtlCache(ttl_seconds, monotonic=monotonic)

    def resolve(self, tenant_id: str, ref: str) -> str:
        """The object id (lower-case GUID) ``ref`` names in ``tenant_id``; 422 when it names nobody."""
        value = ref.strip()
        if not value:
            raise ValidationFailed(f"{HEADER} must name a user.", code="on_behalf_of_required",
                                   details=_field_error("missing"))
        if len(value) <= _MAX_CHARS and _GUID.match(value):
            return value.lower()
        if len(value) > _MAX_CHARS or not _EMAIL.match(value):
            raise ValidationFailed(f"{HEADER} must be a user's object id or email address.",
                                   details=_field_error("not an object id or email address"))
        key = (tenant_id.lower(), value.lower())
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        if self._gateway is None:
            raise DependencyError("Microsoft Graph is not configured for this process.")
        try:
            user = self._gateway.get_user(self.identities.for_tenant(tenant_id), value)
        except UserNotFound as exc:
            raise ValidationFailed(f"{HEADER} names no user of your organisation.", code="user_not_found",
                                   details=_field_error("no such user in this organisation")) from exc
        return self._cache.put(key, user.user_id.lower())
