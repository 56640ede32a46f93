"""Microsoft Graph webhooks: the validation handshake, then change and lifecycle notifications.

Graph first POSTs ``?validationToken=<token>`` to both URLs and expects, within 10 s,
200 ``text/plain`` whose body is exactly the URL-decoded token. The token is echoed
as plain text with ``nosniff`` (never HTML), and refused over 2,048 characters.

Notifications must be acknowledged in milliseconds (Graph counts a reply over 2.9 s as
slow and drops notifications of endpoints that are often slow), so this path makes no
Graph, Key Vault or table call: each item's clientState is checked in constant time
against an HMAC of its tenant, mailbox and subscription nonce with a key ring held in memory
(``core/services/client_state.py``; read once per process, reloaded in the background), bad
items are dropped and counted, and the good ones go to the queue as metadata only, one
message per POST (lifecycle items carry the nonce, which the lifecycle worker matches
against the mailbox's current subscription before it acts). 202 once enqueued; 503 with
``Retry-After`` when the enqueue failed, or when an item names the next key id (a rotation
elsewhere: the ring reloads in the background and Graph delivers again; items are late,
never dropped).
Deployed, Azure checks the function key Graph echoes as ``?code=``. Nothing here logs
the token, a clientState or a notification body.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

import azure.functions as func

from core.bootstrap import Container
from core.domain.errors import BadRequest, ServiceError
from core.domain.notification_resources import parse_event_resource
from core.log import correlation_id
from core.names import Queues
from functions.auth import Auth
from functions.endpoint import Models, Reply, RequestContext, endpoint
from functions.http import text_response

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # schemas load on first use, not at import (cold start)
    from core.domain.commands import ChangeItem, LifecycleItem
    from core.services.client_state import Checked, ClientStateSigner
    from functions.schemas.webhooks import NotificationBatch, WebhookQuery

bp = func.Blueprint()
M = Models("functions.schemas.webhooks")

MAX_NOTIFICATION_BYTES = 1024 * 1024


def handshake(query: WebhookQuery) -> func.HttpResponse | None:
    """The validation echo when ``validationToken`` is present, else ``None``."""
    from functions.schemas.webhooks import MAX_VALIDATION_TOKEN_CHARS

    token = query.validationToken
    if token is None:
        return None
    if not token or len(token) > MAX_VALIDATION_TOKEN_CHARS:
        raise BadRequest("The validation token is empty or too long.", code="invalid_validation_token")
    return text_response(token, 200)


ITEMS_PER_MESSAGE: Final = 100  # ~25 KB of metadata: well inside a queue message
RETRY_AFTER_SECONDS: Final = "5"
NEXT_KEY: Final = "next_key"  # signed with current key id + 1: a rotation elsewhere, not yet loaded here
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

_dropped: Counter[str] = Counter()
_dropped_lock = threading.Lock()


def dropped_counts() -> dict[str, int]:
    """Items dropped by this process since start, by reason (for tests and diagnostics)."""
    with _dropped_lock:
        return dict(_dropped)


def _count(dropped: Counter[str], route: str) -> None:
    if not dropped:
        return
    with _dropped_lock:
        _dropped.update(dropped)
    log.warning("%s: dropped %d notification item(s) %s", route, sum(dropped.values()), dict(dropped))


def _next_key(signer: ClientStateSigner | None, checked: Checked | None) -> bool:
    """Signed with the key id after the ring's newest: a rotation elsewhere this process has not loaded yet."""
    return checked is not None and checked.unknown_key and signer is not None and signer.is_next_key(checked.key_id)


def check_changes(batch: NotificationBatch, signer: ClientStateSigner | None) -> tuple[list[ChangeItem], Counter[str]]:
    """The items whose clientState is ours for their tenant and mailbox, and the reasons for the rest."""
    from core.domain.commands import ChangeItem

    good: list[ChangeItem] = []
    dropped: Counter[str] = Counter()
    # A POST carries many notifications of the same subscription (same clientState, tenant and
    # mailbox): check each distinct triple once. Same inputs, same verdict; the first check was
    # constant-time, repeats are only skipped, never decided differently.
    verified: set[tuple[str, str, str]] = set()
    for n in batch.value:
        tenant = n.tenantId
        # Every documented spelling (Users/{id}/Events/{id}, users/{id}@{tenant}/events/{id},
        # Users('{id}')/Events('{id}')) names the same mailbox: core/domain/notification_resources.py.
        parsed = parse_event_resource(n.resource, tenant) if tenant and _GUID.match(tenant) else None
        if tenant is None or parsed is None:
            dropped["malformed"] += 1
            continue
        user_id = parsed.user_id
        triple = (n.clientState or "", tenant, user_id)
        if triple not in verified:
            checked = signer.check(n.clientState, tenant) if signer is not None else None
            if _next_key(signer, checked):
                dropped[NEXT_KEY] += 1
                continue
            if checked is None or not checked.ok or checked.user_id != user_id.lower():
                dropped["bad_client_state"] += 1
                continue
            verified.add(triple)
        event_id = (n.resourceData.id if n.resourceData is not None else None) or parsed.event_id
        good.append(ChangeItem(tenant.lower(), user_id, event_id, n.changeType or "updated",
                               n.subscriptionId))
    return good, dropped


def check_lifecycle(batch: NotificationBatch,
                    signer: ClientStateSigner | None) -> tuple[list[LifecycleItem], Counter[str]]:
    """Lifecycle items carry no resource: the mailbox comes from the (verified) clientState."""
    from core.domain.commands import LIFECYCLE_EVENTS, LifecycleItem

    good: list[LifecycleItem] = []
    dropped: Counter[str] = Counter()
    for n in batch.value:
        tenant = n.tenantId
        if not tenant or not _GUID.match(tenant):
            dropped["malformed"] += 1
            continue
        if n.lifecycleEvent not in LIFECYCLE_EVENTS:
            # Microsoft adds lifecycle event types over time and says to process each item on
            # its own (concepts/change-notifications-lifecycle-events.md): an unknown type is
            # dropped alone, counted, and never takes its known neighbours down with it.
            dropped["unknown_lifecycle_event"] += 1
            continue
        checked = signer.check(n.clientState, tenant) if signer is not None else None
        if _next_key(signer, checked):
            dropped[NEXT_KEY] += 1
            continue
        if checked is None or not checked.ok or checked.user_id is None:
            dropped["bad_client_state"] += 1
            continue
        good.append(LifecycleItem(tenant.lower(), checked.user_id, n.subscriptionId, str(n.lifecycleEvent),
                                  nonce=checked.nonce))
    return good, dropped


def _enqueue(container: Container, queue: str, items: Sequence[Any],
             message: Callable[..., dict[str, Any]]) -> Reply:
    cid = correlation_id.get()
    try:
        for start in range(0, len(items), ITEMS_PER_MESSAGE):
            container.queues.send(queue, message(items[start : start + ITEMS_PER_MESSAGE], correlation_id=cid))
    except ServiceError as exc:
        log.error("notifications not persisted (%s): answering 503 so Graph retries", exc.code)
        return Reply(503, headers={"Retry-After": RETRY_AFTER_SECONDS})
    return Reply(202)


def _new_key_elsewhere(dropped: Counter[str], container: Container) -> bool:
    """Items signed with the next key id (a rotation elsewhere this process has not loaded yet): reload the ring
    in the background (at most once per 30 s) and answer 503 so Graph delivers the POST again later."""
    if dropped[NEXT_KEY] == 0:
        return False
    container.client_state_keys.reload_soon()
    return True


def handle_notifications(batch: NotificationBatch, container: Container) -> Reply:
    """Check clientState per item, enqueue the good ones in one message, 202 (503 if not persisted)."""
    good, dropped = check_changes(batch, container.client_state_keys.signer())
    _count(dropped, "graph/notifications")
    if _new_key_elsewhere(dropped, container):
        return Reply(503, headers={"Retry-After": RETRY_AFTER_SECONDS})
    from core.domain.commands import notifications_message

    return _enqueue(container, Queues.NOTIFICATIONS, good, notifications_message) if good else Reply(202)


def handle_lifecycle(batch: NotificationBatch, container: Container) -> Reply:
    """Check clientState per item, enqueue reauthorize / recreate / resync work, 202 (503 if not persisted)."""
    good, dropped = check_lifecycle(batch, container.client_state_keys.signer())
    _count(dropped, "graph/lifecycle")
    if _new_key_elsewhere(dropped, container):
        return Reply(503, headers={"Retry-After": RETRY_AFTER_SECONDS})
    from core.domain.commands import lifecycle_message

    return _enqueue(container, Queues.LIFECYCLE, good, lifecycle_message) if good else Reply(202)


@endpoint(bp, "POST", "graph/notifications", auth=Auth.ANONYMOUS, function_key=True, query=M.WebhookQuery,
          body=M.NotificationBatch, defer_body=True, status=202, max_body_bytes=MAX_NOTIFICATION_BYTES,
          response_content_type="text/plain", extra_statuses=(503,),
          summary="Graph change notifications (and the validation handshake)",
          tags=("webhooks",))
def graph_notifications(ctx: RequestContext[None, WebhookQuery]) -> func.HttpResponse | Reply:
    """Handshake echo, or change notifications -> 202 once enqueued (503 if they could not be)."""
    echo = handshake(ctx.query)
    if echo is not None:
        return echo
    batch: NotificationBatch = ctx.parse_body()
    return handle_notifications(batch, ctx.container)


@endpoint(bp, "POST", "graph/lifecycle", auth=Auth.ANONYMOUS, function_key=True, query=M.WebhookQuery,
          body=M.NotificationBatch, defer_body=True, status=202, max_body_bytes=MAX_NOTIFICATION_BYTES,
          response_content_type="text/plain", extra_statuses=(503,),
          summary="Graph lifecycle notifications (and the validation handshake)",
          tags=("webhooks",))
def graph_lifecycle(ctx: RequestContext[None, WebhookQuery]) -> func.HttpResponse | Reply:
    """Handshake echo, or lifecycle notifications -> 202 once enqueued (503 if they could not be)."""
    echo = handshake(ctx.query)
    if echo is not None:
        return echo
    batch: NotificationBatch = ctx.parse_body()
    return handle_lifecycle(batch, ctx.container)
