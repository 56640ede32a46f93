"""The admin flow end to end on the local stack: onboard a seeded tenant, read the access test, decline, revoke.

Everything goes through HTTP to the embedded Functions host, real Azurite queues and
the real Graph gateway against the Microsoft 365 simulator. The stack is shared by the
session, so each test leaves the tenants it touched consented and onboarded again.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from local.simulator import seed
from tests.e2e.conftest import Stack

ADMIN_ROLE = ["Integration.Admin"]
OWNER = "integration-owner@contoso.test"
EXPECTED = {
    "normal": "accessible",
    "onPremises": "mailbox_on_premises_or_unlicensed",
    "unlicensed": "mailbox_on_premises_or_unlicensed",
    "outsideScope": "outside_app_scope",
    # free/busy answers through hybrid free/busy, but event reads and writes do not: not accessible
    "hybrid": "mailbox_on_premises_or_unlicensed",
}


def admin_token(stack: Stack, admin: str = seed.CONTOSO_ADMIN) -> str:
    return stack.token(admin, roles=ADMIN_ROLE)


def wait_for_report(stack: Stack, token: str, test_id: str | None = None) -> dict[str, Any]:
    """The latest report once finished (and, given an id, once it is that test's)."""

    def finished() -> dict[str, Any] | None:
        r = stack.call("GET", "/integration/access-tests/latest", token)
        if r.status_code != 200:
            return None
        doc: dict[str, Any] = r.json()
        if doc["status"] == "running" or (test_id is not None and doc["id"] != test_id):
            return None
        return doc

    result: dict[str, Any] = stack.wait_for(finished, timeout=60)
    return result


def onboard_contoso(stack: Stack, sample_size: int = 500) -> str:
    """Configure Contoso (whole directory sampled), consent, wait for the first report; returns an admin token."""
    token = admin_token(stack)
    body = {"vendor": "outlook365", "method": "domainWide", "ownerEmail": OWNER, "accessTestSampleSize": sample_size}
    assert stack.call("PUT", "/integration", token, body).status_code == 200
    stack.onboard(seed.CONTOSO, seed.CONTOSO_ADMIN, owner_email=OWNER)
    return token


def outbox_messages(stack: Stack) -> list[dict[str, Any]]:
    if not stack.outbox.is_dir():
        return []
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(stack.outbox.glob("*.json"))]


def test_admin_onboards_the_seeded_tenant_and_the_report_matches_the_seed(stack: Stack) -> None:
    """Every enabled seeded user is classified by its seeded kind; the counts add up; few Graph calls."""
    before = stack.last_seq()
    token = onboard_contoso(stack)
    report = wait_for_report(stack, token)
    tenant = next(t for t in stack.control("GET", "/_sandbox/tenants") if t["id"] == seed.CONTOSO)
    seeded = {u["id"]: EXPECTED[u["kind"]] for u in tenant["users"] if u["accountEnabled"] and u["mail"]}
    got = {u["userId"]: u["reason"] for u in report["users"]}
    assert got == seeded
    assert report["sampled"] == len(seeded) == report["accessible"] + report["inaccessible"]
    assert sum(report["byReason"].values()) == report["sampled"]
    assert report["byReason"]["outside_app_scope"] == 3
    assert report["byReason"]["mailbox_on_premises_or_unlicensed"] == 6  # 2 on-premises, 2 unlicensed, 2 hybrid
    scoped = next(u for u in report["users"] if u["reason"] == "outside_app_scope")
    assert "New-ApplicationAccessPolicy" in scoped["hint"] and scoped["userPrincipalName"].startswith("scoped")

    integration = stack.call("GET", "/integration", token).json()
    assert integration["status"] == "degraded" and integration["consent"]["status"] == "granted"
    assert integration["lastAccessTest"]["id"] == report["id"]

    # Only the kinds of call an access test makes: other tests' background sync work (event reads after
    # notifications, in $batches of their own) may land in the same window, so $batch requests are counted
    # from the calendar reads they carried (every sampled calendar once, 20 per $batch).
    log = stack.graph_requests(before)

    def access_test_call(r: dict[str, object]) -> bool:
        path = str(r["path"])
        return not r.get("batch") and (
            path.startswith("/v1.0/users?") or path == "/v1.0/users"
            or path.endswith("/calendar/getSchedule") or (path.startswith("/v1.0/users/") and path.count("/") == 3)
        )

    probes = [r for r in log if r.get("batch") and str(r["path"]).endswith("/calendar")]
    assert len(probes) == report["sampled"]
    graph_calls = len([r for r in log if access_test_call(r)]) + math.ceil(len(probes) / 20)
    # The floor (core/services/access_test.py): proof of consent (1) + list users (1) + getSchedule per
    # 20 (2 for 37 users) + the $batch read of every sampled calendar, 20 per request (2).
    assert graph_calls <= 6


def test_hybrid_mailbox_shows_free_busy_but_booking_it_is_refused_with_a_clear_code(stack: Stack) -> None:
    """After the access test found hybrid1 on premises, availability with them still answers (hybrid free/busy)
    while booking a session with them is 422 mailbox_on_premises_or_unlicensed at request time."""
    token = onboard_contoso(stack)
    report = wait_for_report(stack, token)
    hybrid = next(u for u in report["users"] if u["userPrincipalName"] == "hybrid1@contoso.test")
    assert hybrid["reason"] == "mailbox_on_premises_or_unlicensed"
    pairing = "e2e-hybrid-" + report["id"][:8]
    put = stack.call("PUT", f"/pairings/{pairing}", token,
                     {"mentor": seed.ALICE, "mentee": "hybrid1@contoso.test", "active": True})
    assert put.status_code == 200, put.text
    alice = stack.token(seed.ALICE)
    start = (datetime.now(UTC) + timedelta(days=21)).replace(hour=0, minute=0, second=0, microsecond=0)
    window = {"pairingId": pairing, "start": start.isoformat(), "end": (start + timedelta(days=5)).isoformat(),
              "durationMinutes": 30, "timeZone": "UTC"}
    slots = stack.call("POST", "/availability", alice, window)
    assert slots.status_code == 200, slots.text
    assert slots.json()["slots"], "hybrid free/busy answers, so common slots exist"
    first = slots.json()["slots"][0]
    booked = stack.call("POST", "/sessions", alice, {"pairingId": pairing, "start": first["start"],
                                                     "end": first["end"], "timeZone": "UTC"})
    assert booked.status_code == 422, booked.text
    error = booked.json()["error"]
    assert error["code"] == "mailbox_on_premises_or_unlicensed" and error["details"]["role"] == "attendee"


def test_consent_declined_at_the_consent_page_ends_in_a_clear_error(stack: Stack) -> None:
    """The admin declines at Microsoft's page: the browser lands on the app with consent_declined."""
    token = admin_token(stack, seed.FABRIKAM_ADMIN)
    body = {"vendor": "outlook365", "method": "domainWide", "ownerEmail": "owner@fabrikam.test"}
    assert stack.call("PUT", "/integration", token, body).status_code == 200
    stack.control("POST", "/_sandbox/consent", {"tenant": seed.FABRIKAM, "grant": False})
    try:
        url = stack.call("POST", "/integration/consent", token).json()["consentUrl"]
        page = stack._sim_http.get(url, allow_redirects=False, timeout=15)
        assert page.status_code == 302
        done = stack.http.get(page.headers["Location"], allow_redirects=False, timeout=30)
        assert done.status_code == 302
        outcome = parse_qs(urlsplit(done.headers["Location"]).query)
        assert outcome == {"consent": ["error"], "code": ["consent_declined"]}
        consent = stack.call("GET", "/integration", token).json()["consent"]
        assert consent == {**consent, "status": "declined", "errorCode": "consent_declined"}
    finally:
        stack.control("POST", "/_sandbox/consent", {"tenant": seed.FABRIKAM, "grant": True})


def test_revoked_consent_fails_the_tenant_on_the_next_rerun_with_one_alert(stack: Stack) -> None:
    """Consent withdrawn in the simulator: reruns mark the tenant failed and one email reaches the owner."""
    token = onboard_contoso(stack, sample_size=25)
    wait_for_report(stack, token)
    already = [m for m in outbox_messages(stack) if m["to"] == OWNER]
    stack.control("POST", "/_sandbox/consent", {"tenant": seed.CONTOSO, "revoke": True})
    try:
        for _ in range(3):
            started = stack.call("POST", "/integration/access-tests", token)
            assert started.status_code == 202, started.text
            report = wait_for_report(stack, token, started.json()["id"])
            assert report["status"] == "failed"
        integration = stack.call("GET", "/integration", token).json()
        assert integration["status"] == "failed" and integration["consent"]["status"] == "revoked"

        def revoked_mails() -> list[dict[str, Any]]:
            return [m for m in outbox_messages(stack) if m["to"] == OWNER and m not in already]

        mails = stack.wait_for(revoked_mails, timeout=30)
        assert len(mails) == 1
        assert "consent was revoked" in mails[0]["subject"]
        assert "Since:" in mails[0]["text"] and "What to do:" in mails[0]["text"]
    finally:
        stack.control("POST", "/_sandbox/consent", {"tenant": seed.CONTOSO, "granted": True})
        stack.onboard(seed.CONTOSO, seed.CONTOSO_ADMIN, owner_email=OWNER)
        wait_for_report(stack, token)
    assert len([m for m in outbox_messages(stack) if m["to"] == OWNER and m not in already]) == 1


@pytest.mark.parametrize("aadsts", [700016, 65001])
def test_consent_entra_still_propagates_is_verified_with_backoff_and_then_granted(stack: Stack, aadsts: int) -> None:
    """With the simulator refusing app tokens for 20 s after consent (AADSTS700016 / 65001), the callback answers
    ?consent=verifying, the queued re-proofs keep trying, and the tenant ends granted with an access-test report."""
    token = admin_token(stack)
    body = {"vendor": "outlook365", "method": "domainWide", "ownerEmail": OWNER, "accessTestSampleSize": 10}
    assert stack.call("PUT", "/integration", token, body).status_code == 200
    stack.control("POST", "/_sandbox/consent", {"tenant": seed.CONTOSO, "grant": True})
    stack.control("POST", "/_sandbox/faults", {"consentPropagationSeconds": 20, "consentPropagationAadsts": aadsts})
    already = [m for m in outbox_messages(stack) if m["to"] == OWNER]
    try:
        url = stack.call("POST", "/integration/consent", token).json()["consentUrl"]
        page = stack._sim_http.get(url, allow_redirects=False, timeout=15)
        done = stack.http.get(page.headers["Location"], allow_redirects=False, timeout=30)
        assert parse_qs(urlsplit(done.headers["Location"]).query) == {"consent": ["verifying"]}
        assert stack.call("GET", "/integration", token).json()["consent"]["status"] == "verifying"

        def consent_status() -> str | None:
            status = stack.call("GET", "/integration", token).json()["consent"]["status"]
            return None if status == "verifying" else str(status)

        # Re-proofs after 2, 4, 8 and 16 s: the one at about 30 s is past the 20 s propagation.
        assert stack.wait_for(consent_status, timeout=90, interval=1) == "granted"
        report = wait_for_report(stack, token)
        assert report["status"] == "completed" and report["accessible"] > 0
    finally:
        stack.control("POST", "/_sandbox/faults", {})
    # No sign-in alert: the owner hears only when verification gives up (a smaller sample may still report a
    # regression of reachable calendars, which is not about consent).
    sign_in_alerts = [m for m in outbox_messages(stack) if m["to"] == OWNER and m not in already
                      and ("sign in" in m["subject"] or "consent" in m["subject"])]
    assert sign_in_alerts == []


@pytest.mark.parametrize("path", ["/integration", "/integration/access-tests/latest"])
def test_integration_routes_need_an_admin(stack: Stack, path: str) -> None:
    """A signed-in user without Integration.Admin cannot read the set-up or the report."""
    r = stack.call("GET", path, stack.token(seed.ALICE))
    assert r.status_code == 403


def test_disconnect_then_a_later_consent_starts_clean(stack: Stack) -> None:
    """DELETE closes the tenant to its users at once; consenting again brings it back through testing."""
    integration = stack.onboard(seed.FABRIKAM, seed.FABRIKAM_ADMIN, owner_email="owner@fabrikam.test")
    assert integration["status"] in ("testing", "connected", "degraded")
    token = admin_token(stack, seed.FABRIKAM_ADMIN)
    wait_for_report(stack, token)
    user = stack.token("felix@fabrikam.test")
    assert stack.call("GET", "/me/pairings", user).status_code == 200
    assert stack.call("DELETE", "/integration", token).status_code == 202
    closed = stack.call("GET", "/integration", token).json()
    assert closed["status"] == "disconnected" and closed["consent"]["status"] == "none"
    assert "lastAccessTest" not in closed
    refused = stack.call("GET", "/me/pairings", user)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "tenant_not_onboarded"
    again = stack.onboard(seed.FABRIKAM, seed.FABRIKAM_ADMIN, owner_email="owner@fabrikam.test")
    assert again["status"] in ("testing", "degraded") and again["ownerEmail"] == "owner@fabrikam.test"
    assert wait_for_report(stack, token)["status"] == "completed"
    assert stack.call("GET", "/me/pairings", user).status_code == 200
