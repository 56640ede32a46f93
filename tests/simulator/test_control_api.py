"""The /_sandbox control API: tenants, reading calendars, Outlook actions, request log, reset."""

from __future__ import annotations

from datetime import timedelta

from local.simulator.seed import ALICE, BOB, CONTOSO, FABRIKAM, NORTHWIND, TAILSPIN
from tests.simulator.conftest import Sim, attendee, event_body, next_weekday


def test_tenants_list_users_with_kinds_and_rooms(sim: Sim) -> None:
    """Four tenants; Contoso has a few dozen users of every kind and six rooms in two lists."""
    tenants = {t["id"]: t for t in sim.get("/_sandbox/tenants").json()}
    assert set(tenants) == {CONTOSO, FABRIKAM, NORTHWIND, TAILSPIN}
    contoso = tenants[CONTOSO]
    assert contoso["domain"] == "contoso.test"
    assert 30 <= len(contoso["users"]) <= 40
    kinds = [u["kind"] for u in contoso["users"]]
    assert kinds.count("onPremises") == 2 and kinds.count("unlicensed") == 2 and kinds.count("outsideScope") == 3
    assert {"id", "userPrincipalName", "mail", "kind"} <= set(contoso["users"][0])
    assert len(contoso["rooms"]) == 6
    assert {"email", "displayName"} <= set(contoso["rooms"][0])
    assert len({u["timeZone"] for u in contoso["users"]}) >= 10
    assert 8 <= len(tenants[FABRIKAM]["users"]) <= 12
    for method_tenant, domain in ((NORTHWIND, "northwind.test"), (TAILSPIN, "tailspin.test")):
        upns = {u["userPrincipalName"] for u in tenants[method_tenant]["users"]}
        assert {f"admin@{domain}", f"scheduler@{domain}"} <= upns and 8 <= len(upns) <= 12
        assert len(tenants[method_tenant]["rooms"]) == 2 and tenants[method_tenant]["consentGranted"] is True


def test_seed_is_deterministic(sim: Sim) -> None:
    """Re-seeding gives the same users and the same events (ids included)."""
    before = (sim.get("/_sandbox/tenants").json(), sim.events_of("carol@contoso.test"))
    assert sim.post("/_sandbox/reset", json={}).status_code == 200
    after = (sim.get("/_sandbox/tenants").json(), sim.events_of("carol@contoso.test"))
    assert before == after


def test_user_events_show_graph_shape_with_transaction_id(sim: Sim, contoso_token: str) -> None:
    """The control calendar view has Graph's event fields, transactionId included."""
    sim.graph(
        "POST",
        f"/users/{ALICE}/events",
        contoso_token,
        json=event_body(next_weekday(), transactionId="tx-9", attendees=[attendee(BOB)]),
    )
    ev = next(e for e in sim.events_of(ALICE) if e["transactionId"] == "tx-9")
    for key in (
        "id",
        "start",
        "end",
        "organizer",
        "attendees",
        "isCancelled",
        "isOnlineMeeting",
        "onlineMeeting",
        "location",
    ):
        assert key in ev
    assert ev["start"]["timeZone"] == "UTC"


def test_control_cancel_by_organizer_cancels_for_attendees(sim: Sim, contoso_token: str) -> None:
    """Cancelling in Outlook as organizer removes the event and marks the attendee copy cancelled."""
    ev = sim.graph(
        "POST", f"/users/{ALICE}/events", contoso_token, json=event_body(next_weekday(), attendees=[attendee(BOB)])
    ).json()
    assert sim.post(f"/_sandbox/users/{ALICE}/events/{ev['id']}/cancel", json={}).status_code == 200
    assert all(e["id"] != ev["id"] for e in sim.events_of(ALICE))
    copy = sim.copy_of(BOB, ev["iCalUId"])
    assert copy is not None and copy["isCancelled"] is True


def test_control_move_by_attendee_is_refused(sim: Sim, contoso_token: str) -> None:
    """Only the organizer can move a meeting in Outlook."""
    start = next_weekday()
    ev = sim.graph(
        "POST", f"/users/{ALICE}/events", contoso_token, json=event_body(start, attendees=[attendee(BOB)])
    ).json()
    copy = sim.copy_of(BOB, ev["iCalUId"])
    assert copy is not None
    resp = sim.post(
        f"/_sandbox/users/{BOB}/events/{copy['id']}/move",
        json={"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()},
    )
    assert resp.status_code == 400


def test_control_respond_tentatively_updates_both_sides(sim: Sim, contoso_token: str) -> None:
    """A tentative answer shows on the attendee's copy and on the organizer's attendee list."""
    ev = sim.graph(
        "POST", f"/users/{ALICE}/events", contoso_token, json=event_body(next_weekday(), attendees=[attendee(BOB)])
    ).json()
    copy = sim.copy_of(BOB, ev["iCalUId"])
    assert copy is not None
    resp = sim.post(f"/_sandbox/users/{BOB}/events/{copy['id']}/respond", json={"response": "tentativelyAccepted"})
    assert resp.status_code == 200
    mine = sim.copy_of(BOB, ev["iCalUId"])
    assert mine is not None and mine["responseStatus"]["response"] == "tentativelyAccepted"
    org = sim.copy_of(ALICE, ev["iCalUId"])
    assert org is not None and org["attendees"][0]["status"]["response"] == "tentativelyAccepted"
    assert sim.post(f"/_sandbox/users/{BOB}/events/{copy['id']}/respond", json={"response": "maybe"}).status_code == 400


def test_request_log_records_graph_and_entra_calls_in_order(sim: Sim, contoso_token: str) -> None:
    """Every Graph/Entra request is logged with seq, method, path, status, tenant; ?since= filters."""
    log = sim.get("/_sandbox/requests").json()
    assert log[-1]["path"].endswith("/oauth2/v2.0/token") and log[-1]["tenant"] == CONTOSO
    mark = log[-1]["seq"]
    sim.graph("GET", "/users/onprem1@contoso.test/calendar", contoso_token)
    sim.graph(
        "POST",
        "/$batch",
        contoso_token,
        json={"requests": [{"id": "1", "method": "GET", "url": f"/users/{ALICE}/mailboxSettings"}]},
    )
    newer = sim.get(f"/_sandbox/requests?since={mark}").json()
    assert [e["seq"] for e in newer] == sorted(e["seq"] for e in newer)
    assert newer[0] | {"at": "", "seq": 0} == {
        "seq": 0,
        "method": "GET",
        "path": "/v1.0/users/onprem1@contoso.test/calendar",
        "status": 404,
        "tenant": CONTOSO,
        "at": "",
    }
    part = next(e for e in newer if e.get("batch"))
    assert part["path"] == f"/v1.0/users/{ALICE}/mailboxSettings" and part["status"] == 200
    assert any(e["path"] == "/v1.0/$batch" and not e.get("batch") for e in newer)
    assert all(not e["path"].startswith("/_sandbox") for e in sim.get("/_sandbox/requests").json())


def test_unknown_control_routes_are_404(sim: Sim) -> None:
    """Typos in control paths fail loudly."""
    assert sim.get("/_sandbox/nothing").status_code == 404
    assert sim.post("/_sandbox/users/ghost@contoso.test/events/x/move", json={}).status_code == 404


def test_extra_users_for_load_tests_keep_the_base_seed(tmp_path: object) -> None:
    """extra_users adds userNNNN@contoso.test mailboxes without changing the seeded users' ids."""
    from local.simulator import start_simulator

    handle = start_simulator(ca_dir=str(tmp_path), extra_users=25)
    try:
        with handle.state.lock:
            contoso = handle.state.tenants[CONTOSO]
            assert contoso.find("user0025@contoso.test") is not None
            fabrikam_ids = sorted(m.id for m in handle.state.tenants[FABRIKAM].mailboxes.values())
    finally:
        handle.stop()
    plain = start_simulator(ca_dir=str(tmp_path))
    try:
        with plain.state.lock:
            assert sorted(m.id for m in plain.state.tenants[FABRIKAM].mailboxes.values()) == fabrikam_ids
    finally:
        plain.stop()
