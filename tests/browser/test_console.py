"""The web console in a real browser (Debian's Chromium driven by playwright-core) against the local stack.

The tests run in file order and build on each other like a newcomer's first session: the
admin sets the tenant up (and pairs two people), a user books, Outlook moves the booking,
and another tenant looks. Each browser script asserts what the page shows and prints what
it saw; these tests check that against the service and the simulator.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from core.bootstrap import get_container
from core.names import Tables
from core.ports import Entity, TableStore
from local.simulator.seed import CONTOSO
from local.simulator.state import PRODUCT_SERVER_CLIENT_ID
from tests.browser.conftest import Console
from tests.log_guard import sentinel
from tests.support.receiver import Receiver

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

DOMAIN = "contoso.test"
# Alice (Pacific, 09-17) and Carol (Pacific, 08:30-16:30) share working hours; Alice and Bob
# (W. Europe) do not overlap at all, so they would rightly get no slots.
ALICE, BOB = f"alice@{DOMAIN}", f"carol@{DOMAIN}"
UNREACHABLE_KINDS = {
    "onPremises": "mailbox_on_premises_or_unlicensed",
    "unlicensed": "mailbox_on_premises_or_unlicensed",
    "outsideScope": "outside_app_scope",
    "hybrid": "mailbox_on_premises_or_unlicensed",
}


def bootstrap_tables() -> TableStore:
    """The running stack's table store (the console fixture installs its container)."""
    return get_container().tables


def _tenant(console: Console, tenant_id: str) -> dict[str, Any]:
    tenants: list[dict[str, Any]] = console.stack.control("GET", "/_sandbox/tenants")
    return next(t for t in tenants if t["id"] == tenant_id)


def _needs(console: Console, fact: str) -> Any:
    if fact not in console.facts:
        pytest.fail(f"an earlier browser test did not record {fact!r}; run the whole module in order")
    return console.facts[fact]


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_admin_wizard_ends_with_the_tenants_real_access_counts(console: Console) -> None:
    """The whole wizard (owner, method, consent round trip, access test) shows the counts the seeded tenant implies."""
    shown = console.run("wizard.mjs", DOMAIN=DOMAIN, MENTOR=ALICE, MENTEE=BOB)

    users = [u for u in _tenant(console, CONTOSO)["users"] if u.get("accountEnabled", True) and u.get("mail")]
    kinds = {u["userPrincipalName"].lower(): u["kind"] for u in users}
    expected_unreachable = sum(1 for u in users if u["kind"] in UNREACHABLE_KINDS)
    assert shown["sampled"] == len(users), shown
    assert shown["inaccessible"] == expected_unreachable, shown
    assert shown["accessible"] == len(users) - expected_unreachable, shown
    assert len(shown["rows"]) == expected_unreachable
    for row in shown["rows"]:
        assert row["reason"] == UNREACHABLE_KINDS[kinds[row["user"].lower()]], row
        assert len(shown["hints"].get(row["reason"], "")) > 40, f"no remediation hint for {row}"
    # The out-of-scope remedy shows its PowerShell as copyable code blocks, one step each.
    scope = shown["commands"]["outside_app_scope"]
    assert [c["code"].split()[0] for c in scope] == [
        "Connect-ExchangeOnline", "New-ApplicationAccessPolicy", "Test-ApplicationAccessPolicy",
        "New-ServicePrincipal", "New-ManagementScope", "New-ManagementRoleAssignment"]
    assert all("\n" not in c["code"] for c in scope)
    assert [c["copy"] for c in scope] == [f"Copy command {n}" for n in range(1, len(scope) + 1)]

    admin = console.stack.token(f"admin@{DOMAIN}", roles=["Integration.Admin"])
    report = console.stack.call("GET", "/integration/access-tests/latest", admin).json()
    assert (report["sampled"], report["accessible"], report["inaccessible"]) == (
        shown["sampled"], shown["accessible"], shown["inaccessible"])
    integration = console.stack.call("GET", "/integration", admin).json()
    assert integration["status"] in ("connected", "degraded")
    assert integration["ownerEmail"] == f"owner@{DOMAIN}"
    pairings = console.stack.call("GET", "/me/pairings", console.stack.token(ALICE)).json()
    assert any(p["menteeAddress"].lower() == BOB for p in pairings), pairings
    console.facts["onboarded"] = True


def test_user_books_a_free_slot_and_sees_it_booked(console: Console) -> None:
    """Alice books the first free slot of next week with Carol, a Teams link and a free room; Outlook has it."""
    _needs(console, "onboarded")
    shown = console.run("booking.mjs", DOMAIN=DOMAIN, USER_UPN=ALICE, PARTNER=BOB)
    session = shown["session"]
    assert session["status"] == "booked"
    assert session["teams"] == 1, "the booked session offers its Teams link"
    [key] = shown["keys"]  # one booking request, with an Idempotency-Key (a UUID)
    assert key and len(key) >= 32, shown["keys"]

    events = console.stack.control("GET", f"/_sandbox/users/{ALICE}/events")
    event = next((e for e in events if e.get("transactionId") == session["id"]), None)
    assert event is not None, "the organizer's Outlook calendar holds the booked event"
    assert _parse(event["start"]["dateTime"][:19] + "+00:00") == _parse(shown["slotStart"])
    attendees = {a["emailAddress"]["address"].lower() for a in event["attendees"]}
    assert {BOB, shown["room"].lower()} <= attendees
    console.facts["session"] = session
    console.facts["event_id"] = event["id"]


def test_outlook_move_shows_up_on_the_sessions_page(console: Console) -> None:
    """A move made in Outlook (the simulator) and Carol's acceptance appear on the open sessions page."""
    session = _needs(console, "session")
    event_id = _needs(console, "event_id")
    start = _parse(session["start"]) + timedelta(hours=1)
    end = _parse(session["end"]) + timedelta(hours=1)
    console.stack.control("POST", f"/_sandbox/users/{ALICE}/events/{event_id}/move",
                          {"start": start.isoformat(), "end": end.isoformat()})
    bob_events = console.stack.control("GET", f"/_sandbox/users/{BOB}/events")
    copy = next(e for e in bob_events if e.get("iCalUId") and e["iCalUId"] == _ical(console, event_id))
    console.stack.control("POST", f"/_sandbox/users/{BOB}/events/{copy['id']}/respond", {"response": "accepted"})

    try:
        shown = console.run("outlook_move.mjs", DOMAIN=DOMAIN, USER_UPN=ALICE, SESSION_ID=session["id"],
                            EXPECTED_START=start.isoformat(), EXPECTED_RSVP="Accepted")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_sync_diagnosis(console, session['id'])}") from None
    assert _parse(shown["start"]) == start
    assert shown["rsvp"] == "Accepted"


def _sync_diagnosis(console: Console, session_id: str) -> str:
    """What the service and the simulator know, to tell a console bug from sync-back not being there yet."""
    service = console.stack.call("GET", f"/sessions/{session_id}", console.stack.token(ALICE))
    subscriptions = console.stack.control("GET", "/_sandbox/subscriptions")
    deliveries = console.stack.control("GET", "/_sandbox/notifications")
    return (f"service sees: {service.status_code} {service.text[:600]}\n"
            f"simulator: {len(subscriptions)} subscription(s), {len(deliveries)} notification delivery attempt(s): "
            f"{[(d.get('kind'), d.get('status')) for d in deliveries][-10:]}")


def _ical(console: Console, event_id: str) -> str:
    events = console.stack.control("GET", f"/_sandbox/users/{ALICE}/events")
    return str(next(e for e in events if e["id"] == event_id)["iCalUId"])


def test_a_slot_taken_meanwhile_is_explained_in_the_booking_dialog(console: Console) -> None:
    """The slot Alice is about to book gets booked elsewhere: the dialog says "Slot taken", and one booking exists."""
    _needs(console, "onboarded")
    token = console.stack.token(ALICE)
    shown = console.run("slot_taken.mjs", DOMAIN=DOMAIN, USER_UPN=ALICE, API_URL=console.stack.api_url,
                        USER_TOKEN=token)
    assert "no longer free" in shown["text"]
    start = _parse(shown["start"])
    listed = console.stack.call("GET", "/sessions", token,
                                params={"from": start.isoformat(), "to": (start + timedelta(minutes=1)).isoformat()})
    assert [s["id"] for s in listed.json()] == [shown["otherId"]]


def test_console_never_shows_another_tenants_data(console: Console) -> None:
    """Fabrikam's admin and user, on the tab Alice used, see nothing of Contoso and get 404 for its session."""
    session = _needs(console, "session")
    shown = console.run("isolation.mjs", HOME_DOMAIN=DOMAIN, OTHER_DOMAIN="fabrikam.test", SESSION_ID=session["id"])
    assert shown["admin@fabrikam.test api"] in (403, 404)
    assert shown["felix@fabrikam.test api"] in (403, 404)


def test_console_fits_a_phone_and_works_from_the_keyboard(console: Console) -> None:
    """At 360 px no page scrolls sideways, every control is labelled, and skip link and sign-in work by keyboard."""
    _needs(console, "onboarded")
    shown = console.run("phone.mjs", DOMAIN=DOMAIN)
    assert shown["keyboardSignIn"] is True
    assert all(page["overflow"] <= 0 for key, page in shown.items() if key.startswith("#"))


def test_mentor_offers_hours_and_the_mentees_slots_respect_them(console: Console) -> None:
    """Alice offers Tue and Thu 09:00-15:00 on her page (rows added by keyboard, an overlap refused, another tab's
    change caught as a conflict); Carol's Find a time page then shows only slots inside those hours."""
    _needs(console, "onboarded")
    alice = console.stack.token(ALICE)
    try:
        shown = console.run("offered_hours.mjs", DOMAIN=DOMAIN, MENTOR=ALICE, MENTEE=BOB, MENTOR_TOKEN=alice,
                            WINDOW_START="09:00", WINDOW_END="15:00")
        assert shown["zone"] == "America/Los_Angeles", "the editor starts in Alice's mailbox zone"
        assert shown["conflict"] is True
        pacific = ZoneInfo("America/Los_Angeles")
        for start in shown["slots"]:
            local = _parse(start).astimezone(pacific)
            assert local.strftime("%A") in ("Tuesday", "Thursday"), start
            assert time(9) <= local.time() and (local + timedelta(minutes=30)).time() <= time(15), start
        assert shown["preview"] and all(day.startswith(("Tue", "Thu")) for day in shown["preview"]), shown["preview"]
        rules = console.stack.call("GET", "/me/availability-rules", alice).json()
        assert rules["source"] == "own" and {w["day"] for w in rules["weekly"]} == {"tuesday", "thursday"}
        assert (rules["maxPerWeek"], rules["bufferAfterMinutes"]) == (10, 5), "the other tab's save was kept"
    finally:
        console.stack.call("DELETE", "/me/availability-rules", alice)


def test_admin_registers_a_webhook_endpoint_pings_it_and_rotates_its_secret(console: Console) -> None:
    """The Webhooks page: a private URL is refused with the service's message; the secret is shown once; a ping
    reaches the product's receiver signed with it (standardwebhooks verifies), shows as delivered in the log and
    is replayed with the same webhook-id; disable, enable and rotation work."""
    _needs(console, "onboarded")
    receiver = Receiver().start()
    try:
        shown = console.run("webhooks.mjs", DOMAIN=DOMAIN, RECEIVER_URL=receiver.url)
        console.stack.wait_for(lambda: len(receiver.delivered()) >= 2, timeout=30)
    finally:
        receiver.stop()
    assert "private" in shown["refusal"] and shown["status"] == "200"
    first, replayed = receiver.delivered()[:2]
    assert receiver.verify(shown["secret"], first)["type"] == "ping"
    assert replayed.webhook_id == first.webhook_id  # a replay is the same message again
    admin = console.stack.token(f"admin@{DOMAIN}", roles=["Integration.Admin"])
    endpoint = console.stack.call("GET", f"/webhooks/endpoints/{shown['endpointId']}", admin).json()
    assert endpoint["enabled"] is True and endpoint["previousSecretValidUntil"]
    assert "secret" not in endpoint
    assert console.stack.call("DELETE", f"/webhooks/endpoints/{shown['endpointId']}", admin).status_code == 204


def test_a_recruiter_books_a_panel_with_a_guest_and_any_of_rooms(console: Console) -> None:
    """Book a group (tenant on sameTenant, as a recruiting organisation sets it): two interviewers, an optional
    observer, an outside candidate with a display name and any of three rooms; the slot lists the free rooms and
    optional people, the booking names the chosen room, My sessions shows each attendee's RSVP and marks; Outlook
    has the guest's name, the service never stores it."""
    _needs(console, "onboarded")
    tables = bootstrap_tables()
    found = tables.get(Tables.INTEGRATIONS, CONTOSO, "integration")
    assert found is not None
    policy = found.data.get("pairingPolicy", "registered")
    tables.upsert(Tables.INTEGRATIONS, Entity(CONTOSO, "integration", {**found.data, "pairingPolicy": "sameTenant"}))
    guest_name = sentinel("Jordan Candidate, browser guest")
    try:
        shown = console.run("group.mjs", DOMAIN=DOMAIN, RECRUITER=f"laura@{DOMAIN}", GUEST_NAME=guest_name)
    finally:
        now = tables.get(Tables.INTEGRATIONS, CONTOSO, "integration")
        assert now is not None
        tables.upsert(Tables.INTEGRATIONS, Entity(CONTOSO, "integration", {**now.data, "pairingPolicy": policy}))
    session = shown["session"]
    assert session["status"] == "booked" and "smallest free room" in session["reason"]
    [body] = shown["bodies"]
    assert body["roomChoice"] == "bestFit" and body["rooms"] == shown["ticked"]
    assert {"email": "jordan.candidate@example.org", "name": guest_name, "type": "required"} in body["attendees"]
    laura = console.stack.token(f"laura@{DOMAIN}")
    doc = console.stack.call("GET", f"/sessions/{session['id']}", laura).json()
    assert doc["room"]["email"] in shown["ticked"] and doc["assigned"]["room"] == doc["room"]["email"]
    event = next(e for e in console.stack.control("GET", f"/_sandbox/users/laura@{DOMAIN}/events")
                 if e.get("transactionId") == session["id"])
    names = {a["emailAddress"]["address"].lower(): a["emailAddress"].get("name") for a in event["attendees"]}
    assert names["jordan.candidate@example.org"] == guest_name
    for row in tables.query(Tables.SESSIONS, CONTOSO):
        assert guest_name not in repr(row.data)


def test_a_pair_books_a_twelve_week_cadence_and_sees_it_as_one_series(console: Console) -> None:
    """Alice repeats a slot weekly for 12 sessions: every date is checked first, one series master lands in her
    Outlook calendar, and My sessions shows one series card that expands to its sessions."""
    _needs(console, "onboarded")
    shown = console.run("series.mjs", DOMAIN=DOMAIN, USER_UPN=ALICE)
    [key] = shown["keys"]
    assert key and len(key) >= 32
    body = shown["body"]
    assert body["recurrence"]["pattern"]["type"] == "weekly"
    assert body["recurrence"]["range"] == {"type": "numbered", "startDate": body["recurrence"]["range"]["startDate"],
                                           "numberOfOccurrences": 12}
    series_id = shown["seriesId"]
    doc = console.stack.call("GET", f"/series/{series_id}", console.stack.token(ALICE)).json()
    assert doc["status"] == "booked" and len(doc["occurrences"]) == 12
    assert doc["occurrences"][0]["start"] == shown["start"].replace(".000Z", "Z")
    masters = [e for e in console.stack.control("GET", f"/_sandbox/users/{ALICE}/events")
               if e.get("transactionId") == series_id]
    assert len(masters) == 1 and masters[0]["type"] == "seriesMaster"
    in_window = [o for o in doc["occurrences"] if o["status"] == "booked"]
    assert 1 <= shown["shown"] <= len(in_window)
    console.stack.call("DELETE", f"/series/{series_id}", console.stack.token(ALICE))  # leave Alice's weeks free


def test_the_admin_reads_what_the_product_server_did_in_the_audit_trail(console: Console) -> None:
    """The product's server lists Alice's sessions; the admin's Audit trail page shows that request first among the
    app's entries (the app, for Alice, 200), and loads older entries on demand."""
    _needs(console, "onboarded")
    stack = console.stack
    app = stack.app_token(CONTOSO, ["Sessions.ReadWrite.All"])
    listed = stack.call("GET", "/sessions", app, headers={"X-On-Behalf-Of": ALICE})
    assert listed.status_code == 200, listed.text
    shown = console.run("audit.mjs", DOMAIN=DOMAIN, APP_ID=PRODUCT_SERVER_CLIENT_ID)
    assert shown["action"] == "session_list"
    when, who, what, for_whom, _, answer = shown["cells"]
    assert PRODUCT_SERVER_CLIENT_ID in who and what == "session_list" and answer.strip() == "200"
    alice = next(u["id"] for t in stack.control("GET", "/_sandbox/tenants") if t["id"] == CONTOSO
                 for u in t["users"] if u["userPrincipalName"].lower() == ALICE)
    assert for_whom.strip().lower() == alice.lower() and when
    assert shown["before"] >= 1 and shown["after"] >= shown["before"]
