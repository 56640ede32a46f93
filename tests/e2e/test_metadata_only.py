"""Storage holds metadata only: every table entity of the end-to-end Azurite, checked against an allow-list.

Runs after the booking end-to-end tests in this directory (and books, reschedules and cancels
a session itself, so it proves something when run alone): every property of every entity of
every table must be on its table's allow-list, and no test subject (the log guard's
sentinels) may appear in any table value or any message still sitting in a queue. A new
property is a deliberate decision: add it here, with the reason it is not event content.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueServiceClient

from core.names import Queues, Tables
from local.simulator import seed
from tests.e2e.conftest import Stack
from tests.e2e.test_booking_e2e import ROOM, SUBJECT, book, ensure_contoso, pair, upn, wait_status
from tests.log_guard import find_leaks, sentinel
from tests.support.receiver import Receiver

# Product-event outbox rows, written with the state they describe (core/services/stores/outbox.py).
OUTBOX: Final = ("eventId", "type", "occurredAt", "stream", "seq", "data")
SYSTEM: Final = frozenset({"PartitionKey", "RowKey", "Timestamp", "_rawPartitionKey", "_rawRowKey"})
COMMENT = sentinel("Confidential comment: metadata e2e")
GUEST_NAME = sentinel("Guest display name: metadata e2e")
# A series row: ids, addresses, responses, the rule (Graph patternedRecurrence JSON: days, intervals, dates, counts)
# and first-occurrence times per Outlook series master ("segments"), status and the pending change's times/dates.
SERIES: Final = frozenset({
    "organizerId", "organizerAddress", "attendees", "room", "segments", "status", "pendingOp", "version",
    "onlineMeeting", "onlineProvider", "joinUrl", "source", "failureReason", "pairingId", "onConflict", "skipped",
    "slotChecked", "requested", "splitFrom", "cancelFrom", "cancelAll", "seriesNote", "changeKey", "lastModified",
    "createdAt", "updatedAt", "eventVersion",
})
SEGMENT_KEYS: Final = frozenset({"recurrence", "start", "end", "timeZone", "masterEventId", "iCalUId"})

# Per table: the properties allowed, all of them ids, times, statuses, counts, addresses or
# configuration. Never a subject, body, location text or comment.
ALLOWED: Final[dict[str, frozenset[str]]] = {
    "sessions": frozenset({
        # the session (core/services/repositories.py session_to_entity)
        "organizerId", "organizerAddress", "attendees", "room", "start", "end", "timeZone", "status", "pendingOp",
        "version", "onlineMeeting", "onlineProvider", "joinUrl", "eventId", "iCalUId", "changeKey", "lastModified",
        "source", "failureReason", "pairingId", "calendarId", "createdAt", "updatedAt",
        "allowConflicts",  # a flag of the request: no slot re-check before writing
        # any-of rooms/hosts: candidate addresses and ids, room capacities, the rule, and the generated reason of
        # each choice (addresses, counts, rule names; never a guest's display name, which is never stored)
        "anyOf",
        # the per-user index rows
        "sessionId",
        # the session's event version, and product-event outbox rows (ids, type, time, order, metadata JSON)
        "eventVersion", *OUTBOX,
        # occurrences of a series: the series id, where its pattern put the occurrence, what happened to it
        "seriesId", "originalStart", "seriesNote",
        # series rows r~ (core/services/stores/series.py): SERIES below
        *SERIES,
    }),
    # a series master's event id -> its series
    "eventindex": frozenset({"sessionId", "seriesId"}),
    "pairings": frozenset({"mentorId", "mentorAddress", "menteeId", "menteeAddress", "active", "updatedAt",
                           "pairingId"}),
    "integrations": frozenset({
        "vendor", "method", "ownerEmail", "enabled", "status", "statusReason", "pairingPolicy",
        "accessTestSampleSize", "consentGrantedAt", "consentGrantedBy", "lastAccessTestId", "statusSince",
        "updatedAt",
        # registry rows of the tenant's secret NAMES (never values), so disconnect can delete them
        "name",
        # the consent row: where consent stands, its error code, and the re-proof step while Entra propagates it
        "errorCode", "verification",
        *OUTBOX,
    }),
    "accesstests": frozenset({
        "accessible", "byReason", "errorCode", "finishedAt", "graphCalls", "hints", "inaccessible", "lastFinished",
        "latest", "requestedBy", "sampled", "startedAt", "status", "userChunks",
        *(f"users{i}" for i in range(64)),  # the per-user results, chunked under the 64 KiB property limit
        "reason", "testId", "at",  # mailboxes found on premises / hybrid / unlicensed (booking refuses them)
        *OUTBOX,
    }),
    "alerts": frozenset({"detail", "kind", "lastSentAt", "sentAt", "since", "suppressed"}),
    "audit": frozenset({"action", "actor", "at", "changes",
                        # app actions: client id, user acted for, ids involved, outcome (never content)
                        "appId", "onBehalfOf", "ids", "status", "code"}),
    # Idempotency-Key records (hashed key in the RowKey): a SHA-256 of the request, state, times and
    # the route's stored reply to a session write ({id, status}) with its Location.
    "idempotency": frozenset({"fingerprint", "state", "claimedAt", "expiresAt", "status", "body", "location"}),
    # Slot claims: [session id, start, end, claimed at] per organizer and day.
    "slotclaims": frozenset({"claims"}),
    "subscriptions": frozenset({"createdAt", "expiresAt", "failures", "lifetimeMinutes", "renewAt",
                                "subscriptionId", "userId", "deltaLink", "resource", "status", "tenantId",
                                # the clientState's per-subscription nonce and key id (never the clientState)
                                "stateNonce", "keyId", "lastError",
                                # the learned lifetime; lifecycle work done; resync cooldown
                                "maxMinutes", "learnedAt", "at", "lastAt", "nextAt"}),
    "subscriptionexpiry": frozenset({"subscriptionId", "tenantId", "userId"}),
    "connections": frozenset({"userId", "purpose", "status", "reason", "username", "connectedAt", "updatedAt",
                              "connectedBy", "scope", *OUTBOX}),
    "oauthstates": frozenset({"adminOid", "purpose", "userOid", "loginHint", "mailboxOid", "createdAt", "expiresAt",
                              "flow"}),  # flow: sealed (AES-GCM), never readable
    "ratelimits": frozenset({"tokens", "at", "updatedAt"}),
    # offered hours: a zone, minute numbers of windows, dates, limits, who changed them (stores/availability_rules.py)
    "availabilityrules": frozenset({"timeZone", "weekly", "overrides", "minNoticeMinutes", "bufferBeforeMinutes",
                                    "bufferAfterMinutes", "maxPerDay", "maxPerWeek", "withinWorkingHours",
                                    "updatedAt", "updatedBy", *OUTBOX}),
    # Events to the product (core/services/stores/webhooks.py). Endpoints: configuration and secret VERSION
    # numbers (the secrets live in the secret store). Deliveries: pending rows (the signed body is the event's
    # metadata JSON), the delivery log (status, latency; never a payload) and endpoint health. Events: 30 days.
    "webhookendpoints": frozenset({"url", "events", "description", "enabled", "createdAt", "updatedAt", "createdBy",
                                   "secretVersion", "previousSecretVersion", "previousSecretUntil", "disabledReason",
                                   "disabledAt"}),
    "webhookdeliveries": frozenset({
        "eventId", "type", "stream", "seq", "body", "createdAt", "attempts", "firstAttemptAt", "nextAttemptAt",
        "parked", "at", "attempt", "outcome", "status", "latencyMs", "error", "replay", "failingSince",
        "lastSuccessAt", "lastFailureAt", "consecutiveFailures",
    }),
    "productevents": frozenset({"type", "occurredAt", "stream", "seq", "body"}),
}


def _entities(stack: Stack) -> dict[str, list[dict[str, Any]]]:
    service = TableServiceClient.from_connection_string(stack.env["AzureWebJobsStorage"])
    app_tables = set(Tables.ALL)
    return {
        t.name: [dict(e) for e in service.get_table_client(t.name).list_entities()]
        for t in service.list_tables()
        if t.name in app_tables
    }


def _queued_texts(stack: Stack) -> list[str]:
    service = QueueServiceClient.from_connection_string(stack.env["AzureWebJobsStorage"])
    texts = []
    app_queues = set(Queues.ALL) | {Queues.poison(q) for q in Queues.ALL}
    for queue in service.list_queues():
        if queue.name not in app_queues:
            continue
        for message in service.get_queue_client(queue.name).peek_messages(max_messages=32):
            raw = str(message.content)
            try:
                texts.append(base64.b64decode(raw, validate=True).decode("utf-8", "replace"))
            except (binascii.Error, ValueError):
                texts.append(raw)
    return texts


def _book_and_cut_a_series(stack: Stack, token: str, pairing_id: str, start: datetime) -> str:
    """A 3-week series with a room and a subject, then cancelled from its last week with a comment."""
    local = start.date()
    body = {"pairingId": pairing_id, "start": start.isoformat(), "end": (start + timedelta(minutes=30)).isoformat(),
            "timeZone": "UTC", "subject": SUBJECT, "room": ROOM, "onConflict": "bookAnyway",
            "recurrence": {"pattern": {"type": "weekly", "daysOfWeek": [start.strftime("%A").lower()]},
                           "range": {"type": "numbered", "startDate": local.isoformat(), "numberOfOccurrences": 3}}}
    r = stack.call("POST", "/sessions", token, body)
    assert r.status_code == 202, r.text
    series_id = str(r.json()["seriesId"])
    stack.wait_for(lambda: stack.call("GET", f"/series/{series_id}", token).json()["status"] == "booked", timeout=60)
    cut = stack.call("DELETE", f"/series/{series_id}", token, {"comment": COMMENT,
                                                               "from": (local + timedelta(days=14)).isoformat()})
    assert cut.status_code == 202, cut.text
    stack.wait_for(lambda: stack.call("GET", f"/series/{series_id}", token).json().get("cancelledFrom"), timeout=60)
    return series_id


def test_tables_hold_metadata_only_and_no_subject_anywhere(stack: Stack) -> None:
    """Every stored property is allow-listed; subjects and comments appear in no table and no queued message."""
    ensure_contoso(stack)
    receiver = Receiver().start()  # the product's webhook endpoint: its tables and messages are audited too
    admin = stack.token(seed.CONTOSO_ADMIN, roles=["Integration.Admin"])
    created = stack.call("POST", "/webhooks/endpoints", admin, {"url": receiver.url})
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    pairing_id = pair(stack, "alice", "bob")
    alice = stack.token(upn("alice"))
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=45)
    sid = book(stack, alice, pairing_id, start, room=ROOM, allowConflicts=True)
    wait_status(stack, alice, sid, "booked")
    later = start + timedelta(hours=2)
    moved = stack.call("PATCH", f"/sessions/{sid}", alice, {"start": later.isoformat(),
                                                             "end": (later + timedelta(minutes=30)).isoformat(),
                                                             "timeZone": "UTC", "allowConflicts": True},
                       headers={"Idempotency-Key": "metadata-e2e-move"})  # an idempotency record too
    assert moved.status_code == 202, moved.text
    wait_status(stack, alice, sid, "booked")
    app = stack.app_token(seed.CONTOSO, ["Sessions.ReadWrite.All"])  # an audited app action
    assert stack.call("GET", f"/sessions/{sid}", app).status_code == 200
    assert stack.call("DELETE", f"/sessions/{sid}", app, {"comment": COMMENT},
                      headers={"X-On-Behalf-Of": upn("alice"), "Idempotency-Key": "metadata-e2e-cancel"}
                      ).status_code == 202
    wait_status(stack, alice, sid, "cancelled")
    series_id = _book_and_cut_a_series(stack, alice, pairing_id, start + timedelta(days=1))
    stack.wait_for(lambda: any(r.json()["type"] == "session.cancelled" for r in receiver.delivered()))
    # A group with a named guest and any-of rooms (booked by the product's server): the guest's display name
    # goes to Outlook only, never to a table, an event to the product or a message left in a queue.
    panel = stack.call("POST", "/sessions", app, {
        "start": (start + timedelta(hours=5)).isoformat(), "end": (start + timedelta(hours=6)).isoformat(),
        "timeZone": "UTC", "allowConflicts": True, "attendees": [
            {"user": upn("bob")}, {"user": upn("carol"), "type": "optional"},
            {"email": "guest.metadata@example.org", "name": GUEST_NAME}],
        "rooms": [ROOM, "room-thames@contoso.test"], "roomChoice": "bestFit"},
        headers={"X-On-Behalf-Of": upn("alice")})
    assert panel.status_code == 202, panel.text
    wait_status(stack, alice, panel.json()["id"], "booked")
    panel_id = panel.json()["id"]
    stack.wait_for(lambda: any(r.json()["type"] == "session.booked" and r.json()["data"].get("sessionId") == panel_id
                               for r in receiver.delivered()))
    stack.wait_for(lambda: any(r.json()["type"] == "series.cancelled" for r in receiver.delivered()))
    assert not [r for r in receiver.delivered() if find_leaks(r.body.decode("utf-8", "replace"))]
    receiver.stop()

    tables = _entities(stack)
    stack.call("DELETE", f"/webhooks/endpoints/{created.json()['id']}", admin)
    assert tables.get("webhookendpoints") and tables.get("webhookdeliveries") and tables.get("productevents")
    assert tables.get("sessions"), "the booking left no session rows to check"
    unexpected: dict[str, set[str]] = {}
    leaks: list[str] = []
    for table, entities in tables.items():
        allowed = ALLOWED.get(table)
        for entity in entities:
            names = set(entity) - SYSTEM
            extra = names if allowed is None else names - allowed
            if extra:
                unexpected.setdefault(table, set()).update(extra)
            for name, value in entity.items():
                if isinstance(value, str) and find_leaks(value):
                    leaks.append(f"{table}.{name}")
    assert unexpected == {}, f"properties outside the allow-list: {unexpected}"
    series_rows = [e for e in tables["sessions"] if e["RowKey"] == f"r~{series_id}"]
    assert series_rows and set(series_rows[0]) - SYSTEM <= SERIES
    for segment in json.loads(series_rows[0]["segments"]):
        assert set(segment) <= SEGMENT_KEYS and set(segment["recurrence"]) == {"pattern", "range"}
    assert leaks == []
    assert [t for t in _queued_texts(stack) if find_leaks(t)] == []
    raw_secret = secret.removeprefix("whsec_")
    assert not [t for t in _queued_texts(stack) if raw_secret in t]
    assert not [(table, name) for table, entities in tables.items() for entity in entities
                for name, value in entity.items() if isinstance(value, str) and raw_secret in value]
