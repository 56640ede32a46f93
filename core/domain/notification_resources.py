"""The ``resource`` of a Graph change notification -> (mailbox user id, event id).

Microsoft's documentation shows the same notification ``resource`` in several spellings,
and a webhook that recognises only one drops genuine notifications (as "malformed", or
as a "bad clientState" once the mailbox id it derived no longer matches the signature):

- ``Users/{userId}/Messages/{id}``: concepts/outlook-change-notifications-overview.md,
  "Receive notifications without resource data" (basic notifications, what events use);
- ``users/{userId}@{tenantId}/messages/{id}``: concepts/change-notifications-delivery-webhooks.md,
  "Change notification example" (the user id carries an ``@{tenantId}`` suffix);
- ``Users('{userId}')/messages('{id}')``: concepts/outlook-change-notifications-overview.md,
  "Receive notifications with resource data" (OData key syntax).

(microsoftgraph/microsoft-graph-docs-contrib; commits in tests/graph_docs/README.md.)
Collection names are case-insensitive, the leading ``/`` is optional, and Exchange ids
are base64 that may hold ``/``, ``+`` and ``=``: the event id is everything after the
``events`` segment, kept exactly. Pure: no I/O, no vendor SDK.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
# users/{u} or users('{u}') ; then optional calendar/ or calendars/{c} ; then events/{e} or events('{e}')
_USER = r"users(?:\('(?P<uq>(?:[^']|'')+)'\)|/(?P<up>[^/('][^/]*))"
_CALENDAR = r"(?:/calendar|/calendars(?:\('(?:[^']|'')+'\)|/[^/]+))?"
_EVENT = r"/events(?:\('(?P<eq>(?:[^']|'')+)'\)|/(?P<ep>.+))"
_RESOURCE = re.compile(rf"^/?{_USER}{_CALENDAR}{_EVENT}$", re.IGNORECASE | re.DOTALL)


class EventResource(NamedTuple):
    """The mailbox (lower-cased user id or UPN) and the event id a notification names."""

    user_id: str
    event_id: str


def _unquote_key(value: str) -> str:
    """An OData string key: ``''`` stands for ``'``."""
    return value.replace("''", "'")


def _mailbox(raw: str, tenant_id: str | None) -> str | None:
    """Strip an ``@{tenantId}`` suffix; None when the suffix names another tenant."""
    user = raw.strip()
    if not user:
        return None
    head, sep, tail = user.rpartition("@")
    if sep and _GUID.match(tail):
        if tenant_id is not None and tail.lower() != tenant_id.strip().lower():
            return None  # a notification about another tenant's mailbox
        user = head
    return user.lower() or None


def parse_event_resource(resource: str | None, tenant_id: str | None = None) -> EventResource | None:
    """(user id, event id) for any documented spelling of an event's notification ``resource``.

    ``tenant_id`` is the notification's own ``tenantId``: an ``@{tenantId}`` suffix on the
    user must equal it. None for anything that is not one event of one user's mailbox
    (messages, contacts, collections, another tenant's suffix, empty ids).
    """
    if not resource:
        return None
    match = _RESOURCE.match(resource.strip())
    if match is None:
        return None
    quoted_user = match.group("uq")
    user = _mailbox(_unquote_key(quoted_user) if quoted_user is not None else match.group("up"), tenant_id)
    quoted_event = match.group("eq")
    event_id = _unquote_key(quoted_event) if quoted_event is not None else match.group("ep")
    if user is None or not event_id or (quoted_event is None and "('" in event_id):
        return None
    return EventResource(user, event_id)
