"""Series routes in-process: booking via POST /api/sessions, the series resource, availability, rights, idempotency."""

from __future__ import annotations

import json
from typing import Any

from core.names import Queues
from tests.functions.conftest import TENANT_A, TENANT_B, USER_A, USER_A2, USER_B, Env, TokenFactory, bearer
from tests.functions.test_sessions_routes import BODY, SUBJECT, _run_worker, _setup

RECURRENCE = {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["tuesday"]},
              "range": {"type": "numbered", "startDate": "2025-03-04", "numberOfOccurrences": 12}}
SERIES = {**BODY, "recurrence": RECURRENCE}
ROLE = ["Sessions.ReadWrite.All"]


def _book(env: Env, mint: TokenFactory, body: dict[str, Any] | None = None, **headers: str) -> Any:
    return env.client.post("/api/sessions", headers={**bearer(mint()), **headers}, json=body or SERIES)


def test_a_series_is_booked_through_post_sessions_and_read_back_whole(env: Env, mint: TokenFactory) -> None:
    """POST with a recurrence answers 202 with the series id and Location /api/series/{id}; after the worker the
    series shows its rule and 12 booked occurrences, which also list among both participants' sessions."""
    _setup(env, mint)
    r = _book(env, mint)
    assert r.status == 202, r.text
    sid = r.json()["id"]
    assert r.json() == {"id": sid, "status": "pending", "seriesId": sid}
    assert r.header("Location") == f"/api/series/{sid}"
    assert SUBJECT not in json.dumps([m.body for m in env.queues.pending(Queues.EVENT_WRITES)])
    pending = env.client.get(f"/api/series/{sid}", headers=bearer(mint())).json()
    assert pending["status"] == "pending" and len(pending["occurrences"]) == 12
    assert pending["occurrences"][0] == {"index": 1, "status": "pending", "start": "2025-03-04T09:00:00Z",
                                         "end": "2025-03-04T10:00:00Z", "originalStart": "2025-03-04T09:00:00Z",
                                         "attendees": [], "source": "platform"}
    assert _run_worker(env) == 1
    doc = env.client.get(f"/api/series/{sid}", headers=bearer(mint(oid=USER_A2))).json()
    assert doc["status"] == "booked" and doc["recurrence"]["pattern"]["daysOfWeek"] == ["tuesday"]
    assert doc["timeZone"] == "Europe/Paris" and doc["joinUrl"] and doc["onConflict"] == "fail"
    occurrences = doc["occurrences"]
    assert [o["index"] for o in occurrences] == list(range(1, 13))
    assert all(o["status"] == "booked" and o["id"].startswith(sid) for o in occurrences)
    assert occurrences[4]["start"] == "2025-04-01T08:00:00Z"  # 10:00 in Paris, after the change to summer time
    listed = env.client.get("/api/sessions", headers=bearer(mint(oid=USER_A2)),
                            query={"from": "2025-03-01T00:00:00Z", "to": "2025-04-01T00:00:00Z"}).json()
    assert len(listed) == 4 and {s["seriesId"] for s in listed} == {sid}
    assert listed[0]["originalStart"] == "2025-03-04T09:00:00Z"
    one = env.client.get(f"/api/sessions/{occurrences[0]['id']}", headers=bearer(mint())).json()
    assert one["seriesId"] == sid and one["status"] == "booked"
    mine = env.client.get("/api/series", headers=bearer(mint())).json()
    assert [s["id"] for s in mine] == [sid] and mine[0]["status"] == "booked"


def test_bad_rules_are_422_with_the_domains_codes(env: Env, mint: TokenFactory) -> None:
    """An unknown pattern type, a zero interval, a series without end and onConflict without recurrence: 422."""
    _setup(env, mint)
    cases = [
        ({**RECURRENCE, "pattern": {**RECURRENCE["pattern"], "type": "fortnightly"}}, "unknown_pattern_type"),
        ({**RECURRENCE, "pattern": {**RECURRENCE["pattern"], "interval": 0}}, "interval_not_positive"),
        ({**RECURRENCE, "range": {"type": "noEnd", "startDate": "2025-03-04"}}, "no_end_not_allowed"),
        ({**RECURRENCE, "range": {**RECURRENCE["range"], "numberOfOccurrences": 200}}, "too_many_occurrences"),
        ({**RECURRENCE, "pattern": {**RECURRENCE["pattern"], "daysOfWeek": ["monday"]}}, "start_not_in_pattern"),
    ]
    for recurrence, code in cases:
        r = _book(env, mint, {**BODY, "recurrence": recurrence})
        assert r.status == 422 and r.json()["error"]["code"] == code, (code, r.text)
    r = _book(env, mint, {**BODY, "onConflict": "skipClashing"})
    assert r.status == 422 and r.json()["error"]["code"] == "validation_failed"
    r = _book(env, mint, {**SERIES, "onConflict": "sometimes"})
    assert r.status == 422
    assert env.queues.pending(Queues.EVENT_WRITES) == []


def test_a_busy_occurrence_refuses_the_series_with_409_naming_it(env: Env, mint: TokenFactory) -> None:
    """onConflict fail (the default): 409 slot_taken with details.occurrences (index, times, who)."""
    graph = _setup(env, mint)
    from datetime import UTC, datetime

    graph.add_busy(TENANT_A, "ben@contoso.example", datetime(2025, 3, 18, 9, 0, tzinfo=UTC),
                   datetime(2025, 3, 18, 9, 30, tzinfo=UTC))
    r = _book(env, mint)
    assert r.status == 409 and r.json()["error"]["code"] == "slot_taken"
    assert r.json()["error"]["details"]["occurrences"] == [
        {"index": 3, "start": "2025-03-18T09:00:00Z", "end": "2025-03-18T10:00:00Z",
         "with": [{"role": "attendee", "user": USER_A2}]}]
    skipped = _book(env, mint, {**SERIES, "onConflict": "skipClashing"})
    assert skipped.status == 202
    check = env.client.post("/api/availability/series", headers=bearer(mint()),
                            json={k: v for k, v in SERIES.items() if k != "subject"})
    assert check.status == 200, check.text
    doc = check.json()
    assert doc["clashing"] == 1 and doc["scheduleCalls"] == 2  # 11 weeks: two windows under 62 days
    assert [o["index"] for o in doc["occurrences"] if not o["free"]] == [3]
    assert doc["occurrences"][2]["clashesWith"] == [{"role": "attendee", "user": USER_A2}]
    assert doc["suggestions"] and doc["suggestions"][0]["clashing"] == 0


def test_the_same_idempotency_key_books_one_series(env: Env, mint: TokenFactory) -> None:
    """A retried POST with the same key replays the first answer and queues nothing more."""
    _setup(env, mint)
    first = _book(env, mint, None, **{"Idempotency-Key": "series-1"})
    again = _book(env, mint, None, **{"Idempotency-Key": "series-1"})
    assert first.status == again.status == 202 and first.json() == again.json()
    assert again.header("Idempotent-Replayed") == "true"
    assert len(env.queues.pending(Queues.EVENT_WRITES)) == 1


def test_cancel_from_a_date_and_the_whole_series(env: Env, mint: TokenFactory) -> None:
    """DELETE ?from= ends the series the day before; the same key with another date is 422 idempotency_key_reused."""
    _setup(env, mint)
    sid = _book(env, mint).json()["id"]
    _run_worker(env)
    key = {"Idempotency-Key": "cut-1", **bearer(mint())}
    cut = env.client.delete(f"/api/series/{sid}", headers=key, query={"from": "2025-04-22"})
    assert cut.status == 202 and cut.header("Location") == f"/api/series/{sid}"
    other = env.client.delete(f"/api/series/{sid}", headers=key, query={"from": "2025-04-29"})
    assert other.status == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    _run_worker(env)
    doc = env.client.get(f"/api/series/{sid}", headers=bearer(mint())).json()
    assert doc["status"] == "booked" and doc["cancelledFrom"] == "2025-04-22"
    assert [o["status"] for o in doc["occurrences"]] == ["booked"] * 7 + ["cancelled"] * 5
    whole = env.client.delete(f"/api/series/{sid}", headers=bearer(mint()), json={"comment": "Term ended"})
    assert whole.status == 202
    _run_worker(env)
    assert env.client.get(f"/api/series/{sid}", headers=bearer(mint())).json()["status"] == "cancelled"


def test_reschedule_the_series_and_one_occurrence(env: Env, mint: TokenFactory) -> None:
    """PATCH /api/series moves every occurrence (same ids); PATCH one occurrence onto its neighbour's day is 422."""
    _setup(env, mint)
    sid = _book(env, mint).json()["id"]
    _run_worker(env)
    ids = [o["id"] for o in env.client.get(f"/api/series/{sid}", headers=bearer(mint())).json()["occurrences"]]
    r = env.client.patch(f"/api/series/{sid}", headers=bearer(mint()),
                         json={"start": "2025-03-04T14:00:00+01:00", "end": "2025-03-04T15:00:00+01:00"})
    assert r.status == 202, r.text
    _run_worker(env)
    doc = env.client.get(f"/api/series/{sid}", headers=bearer(mint())).json()
    assert [o["id"] for o in doc["occurrences"]] == ids and doc["occurrences"][0]["start"] == "2025-03-04T13:00:00Z"
    cross = env.client.patch(f"/api/sessions/{ids[1]}", headers=bearer(mint()),
                             json={"start": "2025-03-18T14:00:00+01:00", "end": "2025-03-18T15:00:00+01:00",
                                   "timeZone": "Europe/Paris"})
    assert cross.status == 422 and cross.json()["error"]["code"] == "occurrence_crossing_boundary"


def test_only_the_organizer_changes_a_series(env: Env, mint: TokenFactory) -> None:
    """The attendee reads and gets 403 on changes; a stranger and another tenant get the same 404 as a missing id."""
    _setup(env, mint)
    sid = _book(env, mint).json()["id"]
    assert env.client.get(f"/api/series/{sid}", headers=bearer(mint(oid=USER_A2))).status == 200
    attendee = env.client.delete(f"/api/series/{sid}", headers=bearer(mint(oid=USER_A2)))
    assert attendee.status == 403
    stranger = env.client.get(f"/api/series/{sid}", headers=bearer(mint(oid=USER_B)))
    other = env.client.get(f"/api/series/{sid}", headers=bearer(mint(tid=TENANT_B)))
    missing = env.client.get("/api/series/nope", headers=bearer(mint()))
    assert stranger.status == other.status == missing.status == 404
    assert stranger.json() == missing.json() == other.json()
    assert env.client.patch(f"/api/series/{sid}", headers=bearer(mint(oid=USER_B)),
                            json={"start": "2025-03-04T14:00:00+01:00", "end": "2025-03-04T15:00:00+01:00"}
                            ).status == 404


def test_the_product_server_books_and_reads_a_series_for_a_user(env: Env, mint: TokenFactory) -> None:
    """An app token acting for Ann books a series through the same route; the app reads it as itself."""
    _setup(env, mint)
    app = mint(app=True, roles=ROLE)
    r = env.client.post("/api/sessions", headers={**bearer(app), "X-On-Behalf-Of": USER_A}, json=SERIES)
    assert r.status == 202, r.text
    sid = r.json()["seriesId"]
    mine = env.client.get(f"/api/series/{sid}", headers=bearer(mint()))
    assert mine.status == 200 and mine.json()["organizer"] == USER_A
    assert env.client.get(f"/api/series/{sid}", headers=bearer(app)).status == 200
    cancel = env.client.delete(f"/api/series/{sid}", headers={**bearer(app), "X-On-Behalf-Of": USER_A})
    assert cancel.status == 202


def test_odd_rules_are_422_never_500(env: Env, mint: TokenFactory) -> None:
    """Unknown day names, indexes, zones, huge numbers and far dates are each a 422 with a code, on both routes."""
    _setup(env, mint)
    pattern, rng = RECURRENCE["pattern"], RECURRENCE["range"]
    odd = [
        {**RECURRENCE, "pattern": {**pattern, "daysOfWeek": ["funday"]}},
        {**RECURRENCE, "pattern": {**pattern, "index": "sixth"}},
        {**RECURRENCE, "pattern": {**pattern, "firstDayOfWeek": "x"}},
        {**RECURRENCE, "pattern": {**pattern, "interval": 10**12}},
        {**RECURRENCE, "pattern": {"type": "absoluteMonthly", "dayOfMonth": 10**9}},
        {**RECURRENCE, "range": {**rng, "recurrenceTimeZone": "Not/AZone"}},
        {**RECURRENCE, "range": {**rng, "numberOfOccurrences": 10**15}},
        {**RECURRENCE, "range": {"type": "endDate", "startDate": "2025-03-04", "endDate": "9999-12-31"}},
        {**RECURRENCE, "range": {**rng, "startDate": "0001-01-01"}},
        {**RECURRENCE, "range": {**rng, "startDate": "not a date"}},
        {"pattern": pattern},
    ]
    for recurrence in odd:
        for path, given in (("/api/sessions", {**BODY, "recurrence": recurrence}),
                            ("/api/availability/series", {**BODY, "recurrence": recurrence})):
            body = {k: v for k, v in given.items() if not (path.endswith("series") and k == "subject")}
            r = env.client.post(path, headers=bearer(mint()), json=body)
            assert r.status == 422 and r.json()["error"]["code"], (path, recurrence, r.status, r.text)


def test_a_group_or_any_of_rooms_with_a_recurrence_is_422(env: Env, mint: TokenFactory) -> None:
    """A series is one pairing or partner and at most one room: attendees, hosts or any-of rooms with a recurrence
    are refused with a clear message, nothing is queued."""
    _setup(env, mint)
    single = {k: v for k, v in SERIES.items() if k != "pairingId"}
    for extra in ({"attendees": [{"user": USER_A2}]}, {"hosts": [USER_A2]}):
        r = _book(env, mint, {**single, **extra})
        assert r.status == 422 and r.json()["error"]["code"] == "validation_failed", r.text
        assert "a series takes pairingId or partner" in r.text
    r = _book(env, mint, {**SERIES, "rooms": ["room-1@a.example"]})
    assert r.status == 422 and "a series takes pairingId or partner" in r.text, r.text
    assert env.queues.pending(Queues.EVENT_WRITES) == []
