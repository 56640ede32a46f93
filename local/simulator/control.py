"""The control API under ``/_sandbox`` (docs/api.md): tokens, consent, Outlook actions, faults, logs.

No authentication: the simulator only listens on 127.0.0.1 and is never deployed.
Users are named by UPN or object id, in any seeded tenant.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from local.simulator import events as ev_ops
from local.simulator import series
from local.simulator.state import Faults
from local.simulator.timeutil import BadTime, now_utc, parse_dttz, parse_local
from local.simulator.web import GraphError, Request, Response, control_error, json_response

if TYPE_CHECKING:
    from local.simulator.entra import Entra
    from local.simulator.graph import Graph
    from local.simulator.notifier import Notifier
    from local.simulator.state import SimState

_FAULT_KEYS = {
    "throttleRate": ("throttle_rate", float),
    "failRate": ("fail_rate", float),
    "latencyMs": ("latency_ms", int),
    "latencySpikeRate": ("latency_spike_rate", float),
    "latencySpikeMs": ("latency_spike_ms", int),
    "notifications": ("notifications", bool),
    "duplicates": ("duplicates", int),
    "retryAfterSeconds": ("retry_after_seconds", int),
    "consentPropagationSeconds": ("consent_propagation_seconds", float),
    "consentPropagationAadsts": ("consent_propagation_aadsts", int),
}
_PROPAGATION_CODES = (700016, 65001)


# What the admin-consent page can answer when it does not grant, by OAuth error: the AADSTS
# codes that go with it (MicrosoftDocs/entra-docs docs/identity-platform/v2-admin-consent.md,
# "Error response", and reference-error-codes.md).
_DECLINE_ERRORS: dict[str, tuple[int, ...]] = {
    "consent_required": (65004, 65001),  # the documented example: consent_required + AADSTS65004
    "access_denied": (65004, 90094, 90095),  # declined; or the signer-in may not grant admin consent
    "invalid_request": (50020, 90072, 90130),  # admin from another tenant; /common not supported
    "unauthorized_client": (700016, 7000112),  # app not found / disabled in the tenant
}


class Control:
    """Handlers for ``/_sandbox/...``."""

    def __init__(self, state: SimState, entra: Entra, graph: Graph, notifier: Notifier) -> None:
        self.state = state
        self.entra = entra
        self.graph = graph
        self.notifier = notifier

    def dispatch(self, req: Request) -> Response:
        seg = req.segments[1:]
        try:
            body = req.json() if req.method == "POST" else None
        except GraphError:
            return control_error(400, "bad_json", "The body is not valid JSON.")
        body = body if isinstance(body, dict) else {}
        key = (req.method, "/".join(seg[:1]))
        try:
            if key == ("GET", "health"):
                return json_response(200, {"status": "ok"})
            if key == ("GET", "tenants"):
                return self._tenants()
            if key == ("POST", "token"):
                return self._token(body)
            if key == ("POST", "consent"):
                return self._consent(body)
            if key == ("POST", "reset"):
                self.state.reset()
                return json_response(200, {"status": "reset"})
            if seg[:1] == ["faults"]:
                return self._faults(req.method, body)
            if key == ("GET", "requests"):
                since = int(req.query.get("since", "0") or 0)
                return json_response(200, self.state.requests_since(since))
            if key == ("GET", "notifications"):
                return json_response(200, [d.to_json() for d in list(self.notifier.deliveries)])
            if seg == ["subscriptions"] and req.method == "GET":
                return self._subscriptions()
            if seg == ["subscriptions", "lifecycle"] and req.method == "POST":
                return self._lifecycle(body)
            if seg[:1] == ["users"] and len(seg) >= 3:
                return self._user_routes(req.method, seg[1], seg[2:], body, req)
        except GraphError as err:
            return control_error(err.status, err.code, err.message)
        except (ValueError, TypeError) as exc:
            return control_error(400, "bad_request", str(exc))
        return control_error(404, "not_found", f"No control route {req.method} {req.path}.")

    # -- directory & tokens ----------------------------------------------------------
    def _tenants(self) -> Response:
        with self.state.lock:
            out = []
            for t in self.state.tenants.values():
                out.append(
                    {
                        "id": t.id,
                        "domain": t.domain,
                        "displayName": t.display_name,
                        "consentGranted": t.consent_granted,
                        "consentPageGrants": t.consent_page_grants,
                        "userConsentAllowed": t.user_consent_allowed,
                        "users": [
                            {
                                "id": u.id,
                                "userPrincipalName": u.upn,
                                "mail": u.mail,
                                "kind": u.kind,
                                "displayName": u.display_name,
                                "accountEnabled": u.account_enabled,
                                "timeZone": u.time_zone,
                            }
                            for u in t.users
                        ],
                        "rooms": [
                            {
                                "email": r.upn,
                                "displayName": r.display_name,
                                "capacity": r.capacity,
                                "roomList": r.room_list_email,
                            }
                            for r in t.rooms
                        ],
                        "roomLists": [{"email": rl.email, "displayName": rl.display_name} for rl in t.room_lists],
                    }
                )
        return json_response(200, out)

    def _token(self, body: dict[str, Any]) -> Response:
        roles = body.get("roles")
        if roles is not None and (not isinstance(roles, list) or not all(isinstance(r, str) for r in roles)):
            raise ValueError("roles must be a list of strings")
        expires = int(body.get("expiresInSeconds", 3600))
        with self.state.lock:
            if body.get("app"):
                tenant = self.state.tenant(str(body.get("tenant", "")))
                if tenant is None:
                    return control_error(404, "unknown_tenant", f"No tenant {body.get('tenant')!r}.")
                token = self.entra.service_token(tenant, None, roles, expires_in=expires, audience=body.get("audience"))
            else:
                found = self.state.find_user_anywhere(str(body.get("user", "")))
                if found is None or found[1].is_room:
                    return control_error(404, "unknown_user", f"No user {body.get('user')!r}.")
                tenant, user = found
                token = self.entra.service_token(
                    tenant, user, roles, scp=body.get("scp"), expires_in=expires, audience=body.get("audience")
                )
        return json_response(200, {"access_token": token, "token_type": "Bearer", "expires_in": expires})

    def _consent(self, body: dict[str, Any]) -> Response:
        with self.state.lock:
            tenant = self.state.tenant(str(body.get("tenant", "")))
            if tenant is None:
                return control_error(404, "unknown_tenant", f"No tenant {body.get('tenant')!r}.")
            if "grant" in body:
                tenant.consent_page_grants = bool(body["grant"])
            if "declineError" in body or "declineAadsts" in body:
                error = str(body.get("declineError", tenant.consent_decline_error))
                if error not in _DECLINE_ERRORS:
                    return control_error(400, "bad_error", f"declineError must be one of {sorted(_DECLINE_ERRORS)}.")
                tenant.consent_decline_error = error
                tenant.consent_decline_aadsts = int(body.get("declineAadsts", tenant.consent_decline_aadsts))
                if tenant.consent_decline_aadsts not in _DECLINE_ERRORS[error]:
                    return control_error(400, "bad_code", f"{error} goes with AADSTS {_DECLINE_ERRORS[error]}.")
            if "granted" in body:
                tenant.consent_granted = bool(body["granted"])
                if tenant.consent_granted:
                    tenant.consent_granted_at = now_utc()
            if "userConsent" in body:
                tenant.user_consent_allowed = bool(body["userConsent"])
            if body.get("revoke"):
                tenant.consent_granted = False
                for jti, tid in list(self.state.app_token_ids.items()):
                    if tid == tenant.id:
                        self.state.revoked_jtis.add(jti)
                        del self.state.app_token_ids[jti]
            return json_response(
                200,
                {
                    "tenant": tenant.id,
                    "consentGranted": tenant.consent_granted,
                    "consentPageGrants": tenant.consent_page_grants,
                    "userConsentAllowed": tenant.user_consent_allowed,
                    "declineError": tenant.consent_decline_error,
                    "declineAadsts": tenant.consent_decline_aadsts,
                },
            )

    # -- Outlook as a person ---------------------------------------------------------
    def _user_routes(self, method: str, ref: str, rest: list[str], body: dict[str, Any], req: Request) -> Response:
        with self.state.lock:
            found = self.state.find_user_anywhere(ref)
            if found is None:
                return control_error(404, "unknown_user", f"No user {ref!r}.")
            tenant, mb = found
            if rest == ["revoke"] and method == "POST":
                reason = "inactivity" if body.get("reason") == "inactivity" else "revoked"
                count = 0
                for rt in self.state.refresh_tokens.values():
                    if rt.user_id == mb.id and rt.valid:
                        rt.valid, rt.revoked_reason = False, reason
                        count += 1
                return json_response(200, {"revoked": count})
            if rest == ["delegates"] and method == "POST":
                found_delegate = tenant.find(str(body.get("delegate") or ""))
                if found_delegate is None:
                    wanted = body.get("delegate")
                    return control_error(404, "unknown_user", f"No delegate {wanted!r} in {tenant.domain}.")
                if body.get("grant", True):
                    mb.delegates.add(found_delegate.id)
                else:
                    mb.delegates.discard(found_delegate.id)
                return json_response(200, {"user": mb.id, "delegates": sorted(mb.delegates)})
            if rest == ["events"] and method == "GET":
                items = sorted(mb.events.values(), key=lambda e: (e.start, e.id))
                if req.query.get("from") and req.query.get("to"):
                    start, end = parse_local(req.query["from"], UTC), parse_local(req.query["to"], UTC)
                    items = [e for e in items if e.start < end and start < e.end]
                return json_response(200, [ev_ops.render_event(e, UTC, "UTC") for e in items])
            if len(rest) == 3 and rest[0] == "events" and rest[2] == "instances" and method == "GET":
                master = series.resolve(mb, rest[1])
                if master is None:
                    return control_error(404, "unknown_event", f"No event {rest[1]!r} in {mb.upn}'s calendar.")
                found = series.instances(master) if series.is_master(master) else []
                return json_response(200, [ev_ops.render_event(e, UTC, "UTC") for e in found])
            if len(rest) == 3 and rest[0] == "events" and method == "POST":
                event = series.resolve(mb, rest[1])
                if event is None:
                    return control_error(404, "unknown_event", f"No event {rest[1]!r} in {mb.upn}'s calendar.")
                action = rest[2]
                if action == "move":
                    start, end = _when(body.get("start")), _when(body.get("end"))
                    moved = ev_ops.move_event(self.state, tenant, mb, event, start=start, end=end)
                    return json_response(200, ev_ops.render_event(moved, UTC, "UTC"))
                if action == "pattern":
                    # the organizer edits the whole series in Outlook: a new rule and/or new times
                    if not series.is_master(event) or not event.is_organizer:
                        return control_error(400, "not_a_series", "Only the organizer's series master has a pattern.")
                    patch = {k: body[k] for k in ("recurrence", "start", "end") if k in body}
                    if not patch:
                        return control_error(400, "bad_request", "Give recurrence and/or start and end.")
                    changed = ev_ops.update_event(self.state, tenant, mb, event, patch)
                    return json_response(200, ev_ops.render_event(changed, UTC, "UTC"))
                if action == "delete":
                    ev_ops.delete_event(self.state, tenant, mb, event)
                    return json_response(200, {"deleted": event.id})
                if action == "cancel":
                    if event.is_organizer:
                        ev_ops.cancel_event(self.state, tenant, mb, event)
                    else:
                        ev_ops.delete_event(self.state, tenant, mb, event)
                    return json_response(200, {"cancelled": event.id})
                if action == "respond":
                    ev_ops.respond(self.state, tenant, mb, event, str(body.get("response", "")))
                    return json_response(200, {"responded": body.get("response")})
        return control_error(404, "not_found", "Unknown user action.")

    # -- subscriptions ---------------------------------------------------------------
    def _subscriptions(self) -> Response:
        with self.state.lock:
            self.state.purge_expired()
            subs = [
                {
                    "id": s.id,
                    "tenantId": s.tenant_id,
                    "resource": s.resource,
                    "changeType": ",".join(s.change_types),
                    "expirationDateTime": self.graph.render_subscription(s)["expirationDateTime"],
                    "notificationUrl": s.notification_url.split("?")[0],
                    "lifecycleNotificationUrl": s.lifecycle_url.split("?")[0] if s.lifecycle_url else None,
                    "needsReauthorization": s.needs_reauthorization,
                }
                for s in self.state.subscriptions.values()
            ]
        return json_response(200, subs)

    def _lifecycle(self, body: dict[str, Any]) -> Response:
        event = str(body.get("event", ""))
        if event not in ("reauthorizationRequired", "subscriptionRemoved", "missed"):
            return control_error(
                400, "bad_event", "event must be reauthorizationRequired, subscriptionRemoved or missed."
            )
        with self.state.lock:
            sub = self.state.subscriptions.get(str(body.get("subscriptionId", "")))
            if sub is None:
                return control_error(404, "unknown_subscription", "No such subscription.")
            queued = self.graph.lifecycle(sub, event)
            if event == "subscriptionRemoved":
                del self.state.subscriptions[sub.id]
        return json_response(202, {"queued": queued})

    # -- faults ----------------------------------------------------------------------
    def _faults(self, method: str, body: dict[str, Any]) -> Response:
        if method == "POST":
            faults = Faults()
            for key, value in body.items():
                if key == "outageSeconds":
                    faults.outage_until = now_utc() + timedelta(seconds=float(value)) if value else None
                    continue
                if key == "maxSubscriptionMinutes":
                    faults.max_subscription_minutes = int(value) if value else None
                    if faults.max_subscription_minutes is not None and faults.max_subscription_minutes < 1:
                        return control_error(400, "bad_limit", "maxSubscriptionMinutes must be positive.")
                    continue
                if key not in _FAULT_KEYS:
                    return control_error(
                        400,
                        "unknown_fault",
                        f"Unknown fault {key!r}; known: "
                        f"{', '.join([*_FAULT_KEYS, 'outageSeconds', 'maxSubscriptionMinutes'])}.",
                    )
                attr, kind = _FAULT_KEYS[key]
                setattr(faults, attr, kind(value))
            if faults.consent_propagation_aadsts not in _PROPAGATION_CODES:
                return control_error(400, "bad_code", f"consentPropagationAadsts must be one of {_PROPAGATION_CODES}.")
            for rate in (faults.throttle_rate, faults.fail_rate, faults.latency_spike_rate):
                if not 0.0 <= rate <= 1.0:
                    return control_error(400, "bad_rate", "Rates are probabilities between 0 and 1.")
            self.state.faults = faults
        elif method != "GET":
            return control_error(405, "method_not_allowed", "Use GET or POST.")
        return json_response(200, self.state.faults.to_json())


def _when(value: Any) -> datetime:
    try:
        if isinstance(value, dict):
            return parse_dttz(value)
        if isinstance(value, str):
            return parse_local(value, UTC)
    except BadTime as exc:
        raise ValueError(str(exc)) from exc
    raise ValueError("start and end are required (ISO 8601 with offset, or dateTimeTimeZone)")
