"""The service-account method on the whole local stack (Tailspin).

"Done when" for service-account tenants: an admin switches the tenant to the method and
connects the scheduling mailbox through the real sign-in (a tenant blocking user consent
gets the admin-consent error first); the access test reports which calendars the mailbox
can reach; availability and booking work through the mailbox's token, the event landing
in the organizer's own calendar where the mailbox has delegate rights and in its
"Scheduler" calendar where it has none; no subscriptions exist and an Outlook move is seen
by the (service-account) reconciliation run; the mailbox's refresh token rotates, and a
revoked one ends in needsReconnect, one owner alert and a clear 409 on booking.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from core.adapters.local_secrets import LocalFileSecretStore
from core.adapters.mailer_local import LocalOutboxMailer
from core.bootstrap import get_container
from core.domain.integration import ConnectionMethod
from core.names import user_token_secret_name
from local.simulator import seed
from tests.e2e.conftest import Stack
from tests.e2e.test_per_user_booking_e2e import book, events_with, free_slot, pair, sign_in, user_id, wait_session

TENANT = seed.TAILSPIN
OWNER = "owner@tailspin.test"
MAILBOX = seed.TAILSPIN_SCHEDULER
DELEGATED = ("toby@tailspin.test", "ursula@tailspin.test")  # calendars the mailbox is an editor of
UNDELEGATED = ("vince@tailspin.test", "wanda@tailspin.test")


def _admin(stack: Stack) -> str:
    return stack.token(seed.TAILSPIN_ADMIN, roles=["Integration.Admin"])


def _reconnect_alerts(stack: Stack) -> list[dict[str, str]]:
    return [m for m in LocalOutboxMailer(stack.outbox).messages()
            if "reconnect" in m["subject"].lower() and m["to"] == OWNER]


@pytest.fixture(scope="module")
def tailspin(stack: Stack) -> str:
    """Tailspin onboarded, switched to the service-account method by its admin."""
    stack.control("POST", "/_sandbox/faults", {})
    stack.onboard(TENANT, seed.TAILSPIN_ADMIN, owner_email=OWNER)
    put = stack.call("PUT", "/integration", _admin(stack),
                     {"vendor": "outlook365", "method": "serviceAccount", "ownerEmail": OWNER})
    assert put.status_code == 200, put.text
    doc = put.json()
    assert (doc["method"], doc["sync"], doc["syncIntervalMinutes"]) == ("serviceAccount", "polling", 10)
    return TENANT


def test_1_blocked_user_consent_gives_the_admin_consent_link(stack: Stack, tailspin: str) -> None:
    """A tenant that blocks user consent (and has not consented) refuses the mailbox's sign-in: the app is sent
    admin_consent_required with an admin-consent link naming Calendars.ReadWrite.Shared."""
    stack.control("POST", "/_sandbox/consent", {"tenant": TENANT, "granted": False, "userConsent": False})
    try:
        outcome = sign_in(stack, _admin(stack), {"purpose": "serviceAccount", "mailbox": MAILBOX})
    finally:
        stack.control("POST", "/_sandbox/consent", {"tenant": TENANT, "granted": True, "userConsent": True})
    assert outcome["connection"] == "error" and outcome["code"] == "admin_consent_required"
    link = outcome["adminConsentUrl"]
    assert f"/{TENANT}/v2.0/adminconsent?" in link
    assert "Calendars.ReadWrite.Shared" in parse_qs(urlsplit(link).query)["scope"][0]


def test_2_admin_connects_the_mailbox_and_the_access_test_reports_delegate_rights(
    stack: Stack, tailspin: str
) -> None:
    """The admin signs in as the mailbox; the access test finds the delegated calendars reachable and the
    others no_delegate_access (with the PowerShell hint), so the tenant is degraded."""
    assert sign_in(stack, _admin(stack), {"purpose": "serviceAccount", "mailbox": MAILBOX}) == {
        "connection": "connected"}
    for owner in DELEGATED:
        stack.control("POST", f"/_sandbox/users/{owner}/delegates", {"delegate": MAILBOX})
    status = stack.call("GET", "/me/connection", _admin(stack)).json()
    assert status == {"connected": True, "method": "serviceAccount", "needsReconnect": False}

    def start() -> Any:
        # Connecting the mailbox may still be finishing an access test of its own: one runs at a time
        # (409 access_test_running), so start ours once that one is done.
        answer = stack.call("POST", "/integration/access-tests", _admin(stack))
        return answer if answer.status_code == 202 else None

    started = stack.wait_for(start, timeout=60)

    seen: list[dict[str, Any]] = []

    def finished() -> dict[str, Any] | None:
        doc: dict[str, Any] = stack.call("GET", "/integration/access-tests/latest", _admin(stack)).json()
        seen.append(doc)
        return doc if doc.get("id") == started.json()["id"] and doc["status"] != "running" else None

    try:
        report = stack.wait_for(finished, timeout=60)
    except AssertionError:
        raise AssertionError(f"started {started.json()}, last seen {seen[-1:]}") from None
    assert report["status"] == "completed", report
    reasons = {u["userPrincipalName"]: u for u in report["users"]}
    assert MAILBOX not in reasons
    for owner in DELEGATED:
        assert reasons[owner]["reason"] == "accessible"
    for owner in UNDELEGATED:
        assert reasons[owner]["reason"] == "no_delegate_access"
        assert "Add-MailboxFolderPermission" in reasons[owner]["hint"]
    integration = stack.call("GET", "/integration", _admin(stack)).json()
    assert integration["status"] == "degraded"


def test_3_booking_goes_into_the_organizers_calendar_and_a_move_is_seen_by_reconciliation(
    stack: Stack, tailspin: str
) -> None:
    """With delegate rights the event is the organizer's own (they organize, the partner is invited); no
    subscription exists; an Outlook move is picked up by the service-account reconciliation run."""
    organizer, partner = DELEGATED
    secrets = LocalFileSecretStore(stack.env["LOCAL_SECRETS_DIR"])
    mailbox_id = user_id(stack, MAILBOX)
    stored_before = secrets.get(user_token_secret_name(TENANT, mailbox_id))
    assert stored_before is not None
    get_container().tokens.invalidate(TENANT)  # type: ignore[union-attr]

    pairing_id = pair(stack, seed.TAILSPIN_ADMIN, organizer, partner)
    token = stack.token(organizer)
    start = free_slot(stack, token, pairing_id, 4)
    assert secrets.get(user_token_secret_name(TENANT, mailbox_id)) != stored_before  # the refresh token rotated

    r = book(stack, token, pairing_id, start)
    assert r.status_code == 202, r.text
    sid = r.json()["id"]
    wait_session(stack, token, sid, lambda d: d["status"] == "booked")
    [event] = events_with(stack, organizer, sid)
    assert event["organizer"]["emailAddress"]["address"] == organizer
    assert [a["emailAddress"]["address"] for a in event["attendees"]] == [partner]
    assert events_with(stack, MAILBOX, sid) == []
    assert [s for s in stack.control("GET", "/_sandbox/subscriptions") if TENANT in str(s)] == []

    new_start = start + timedelta(hours=2)
    stack.control("POST", f"/_sandbox/users/{organizer}/events/{event['id']}/move",
                  {"start": new_start.isoformat(), "end": (new_start + timedelta(minutes=30)).isoformat()})
    report = get_container().reconciler.run(methods={ConnectionMethod.SERVICE_ACCOUNT})
    assert report.tenants == 1 and report.sync.changed >= 1
    moved = wait_session(stack, token, sid, lambda d: d["source"] == "outlook", timeout=5)
    assert datetime.fromisoformat(moved["start"].replace("Z", "+00:00")) == new_start


def test_4_without_delegate_rights_the_booking_falls_back_to_the_scheduler_calendar(
    stack: Stack, tailspin: str
) -> None:
    """An organizer whose calendar the mailbox cannot write gets the event in the mailbox's Scheduler calendar,
    organizer and partner invited; reschedule moves that same event."""
    organizer, partner = UNDELEGATED
    pairing_id = pair(stack, seed.TAILSPIN_ADMIN, organizer, partner)
    token = stack.token(organizer)
    start = free_slot(stack, token, pairing_id, 8)
    r = book(stack, token, pairing_id, start)
    assert r.status_code == 202, r.text
    sid = r.json()["id"]
    wait_session(stack, token, sid, lambda d: d["status"] == "booked")
    assert events_with(stack, organizer, sid) == []
    [event] = events_with(stack, MAILBOX, sid)
    assert event["organizer"]["emailAddress"]["address"] == MAILBOX
    assert {a["emailAddress"]["address"] for a in event["attendees"]} == {organizer, partner}
    invited = [e for e in stack.control("GET", f"/_sandbox/users/{organizer}/events")
               if e["iCalUId"] == event["iCalUId"]]
    assert len(invited) == 1

    later = start + timedelta(hours=1)
    moved = stack.call("PATCH", f"/sessions/{sid}", token, {
        "start": later.isoformat(), "end": (later + timedelta(minutes=30)).isoformat(), "timeZone": "UTC"})
    assert moved.status_code == 202, moved.text
    wait_session(stack, token, sid, lambda d: d["status"] == "booked" and "pendingChange" not in d
                 and datetime.fromisoformat(d["start"].replace("Z", "+00:00")) == later)
    [event] = events_with(stack, MAILBOX, sid)
    assert datetime.fromisoformat(event["start"]["dateTime"].replace("Z", "+00:00")).replace(
        tzinfo=UTC) == later.replace(tzinfo=UTC)


def test_5_revoked_mailbox_token_needs_reconnect_with_one_alert(stack: Stack, tailspin: str) -> None:
    """The mailbox's refresh token is revoked: the connection shows needsReconnect, the owner gets exactly one
    alert however many calls fail, and new bookings are refused with a clear 409."""
    organizer, partner = DELEGATED
    mailbox_id = user_id(stack, MAILBOX)
    pairing_id = pair(stack, seed.TAILSPIN_ADMIN, organizer, partner)
    token = stack.token(organizer)
    stack.control("POST", f"/_sandbox/users/{mailbox_id}/revoke", {})
    get_container().tokens.invalidate(TENANT)  # type: ignore[union-attr]
    for _ in range(3):
        r = stack.call("POST", "/availability", token, {
            "pairingId": pairing_id, "start": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
            "end": (datetime.now(UTC) + timedelta(days=3)).isoformat(), "durationMinutes": 30,
            "timeZone": "UTC"})
        assert r.status_code >= 400
    status = stack.call("GET", "/me/connection", _admin(stack)).json()
    assert status["needsReconnect"] is True and status["connected"] is False
    alerts = stack.wait_for(lambda: _reconnect_alerts(stack), timeout=30)
    assert len(alerts) == 1
    r = book(stack, token, pairing_id, datetime.now(UTC) + timedelta(days=3))
    assert r.status_code == 409 and r.json()["error"]["code"] == "service_account_reconnect_required", r.text
