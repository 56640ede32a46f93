"""The product's side of the fault run: a flapping webhook receiver and the "nothing lost" check.

The receiver (a real ``http.server`` in the test process) verifies each delivery on arrival with
the ``standardwebhooks`` package (400 when it does not verify), answers 30 % of POSTs with a 5xx
at random and is down (connections refused) for one long outage. So that the small run
stays fast, flapping never fails one ``webhook-id`` more than twice in a row (the outage
itself has no such limit): the retry schedule (5 s, 15 s, 45 s...) then stays short.

The check compares what the service produced with what the product received:

* lost: session events in the service's event log (``productevents``) never answered 2xx;
* foreign duplicates: two different ``webhook-id``s for one (session, version); a duplicate
  may only ever be the same ``webhook-id`` again (counted as redeliveries);
* order: per session, a 2xx for a version after a 2xx for a higher version;
* stale: a session whose newest delivered event does not show its final status and times.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook

from core.names import Tables
from core.ports import TableStore
from tests.support.receiver import Receiver


@dataclass
class FlappingReceiver:
    fail_rate: float = 0.3
    max_flaps_in_a_row: int = 2
    seed: int = 7
    receiver: Receiver = field(default_factory=Receiver)
    failures: Counter[str] = field(default_factory=Counter)
    flapped: int = 0
    outages: int = 0
    bad_signatures: int = 0
    secret: str | None = None  # set once the endpoint is registered; deliveries are verified as they arrive

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()
        self.receiver.answer = self._answer

    def _answer(self, headers: dict[str, str], body: bytes) -> int:
        webhook_id = headers.get("webhook-id", "")
        if self.secret is not None:
            try:  # as a real receiver does: on arrival (the timestamp must be within 5 minutes)
                Webhook(self.secret).verify(body, headers)
            except Exception:
                with self._lock:
                    self.bad_signatures += 1
                return 400
        with self._lock:
            if self.failures[webhook_id] < self.max_flaps_in_a_row and self._random.random() < self.fail_rate:
                self.failures[webhook_id] += 1
                self.flapped += 1
                return self._random.choice((500, 502, 503))
            self.failures[webhook_id] = 0
            return 200

    def start(self) -> FlappingReceiver:
        self.receiver.start()
        return self

    @property
    def url(self) -> str:
        return self.receiver.url

    def outage(self, seconds: float, progress: Callable[[str], None] = lambda _: None) -> threading.Thread:
        """Go down for ``seconds`` in the background (connections refused), then come back on the same port."""

        def run() -> None:
            self.receiver.stop()
            progress(f"product receiver down for {seconds:.0f} s")
            time.sleep(seconds)
            self.receiver.start()
            self.outages += 1
            progress("product receiver back")

        thread = threading.Thread(target=run, name="receiver-outage", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.receiver.stop()


@dataclass
class ProductReport:
    produced: int = 0
    delivered: int = 0
    redeliveries: int = 0
    lost: list[str] = field(default_factory=list)
    foreign_duplicates: int = 0
    order_violations: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    bad_signatures: int = 0
    flapped: int = 0
    outages: int = 0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.foreign_duplicates or self.order_violations or self.stale
                    or self.bad_signatures)

    def lines(self) -> list[str]:
        return [
            f"product events produced {self.produced}, delivered {self.delivered} "
            f"(+{self.redeliveries} same-webhook-id redeliveries), receiver 5xx {self.flapped}, "
            f"outages {self.outages}",
            f"product events lost {len(self.lost)}, foreign duplicates {self.foreign_duplicates}, "
            f"order violations {len(self.order_violations)}, stale sessions {len(self.stale)}, "
            f"bad signatures {self.bad_signatures}",
            *(f"  lost event: {x}" for x in self.lost[:10]),
            *(f"  out of order: {x}" for x in self.order_violations[:10]),
            *(f"  stale: {x}" for x in self.stale[:10]),
        ]


def series_key(series_id: str) -> str:
    """How a series' events are keyed beside sessions' (their own ordered stream)."""
    return f"r:{series_id}"


def _stream_of(data: dict[str, Any]) -> str | None:
    if data.get("sessionId"):
        return str(data["sessionId"])
    return series_key(str(data["seriesId"])) if data.get("seriesId") else None


def produced_session_events(tables: TableStore, tenant_id: str, since: datetime) -> dict[str, dict[str, Any]]:
    """Session and series events the service logged for the tenant since ``since``: event id -> {sessionId,
    version} (a series' events under ``series_key``)."""
    out: dict[str, dict[str, Any]] = {}
    for e in tables.query(Tables.PRODUCT_EVENTS, tenant_id):
        occurred = e.data.get("occurredAt")
        kind = str(e.data.get("type", ""))
        if not kind.startswith(("session.", "series.")) or not isinstance(occurred, datetime):
            continue
        if occurred < since:
            continue
        body = json.loads(str(e.data.get("body")))
        out["evt_" + e.row_key[2:]] = {"sessionId": _stream_of(body["data"]), "version": body["data"]["version"]}
    return out


def check(receiver: FlappingReceiver, secret: str, tables: TableStore, *, tenant_id: str, since: datetime,
          final: dict[str, dict[str, Any]]) -> ProductReport:
    """Compare the service's event log with what the receiver answered 2xx (module docstring); ``secret``
    must be the one the receiver verified with.

    ``final``: per session id, what GET /api/sessions/{id} shows at the end (status, start, end).
    """
    assert receiver.secret == secret
    report = ProductReport(flapped=receiver.flapped, outages=receiver.outages, bad_signatures=receiver.bad_signatures)
    produced = produced_session_events(tables, tenant_id, since)
    report.produced = len(produced)
    seen: dict[str, dict[str, Any]] = {}
    ids_by_version: dict[tuple[str, int], set[str]] = {}
    highest: dict[str, int] = {}
    latest: dict[str, dict[str, Any]] = {}
    for item in receiver.receiver.delivered():  # each one verified with the secret when it arrived
        payload = json.loads(item.body)
        data = payload.get("data") or {}
        sid, version = _stream_of(data), data.get("version")
        if sid is None or version is None:
            continue
        if item.webhook_id in seen:
            report.redeliveries += 1
        seen[item.webhook_id] = data
        ids_by_version.setdefault((sid, version), set()).add(item.webhook_id)
        if version < highest.get(sid, 0):
            report.order_violations.append(f"{sid}: v{version} after v{highest[sid]}")
        if version >= highest.get(sid, 0):
            highest[sid] = version
            latest[sid] = data
    report.delivered = len(seen)
    report.lost = sorted(f"{eid} ({p['sessionId']} v{p['version']})" for eid, p in produced.items() if eid not in seen)
    report.foreign_duplicates = sum(len(ids) - 1 for ids in ids_by_version.values())
    for sid, doc in final.items():
        last = latest.get(sid)
        if last is None:
            report.stale.append(f"{sid}: no event delivered")
            continue
        if last["status"] != doc["status"] or (
            doc["status"] == "booked" and (_utc(last["start"]) != _utc(doc["start"]) or _utc(last["end"]) != _utc(
                doc["end"]))
        ):
            report.stale.append(f"{sid}: product sees {last['status']} {last['start']}, service {doc['status']} "
                                f"{doc['start']}")
    return report


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
