"""getSchedule, events (invitations, rooms, Teams, idempotency, updates, cancellation), calendarView, delta."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from local.simulator.seed import ALICE, BOB
from tests.simulator.conftest import Sim, attendee, dttz, event_body, next_weekday


def _schedule(
    sim: Sim,
    token: str,
    schedules: list[str],
    start: datetime,
    end: datetime,
    *,
    interval: int = 30,
    prefer: str | None = None,
) -> Any:
    headers = {"Prefer": f'outlook.timezone="{prefer}"'} if prefer else {}
    return sim.graph(
        "POST",
        f"/users/{ALICE}/calendar/getSchedule",
        token,
        headers=headers,
        json={
            "schedules": schedules,
            "startTime": dttz(start),
            "endTime": dttz(end),
            "availabilityViewInterval": interval,
        },
    )


def _create(sim: Sim, token: str, organizer: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = sim.graph("POST", f"/users/{organizer}/events", token, json=body)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


# -- getSchedule --------------------------------------------------------------------------
def test_get_schedule_is_busy_where_events_are(sim: Sim, contoso_token: str) -> None:
    """A new busy event shows as '2' in the availability view and as a schedule item with its times."""
    start = next_weekday(days_ahead=60, hour=2)  # past the seeded 8 weeks: nothing else there
    _create(sim, contoso_token, ALICE, event_body(start + timedelta(hours=1), 60, showAs="busy"))
    resp = _schedule(sim, contoso_token, [ALICE], start, start + timedelta(hours=4), interval=60)
    assert resp.status_code == 200
    info = resp.json()["value"][0]
    assert info["availabilityView"] == "0200"
    item = info["scheduleItems"][0]
    assert item["status"] == "busy" and item["isPrivate"] is False
    assert item["start"]["dateTime"].startswith((start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"))
    assert info["workingHours"]["timeZone"] == {"name": "Pacific Standard Time"}


def test_get_schedule_matches_seeded_events_and_hides_private_subjects(sim: Sim, contoso_token: str) -> None:
    """Seeded events appear in getSchedule; private ones have isPrivate and no subject."""
    events = [e for e in sim.events_of("carol@contoso.test") if e["showAs"] != "free"]
    assert events, "the seed gives every normal user busy time"
    first = events[0]
    start = datetime.fromisoformat(first["start"]["dateTime"][:19]).replace(tzinfo=UTC)
    resp = _schedule(sim, contoso_token, ["carol@contoso.test"], start, start + timedelta(hours=1), interval=15)
    items = resp.json()["value"][0]["scheduleItems"]
    assert any(i["status"] == first["showAs"] for i in items)
    for item in items:
        assert ("subject" in item) is (not item["isPrivate"])


def test_get_schedule_honours_prefer_timezone(sim: Sim, contoso_token: str) -> None:
    """With Prefer: outlook.timezone, item times come back in that zone."""
    start = next_weekday(hour=20)
    _create(sim, contoso_token, BOB, event_body(start, 30))
    resp = _schedule(sim, contoso_token, [BOB], start, start + timedelta(hours=1), prefer="Tokyo Standard Time")
    assert resp.headers["Preference-Applied"] == 'outlook.timezone="Tokyo Standard Time"'
    item = next(i for i in resp.json()["value"][0]["scheduleItems"] if i["subject"] == "Mentoring session")
    assert item["start"]["timeZone"] == "Tokyo Standard Time"
    assert item["start"]["dateTime"].startswith((start + timedelta(hours=9)).strftime("%Y-%m-%dT%H:%M"))


def test_get_schedule_reports_per_schedule_errors_with_http_200(sim: Sim, contoso_token: str) -> None:
    """Unknown, on-premises, unlicensed and out-of-scope mailboxes get an error each; the call is 200."""
    start = next_weekday()
    targets = [ALICE, "onprem2@contoso.test", "nolicense1@contoso.test", "scoped2@contoso.test", "ghost@contoso.test"]
    resp = _schedule(sim, contoso_token, targets, start, start + timedelta(hours=2))
    assert resp.status_code == 200
    by_id = {v["scheduleId"]: v for v in resp.json()["value"]}
    assert "error" not in by_id[ALICE]
    assert by_id["onprem2@contoso.test"]["error"]["responseCode"] == "MailboxNotEnabledForRESTAPI"
    assert by_id["nolicense1@contoso.test"]["error"]["responseCode"] == "MailboxNotEnabledForRESTAPI"
    assert by_id["scoped2@contoso.test"]["error"]["responseCode"] == "ErrorAccessDenied"
    assert by_id["ghost@contoso.test"]["error"]["responseCode"] == "5009"


def test_get_schedule_limits(sim: Sim, contoso_token: str) -> None:
    """More than 20 schedules, a window of 62 days or more, or a bad interval are 400s."""
    start = next_weekday()
    many = [f"user{i}@contoso.test" for i in range(21)]
    assert _schedule(sim, contoso_token, many, start, start + timedelta(hours=1)).status_code == 400
    assert _schedule(sim, contoso_token, many[:20], start, start + timedelta(hours=1)).status_code == 200
    assert _schedule(sim, contoso_token, [ALICE], start, start + timedelta(days=62)).status_code == 400
    assert _schedule(sim, contoso_token, [ALICE], start, start + timedelta(hours=1), interval=4).status_code == 400


def test_rooms_have_schedules_too(sim: Sim, contoso_token: str) -> None:
    """Room addresses work in getSchedule (room availability comes from there)."""
    start = next_weekday()
    info = _schedule(sim, contoso_token, ["room-orca@contoso.test"], start, start + timedelta(hours=1)).json()
    assert "availabilityView" in info["value"][0]


# -- events ---------------------------------------------------------------------------------
def test_create_event_invites_attendee_and_adds_teams_link(sim: Sim, contoso_token: str) -> None:
    """The attendee gets a copy (other id, same iCalUId, notResponded, tentative); Teams joinUrl is set."""
    start = next_weekday()
    ev = _create(
        sim,
        contoso_token,
        ALICE,
        event_body(start, attendees=[attendee(BOB)], isOnlineMeeting=True, onlineMeetingProvider="teamsForBusiness"),
    )
    assert ev["isOnlineMeeting"] is True
    assert ev["onlineMeeting"]["joinUrl"].startswith("https://teams.microsoft.com/l/meetup-join/")
    assert ev["responseStatus"]["response"] == "organizer"
    assert ev["attendees"][0]["status"]["response"] == "none"
    copy = sim.copy_of(BOB, ev["iCalUId"])
    assert copy is not None
    assert copy["id"] != ev["id"]
    assert copy["responseStatus"]["response"] == "notResponded"
    assert copy["isOrganizer"] is False and copy["showAs"] == "tentative"
    assert copy["onlineMeeting"]["joinUrl"] == ev["onlineMeeting"]["joinUrl"]


def test_online_meeting_follows_the_calendars_allowed_providers(sim: Sim, contoso_token: str) -> None:
    """Skype-only calendars get a Skype meeting; calendars without providers get no meeting (still 201)."""
    start = next_weekday()
    skype = _create(
        sim,
        contoso_token,
        "victor@contoso.test",
        event_body(start, isOnlineMeeting=True, onlineMeetingProvider="teamsForBusiness"),
    )
    assert skype["onlineMeetingProvider"] == "skypeForBusiness"
    none = _create(
        sim,
        contoso_token,
        "xavier@contoso.test",
        event_body(start, isOnlineMeeting=True, onlineMeetingProvider="teamsForBusiness"),
    )
    assert none["isOnlineMeeting"] is False
    assert none["onlineMeetingProvider"] == "unknown"
    assert none["onlineMeeting"] is None


def test_rooms_accept_when_free_and_decline_when_booked(sim: Sim, contoso_token: str) -> None:
    """The first booking of a room is accepted (location set); an overlapping one is declined."""
    start = next_weekday(days_ahead=60)  # beyond the seeded room bookings
    first = _create(
        sim,
        contoso_token,
        ALICE,
        event_body(start, attendees=[attendee(BOB), attendee("room-puffin@contoso.test", "resource")]),
    )
    room = next(a for a in first["attendees"] if a["type"] == "resource")
    assert room["status"]["response"] == "accepted"
    assert first["location"]["locationEmailAddress"] == "room-puffin@contoso.test"
    assert sim.copy_of("room-puffin@contoso.test", first["iCalUId"]) is not None
    second = _create(
        sim,
        contoso_token,
        "carol@contoso.test",
        event_body(start + timedelta(minutes=15), attendees=[attendee("room-puffin@contoso.test", "resource")]),
    )
    assert second["attendees"][0]["status"]["response"] == "declined"
    assert sim.copy_of("room-puffin@contoso.test", second["iCalUId"]) is None


def test_transaction_id_makes_creates_idempotent(sim: Sim, contoso_token: str) -> None:
    """A retried POST with the same transactionId returns the first event and adds nothing."""
    body = event_body(next_weekday(), attendees=[attendee(BOB)], transactionId="session-42")
    first = _create(sim, contoso_token, ALICE, body)
    second = _create(sim, contoso_token, ALICE, body)
    assert first["id"] == second["id"]
    assert second["transactionId"] == "session-42"
    assert sum(e.get("transactionId") == "session-42" for e in sim.events_of(ALICE)) == 1
    assert sum(e["iCalUId"] == first["iCalUId"] for e in sim.events_of(BOB)) == 1


def test_patch_moves_attendee_copies_and_resets_answers(sim: Sim, contoso_token: str) -> None:
    """Moving an event moves the attendee's copy and resets their accepted answer."""
    start = next_weekday()
    ev = _create(sim, contoso_token, ALICE, event_body(start, attendees=[attendee(BOB)]))
    copy = sim.copy_of(BOB, ev["iCalUId"])
    assert copy is not None
    sim.post(f"/_sandbox/users/{BOB}/events/{copy['id']}/respond", json={"response": "accepted"})
    new_start = start + timedelta(hours=1)
    resp = sim.graph(
        "PATCH",
        f"/users/{ALICE}/events/{ev['id']}",
        contoso_token,
        json={"start": dttz(new_start), "end": dttz(new_start + timedelta(minutes=30))},
    )
    assert resp.status_code == 200
    assert resp.json()["attendees"][0]["status"]["response"] == "none"
    moved = sim.copy_of(BOB, ev["iCalUId"])
    assert moved is not None
    assert moved["start"]["dateTime"].startswith(new_start.strftime("%Y-%m-%dT%H:%M"))
    assert moved["responseStatus"]["response"] == "notResponded"


def test_patch_subject_reaches_attendees_without_resetting_answers(sim: Sim, contoso_token: str) -> None:
    """A non-time change is mirrored to attendees and keeps their answers."""
    ev = _create(sim, contoso_token, ALICE, event_body(next_weekday(), attendees=[attendee(BOB)]))
    copy = sim.copy_of(BOB, ev["iCalUId"])
    assert copy is not None
    sim.post(f"/_sandbox/users/{BOB}/events/{copy['id']}/respond", json={"response": "tentativelyAccepted"})
    sim.graph("PATCH", f"/users/{ALICE}/events/{ev['id']}", contoso_token, json={"subject": "Renamed"})
    after = sim.copy_of(BOB, ev["iCalUId"])
    assert after is not None
    assert after["subject"] == "Renamed"
    assert after["responseStatus"]["response"] == "tentativelyAccepted"


def test_cancel_removes_organizer_event_and_marks_attendee_copies_cancelled(sim: Sim, contoso_token: str) -> None:
    """cancel (202): organizer's event is gone, the attendee's copy isCancelled, the room's copy is gone."""
    start = next_weekday(days_ahead=61)
    ev = _create(
        sim,
        contoso_token,
        ALICE,
        event_body(start, attendees=[attendee(BOB), attendee("room-avon@contoso.test", "resource")]),
    )
    resp = sim.graph("POST", f"/users/{ALICE}/events/{ev['id']}/cancel", contoso_token, json={"comment": "Sorry"})
    assert resp.status_code == 202
    assert sim.graph("GET", f"/users/{ALICE}/events/{ev['id']}", contoso_token).status_code == 404
    copy = sim.copy_of(BOB, ev["iCalUId"])
    assert copy is not None and copy["isCancelled"] is True
    assert sim.copy_of("room-avon@contoso.test", ev["iCalUId"]) is None


def test_attendee_cannot_cancel(sim: Sim, contoso_token: str) -> None:
    """Only the organizer may cancel: an attendee gets 400."""
    ev = _create(sim, contoso_token, ALICE, event_body(next_weekday(), attendees=[attendee(BOB)]))
    copy = sim.copy_of(BOB, ev["iCalUId"])
    assert copy is not None
    resp = sim.graph("POST", f"/users/{BOB}/events/{copy['id']}/cancel", contoso_token, json={})
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "ErrorInvalidRequest"


def test_attendee_answer_via_graph_updates_the_organizer(sim: Sim, contoso_token: str) -> None:
    """POST .../accept on the attendee's copy shows as accepted on the organizer's event."""
    ev = _create(sim, contoso_token, ALICE, event_body(next_weekday(), attendees=[attendee(BOB)]))
    copy = sim.copy_of(BOB, ev["iCalUId"])
    assert copy is not None
    assert sim.graph("POST", f"/users/{BOB}/events/{copy['id']}/accept", contoso_token, json={}).status_code == 202
    org = sim.graph("GET", f"/users/{ALICE}/events/{ev['id']}?$select=attendees", contoso_token).json()
    assert org["attendees"][0]["status"]["response"] == "accepted"
    assert set(org) == {"@odata.context", "@odata.etag", "id", "attendees"}


def test_delete_by_organizer_cancels_for_attendees(sim: Sim, contoso_token: str) -> None:
    """DELETE (204) by the organizer leaves the attendee a cancelled copy."""
    ev = _create(sim, contoso_token, ALICE, event_body(next_weekday(), attendees=[attendee(BOB)]))
    assert sim.graph("DELETE", f"/users/{ALICE}/events/{ev['id']}", contoso_token).status_code == 204
    copy = sim.copy_of(BOB, ev["iCalUId"])
    assert copy is not None and copy["isCancelled"] is True


def test_calendar_view_pages_events_in_the_window(sim: Sim, contoso_token: str) -> None:
    """calendarView returns events overlapping the window, 10 per page with nextLink."""
    start = next_weekday(days_ahead=70)
    for i in range(12):
        _create(sim, contoso_token, ALICE, event_body(start + timedelta(hours=i), 30))
    window = f"startDateTime={start.isoformat()}&endDateTime={(start + timedelta(hours=12)).isoformat()}"
    first = sim.graph("GET", f"/users/{ALICE}/calendarView?{window.replace('+', '%2B')}", contoso_token).json()
    assert len(first["value"]) == 10
    rest = sim.request("GET", first["@odata.nextLink"], headers={"Authorization": f"Bearer {contoso_token}"}).json()
    assert len(rest["value"]) == 2
    assert "@odata.nextLink" not in rest
    missing = sim.graph("GET", f"/users/{ALICE}/calendarView", contoso_token)
    assert missing.status_code == 400


def _delta_all(sim: Sim, token: str, url: str) -> tuple[list[dict[str, Any]], str]:
    items: list[dict[str, Any]] = []
    while True:
        body = sim.request(
            "GET", url, headers={"Authorization": f"Bearer {token}", "Prefer": "odata.maxpagesize=5"}
        ).json()
        items += body["value"]
        if "@odata.deltaLink" in body:
            return items, body["@odata.deltaLink"]
        url = body["@odata.nextLink"]


def test_calendar_view_delta_reports_changes_and_removals(sim: Sim, contoso_token: str) -> None:
    """Initial sync lists the window; a later deltaLink returns only changed events and @removed ones."""
    start = next_weekday(days_ahead=14, hour=0)
    end = start + timedelta(days=7)
    url = (
        f"{sim.url}/v1.0/users/{ALICE}/calendarView/delta?startDateTime={start:%Y-%m-%dT%H:%M:%SZ}"
        f"&endDateTime={end:%Y-%m-%dT%H:%M:%SZ}"
    )
    initial, delta_link = _delta_all(sim, contoso_token, url)
    assert initial and all("@removed" not in i for i in initial)
    kept = _create(sim, contoso_token, ALICE, event_body(start + timedelta(hours=3)))
    gone = initial[0]
    assert sim.graph("DELETE", f"/users/{ALICE}/events/{gone['id']}", contoso_token).status_code == 204
    changes, next_link = _delta_all(sim, contoso_token, delta_link)
    assert {c["id"] for c in changes} == {kept["id"], gone["id"]}
    removed = next(c for c in changes if c["id"] == gone["id"])
    assert removed["@removed"] == {"reason": "deleted"}
    quiet, _ = _delta_all(sim, contoso_token, next_link)
    assert quiet == []


def test_secondary_calendars_hold_their_own_events(sim: Sim, contoso_token: str) -> None:
    """POST /calendars creates a calendar; events posted there are not in the default calendar."""
    cal = sim.graph("POST", f"/users/{ALICE}/calendars", contoso_token, json={"name": "Mentoring"}).json()
    ev = sim.graph(
        "POST",
        f"/users/{ALICE}/calendars/{cal['id']}/events",
        contoso_token,
        json=event_body(next_weekday(days_ahead=80)),
    ).json()
    listed = sim.graph("GET", f"/users/{ALICE}/calendars/{cal['id']}/events", contoso_token).json()["value"]
    assert [e["id"] for e in listed] == [ev["id"]]
    default = sim.graph("GET", f"/users/{ALICE}/events?$top=1000", contoso_token).json()["value"]
    assert ev["id"] not in {e["id"] for e in default}
