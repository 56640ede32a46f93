"""Events to the product, pure rules: which events a change produces, versions, ids, URL and address rules, retries."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from core.domain.access_test import AccessReason, AccessTestReport, RunStatus, UserResult
from core.domain.calendar import ResponseType
from core.domain.errors import ValidationFailed
from core.domain.integration import Integration, IntegrationStatus
from core.domain.product_events import (
    RETRY_CAP,
    EventType,
    ProductEvent,
    access_test_drafts,
    blocked_address,
    check_description,
    check_event_filter,
    check_url_shape,
    gives_up,
    integration_drafts,
    retry_delay,
    session_drafts,
    session_event_types,
    ulid,
    ulid_time,
    wants,
)
from core.domain.sessions import AttendeeState, ChangeSource, PendingOp, Session, SessionStatus

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
T = "tenant-1"


def pending_session() -> Session:
    start = NOW + timedelta(days=1)
    return Session(
        tenant_id=T, session_id="s1", organizer_id="org-oid", organizer_address="alice@contoso.test",
        attendees=(AttendeeState("bob@contoso.test", user_id="bob-oid"),), start=start,
        end=start + timedelta(minutes=30), time_zone="Europe/Paris", room=AttendeeState("oak@contoso.test"),
        pairing_id="p-1", created_at=NOW, updated_at=NOW,
    )


def booked() -> Session:
    return pending_session().mark_created(event_id="AAMk1", ical_uid=None, join_url="https://teams/x",
                                          online_provider="teamsForBusiness", change_key="ck1", now=NOW)


def test_the_booking_worker_creating_the_event_is_session_booked() -> None:
    """pending -> booked produces exactly session.booked with the session's metadata and the version given."""
    [draft] = session_drafts(pending_session(), booked(), 7)
    assert draft.type is EventType.SESSION_BOOKED and draft.seq == 7 and draft.stream == "s:s1"
    assert draft.data == {
        "sessionId": "s1", "tenantId": T, "organizer": "org-oid", "start": "2026-11-24T08:00:00.000Z",
        "end": "2026-11-24T08:30:00.000Z", "timeZone": "Europe/Paris", "status": "booked", "source": "platform",
        "version": 7,
        "attendees": [{"user": "bob-oid", "email": "bob@contoso.test", "type": "required", "response": "notResponded"}],
        "room": {"email": "oak@contoso.test", "response": "notResponded"}, "pairingId": "p-1",
    }


def test_requests_waiting_for_the_worker_produce_nothing() -> None:
    """A reschedule or cancel requested through the API is not an event until the worker applied it."""
    b = booked()
    later = NOW + timedelta(days=2)
    assert session_event_types(b, b.request_reschedule(later, later + timedelta(minutes=30), "UTC", NOW)) == []
    assert session_event_types(b, b.request_cancel(NOW)) == []
    assert session_event_types(None, pending_session()) == []


def test_applied_platform_changes_are_rescheduled_and_cancelled() -> None:
    """The worker applying a reschedule gives session.rescheduled (platform); applying a cancel, session.cancelled."""
    b = booked()
    later = NOW + timedelta(days=2)
    asked = b.request_reschedule(later, later + timedelta(minutes=30), "UTC", NOW)
    assert session_event_types(asked, asked.mark_rescheduled(None, NOW)) == [EventType.SESSION_RESCHEDULED]
    cancelling = b.request_cancel(NOW)
    done = cancelling.mark_cancelled(NOW)
    [draft] = session_drafts(cancelling, done, 3)
    assert draft.type is EventType.SESSION_CANCELLED and draft.data["source"] == "platform"


def test_a_failed_write_is_session_failed_with_its_reason() -> None:
    """A session whose write failed produces session.failed carrying failureReason."""
    [draft] = session_drafts(pending_session(), pending_session().mark_failed("graph_request_rejected", NOW), 2)
    assert draft.type is EventType.SESSION_FAILED and draft.data["failureReason"] == "graph_request_rejected"
    assert "failureReason" not in session_drafts(pending_session(), booked(), 2)[0].data


def test_an_outlook_move_with_a_new_rsvp_is_two_events_with_consecutive_versions() -> None:
    """A move that also carries an answer: session.rescheduled then session.response_changed, both source outlook."""
    b = booked()
    moved = replace(b, start=b.start + timedelta(hours=1), end=b.end + timedelta(hours=1), source=ChangeSource.OUTLOOK,
                    attendees=(AttendeeState("bob@contoso.test", ResponseType.DECLINED, "bob-oid"),))
    drafts = session_drafts(b, moved, 11)
    assert [d.type for d in drafts] == [EventType.SESSION_RESCHEDULED, EventType.SESSION_RESPONSE_CHANGED]
    assert [d.seq for d in drafts] == [11, 12] and [d.data["version"] for d in drafts] == [11, 12]
    assert {d.data["source"] for d in drafts} == {"outlook"}


def test_a_room_answer_alone_is_a_response_change_from_outlook() -> None:
    """The room accepting is session.response_changed with source outlook, even after a platform booking."""
    b = booked()
    assert b.room is not None
    answered = replace(b, room=AttendeeState(b.room.address, ResponseType.ACCEPTED))
    [draft] = session_drafts(b, answered, 4)
    assert draft.type is EventType.SESSION_RESPONSE_CHANGED and draft.data["source"] == "outlook"
    assert draft.data["room"] == {"email": "oak@contoso.test", "response": "accepted"}


def test_cancelled_in_outlook_is_one_cancel_event_from_outlook() -> None:
    """Cancelled in Outlook: session.cancelled with source outlook and nothing else."""
    b = booked()
    drafts = session_drafts(b, b.mark_cancelled(NOW, ChangeSource.OUTLOOK), 5)
    assert [(d.type, d.data["source"]) for d in drafts] == [(EventType.SESSION_CANCELLED, "outlook")]


def test_nothing_observable_is_no_event() -> None:
    """Saving a session whose times, status and answers did not change (a change key) produces no event."""
    b = booked()
    assert session_event_types(b, replace(b, change_key="ck2")) == []


def test_integration_status_changes_are_events_and_the_same_status_is_not() -> None:
    """integration.status_changed names the new and previous status; saving the same status gives nothing."""
    before = Integration(tenant_id=T, status=IntegrationStatus.TESTING)
    after = replace(before, status=IntegrationStatus.DEGRADED, status_reason="some_mailboxes_unreachable")
    [draft] = integration_drafts(before, after)
    assert draft.data["status"] == "degraded" and draft.data["previousStatus"] == "testing"
    assert draft.data["reason"] == "some_mailboxes_unreachable"
    assert integration_drafts(after, after) == []


def test_an_access_test_is_completed_once_when_it_finishes() -> None:
    """access_test.completed when a report leaves running (counts by reason), never again for a finished one."""
    running = AccessTestReport(T, "at-1", RunStatus.RUNNING, NOW)
    done = replace(running, status=RunStatus.COMPLETED, finished_at=NOW, users=(
        UserResult("u1", None, AccessReason.ACCESSIBLE), UserResult("u2", None, AccessReason.OUTSIDE_APP_SCOPE)))
    [draft] = access_test_drafts(running, done)
    assert draft.data["sampled"] == 2 and draft.data["accessible"] == 1
    assert draft.data["byReason"] == {"accessible": 1, "outside_app_scope": 1}
    assert access_test_drafts(done, done) == [] and access_test_drafts(None, running) == []


def test_payload_is_type_timestamp_data_and_never_carries_content() -> None:
    """The body is {type, timestamp, data}; a session event has no subject, body or location field."""
    [draft] = session_drafts(pending_session(), booked(), 1)
    event = ProductEvent("evt_1", draft.type, T, NOW, draft.data, draft.stream, draft.seq)
    body = json.loads(event.body())
    assert set(body) == {"type", "timestamp", "data"} and body["timestamp"] == "2026-11-23T08:00:00.000Z"
    assert not {"subject", "body", "bodyPreview", "location", "joinUrl"} & set(body["data"])


def test_ulids_sort_by_time_and_give_their_time_back() -> None:
    """ULIDs are 26 characters, ordered by time, and decode to the millisecond they were made for."""
    a = ulid(NOW, bytes(10))
    b = ulid(NOW + timedelta(milliseconds=1), bytes(10))
    assert len(a) == 26 and a < b and ulid_time(a) == NOW
    with pytest.raises(ValueError):
        ulid_time("not-a-ulid")


def test_retry_delays_grow_to_a_cap_with_bounded_jitter() -> None:
    """5 s, 15 s, 45 s ... at most 3 h, each within +/- 20 %; retries last at least 24 hours in total."""
    assert retry_delay(1, 0.5) == timedelta(seconds=5)
    assert retry_delay(2, 0.5) == timedelta(seconds=15)
    assert retry_delay(30, 0.5) == RETRY_CAP
    assert timedelta(seconds=4) <= retry_delay(1, 0.0) < retry_delay(1, 0.999) <= timedelta(seconds=6)
    first = NOW
    at, attempts = first, 0
    while not gives_up(first, at):
        attempts += 1
        at += retry_delay(attempts, 0.0)  # the shortest jitter everywhere
    assert at - first >= timedelta(hours=24) and attempts < 30


@pytest.mark.parametrize(("address", "reason"), [
    ("52.96.10.10", None),
    ("2603:1036::1", None),
    ("127.0.0.1", "address_loopback"),
    ("::1", "address_loopback"),
    ("10.1.2.3", "address_private"),
    ("172.16.0.1", "address_private"),
    ("192.168.1.1", "address_private"),
    ("fd12::1", "address_private"),
    ("169.254.169.254", "address_metadata"),
    ("fd00:ec2::254", "address_metadata"),
    ("168.63.129.16", "address_metadata"),
    ("169.254.1.1", "address_link_local"),
    ("fe80::1", "address_link_local"),
    ("100.64.0.1", "address_cgnat"),
    ("224.0.0.1", "address_multicast"),
    ("ff02::1", "address_multicast"),
    ("0.0.0.0", "address_unspecified"),
    ("::", "address_unspecified"),
    ("::ffff:10.0.0.1", "address_private"),
    ("::ffff:169.254.169.254", "address_metadata"),
    ("64:ff9b::a9fe:a9fe", "address_metadata"),
    ("2002:a00:1::", "address_private"),
    ("192.0.2.10", "address_private"),
])
def test_private_and_metadata_addresses_are_refused(address: str, reason: str | None) -> None:
    """Only global unicast addresses may receive webhooks (embedded IPv4 in IPv6 included)."""
    assert blocked_address(address, local_mode=False) == reason


def test_loopback_is_allowed_only_in_local_mode() -> None:
    """Local mode lets loopback through (a receiver on the developer's machine), nothing else private."""
    assert blocked_address("127.0.0.1", local_mode=True) is None
    assert blocked_address("10.0.0.1", local_mode=True) == "address_private"


@pytest.mark.parametrize(("url", "local", "code"), [
    ("http://hooks.example.com/x", False, "url_not_https"),
    ("http://127.0.0.1:9000/x", False, "url_not_https"),
    ("http://hooks.example.com/x", True, "url_not_https"),
    ("ftp://hooks.example.com/x", False, "url_not_https"),
    ("https://user:pw@hooks.example.com/x", False, "url_has_credentials"),
    ("https://hooks.example.com/x#frag", False, "url_invalid"),
    ("https://hooks.example.com:99999/x", False, "url_invalid"),
    ("https://" + "a" * 2050 + ".com", False, "url_too_long"),
    ("/relative", False, "url_not_https"),
])
def test_url_shape_errors_have_clear_codes(url: str, local: bool, code: str) -> None:
    """Each broken URL rule is a 422 with its own code."""
    with pytest.raises(ValidationFailed) as caught:
        check_url_shape(url, local_mode=local)
    assert caught.value.code == code


def test_http_to_loopback_is_fine_in_local_mode() -> None:
    """http://127.0.0.1:<port> and http://localhost pass the shape check in local mode only."""
    assert check_url_shape("http://127.0.0.1:9000/hook", local_mode=True).port == 9000
    assert check_url_shape("http://localhost/hook", local_mode=True).port == 80
    assert check_url_shape("https://hooks.example.com/x", local_mode=False).port == 443


def test_event_filters_name_known_types_and_descriptions_have_a_limit() -> None:
    """Unknown types (ping included) are 422 unknown_event_type; a 501-character description is too long."""
    assert check_event_filter(["session.cancelled", "session.booked", "session.booked"]) == [
        "session.booked", "session.cancelled"]
    for bad in (["session.moved"], ["ping"]):
        with pytest.raises(ValidationFailed) as caught:
            check_event_filter(bad)
        assert caught.value.code == "unknown_event_type"
    with pytest.raises(ValidationFailed) as long:
        check_description("x" * 501)
    assert long.value.code == "description_too_long"
    assert wants([], EventType.SESSION_BOOKED) and not wants([], EventType.PING)
    assert not wants(["session.booked"], EventType.SESSION_CANCELLED)


def test_a_pending_session_rescheduled_before_booking_is_booked_with_the_new_times() -> None:
    """A reschedule of a not-yet-created session stays pending (no event) and is booked later with the new times."""
    p = pending_session()
    later = NOW + timedelta(days=3)
    moved = p.request_reschedule(later, later + timedelta(minutes=30), "UTC", NOW)
    assert moved.pending_op is PendingOp.CREATE and session_event_types(p, moved) == []
    made = moved.mark_created(event_id="e", ical_uid=None, join_url=None, online_provider=None, change_key=None,
                              now=NOW)
    [draft] = session_drafts(moved, made, 2)
    assert draft.type is EventType.SESSION_BOOKED and draft.data["start"] == "2026-11-26T08:00:00.000Z"
    assert made.status is SessionStatus.BOOKED
