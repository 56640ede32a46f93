"""Self-tests of the CSDL checker (tests/support/csdl.py) that every Graph fidelity test relies on."""

from __future__ import annotations

from tests.support.csdl import graph_model


def test_event_inherits_change_key_from_outlook_item_and_id_from_entity() -> None:
    """event's properties include those of its BaseType chain (outlookItem, entity) and navigation ones."""
    props = graph_model().properties("event")
    assert {"subject", "start", "end", "transactionId"} <= props
    assert {"changeKey", "lastModifiedDateTime", "id"} <= props  # outlookItem, entity
    assert "instances" in props  # navigation property
    assert [t.name for t in graph_model().lineage("event")] == [
        "microsoft.graph.event",
        "microsoft.graph.outlookItem",
        "microsoft.graph.entity",
    ]


def test_type_names_resolve_bare_alias_and_qualified() -> None:
    """'event', 'graph.event' and 'microsoft.graph.event' name the same type."""
    model = graph_model()
    assert model.resolve("event") == model.resolve("graph.event") == model.resolve("microsoft.graph.event")


def test_unknown_property_is_reported_with_its_path() -> None:
    """A misspelt property, even nested inside a collection, is named in the problems."""
    problems = graph_model().validate(
        "event",
        {"subjct": "x", "attendees": [{"emailAddress": {"address": "a@b.c", "nmae": "A"}, "type": "required"}]},
    )
    assert any("'subjct'" in p for p in problems)
    assert any("attendees[0].emailAddress" in p and "'nmae'" in p for p in problems)


def test_invalid_enum_value_is_reported() -> None:
    """attendeeType has required/optional/resource: 'person' is rejected, 'resource' accepted."""
    model = graph_model()
    assert model.validate("attendee", {"type": "person"}) != []
    assert model.validate("attendee", {"type": "resource"}) == []
    assert model.enum_members("attendeeType") == {"required", "optional", "resource"}


def test_annotations_are_ignored() -> None:
    """Keys such as @odata.etag or subject@odata.type are not properties and are not reported."""
    assert graph_model().validate("event", {"@odata.etag": 'W/"1"', "subject@odata.type": "x"}) == []


def test_odata_type_switches_to_the_derived_type() -> None:
    """A place payload with @odata.type room may use room's own properties (capacity)."""
    model = graph_model()
    assert model.validate("place", {"@odata.type": "#microsoft.graph.room", "capacity": 4}) == []
    assert model.validate("place", {"capacity": 4}) != []


def test_date_time_time_zone_rejects_an_offset_in_date_time() -> None:
    """dateTimeTimeZone.dateTime is wall-clock time: a trailing Z or offset is a shape error."""
    model = graph_model()
    assert model.validate("dateTimeTimeZone", {"dateTime": "2025-01-02T10:00:00", "timeZone": "UTC"}) == []
    assert model.validate("dateTimeTimeZone", {"dateTime": "2025-01-02T10:00:00.0000000", "timeZone": "UTC"}) == []
    assert model.validate("dateTimeTimeZone", {"dateTime": "2025-01-02T10:00:00Z", "timeZone": "UTC"}) != []


def test_primitive_types_are_checked() -> None:
    """A string where Edm.Boolean is declared, or a DateTimeOffset without offset, is reported."""
    model = graph_model()
    assert model.validate("event", {"isOnlineMeeting": "true"}) != []
    assert model.validate("subscription", {"expirationDateTime": "2025-01-01T00:00:00"}) != []
    assert model.validate("subscription", {"expirationDateTime": "2025-01-01T00:00:00.0000000Z"}) == []


def test_action_parameters_match_case_insensitively_and_unknown_ones_fail() -> None:
    """getSchedule (CSDL 'Schedules', 'StartTime') accepts camelCase names; an unknown parameter fails."""
    model = graph_model()
    body = {
        "schedules": ["a@b.c"],
        "startTime": {"dateTime": "2025-01-02T10:00:00", "timeZone": "UTC"},
        "endTime": {"dateTime": "2025-01-02T12:00:00", "timeZone": "UTC"},
        "availabilityViewInterval": 30,
    }
    assert model.validate_action_body("getSchedule", "calendar", body) == []
    assert model.validate_action_body("getSchedule", "calendar", {**body, "interval": 30}) != []
    assert model.validate_action_body("cancel", "event", {"comment": "sorry"}) == []
    assert model.validate_action_body("cancel", "event", {"reason": "sorry"}) != []
    assert model.validate_action_body("noSuchAction", "event", {}) != []


def test_change_notification_resource_data_as_graph_sends_it_is_accepted() -> None:
    """Graph's resourceData carries '#Microsoft.Graph.Event' (other casing, open type): no false problem."""
    from tests.support.csdl import graph_model

    payload = {
        "subscriptionId": "s",
        "changeType": "updated",
        "clientState": "c",
        "resource": "Users/u/Events/e",
        "tenantId": "11111111-1111-4111-8111-111111111111",
        "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": "Users/u/Events/e", "id": "e"},
    }
    assert graph_model().validate("changeNotification", payload) == []
    assert graph_model().validate("changeNotification", {**payload, "bogus": 1}) != []
