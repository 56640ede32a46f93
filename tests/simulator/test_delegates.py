"""Service-account semantics: delegate rights with Calendars.ReadWrite.Shared, 403 without them,
no subscriptions on shared calendars, and a secondary calendar in the mailbox's own store."""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from local.simulator.seed import ALICE_ID, CONTOSO
from local.simulator.state import DEFAULT_CLIENT_ID
from tests.simulator.conftest import Sim, attendee, event_body, next_weekday

REDIRECT = "http://127.0.0.1:7071/api/me/connection/callback"
SCHEDULER = "carol@contoso.test"  # plays the scheduling mailbox


def _delegated_token(sim: Sim, upn: str, scopes: str) -> str:
    """Sign ``upn`` in with PKCE and redeem the code (what MSAL does for the service)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    page = sim.get(f"/{CONTOSO}/oauth2/v2.0/authorize", allow_redirects=False, params={
        "client_id": DEFAULT_CLIENT_ID, "response_type": "code", "redirect_uri": REDIRECT,
        "scope": " ".join(f"{sim.url}/{s}" for s in scopes.split()) + " offline_access openid",
        "state": "s", "code_challenge": challenge, "code_challenge_method": "S256", "login_hint": upn,
    })
    code = parse_qs(urlsplit(page.headers["Location"]).query)["code"][0]
    tokens = sim.post(f"/{CONTOSO}/oauth2/v2.0/token", data={
        "grant_type": "authorization_code", "client_id": DEFAULT_CLIENT_ID, "code": code,
        "redirect_uri": REDIRECT, "code_verifier": verifier,
    }).json()
    return str(tokens["access_token"])


def _grant(sim: Sim, owner: str, delegate: str, grant: bool = True) -> None:
    resp = sim.post(f"/_sandbox/users/{owner}/delegates", json={"delegate": delegate, "grant": grant})
    assert resp.status_code == 200, resp.text


def test_delegate_with_shared_scope_books_into_the_owners_calendar(sim: Sim) -> None:
    """A delegate's Calendars.ReadWrite.Shared token creates an event the owner organizes."""
    _grant(sim, "alice@contoso.test", SCHEDULER)
    token = _delegated_token(sim, SCHEDULER, "Calendars.ReadWrite.Shared User.Read")
    start = next_weekday(9, 18)
    created = sim.graph("POST", f"/users/{ALICE_ID}/events", token,
                        json=event_body(start, attendees=[attendee("bob@contoso.test")]))
    assert created.status_code == 201, created.text
    assert created.json()["organizer"]["emailAddress"]["address"] == "alice@contoso.test"
    assert any(e["id"] == created.json()["id"] for e in sim.events_of("alice@contoso.test"))


def test_without_delegate_rights_or_the_shared_scope_it_is_403(sim: Sim) -> None:
    """No delegate right, or a token without Calendars.ReadWrite.Shared: 403 ErrorAccessDenied."""
    shared = _delegated_token(sim, SCHEDULER, "Calendars.ReadWrite.Shared User.Read")
    denied = sim.graph("POST", "/users/dave@contoso.test/events", shared, json=event_body(next_weekday(9, 19)))
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "ErrorAccessDenied"
    _grant(sim, "dave@contoso.test", SCHEDULER)
    plain = _delegated_token(sim, SCHEDULER, "Calendars.ReadWrite User.Read")
    assert sim.graph("GET", "/users/dave@contoso.test/calendar", plain).status_code == 403
    assert sim.graph("GET", "/users/dave@contoso.test/calendar", shared).status_code == 200
    _grant(sim, "dave@contoso.test", SCHEDULER, grant=False)
    assert sim.graph("GET", "/users/dave@contoso.test/calendar", shared).status_code == 403


def test_no_subscription_on_a_shared_calendar_with_a_delegated_token(sim: Sim) -> None:
    """Even a delegate cannot subscribe to the owner's events: the service must reconcile instead."""
    _grant(sim, "alice@contoso.test", SCHEDULER)
    token = _delegated_token(sim, SCHEDULER, "Calendars.ReadWrite.Shared User.Read")
    soon = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    resp = sim.graph("POST", "/subscriptions", token, json={
        "changeType": "created,updated,deleted", "resource": f"/users/{ALICE_ID}/events",
        "notificationUrl": "http://127.0.0.1:9/notify", "expirationDateTime": soon,
    })
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "ErrorAccessDenied"


def test_service_account_creates_a_scheduler_calendar_in_its_own_mailbox(sim: Sim) -> None:
    """POST /users/{sa}/calendars makes a secondary calendar whose events carry attendees."""
    token = _delegated_token(sim, SCHEDULER, "Calendars.ReadWrite.Shared User.Read")
    created = sim.graph("POST", f"/users/{SCHEDULER}/calendars", token, json={"name": "Scheduler"})
    assert created.status_code == 201, created.text
    cal_id = created.json()["id"]
    event = sim.graph("POST", f"/users/{SCHEDULER}/calendars/{cal_id}/events", token,
                      json=event_body(next_weekday(9, 20), attendees=[attendee("alice@contoso.test")]))
    assert event.status_code == 201, event.text
    again = sim.graph("POST", f"/users/{SCHEDULER}/calendars", token, json={"name": "Scheduler"})
    assert again.status_code == 409
