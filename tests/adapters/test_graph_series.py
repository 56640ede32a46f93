"""GraphGateway's recurring-series calls against docs-shaped payloads; bodies and $select checked against the CSDL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import responses

from core.adapters.graph.gateway import (
    EVENT_SELECT,
    INSTANCE_SELECT,
    SERIES_SELECT,
    GraphGateway,
    ended_recurrence,
    event_body,
    series_body,
)
from core.domain.calendar import (
    EventType,
    GraphIdentity,
    NewEvent,
    PatternedRecurrence,
    RecurrencePattern,
    RecurrencePatternType,
    RecurrenceRange,
    RecurrenceRangeType,
    Weekday,
)
from core.domain.errors import InvalidRecurrence
from tests.adapters.test_graph_gateway import BASE, gateway  # noqa: F401  (the gateway fixture)
from tests.support.csdl import graph_model

WHO = GraphIdentity("tenant-1")
MASTER = "AAMkAGUzYRgWAAA="
T0 = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)  # Monday 09:00 in Berlin
WEEKLY = PatternedRecurrence(
    RecurrencePattern(RecurrencePatternType.WEEKLY, 1, (Weekday.MONDAY,)),
    RecurrenceRange(RecurrenceRangeType.NUMBERED, date(2025, 3, 3), number_of_occurrences=10),
)

# Shaped like api-reference/v1.0/api/event-list-instances.md's example (fields we $select).
INSTANCES_PAGE_1 = {
    "@odata.context": f"{BASE}/$metadata#users('u1')/events('{MASTER}')/instances",
    "value": [
        {
            "@odata.etag": 'W/"x3IAvB5fbUWf4XNcBFLNUwAAKuA3yQ=="',
            "id": "AAMkAGUzYAgI1sE1TatAAEYAAAAAlNFb2CNPe0ucP9you",
            "seriesMasterId": MASTER,
            "type": "exception",
            "originalStart": "2025-03-10T08:00:00Z",
            "start": {"dateTime": "2025-03-11T09:30:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": "2025-03-11T10:00:00.0000000", "timeZone": "UTC"},
            "isCancelled": False,
            "attendees": [{"type": "required", "status": {"response": "declined", "time": "2025-03-01T00:00:00Z"},
                           "emailAddress": {"address": "MeganB@contoso.com", "name": "Megan"}}],
            "organizer": {"emailAddress": {"address": "AdeleV@contoso.com", "name": "Adele"}},
        },
    ],
    "@odata.nextLink": f"{BASE}/users/u1/events/{MASTER}/instances?$skiptoken=abc",
}
INSTANCES_PAGE_2 = {
    "value": [
        {
            "id": "AAMkAGUzYAgI1ru1JMcAAEYAAAAAlNFb2CNPe0ucP9you",
            "seriesMasterId": MASTER,
            "type": "occurrence",
            "originalStart": "2025-03-17T08:00:00Z",
            "start": {"dateTime": "2025-03-17T08:00:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": "2025-03-17T08:30:00.0000000", "timeZone": "UTC"},
        }
    ]
}
MASTER_EVENT = {
    "id": MASTER,
    "type": "seriesMaster",
    "seriesMasterId": None,
    "originalStartTimeZone": "W. Europe Standard Time",
    "start": {"dateTime": "2025-03-03T08:00:00.0000000", "timeZone": "UTC"},
    "end": {"dateTime": "2025-03-03T08:30:00.0000000", "timeZone": "UTC"},
    # Graph's answer fills unused properties (event-list-instances.md, resources/patternedrecurrence.md)
    "recurrence": {
        "pattern": {"type": "weekly", "interval": 1, "month": 0, "dayOfMonth": 0, "daysOfWeek": ["monday"],
                    "firstDayOfWeek": "sunday", "index": "first"},
        "range": {"type": "numbered", "startDate": "2025-03-03", "endDate": "0001-01-01",
                  "recurrenceTimeZone": "W. Europe Standard Time", "numberOfOccurrences": 10},
    },
}


@pytest.fixture
def graph() -> Iterator[responses.RequestsMock]:
    """Records calls; at teardown every PATCH/POST body is a valid event and every $select names event fields."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps
        model = graph_model()
        problems: list[str] = []
        for call in rsps.calls:
            raw = call.request.body
            if call.request.method in ("POST", "PATCH") and raw:
                problems += model.validate("event", json.loads(raw))
            select = parse_qs(urlsplit(call.request.url or "").query).get("$select")
            if select:
                unknown = set(select[0].split(",")) - model.properties("event")
                problems += [f"unknown $select {sorted(unknown)}"] if unknown else []
        assert problems == []


def test_fixtures_and_selects_use_only_csdl_names() -> None:
    """The docs-shaped answers and the three $select lists name real event properties only."""
    model = graph_model()
    for item in INSTANCES_PAGE_1["value"] + INSTANCES_PAGE_2["value"] + [MASTER_EVENT]:  # type: ignore[operator]
        assert model.validate("event", item) == []
    for fields in (EVENT_SELECT, INSTANCE_SELECT, SERIES_SELECT):
        assert set(fields) <= model.properties("event")


def test_series_body_carries_the_recurrence_and_is_csdl_valid() -> None:
    """A series create body has the recurrence in Graph's shape, wall-clock times in the zone, nothing else new."""
    body = event_body(NewEvent(subject="Mentoring", start=T0, end=T0 + timedelta(minutes=30),
                               time_zone="Europe/Berlin", recurrence=WEEKLY, transaction_id="series-1"))
    assert body["recurrence"] == {
        "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"], "firstDayOfWeek": "sunday"},
        "range": {"type": "numbered", "startDate": "2025-03-03", "numberOfOccurrences": 10},
    }
    assert body["start"] == {"dateTime": "2025-03-03T09:00:00", "timeZone": "Europe/Berlin"}
    assert graph_model().validate("event", body) == []
    bad = PatternedRecurrence(RecurrencePattern(RecurrencePatternType.DAILY, 0), WEEKLY.range)
    with pytest.raises(InvalidRecurrence):
        event_body(NewEvent(subject="x", start=T0, end=T0 + timedelta(hours=1), recurrence=bad))


def test_list_instances_selects_metadata_and_follows_pages(
    graph: responses.RequestsMock, gateway: GraphGateway  # noqa: F811
) -> None:
    """GET .../instances with the window and $select, every page read; type, master and original start parsed."""
    graph.get(f"{BASE}/users/u1/events/{MASTER}/instances", json=INSTANCES_PAGE_1)
    window = (datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC))
    graph.get(f"{BASE}/users/u1/events/{MASTER}/instances?$skiptoken=abc", json=INSTANCES_PAGE_2)
    found = list(gateway.list_instances(WHO, "u1", MASTER, *window))
    query = parse_qs(urlsplit(graph.calls[0].request.url or "").query)
    assert query["startDateTime"] == ["2025-03-01T00:00:00Z"] and query["endDateTime"] == ["2025-04-01T00:00:00Z"]
    assert set(query["$select"][0].split(",")) == set(INSTANCE_SELECT)
    assert "subject" not in query["$select"][0] and "body" not in query["$select"][0]
    assert [(i.type, i.series_master_id) for i in found] == [(EventType.EXCEPTION, MASTER),
                                                             (EventType.OCCURRENCE, MASTER)]
    assert found[0].original_start == datetime(2025, 3, 10, 8, tzinfo=UTC)
    assert found[0].start == datetime(2025, 3, 11, 9, 30, tzinfo=UTC)
    assert found[0].attendees[0].response == "declined"
    assert len(graph.calls) == 2


def test_update_series_patches_the_master_with_rule_and_times(
    graph: responses.RequestsMock, gateway: GraphGateway  # noqa: F811
) -> None:
    """update_series sends recurrence and start/end in one PATCH on the master; a master reads back its rule."""
    graph.patch(f"{BASE}/users/u1/events/{MASTER}", json=MASTER_EVENT)
    meta = gateway.update_series(WHO, "u1", MASTER, recurrence=WEEKLY, start=T0, end=T0 + timedelta(minutes=30),
                                 time_zone="Europe/Berlin")
    sent = json.loads(graph.calls[0].request.body or "{}")
    assert set(sent) == {"recurrence", "start", "end"}
    assert meta.type == EventType.SERIES_MASTER
    assert meta.recurrence is not None and meta.recurrence.pattern == WEEKLY.pattern
    assert meta.recurrence.range.recurrence_time_zone == "W. Europe Standard Time"
    with pytest.raises(ValueError, match="nothing to change"):
        series_body(recurrence=None, start=None, end=None)
    with pytest.raises(ValueError, match="together"):
        series_body(recurrence=None, start=T0, end=None)


def test_end_series_reads_the_rule_then_patches_only_the_range(
    graph: responses.RequestsMock, gateway: GraphGateway  # noqa: F811
) -> None:
    """end_series GETs the master ($select incl. originalStartTimeZone), then PATCHes an endDate range."""
    graph.get(f"{BASE}/users/u1/events/{MASTER}", json=MASTER_EVENT)
    graph.patch(f"{BASE}/users/u1/events/{MASTER}", json=MASTER_EVENT)
    gateway.end_series(WHO, "u1", MASTER, date(2025, 3, 24))
    sent = json.loads(graph.calls[1].request.body or "{}")
    assert sent == {"recurrence": {
        "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"], "firstDayOfWeek": "sunday"},
        "range": {"type": "endDate", "startDate": "2025-03-03", "endDate": "2025-03-24",
                  "recurrenceTimeZone": "W. Europe Standard Time"},
    }}
    assert "originalStartTimeZone" in unquote(graph.calls[0].request.url or "")


def test_end_series_after_its_last_occurrence_sends_no_patch(
    graph: responses.RequestsMock, gateway: GraphGateway  # noqa: F811
) -> None:
    """A series whose 10th Monday is 5 May is not extended by ending it in June: one GET, no PATCH."""
    graph.get(f"{BASE}/users/u1/events/{MASTER}", json=MASTER_EVENT)
    meta = gateway.end_series(WHO, "u1", MASTER, date(2025, 6, 30))
    assert [c.request.method for c in graph.calls] == ["GET"]
    assert meta.recurrence is not None and meta.recurrence.range.number_of_occurrences == 10


def test_ended_recurrence_refuses_a_date_before_the_series() -> None:
    """Ending before the first day is end_before_start (cancel the series instead)."""
    with pytest.raises(InvalidRecurrence) as caught:
        ended_recurrence(WEEKLY, date(2025, 3, 2))
    assert caught.value.code == "end_before_start"


