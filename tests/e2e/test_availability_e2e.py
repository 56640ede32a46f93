"""Availability on the whole local stack: HTTP through the host, Azurite tables, the real Graph gateway
and the Microsoft 365 simulator's seeded calendars.

"Done when": a seeded pair gets slots free for both and inside both working days, in one Graph call.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from core.bootstrap import get_container
from core.names import Tables
from core.ports import Entity
from core.services.stores.pairings import Pairing, PairingRepository
from local.simulator.seed import FABRIKAM
from tests.e2e.conftest import Stack

FELIX = "felix@fabrikam.test"  # GMT Standard Time, 09:00-17:00 Mon-Fri
HUGO = "hugo@fabrikam.test"  # W. Europe Standard Time, 09:00-17:00 Mon-Fri
UNLICENSED = "nolicense1@fabrikam.test"
LONDON, BERLIN = ZoneInfo("Europe/London"), ZoneInfo("Europe/Berlin")
BLOCKING = {"busy", "tentative", "oof"}


def _user_ids(stack: Stack) -> dict[str, str]:
    tenant = next(t for t in stack.control("GET", "/_sandbox/tenants") if t["id"] == FABRIKAM)
    return {u["userPrincipalName"]: u["id"] for u in tenant["users"]}


@pytest.fixture
def fabrikam(stack: Stack) -> Iterator[Stack]:
    """Fabrikam onboarded as consent would leave it; what this module wrote is removed afterwards.

    An integration record another test already made is used as it is; one made here is
    deleted at the end, so other end-to-end tests see the tenant as they left it.
    """
    tables = get_container().tables
    made = tables.get(Tables.INTEGRATIONS, FABRIKAM, "integration") is None
    if made:
        tables.upsert(Tables.INTEGRATIONS, Entity(FABRIKAM, "integration", {
            "vendor": "outlook365", "method": "domainWide", "ownerEmail": "admin@fabrikam.test",
            "enabled": True, "status": "connected", "pairingPolicy": "registered",
        }))
    get_container().tenant_gate.forget(FABRIKAM)
    try:
        yield stack
    finally:
        repo = PairingRepository(tables)
        for pairing_id in _made_pairings:
            repo.delete(FABRIKAM, pairing_id)
        _made_pairings.clear()
        if made:
            tables.delete(Tables.INTEGRATIONS, FABRIKAM, "integration")
        get_container().tenant_gate.forget(FABRIKAM)


_made_pairings: list[str] = []


def _pair(stack: Stack, mentor: str, mentee: str) -> str:
    ids = _user_ids(stack)
    pairing_id = "e2e-" + uuid.uuid4().hex[:12]
    pairing = Pairing(FABRIKAM, pairing_id, ids[mentor], mentor, ids[mentee], mentee)
    PairingRepository(get_container().tables).save(pairing)
    _made_pairings.append(pairing_id)
    return pairing_id


def _utc(value: dict[str, str]) -> datetime:
    assert value["timeZone"] == "UTC"
    return datetime.fromisoformat(value["dateTime"][:19]).replace(tzinfo=UTC)


def _busy(stack: Stack, user: str, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    events: list[dict[str, Any]] = stack.control(
        "GET", f"/_sandbox/users/{user}/events", **{"from": start.isoformat(), "to": end.isoformat()}
    )
    return [(_utc(e["start"]), _utc(e["end"])) for e in events
            if e["showAs"] in BLOCKING and not e["isCancelled"]]


def _inside_working_day(start: datetime, end: datetime, zone: ZoneInfo) -> bool:
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    return (local_start.weekday() < 5 and local_start.date() == local_end.date()
            and local_start.hour >= 9 and (local_end.hour, local_end.minute) <= (17, 0))


def _next_monday() -> datetime:
    today = date.today()
    monday = today + timedelta(days=7 - today.weekday())
    return datetime(monday.year, monday.month, monday.day, tzinfo=UTC)


def test_a_seeded_pair_gets_slots_free_for_both_inside_both_working_days_in_one_graph_call(fabrikam: Stack) -> None:
    """Felix (London) and Hugo (Berlin): every slot is free in both seeded calendars and in both working days,
    and the whole answer cost exactly one Graph request."""
    stack = fabrikam
    pairing_id = _pair(stack, FELIX, HUGO)
    start = _next_monday()
    end = start + timedelta(days=5)
    token = stack.token(FELIX)
    since = stack.last_seq()

    response = stack.call("POST", "/availability", token, {
        "pairingId": pairing_id, "start": start.isoformat(), "end": end.isoformat(),
        "durationMinutes": 30, "timeZone": "Europe/London",
    })

    assert response.status_code == 200, response.text
    graph_calls = [r for r in stack.graph_requests(since) if str(r["path"]).startswith("/v1.0")]
    assert [(r["method"], r["path"].rsplit("/", 2)[-2:]) for r in graph_calls] == [
        ("POST", ["calendar", "getSchedule"])
    ]
    slots = [(datetime.fromisoformat(s["start"]), datetime.fromisoformat(s["end"])) for s in response.json()["slots"]]
    assert slots, "London and Berlin working days overlap six hours a day"
    busy = _busy(stack, FELIX, start, end) + _busy(stack, HUGO, start, end)
    assert busy, "the simulator seeds busy time in the coming weeks"
    for slot_start, slot_end in slots:
        assert slot_start.tzinfo is not None and slot_start.utcoffset() == timedelta(0)
        assert all(not (slot_start < b_end and slot_end > b_start) for b_start, b_end in busy)
        assert _inside_working_day(slot_start, slot_end, LONDON) and _inside_working_day(slot_start, slot_end, BERLIN)


def test_an_unlicensed_partner_is_named_with_the_reason(fabrikam: Stack) -> None:
    """A pairing with a mailbox Graph cannot reach answers 422 participant_unreachable, not "no slots"."""
    stack = fabrikam
    pairing_id = _pair(stack, FELIX, UNLICENSED)
    start = _next_monday()
    response = stack.call("POST", "/availability", stack.token(FELIX), {
        "pairingId": pairing_id, "start": start.isoformat(), "end": (start + timedelta(days=2)).isoformat(),
        "durationMinutes": 30, "timeZone": "Europe/London",
    })
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "participant_unreachable"
    assert [p["status"] for p in error["details"]["participants"]] == ["ok", "mailbox_on_premises_or_unlicensed"]


def test_calendar_settings_and_rooms_come_from_the_simulator(fabrikam: Stack) -> None:
    """The caller's IANA zone and hours, and the tenant's rooms, read through the real gateway."""
    stack = fabrikam
    token = stack.token(HUGO)
    settings = stack.call("GET", "/me/calendar-settings", token)
    assert settings.status_code == 200, settings.text
    assert settings.json()["timeZone"] == "Europe/Berlin"
    assert settings.json()["workingHours"]["startTime"] == "09:00:00"
    rooms = stack.call("GET", "/rooms", token, params={"roomList": "rooms-hq@fabrikam.test"})
    assert rooms.status_code == 200, rooms.text
    assert sorted(r["email"] for r in rooms.json()) == ["room-elm@fabrikam.test", "room-oak@fabrikam.test"]
