"""Recurring series in the simulator: expansion in every view, Exchange's rules, notifications, control, state."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from local.simulator import start_simulator
from local.simulator.seed import ALICE, BOB
from tests.simulator.conftest import Receiver, Sim, attendee, subscribe
from tests.support.csdl import graph_model

BERLIN = ZoneInfo("Europe/Berlin")
ROOM = "room-puffin@contoso.test"


def _series_body(first: date, count: int = 6, hour: int = 9, **extra: Any) -> dict[str, Any]:
    """Weekly on the first date's weekday at ``hour`` Berlin time, in Windows zone names as Outlook sends."""
    day = first.strftime("%A").lower()
    body: dict[str, Any] = {
        "subject": "Mentoring series",
        "start": {"dateTime": f"{first.isoformat()}T{hour:02d}:00:00", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": f"{first.isoformat()}T{hour:02d}:45:00", "timeZone": "W. Europe Standard Time"},
        "recurrence": {
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": [day]},
            "range": {"type": "numbered", "startDate": first.isoformat(), "numberOfOccurrences": count},
        },
    }
    body.update(extra)
    return body


def _window(first: date, weeks: int = 10) -> str:
    start = datetime.combine(first, datetime.min.time(), tzinfo=UTC) - timedelta(days=1)
    end = start + timedelta(weeks=weeks)
    return f"startDateTime={start:%Y-%m-%dT%H:%M:%SZ}&endDateTime={end:%Y-%m-%dT%H:%M:%SZ}"


def _create(sim: Sim, token: str, body: dict[str, Any], user: str = ALICE) -> dict[str, Any]:
    resp = sim.graph("POST", f"/users/{user}/events", token, json=body)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def _instances(sim: Sim, token: str, user: str, master_id: str, first: date) -> list[dict[str, Any]]:
    resp = sim.graph("GET", f"/users/{user}/events/{master_id}/instances?{_window(first)}&$top=50", token)
    assert resp.status_code == 200, resp.text
    return list(resp.json()["value"])


def _utc(value: dict[str, str]) -> datetime:
    return datetime.fromisoformat(value["dateTime"][:19]).replace(tzinfo=UTC)


def test_series_master_and_instances_have_graphs_shape_and_stable_ids(sim: Sim, contoso_token: str) -> None:
    """The master is seriesMaster with its recurrence; instances are occurrences at 09:00 Berlin across DST,
    with seriesMasterId, originalStart and ids that are the same on every read; all valid per the CSDL."""
    first = date(2032, 3, 15)  # Berlin moves to summer time on 28 March 2032
    master = _create(sim, contoso_token, _series_body(first, attendees=[attendee(BOB)]))
    assert master["type"] == "seriesMaster" and master["seriesMasterId"] is None
    assert master["recurrence"]["pattern"]["daysOfWeek"] == ["monday"]
    assert master["originalStartTimeZone"] == "W. Europe Standard Time"
    assert graph_model().validate("event", master) == []
    instances = _instances(sim, contoso_token, ALICE, master["id"], first)
    assert [i["type"] for i in instances] == ["occurrence"] * 6
    assert {i["seriesMasterId"] for i in instances} == {master["id"]}
    local = [_utc(i["start"]).astimezone(BERLIN) for i in instances]
    assert [t.hour for t in local] == [9] * 6
    assert [_utc(i["start"]).hour for i in instances] == [8, 8, 7, 7, 7, 7]
    assert all(i["recurrence"] is None and i["originalStart"] for i in instances)
    for instance in instances:
        assert graph_model().validate("event", instance) == []
    assert [i["id"] for i in _instances(sim, contoso_token, ALICE, master["id"], first)] == [i["id"] for i in instances]
    one = sim.graph("GET", f"/users/{ALICE}/events/{instances[2]['id']}", contoso_token).json()
    assert (one["id"], one["type"]) == (instances[2]["id"], "occurrence")
    listed = sim.graph("GET", f"/users/{ALICE}/events?$filter=iCalUId eq '{master['iCalUId']}'", contoso_token)
    assert [e["type"] for e in listed.json()["value"]] == ["seriesMaster"]  # /events lists masters, not occurrences


def test_calendar_view_and_get_schedule_show_occurrences_and_exceptions(sim: Sim, contoso_token: str) -> None:
    """calendarView and getSchedule see each occurrence (the moved one where it moved, the cancelled one not)."""
    first = date(2032, 5, 3)
    master = _create(sim, contoso_token, _series_body(first, count=4))
    instances = _instances(sim, contoso_token, ALICE, master["id"], first)
    moved_start = _utc(instances[1]["start"]) + timedelta(days=1)
    patch = {"start": {"dateTime": f"{moved_start:%Y-%m-%dT%H:%M:%S}", "timeZone": "UTC"},
             "end": {"dateTime": f"{moved_start + timedelta(minutes=45):%Y-%m-%dT%H:%M:%S}", "timeZone": "UTC"}}
    moved = sim.graph("PATCH", f"/users/{ALICE}/events/{instances[1]['id']}", contoso_token, json=patch)
    assert moved.status_code == 200 and moved.json()["type"] == "exception"
    assert moved.json()["originalStart"].startswith(instances[1]["start"]["dateTime"][:19])
    cancel = sim.graph("POST", f"/users/{ALICE}/events/{instances[3]['id']}/cancel", contoso_token, json={})
    assert cancel.status_code == 202
    view = sim.graph("GET", f"/users/{ALICE}/calendarView?{_window(first)}", contoso_token).json()["value"]
    ours = [v for v in view if v.get("seriesMasterId") == master["id"]]
    assert [(v["type"], _utc(v["start"])) for v in ours] == [
        ("occurrence", _utc(instances[0]["start"])),
        ("exception", moved_start),
        ("occurrence", _utc(instances[2]["start"])),
    ]
    body = {"schedules": [ALICE], "startTime": {"dateTime": f"{first}T00:00:00", "timeZone": "UTC"},
            "endTime": {"dateTime": f"{first + timedelta(weeks=5)}T00:00:00", "timeZone": "UTC"},
            "availabilityViewInterval": 60}
    [schedule] = sim.graph("POST", f"/users/{ALICE}/calendar/getSchedule", contoso_token, json=body).json()["value"]
    assert [_utc(i["start"]) for i in schedule["scheduleItems"]] == [_utc(v["start"]) for v in ours]


def test_moving_onto_a_neighbours_day_is_error_occurrence_crossing_boundary(sim: Sim, contoso_token: str) -> None:
    """Graph's documented 400 for an occurrence moved onto the next occurrence's day."""
    first = date(2032, 6, 7)
    master = _create(sim, contoso_token, _series_body(first, count=3))
    one, two = _instances(sim, contoso_token, ALICE, master["id"], first)[:2]
    late = _utc(two["start"]) + timedelta(hours=2)
    patch = {"start": {"dateTime": f"{late:%Y-%m-%dT%H:%M:%S}", "timeZone": "UTC"},
             "end": {"dateTime": f"{late + timedelta(hours=1):%Y-%m-%dT%H:%M:%S}", "timeZone": "UTC"}}
    resp = sim.graph("PATCH", f"/users/{ALICE}/events/{one['id']}", contoso_token, json=patch)
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "ErrorOccurrenceCrossingBoundary"


def test_invalid_recurrence_and_mismatched_start_date_are_400(sim: Sim, contoso_token: str) -> None:
    """A weekly rule without days, or a range starting on another day than the event, is refused."""
    first = date(2032, 6, 14)
    no_days = _series_body(first)
    no_days["recurrence"]["pattern"]["daysOfWeek"] = []
    assert sim.graph("POST", f"/users/{ALICE}/events", contoso_token, json=no_days).status_code == 400
    shifted = _series_body(first)
    shifted["recurrence"]["range"]["startDate"] = (first + timedelta(days=1)).isoformat()
    resp = sim.graph("POST", f"/users/{ALICE}/events", contoso_token, json=shifted)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "ErrorPropertyValidationFailure"


def test_notifications_name_the_series_master_for_occurrence_changes(
    sim: Sim, contoso_token: str, receiver: Receiver
) -> None:
    """Creating a series notifies created for the master; moving or cancelling one occurrence notifies
    updated for the master (never an occurrence id); deleting the series notifies deleted."""
    assert subscribe(sim, contoso_token, ALICE, receiver).status_code == 201
    first = date(2032, 7, 5)
    master = _create(sim, contoso_token, _series_body(first, count=3))
    created = receiver.items(1)
    assert [(i["changeType"], i["resourceData"]["id"]) for i in created] == [("created", master["id"])]
    instances = _instances(sim, contoso_token, ALICE, master["id"], first)
    sim.graph("POST", f"/users/{ALICE}/events/{instances[1]['id']}/cancel", contoso_token, json={})
    updated = receiver.items(1)
    assert [(i["changeType"], i["resourceData"]["id"]) for i in updated] == [("updated", master["id"])]
    sim.graph("DELETE", f"/users/{ALICE}/events/{master['id']}", contoso_token)
    deleted = receiver.items(1)
    assert [(i["changeType"], i["resourceData"]["id"]) for i in deleted] == [("deleted", master["id"])]


def test_delta_reports_a_cancelled_occurrence_as_removed(sim: Sim, contoso_token: str) -> None:
    """calendarView/delta lists occurrences at first, then the cancelled occurrence's id under @removed."""
    first = date(2032, 8, 2)
    master = _create(sim, contoso_token, _series_body(first, count=3))
    initial = sim.graph("GET", f"/users/{ALICE}/calendarView/delta?{_window(first)}", contoso_token,
                        headers={"Prefer": "odata.maxpagesize=2"})
    items: list[dict[str, Any]] = []
    page = initial.json()
    while True:
        items += page["value"]
        if "@odata.deltaLink" in page:
            break
        page = sim.get(page["@odata.nextLink"], headers={"Authorization": f"Bearer {contoso_token}"}).json()
    ids = [i["id"] for i in items if i.get("seriesMasterId") == master["id"]]
    assert len(ids) == 3
    sim.graph("POST", f"/users/{ALICE}/events/{ids[0]}/cancel", contoso_token, json={})
    changes = sim.get(page["@odata.deltaLink"], headers={"Authorization": f"Bearer {contoso_token}"}).json()["value"]
    assert {c["id"] for c in changes if "@removed" in c} == {ids[0]}
    assert {c["id"] for c in changes if "@removed" not in c} == set(ids[1:])


def test_control_api_moves_declines_and_repatterns_like_outlook(sim: Sim, contoso_token: str) -> None:
    """The organizer moves one occurrence and edits the pattern; Bob declines one occurrence; the pattern edit
    drops the exception and Bob's decline; delete removes the whole series."""
    first = date(2032, 9, 6)
    people = [attendee(BOB), attendee(ROOM, "resource")]
    master = _create(sim, contoso_token, _series_body(first, count=4, attendees=people))
    assert {a["emailAddress"]["address"]: a["status"]["response"] for a in master["attendees"]}[ROOM] == "accepted"
    instances = sim.get(f"/_sandbox/users/{ALICE}/events/{master['id']}/instances").json()
    new_start = _utc(instances[0]["start"]) + timedelta(hours=3)
    moved = sim.post(f"/_sandbox/users/{ALICE}/events/{instances[0]['id']}/move",
                     json={"start": new_start.isoformat(), "end": (new_start + timedelta(hours=1)).isoformat()})
    assert moved.status_code == 200 and moved.json()["type"] == "exception"
    bob_master = sim.copy_of(BOB, master["iCalUId"])
    assert bob_master is not None and bob_master["type"] == "seriesMaster"
    bob_instances = sim.get(f"/_sandbox/users/{BOB}/events/{bob_master['id']}/instances").json()
    assert _utc(bob_instances[0]["start"]) == new_start
    declined = sim.post(f"/_sandbox/users/{BOB}/events/{bob_instances[2]['id']}/respond", json={"response": "declined"})
    assert declined.status_code == 200
    organizer_view = _instances(sim, contoso_token, ALICE, master["id"], first)
    bob_answers = [{a["emailAddress"]["address"]: a["status"]["response"] for a in i["attendees"]}[BOB]
                   for i in organizer_view]
    assert bob_answers == ["none", "none", "declined", "none"]
    tuesday = first + timedelta(days=1)
    rule = {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["tuesday"]},
            "range": {"type": "numbered", "startDate": tuesday.isoformat(), "numberOfOccurrences": 4}}
    repatterned = sim.post(f"/_sandbox/users/{ALICE}/events/{master['id']}/pattern", json={
        "recurrence": rule,
        "start": {"dateTime": f"{tuesday}T09:00:00", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": f"{tuesday}T09:45:00", "timeZone": "W. Europe Standard Time"},
    })
    assert repatterned.status_code == 200, repatterned.text
    after = _instances(sim, contoso_token, ALICE, master["id"], first)
    assert [i["type"] for i in after] == ["occurrence"] * 4
    bob_after = sim.get(f"/_sandbox/users/{BOB}/events/{bob_master['id']}/instances").json()
    assert len(bob_after) == 4 and all(i["type"] == "occurrence" for i in bob_after)
    assert sim.post(f"/_sandbox/users/{ALICE}/events/{master['id']}/delete").status_code == 200
    assert sim.graph("GET", f"/users/{ALICE}/events/{master['id']}", contoso_token).status_code == 404
    assert all(i["isCancelled"] for i in sim.get(f"/_sandbox/users/{BOB}/events/{bob_master['id']}/instances").json())


def test_state_file_keeps_series_exceptions_and_cancellations(tmp_path: Path) -> None:
    """After a restart on the same state file the series, its exception and its cancelled occurrence are intact,
    with the same occurrence ids."""
    state_file = tmp_path / "m365.json"
    first = date(2032, 10, 4)
    handle = start_simulator(port=0, ca_dir=str(tmp_path / "ca"), state_file=state_file)
    try:
        sim = Sim(handle)
        token = sim.app_token()
        master = _create(sim, token, _series_body(first, count=4, attendees=[attendee(BOB)]))
        instances = _instances(sim, token, ALICE, master["id"], first)
        later = _utc(instances[1]["start"]) + timedelta(hours=2)
        patch = {"start": {"dateTime": f"{later:%Y-%m-%dT%H:%M:%S}", "timeZone": "UTC"},
                 "end": {"dateTime": f"{later + timedelta(hours=1):%Y-%m-%dT%H:%M:%S}", "timeZone": "UTC"}}
        moved = sim.graph("PATCH", f"/users/{ALICE}/events/{instances[1]['id']}", token, json=patch)
        assert moved.status_code == 200
        cancel = sim.graph("POST", f"/users/{ALICE}/events/{instances[2]['id']}/cancel", token, json={})
        assert cancel.status_code == 202
        listed = _instances(sim, token, ALICE, master["id"], first)
        before = [(i["id"], i["type"], i["start"]["dateTime"]) for i in listed]
    finally:
        handle.stop()
    handle = start_simulator(port=0, ca_dir=str(tmp_path / "ca"), state_file=state_file)
    try:
        sim = Sim(handle)
        token = sim.app_token()
        listed = _instances(sim, token, ALICE, master["id"], first)
        after = [(i["id"], i["type"], i["start"]["dateTime"]) for i in listed]
        assert after == before
        assert [t for _i, t, _s in after] == ["occurrence", "exception", "occurrence"]
        bob_master = sim.copy_of(BOB, master["iCalUId"])
        assert bob_master is not None
        bob = sim.get(f"/_sandbox/users/{BOB}/events/{bob_master['id']}/instances").json()
        assert [i["isCancelled"] for i in bob] == [False, False, True, False]
    finally:
        handle.stop()
