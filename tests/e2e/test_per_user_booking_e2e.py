"""The per-user method on the whole local stack (Northwind): connect, availability, book, Outlook move seen.

"Done when" for per-user tenants: a user who connected their own calendar through the real
sign-in sees availability and books; the event is created with their own token in their
calendar and the partner (never connected) is invited; the refresh token rotates on use; a
move made in Outlook reaches the session through the change notification of a subscription
created with the organizer's own token. A user who has not connected is refused at once
(409 ``calendar_not_connected``) rather than with a failed session later. (A revoked refresh
token -> needsReconnect + one owner alert is proven in test_per_user_connect_e2e.py, same tenant.)
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from core.adapters.local_secrets import LocalFileSecretStore
from core.bootstrap import get_container
from core.names import user_token_secret_name
from local.simulator import seed
from tests.e2e.conftest import Stack
from tests.log_guard import sentinel

TENANT = seed.NORTHWIND
OWNER = "owner@northwind.test"
ORGANIZER = "nancy@northwind.test"
PARTNER = "andrew@northwind.test"
SUBJECT = sentinel("Confidential subject: per-user e2e")


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def user_id(stack: Stack, upn: str) -> str:
    for tenant in stack.control("GET", "/_sandbox/tenants"):
        for user in tenant["users"]:
            if user["userPrincipalName"] == upn:
                return str(user["id"])
    raise KeyError(upn)


def sign_in(stack: Stack, token: str, body: dict[str, Any] | None = None) -> dict[str, str]:
    """POST /api/me/connection, let the simulator's sign-in page answer, follow the callback; the outcome query."""
    start = stack.call("POST", "/me/connection", token, body)
    assert start.status_code == 200, start.text
    browser = requests.Session()
    browser.trust_env = False
    page = browser.get(start.json()["authorizeUrl"], allow_redirects=False, timeout=15, verify=str(stack.sim.ca_path))
    assert page.status_code == 302, page.text
    done = stack.http.get(page.headers["Location"], allow_redirects=False, timeout=30)
    assert done.status_code == 302, done.text
    return _query(done.headers["Location"])


def pair(stack: Stack, admin_upn: str, mentor: str, mentee: str) -> str:
    pairing_id = "e2e-" + uuid.uuid4().hex[:12]
    admin = stack.token(admin_upn, roles=["Integration.Admin"])
    r = stack.call("PUT", f"/pairings/{pairing_id}", admin, {"mentor": mentor, "mentee": mentee, "active": True})
    assert r.status_code == 200, r.text
    return pairing_id


def free_slot(stack: Stack, token: str, pairing_id: str, day_offset: int) -> datetime:
    """The first common slot from POST /api/availability (asserting the route answered)."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day = today + timedelta(days=day_offset)
    r = stack.call("POST", "/availability", token, {
        "pairingId": pairing_id, "start": day.isoformat(), "end": (day + timedelta(days=5)).isoformat(),
        "durationMinutes": 30, "timeZone": "UTC",
    })
    assert r.status_code == 200, r.text
    slots = r.json()["slots"]
    assert slots, "no common slot in five days"
    return datetime.fromisoformat(slots[0]["start"].replace("Z", "+00:00"))


def book(stack: Stack, token: str, pairing_id: str, start: datetime) -> requests.Response:
    body = {"pairingId": pairing_id, "start": start.isoformat(),
            "end": (start + timedelta(minutes=30)).isoformat(), "timeZone": "UTC", "subject": SUBJECT}
    return stack.call("POST", "/sessions", token, body)


def wait_session(stack: Stack, token: str, sid: str, check: Any, timeout: float = 60) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        r = stack.call("GET", f"/sessions/{sid}", token)
        assert r.status_code == 200, r.text
        doc: dict[str, Any] = r.json()
        return doc if check(doc) else None

    found: dict[str, Any] = stack.wait_for(probe, timeout=timeout)
    return found


def events_with(stack: Stack, upn: str, tx: str) -> list[dict[str, Any]]:
    frm = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    to = (datetime.now(UTC) + timedelta(days=60)).isoformat()
    found: list[dict[str, Any]] = stack.control("GET", f"/_sandbox/users/{upn}/events", **{"from": frm, "to": to})
    return [e for e in found if e.get("transactionId") == tx]


@pytest.fixture(scope="module")
def northwind(stack: Stack) -> str:
    """Northwind onboarded, switched to per-user, the organizer connected through the real sign-in."""
    stack.control("POST", "/_sandbox/faults", {})
    stack.onboard(TENANT, seed.NORTHWIND_ADMIN, owner_email=OWNER)
    admin = stack.token(seed.NORTHWIND_ADMIN, roles=["Integration.Admin"])
    put = stack.call("PUT", "/integration", admin, {"vendor": "outlook365", "method": "perUser", "ownerEmail": OWNER})
    assert put.status_code == 200, put.text
    assert (put.json()["method"], put.json()["sync"]) == ("perUser", "notifications")
    assert sign_in(stack, stack.token(ORGANIZER)) == {"connection": "connected"}
    return TENANT


def test_unconnected_user_is_refused_at_once(stack: Stack, northwind: str) -> None:
    """Someone who never connected gets 409 calendar_not_connected for availability and booking, no session."""
    pairing_id = pair(stack, seed.NORTHWIND_ADMIN, ORGANIZER, PARTNER)
    partner = stack.token(PARTNER)
    r = stack.call("POST", "/availability", partner, {
        "pairingId": pairing_id, "start": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
        "end": (datetime.now(UTC) + timedelta(days=3)).isoformat(), "durationMinutes": 30, "timeZone": "UTC"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "calendar_not_connected", r.text
    r = book(stack, partner, pairing_id, datetime.now(UTC) + timedelta(days=2))
    assert r.status_code == 409 and r.json()["error"]["code"] == "calendar_not_connected", r.text


def test_connected_organizer_books_with_own_token_and_sees_an_outlook_move(stack: Stack, northwind: str) -> None:
    """Availability, booking (one event in the organizer's calendar, partner invited), token rotation, and an
    Outlook move seen through the organizer's own subscription."""
    organizer_id = user_id(stack, ORGANIZER)
    secrets = LocalFileSecretStore(stack.env["LOCAL_SECRETS_DIR"])
    stored_before = secrets.get(user_token_secret_name(TENANT, organizer_id))
    assert stored_before is not None
    get_container().tokens.invalidate(TENANT)  # type: ignore[union-attr]  # the next call must refresh

    pairing_id = pair(stack, seed.NORTHWIND_ADMIN, ORGANIZER, PARTNER)
    token = stack.token(ORGANIZER)
    start = free_slot(stack, token, pairing_id, 3)
    assert secrets.get(user_token_secret_name(TENANT, organizer_id)) != stored_before  # rotated on use

    r = book(stack, token, pairing_id, start)
    assert r.status_code == 202, r.text
    sid = r.json()["id"]
    booked = wait_session(stack, token, sid, lambda d: d["status"] == "booked")
    assert booked["organizer"] in (organizer_id, ORGANIZER)
    [event] = events_with(stack, ORGANIZER, sid)
    assert event["organizer"]["emailAddress"]["address"] == ORGANIZER
    assert [a["emailAddress"]["address"] for a in event["attendees"]] == [PARTNER]
    partner_copies = [e for e in stack.control("GET", f"/_sandbox/users/{PARTNER}/events")
                      if e["iCalUId"] == event["iCalUId"]]
    assert len(partner_copies) == 1  # the partner never connected and is invited all the same

    def subscribed() -> bool:
        subs = stack.control("GET", "/_sandbox/subscriptions")
        return any(organizer_id in s["resource"] or ORGANIZER in s["resource"] for s in subs)

    stack.wait_for(subscribed, timeout=30)
    new_start = start + timedelta(hours=1)
    stack.control("POST", f"/_sandbox/users/{ORGANIZER}/events/{event['id']}/move",
                  {"start": new_start.isoformat(), "end": (new_start + timedelta(minutes=30)).isoformat()})
    moved = wait_session(stack, token, sid, lambda d: d["source"] == "outlook", timeout=60)
    assert datetime.fromisoformat(moved["start"].replace("Z", "+00:00")) == new_start
