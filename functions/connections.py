"""Per-user and service-account connections, and the caller's own calendar view.

Thin handlers over ``core/services/connections.py`` (``container.connections``).
POST takes an optional body: without one a user connects their
own calendar (per-user tenants); ``{"purpose": "serviceAccount", "mailbox": ...}`` lets
an admin of a service-account tenant sign in as the scheduling mailbox (api.md has no
separate route; see docs/connection-methods.md). The callback is anonymous (a browser
redirect from Microsoft) and always answers 302 to the app URL with the outcome.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import azure.functions as func

from functions.auth import Auth
from functions.endpoint import Models, Reply, RequestContext, endpoint
from functions.ratelimit import GRAPH_READS

if TYPE_CHECKING:  # services and schemas load on first use, not at import (cold start)
    from functions.schemas.common import WindowQuery
    from functions.schemas.connections import (
        AuthorizeUrl,
        Connection,
        ConnectionCallbackQuery,
        ConnectionStartBody,
    )
    pass

bp = func.Blueprint()
C = Models("functions.schemas.common")
M = Models("functions.schemas.connections")






@endpoint(bp, "POST", "me/connection", auth=Auth.USER, body=M.ConnectionStartBody, body_required=False,
          response=M.AuthorizeUrl, summary="Start connecting the caller's calendar (delegated sign-in with PKCE)",
          tags=("me",), extra_statuses=(409,))
def connection_start(ctx: RequestContext[ConnectionStartBody | None]) -> AuthorizeUrl:
    """An authorize URL whose state is bound to the caller."""
    from core.services.stores.connections import ConnectionPurpose
    from functions.schemas.connections import AuthorizeUrl, ConnectionStartBody

    body = ctx.body or ConnectionStartBody()
    url = ctx.container.connections.start(ctx.caller, ConnectionPurpose(body.purpose), body.mailbox)
    return AuthorizeUrl(authorize_url=url)


@endpoint(bp, "GET", "me/connection/callback", auth=Auth.ANONYMOUS, query=M.ConnectionCallbackQuery,
          status=302, summary="Microsoft's sign-in redirect (browser)", tags=("me",))
def connection_callback(ctx: RequestContext[None, ConnectionCallbackQuery]) -> Reply:
    """Redeems the code for the user bound to the state, then redirects to the app."""
    q = ctx.query
    from core.services.connections import CallbackParams

    params = CallbackParams(
        code=q.code, state=q.state, session_state=q.session_state, error=q.error,
        error_description=q.error_description,
        admin_consent=(ctx.request.params.get("admin_consent") or None),
    )
    outcome = ctx.container.connections.callback(params)
    return Reply(302, None, {"Location": outcome.redirect_url, "Cache-Control": "no-store"})


@endpoint(bp, "GET", "me/connection", auth=Auth.USER, response=M.Connection,
          summary="Whether the caller's calendar is connected", tags=("me",))
def connection_get(ctx: RequestContext[None]) -> Connection:
    """Connection state, and whether the user must reconnect."""
    from functions.schemas.connections import Connection

    view = ctx.container.connections.status(ctx.caller)
    return Connection(
        connected=view.connected,
        method=view.method.value if view.method is not None else None,
        needs_reconnect=view.needs_reconnect,
        reason=view.reason,
    )


@endpoint(bp, "DELETE", "me/connection", auth=Auth.USER, status=204,
          summary="Forget the caller's tokens", tags=("me",))
def connection_delete(ctx: RequestContext[None]) -> None:
    """Removes the caller's refresh token (and their subscriptions)."""
    ctx.container.connections.disconnect(ctx.caller)


@endpoint(bp, "GET", "me/calendar-settings", auth=Auth.USER, rate_limit=GRAPH_READS, response=M.CalendarSettings,
          summary="The caller's time zone and working hours", tags=("me",))
def calendar_settings(ctx: RequestContext[None]) -> Any:
    """Read live from the caller's mailbox settings."""
    from functions.schemas.connections import CalendarSettings, WorkingHours

    found = ctx.container.availability.calendar_settings(ctx.caller)
    hours = found.working_hours
    return CalendarSettings(
        time_zone=found.time_zone,
        working_hours=None if hours is None else WorkingHours(
            days_of_week=list(hours.days),
            start_time=hours.start,
            end_time=hours.end,
            time_zone=hours.time_zone,
        ),
    )


@endpoint(bp, "GET", "me/events", auth=Auth.USER, rate_limit=GRAPH_READS, query=C.WindowQuery, response=M.MyEvent.many,
          summary="The caller's own calendar (live from Graph, never stored)", tags=("me",))
def my_events(ctx: RequestContext[None, WindowQuery]) -> Any:
    """Details only ever go to their owner."""
    from functions.schemas.connections import MyEvent

    found = ctx.container.availability.my_events(ctx.caller, ctx.query.from_, ctx.query.to)
    return [
        MyEvent(start=e.start, end=e.end, show_as=e.show_as, subject=e.subject,
                is_session=e.is_session)
        for e in found
    ]
