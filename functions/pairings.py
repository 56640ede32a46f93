"""Pairings: written by admins or the product's server, read by their members.

Handlers parse, call ``PairingService`` once and map the result. Members are given by
object id or email/UPN and resolved through Graph on write (422 ``user_not_found``
naming the field when one does not resolve).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import azure.functions as func

from functions.auth import Auth
from functions.endpoint import Models, RequestContext, endpoint

if TYPE_CHECKING:  # services and schemas load on first use, not at import (cold start)
    from core.services.stores.pairings import Pairing as PairingValue
    from functions.schemas.common import NoQuery
    from functions.schemas.pairings import PairingBody, PairingPath, PairingView

bp = func.Blueprint()
C = Models("functions.schemas.common")
M = Models("functions.schemas.pairings")





def pairing_view(p: PairingValue) -> PairingView:
    from functions.schemas.pairings import PairingView

    return PairingView(pairing_id=p.pairing_id, mentor=p.mentor_id, mentee=p.mentee_id, active=p.active,
                       updated_at=p.updated_at, mentor_address=p.mentor_address, mentee_address=p.mentee_address)


@endpoint(bp, "PUT", "pairings/{pairingId}", auth=Auth.PAIRING_WRITER, path=M.PairingPath, body=M.PairingBody,
          response=M.PairingView, summary="Create or replace a pairing", tags=("pairings",))
def pairing_put(ctx: RequestContext[PairingBody, NoQuery, PairingPath]) -> Any:
    """Admins or the product's server (app-only token with Pairings.ReadWrite.All)."""
    b = ctx.body
    from core.services.pairings import PairingRequest

    saved = ctx.container.pairings.put(
        ctx.caller, PairingRequest(pairing_id=ctx.path.pairingId, mentor=b.mentor, mentee=b.mentee, active=b.active)
    )
    return pairing_view(saved)


@endpoint(bp, "DELETE", "pairings/{pairingId}", auth=Auth.PAIRING_WRITER, path=M.PairingPath, status=204,
          summary="Delete a pairing", tags=("pairings",))
def pairing_delete(ctx: RequestContext[None, NoQuery, PairingPath]) -> Any:
    """Admins or the product's server."""
    ctx.container.pairings.delete(ctx.caller, ctx.path.pairingId)


@endpoint(bp, "GET", "me/pairings", auth=Auth.USER, response=M.PairingView.many,
          summary="Pairings the caller belongs to", tags=("pairings",))
def my_pairings(ctx: RequestContext[None]) -> Any:
    """Only the caller's own active pairings, within their tenant."""
    return [pairing_view(p) for p in ctx.container.pairings.list_mine(ctx.caller)]
