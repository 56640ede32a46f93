"""Offered hours (availability rules): the caller's own, the tenant default (admins), a user's (admins).

Handlers parse, call ``OfferedHoursService`` once (the preview may also ask
``AvailabilityService`` for bookable slots) and map the result. Reads answer an ``ETag``
header (and ``etag`` in the body, readable across origins); writes take ``If-Match`` /
``If-None-Match: *`` and answer 412 ``precondition_failed`` when they do not hold.
ETags are the stored row's version, base64url-encoded, so they are opaque and strong.
The ``me/`` routes are ``Auth.SESSION_USER``: the product's server manages a user's offered
hours with an app-only token and ``X-On-Behalf-Of`` (docs/product-integration.md).
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

import azure.functions as func

from functions.auth import Auth
from functions.endpoint import Models, Reply, RequestContext, endpoint

if TYPE_CHECKING:  # services and schemas load on first use, not at import (cold start)
    from core.services.offered_hours import RulesView
    from functions.schemas.common import NoQuery
    from functions.schemas.offered_hours import AvailabilityRulesBody, PreviewQuery, UserPath

bp = func.Blueprint()
M = Models("functions.schemas.offered_hours")
_TAGS = ("offered-hours",)
_UNMATCHABLE = "\x00"  # an If-Match value we did not issue: never equal to a stored version


def http_etag(raw: str) -> str:
    """The HTTP ETag (a quoted, strong entity tag) of a stored row's version."""
    return '"' + base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=") + '"'


def _stored_etag(tag: str) -> str:
    tag = tag.strip().removeprefix("W/")
    if len(tag) < 2 or not (tag.startswith('"') and tag.endswith('"')):
        return _UNMATCHABLE
    body = tag[1:-1]
    try:
        return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("utf-8")
    except (binascii.Error, ValueError):
        return _UNMATCHABLE


def preconditions(req: func.HttpRequest) -> tuple[list[str] | None, bool]:
    """``(If-Match versions or ["*"], If-None-Match: *)`` of a write."""
    header = req.headers.get("if-match")
    if_match = None
    if header is not None:
        if_match = ["*" if part.strip() == "*" else _stored_etag(part) for part in header.split(",") if part.strip()]
        if_match = if_match or [_UNMATCHABLE]
    return if_match, (req.headers.get("if-none-match") or "").strip() == "*"


def _reply(view: RulesView) -> Reply:
    from functions.schemas.offered_hours import rules_view

    etag = http_etag(view.etag) if view.etag else None
    body = rules_view(view.source.value, view.rules, etag, view.updated_at)
    return Reply(200, body, {"ETag": etag} if etag else {})


# --- the caller's own ------------------------------------------------------------------------


@endpoint(bp, "GET", "me/availability-rules", auth=Auth.SESSION_USER, response=M.AvailabilityRules,
          summary="The caller's offered hours (their own, else the tenant default)", tags=_TAGS)
def my_availability_rules_get(ctx: RequestContext[None]) -> Any:
    """``source`` says whether they are the caller's own, the default, or none."""
    return _reply(ctx.container.offered_hours.view(ctx.caller.tenant_id, ctx.caller.object_id))


@endpoint(bp, "PUT", "me/availability-rules", auth=Auth.SESSION_USER, body=M.AvailabilityRulesBody,
          response=M.AvailabilityRules, summary="Set the caller's offered hours", tags=_TAGS, extra_statuses=(412,))
def my_availability_rules_put(ctx: RequestContext[AvailabilityRulesBody]) -> Any:
    """Replaces the whole document; sessions already booked are never moved or cancelled."""
    from functions.schemas.offered_hours import rules_of

    if_match, if_none_match = preconditions(ctx.request)
    view = ctx.container.offered_hours.put_for_user(
        ctx.caller, ctx.caller.object_id, rules_of(ctx.body), if_match=if_match, if_none_match=if_none_match)
    return _reply(view)


@endpoint(bp, "DELETE", "me/availability-rules", auth=Auth.SESSION_USER, status=204,
          summary="Remove the caller's own offered hours (the tenant default applies again)", tags=_TAGS,
          extra_statuses=(412,))
def my_availability_rules_delete(ctx: RequestContext[None]) -> Any:
    """Idempotent; with If-Match only that version is removed."""
    if_match, _ = preconditions(ctx.request)
    ctx.container.offered_hours.delete_for_user(ctx.caller, ctx.caller.object_id, if_match=if_match)


@endpoint(bp, "GET", "me/availability-rules/preview", auth=Auth.SESSION_USER, query=M.PreviewQuery,
          response=M.OfferedPreview, summary="What the caller's offered hours offer in a window", tags=_TAGS)
def my_availability_rules_preview(ctx: RequestContext[None, PreviewQuery]) -> Any:
    """Offered time (no calendar read); with durationMinutes also the bookable slots (one getSchedule)."""
    from functions.schemas.common import Slot
    from functions.schemas.offered_hours import OfferedPreview

    q = ctx.query
    preview = ctx.container.offered_hours.preview(ctx.caller.tenant_id, ctx.caller.object_id, q.from_, q.to)
    slots = None
    if q.duration_minutes is not None:
        found = ctx.container.availability.offered_slots(
            ctx.caller, start=q.from_, end=q.to, duration_minutes=q.duration_minutes,
            time_zone=q.time_zone or preview.time_zone or "UTC")
        slots = [Slot(start=s.start, end=s.end) for s in found]
    return OfferedPreview(
        source=preview.source.value,
        time_zone=preview.time_zone,
        offered=[Slot(start=i.start, end=i.end) for i in preview.offered],
        slots=slots,
    )


# --- the tenant default (admins) ---------------------------------------------------------------


@endpoint(bp, "GET", "integration/availability-rules/default", auth=Auth.ADMIN, response=M.AvailabilityRules,
          summary="The tenant's default offered hours (for users without their own)", tags=_TAGS)
def default_availability_rules_get(ctx: RequestContext[None]) -> Any:
    """``source`` is ``default`` or ``none``."""
    return _reply(ctx.container.offered_hours.default_view(ctx.caller.tenant_id))


@endpoint(bp, "PUT", "integration/availability-rules/default", auth=Auth.ADMIN, body=M.AvailabilityRulesBody,
          response=M.AvailabilityRules, summary="Set the tenant's default offered hours", tags=_TAGS,
          extra_statuses=(412,))
def default_availability_rules_put(ctx: RequestContext[AvailabilityRulesBody]) -> Any:
    """Applies at once to every user without their own rules (replace, not merge); audited."""
    from functions.schemas.offered_hours import rules_of

    if_match, if_none_match = preconditions(ctx.request)
    view = ctx.container.offered_hours.put_default(ctx.caller, rules_of(ctx.body), if_match=if_match,
                                                   if_none_match=if_none_match)
    return _reply(view)


@endpoint(bp, "DELETE", "integration/availability-rules/default", auth=Auth.ADMIN, status=204,
          summary="Remove the tenant's default offered hours", tags=_TAGS, extra_statuses=(412,))
def default_availability_rules_delete(ctx: RequestContext[None]) -> Any:
    """Users without their own rules are then unrestricted; audited."""
    if_match, _ = preconditions(ctx.request)
    ctx.container.offered_hours.delete_default(ctx.caller, if_match=if_match)


# --- one user's (admins) -------------------------------------------------------------------------


@endpoint(bp, "GET", "users/{user}/availability-rules", auth=Auth.ADMIN, path=M.UserPath,
          response=M.AvailabilityRules, summary="A user's offered hours (their own, else the default)", tags=_TAGS,
          extra_statuses=(404,))
def user_availability_rules_get(ctx: RequestContext[None, NoQuery, UserPath]) -> Any:
    """The user by object id or email (404 user_not_found)."""
    service = ctx.container.offered_hours
    return _reply(service.view(ctx.caller.tenant_id, service.resolve_user(ctx.caller, ctx.path.user)))


@endpoint(bp, "PUT", "users/{user}/availability-rules", auth=Auth.ADMIN, path=M.UserPath,
          body=M.AvailabilityRulesBody, response=M.AvailabilityRules, summary="Set a user's offered hours",
          tags=_TAGS, extra_statuses=(404, 412))
def user_availability_rules_put(ctx: RequestContext[AvailabilityRulesBody, NoQuery, UserPath]) -> Any:
    """As the user's own PUT; audited."""
    from functions.schemas.offered_hours import rules_of

    service = ctx.container.offered_hours
    user_id = service.resolve_user(ctx.caller, ctx.path.user)
    if_match, if_none_match = preconditions(ctx.request)
    return _reply(service.put_for_user(ctx.caller, user_id, rules_of(ctx.body), if_match=if_match,
                                       if_none_match=if_none_match))


@endpoint(bp, "DELETE", "users/{user}/availability-rules", auth=Auth.ADMIN, path=M.UserPath, status=204,
          summary="Remove a user's own offered hours", tags=_TAGS, extra_statuses=(404, 412))
def user_availability_rules_delete(ctx: RequestContext[None, NoQuery, UserPath]) -> Any:
    """The default applies to them again; audited."""
    service = ctx.container.offered_hours
    user_id = service.resolve_user(ctx.caller, ctx.path.user)
    if_match, _ = preconditions(ctx.request)
    service.delete_for_user(ctx.caller, user_id, if_match=if_match)
