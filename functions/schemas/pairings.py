"""Pairings."""

from __future__ import annotations

from datetime import datetime

from functions.schemas.common import PathParams, Reply, RequestBody, ResourceId, UserRef


class PairingPath(PathParams):
    pairingId: ResourceId


class PairingBody(RequestBody):
    """PUT /api/pairings/{pairingId}."""

    mentor: UserRef
    mentee: UserRef
    active: bool


class Pairing(Reply):
    pairing_id: str
    mentor: str
    mentee: str
    active: bool
    updated_at: datetime | None = None


class PairingView(Pairing):
    """A pairing as the API shows it: members' object ids plus their mailbox addresses."""

    mentor_address: str
    mentee_address: str
