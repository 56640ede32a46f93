"""The fault-injection run: bookings and Outlook-side changes while Graph, storage and the host misbehave.

One run (``run_scenario``) on a ``ProcessStack`` (host process, Azurite on disk, the
simulator in this process):

1. Contoso is onboarded through the admin flow; ``organizers`` pairs of extra simulator
   users get pairings. Graph faults on for the whole run: ``throttleRate`` 30 % (429 with
   ``Retry-After``), ``failRate`` 5 % (503), latency spikes (5 % of requests + 1.5 s),
   every notification POSTed twice.
2. Bookings through ``POST /api/sessions`` (the client retries 429/503/connection
   errors, like the SPA). Halfway, the host is SIGKILLed with event writes in flight and
   started again; then Graph goes down completely for ``outage_seconds``.
3. Once every booking settled, Outlook-side changes through the simulator (organizer
   moves, organizer cancels, partner accepts or declines), one per session. Halfway,
   Azurite is stopped and started (the webhook answers 503 and Graph redelivers), then
   the host is SIGKILLed again while notifications are queued.
4. Faults off; wait until every session shows what its calendar says (the
   reconciliation timer runs every 30 s and heals anything a notification lost).
5. Failures must be visible: ``doomed`` bookings whose organizers are outside the app's
   allowed scope (Outlook answers 403 for good) must end ``failed``, and the owner must
   get exactly one alert per kind, however many sessions failed.
   Series (``series``, weekly, ``series_weeks`` long) are booked beside the first sessions, so
   the host kill meets their writes too; during the Outlook changes each gets a decline of its
   second occurrence by the partner and a move of its third by the organizer.
6. The product hears about all of it: a webhook endpoint registered right after onboarding
   points at a flapping receiver (30 % 5xx, one long outage during the Outlook changes;
   ``tests/faults/product_receiver.py``). Every session event the service logged must have
   been answered 2xx, each session's versions in order, duplicates only as the same
   ``webhook-id`` again, and each session's newest event must show its final state.

Checks (``Report``): each session and series in its expected final state (``lost`` counts
mismatches: a booking not booked, an Outlook change not reflected, an occurrence not where
Outlook has it); duplicates = events (series: masters, per ``transactionId``)
beyond one per ``transactionId`` in organizers' calendars, and beyond one copy per
``iCalUId`` in partners' calendars; owner alerts per (tenant, kind) in the outbox.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from core.services.owner_alert_worker import TEXTS
from local.simulator import seed
from tests.faults import product_receiver
from tests.faults.procstack import ProcessStack
from tests.log_guard import JWT_PATTERN

log = logging.getLogger("tests.faults")

RETRYABLE = {429, 502, 503, 504}
SUBJECT = "Confidential subject: fault run"  # must never reach a log (checked at the end)
CONTOSO_DOMAIN = seed.CONTOSO_DOMAIN


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Sizes and fault levels; the defaults are the small run of ``make test``."""

    bookings: int = 20
    changes: int = 20
    organizers: int = 10
    throttle_rate: float = 0.3
    fail_rate: float = 0.05
    spike_rate: float = 0.05
    spike_ms: int = 1500
    duplicates: int = 2
    outage_seconds: int = 10
    doomed: int = 2
    kill_host: bool = True
    restart_azurite: bool = True
    settle_timeout: float = 300.0
    receiver_fail_rate: float = 0.3
    receiver_outage_seconds: float = 15.0
    series: int = 2  # weekly series booked beside the sessions (each: one decline and one move in Outlook)
    series_weeks: int = 4

    @property
    def graph_faults(self) -> dict[str, Any]:
        return {"throttleRate": self.throttle_rate, "failRate": self.fail_rate,
                "latencySpikeRate": self.spike_rate, "latencySpikeMs": self.spike_ms,
                "retryAfterSeconds": 1, "duplicates": self.duplicates}


@dataclass
class Expected:
    """What one session must look like at the end."""

    session_id: str
    organizer: str
    partner: str
    token: str
    start: datetime
    end: datetime
    status: str = "booked"
    partner_response: str | None = None
    change: str = "none"
    partner_id: str = ""


@dataclass
class ExpectedSeries:
    """What one series must look like at the end: its occurrences' times, the partner's answers, sources."""

    series_id: str
    organizer: str
    partner: str
    token: str
    starts: list[datetime]
    minutes: int = 30
    declined: int | None = None  # the occurrence (0-based) the partner declined in Outlook
    moved: int | None = None  # the occurrence the organizer moved in Outlook
    partner_id: str = ""


@dataclass
class Report:
    """The outcome of a run (``ok`` is the pass/fail verdict)."""

    series: int = 0
    series_occurrences: int = 0
    bookings: int = 0
    changes: int = 0
    settled_booked: int = 0
    settled_failed: int = 0
    lost: list[str] = field(default_factory=list)
    duplicates: int = 0
    doomed_failed: int = 0
    doomed_expected: int = 0
    alerts: dict[str, int] = field(default_factory=dict)
    graph_status: dict[int, int] = field(default_factory=dict)
    host_kills: int = 0
    azurite_restarts: int = 0
    log_leaks: int = 0
    seconds: float = 0.0
    product: product_receiver.ProductReport = field(default_factory=product_receiver.ProductReport)

    @property
    def ok(self) -> bool:
        alerts_ok = (not self.doomed_expected) or (
            self.alerts.get(f"{seed.CONTOSO}:session_failed") == 1
            and all(n == 1 for n in self.alerts.values())
        )
        return (not self.lost and self.duplicates == 0 and self.doomed_failed == self.doomed_expected
                and alerts_ok and self.log_leaks == 0 and self.product.ok)

    def lines(self) -> list[str]:
        return [
            f"bookings {self.bookings}, Outlook-side changes {self.changes}, in {self.seconds:.0f} s",
            f"series {self.series} ({self.series_occurrences} occurrences, a decline and a move in Outlook each)",
            f"booked after faults {self.settled_booked}, failed {self.settled_failed}",
            f"lost (sessions not in their expected final state): {len(self.lost)}",
            f"duplicate events: {self.duplicates}",
            f"doomed bookings failed visibly: {self.doomed_failed}/{self.doomed_expected}",
            f"owner alerts by tenant:kind: {self.alerts}",
            f"Graph answers during the run: {dict(sorted(self.graph_status.items()))}",
            f"host SIGKILLs {self.host_kills}, Azurite restarts {self.azurite_restarts}",
            f"subjects or tokens in the host logs: {self.log_leaks}",
            *self.product.lines(),
            *(f"  lost: {x}" for x in self.lost[:20]),
        ]


# --- HTTP with a patient client --------------------------------------------------------------


def call(stack: ProcessStack, method: str, path: str, token: str | None, body: Any = None,
         *, ok: frozenset[int] = frozenset({200, 202, 204}), timeout: float = 240.0,
         headers: dict[str, str] | None = None) -> requests.Response:
    """Call the API like a well-behaved client: retry 429/5xx (honouring Retry-After) and refused connections."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            r = stack.call(method, path, token, json=body, headers=headers or {})
            in_use = r.status_code == 409 and "idempotency_key_in_use" in r.text  # the same request still running
            if r.status_code in ok or (r.status_code not in RETRYABLE and not in_use):
                return r
            wait = min(float(r.headers.get("Retry-After", "1") or 1), 5.0)
        except requests.RequestException:
            wait = 0.5
        if time.monotonic() > deadline:
            raise AssertionError(f"{method} {path} did not succeed within {timeout:.0f} s")
        time.sleep(wait)


def control(stack: ProcessStack, method: str, path: str, body: Any = None) -> Any:
    """The simulator's control API (in this process: always up)."""
    return stack.control(method, path, body)


# --- set-up ------------------------------------------------------------------------------------


def upn(name: str, domain: str = CONTOSO_DOMAIN) -> str:
    return f"{name}@{domain}"


def make_pairings(stack: ProcessStack, organizers: int) -> list[tuple[str, str, str]]:
    """``(organizer, partner, pairing id)`` for ``organizers`` pairs of extra Contoso users."""
    admin = stack.token(seed.CONTOSO_ADMIN, roles=["Integration.Admin"])
    out = []
    for i in range(organizers):
        organizer, partner = upn(f"user{i + 1:04d}"), upn(f"user{organizers + i + 1:04d}")
        pairing_id = f"faults-{i:03d}"
        r = call(stack, "PUT", f"/pairings/{pairing_id}", admin, {"mentor": organizer, "mentee": partner,
                                                                   "active": True})
        assert r.status_code == 200, r.text
        out.append((organizer, partner, pairing_id))
    return out


def book(stack: ProcessStack, token: str, pairing_id: str, start: datetime, minutes: int = 30) -> str:
    end = start + timedelta(minutes=minutes)
    # allowConflicts: this suite is about durability under faults; the times are a fixed grid, and some of the
    # simulator's extra users are busy in it (the slot re-check would rightly refuse those: tests/e2e covers it).
    body = {"pairingId": pairing_id, "start": start.isoformat(), "end": end.isoformat(), "timeZone": "UTC",
            "subject": SUBJECT, "allowConflicts": True}
    # One key for every retry of this booking: a retry whose first attempt was stored (the host was killed
    # before it answered) gets the original 202 back instead of 409 slot_taken from its own booking.
    r = call(stack, "POST", "/sessions", token, body, headers={"Idempotency-Key": uuid.uuid4().hex}, timeout=360.0)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def book_series(stack: ProcessStack, token: str, pairing_id: str, start: datetime, weeks: int) -> str:
    """A weekly series (bookAnyway, like the sessions' allowConflicts), one Idempotency-Key for all its retries."""
    body = {"pairingId": pairing_id, "start": start.isoformat(), "end": (start + timedelta(minutes=30)).isoformat(),
            "timeZone": "UTC", "subject": SUBJECT, "onConflict": "bookAnyway",
            "recurrence": {"pattern": {"type": "weekly", "daysOfWeek": [start.strftime("%A").lower()]},
                           "range": {"type": "numbered", "startDate": start.date().isoformat(),
                                     "numberOfOccurrences": weeks}}}
    r = call(stack, "POST", "/sessions", token, body, headers={"Idempotency-Key": uuid.uuid4().hex}, timeout=360.0)
    assert r.status_code == 202, r.text
    return str(r.json()["seriesId"])


def series_doc(stack: ProcessStack, e: ExpectedSeries) -> dict[str, Any]:
    r = call(stack, "GET", f"/series/{e.series_id}", e.token, ok=frozenset({200}))
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def series_mismatch(doc: dict[str, Any], e: ExpectedSeries) -> str | None:
    """Why GET /series/{id} is not what ``e`` expects (booked, every occurrence where and as it should be)."""
    if doc.get("status") != "booked" or "pendingChange" in doc:
        return f"status {doc.get('status')} {doc.get('pendingChange', '')}"
    occurrences = doc.get("occurrences") or []
    if len(occurrences) != len(e.starts):
        return f"{len(occurrences)} occurrences != {len(e.starts)}"
    for n, (o, start) in enumerate(zip(occurrences, e.starts, strict=True)):
        if o.get("status") != "booked" or _utc(o["start"]) != start:
            return f"occurrence {n + 1}: {o.get('status')} {o.get('start')} != booked {start.isoformat()}"
        answer = next((a.get("response") for a in o.get("attendees") or []), None)
        if (n == e.declined) != (answer == "declined"):
            return f"occurrence {n + 1}: partner response {answer}"
        if n == e.moved and o.get("source") != "outlook":
            return f"occurrence {n + 1}: source {o.get('source')} != outlook"
    return None


def session_doc(stack: ProcessStack, e: Expected) -> dict[str, Any]:
    r = call(stack, "GET", f"/sessions/{e.session_id}", e.token, ok=frozenset({200}))
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def wait_one_booked(stack: ProcessStack, sessions: list[Expected], timeout: float = 120.0) -> None:
    """Until the restarted host has booked something (so it holds a Graph token)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(session_doc(stack, e).get("status") == "booked" for e in sessions[-3:]):
            return
        time.sleep(0.5)


def wait_settled(stack: ProcessStack, sessions: list[Expected], timeout: float) -> dict[str, str]:
    """Poll until no session is ``pending``; their statuses."""
    deadline = time.monotonic() + timeout
    statuses: dict[str, str] = {}
    while True:
        for e in sessions:
            if statuses.get(e.session_id) in (None, "pending"):
                statuses[e.session_id] = str(session_doc(stack, e).get("status"))
        if all(s != "pending" for s in statuses.values()) or time.monotonic() > deadline:
            return statuses
        time.sleep(1.0)


# --- checking ----------------------------------------------------------------------------------


def _utc(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def mismatch(doc: dict[str, Any], e: Expected) -> str | None:
    """Why ``doc`` (GET /sessions/{id}) is not what ``e`` expects, or None."""
    if doc.get("status") != e.status:
        return f"status {doc.get('status')} != {e.status}"
    if e.status == "booked" and (_utc(doc["start"]) != e.start or _utc(doc["end"]) != e.end):
        return f"times {doc['start']}..{doc['end']} != {e.start.isoformat()}..{e.end.isoformat()}"
    if e.partner_response is not None:
        responses = {str(a.get("user", "")).lower(): a.get("response") for a in doc.get("attendees") or []}
        got = responses.get(e.partner.lower(), responses.get(e.partner_id.lower()))
        if got != e.partner_response:
            return f"partner response {got} != {e.partner_response}"
    if e.change in ("move", "cancel") and doc.get("source") != "outlook":
        return f"source {doc.get('source')} != outlook"
    return None


def converge(stack: ProcessStack, sessions: list[Expected], timeout: float,
             progress: Callable[[str], None] = lambda _: None) -> list[str]:
    """Wait until every session matches; the remaining mismatches when time runs out."""
    deadline = time.monotonic() + timeout
    reported = -1
    left = {e.session_id: e for e in sessions}
    why: dict[str, str] = {}
    while left:
        for sid, e in list(left.items()):
            problem = mismatch(session_doc(stack, e), e)
            if problem is None:
                del left[sid]
                why.pop(sid, None)
            else:
                why[sid] = f"{sid} ({e.change}): {problem}"
        if not left or time.monotonic() > deadline:
            break
        if len(left) != reported:
            reported = len(left)
            progress(f"waiting for {len(left)} session(s), e.g. {next(iter(why.values()))}")
        time.sleep(2.0)
    return [why[sid] for sid in left]


def count_duplicates(stack: ProcessStack, sessions: list[Expected]) -> int:
    """Events beyond one per session in organizers' calendars, and beyond one copy in partners'."""
    extra = 0
    by_organizer: dict[str, list[Expected]] = {}
    for e in sessions:
        by_organizer.setdefault(e.organizer, []).append(e)
    ical_of: dict[str, str] = {}
    for organizer, group in by_organizer.items():
        events = control(stack, "GET", f"/_sandbox/users/{organizer}/events")
        per_tx = Counter(str(ev.get("transactionId")) for ev in events if ev.get("transactionId"))
        for e in group:
            extra += max(0, per_tx[e.session_id] - 1)
        for ev in events:
            if ev.get("transactionId"):
                ical_of[str(ev["transactionId"])] = str(ev.get("iCalUId"))
    for partner in {e.partner for e in sessions}:
        events = control(stack, "GET", f"/_sandbox/users/{partner}/events")
        per_ical = Counter(str(ev.get("iCalUId")) for ev in events)
        for e in sessions:
            if e.partner == partner and e.session_id in ical_of:
                extra += max(0, per_ical[ical_of[e.session_id]] - 1)
    return extra


def alerts_in(outbox: Path) -> dict[str, int]:
    """Owner alerts in the local outbox by ``tenant:kind``."""
    import json

    kinds = {f"Calendar integration: {text.title}": kind.value for kind, text in TEXTS.items()}
    counts: Counter[str] = Counter()
    for path in sorted(outbox.glob("*.json")) if outbox.is_dir() else []:
        doc = json.loads(path.read_text(encoding="utf-8"))
        tenant = next((line.rsplit(" ", 1)[-1] for line in doc.get("text", "").splitlines()
                       if line.startswith("Organisation (Microsoft Entra tenant id):")), "?")
        counts[f"{tenant}:{kinds.get(doc.get('subject', ''), doc.get('subject', ''))}"] += 1
    return dict(counts)


# --- the run -----------------------------------------------------------------------------------


def _event_of(stack: ProcessStack, user: str, *, transaction_id: str | None = None,
              ical_uid: str | None = None) -> dict[str, Any] | None:
    for ev in control(stack, "GET", f"/_sandbox/users/{user}/events"):
        if (transaction_id and ev.get("transactionId") == transaction_id) or (
            ical_uid and ev.get("iCalUId") == ical_uid
        ):
            found: dict[str, Any] = ev
            return found
    return None


def outlook_change(stack: ProcessStack, e: Expected, kind: str) -> None:
    """Apply one Outlook-side change through the simulator and record what the session must become."""
    event = _event_of(stack, e.organizer, transaction_id=e.session_id)
    assert event is not None, f"no event for booked session {e.session_id}"
    base = f"/_sandbox/users/{e.organizer}/events/{event['id']}"
    if kind == "move":
        e.start, e.end = e.start + timedelta(hours=3), e.end + timedelta(hours=3, minutes=15)
        control(stack, "POST", f"{base}/move", {"start": e.start.isoformat(), "end": e.end.isoformat()})
    elif kind == "cancel":
        e.status = "cancelled"
        control(stack, "POST", f"{base}/cancel", {})
    else:
        copy = _event_of(stack, e.partner, ical_uid=str(event.get("iCalUId")))
        assert copy is not None, f"no partner copy for {e.session_id}"
        answer = "accepted" if kind == "accept" else "declined"
        control(stack, "POST", f"/_sandbox/users/{e.partner}/events/{copy['id']}/respond", {"response": answer})
        e.partner_response = answer
    e.change = kind


def series_settled(stack: ProcessStack, series: list[ExpectedSeries], timeout: float) -> None:
    """Until no series is pending (its master written and its occurrences read back)."""
    deadline = time.monotonic() + timeout
    left = list(series)
    while left and time.monotonic() < deadline:
        left = [e for e in left if series_doc(stack, e).get("status") == "pending"]
        if left:
            time.sleep(1.0)


def series_outlook_changes(stack: ProcessStack, e: ExpectedSeries) -> None:
    """The partner declines the second occurrence and the organizer moves the third by two hours, in Outlook."""
    master = _event_of(stack, e.organizer, transaction_id=e.series_id)
    assert master is not None, f"no master for series {e.series_id}"
    copy = _event_of(stack, e.partner, ical_uid=str(master.get("iCalUId")))
    assert copy is not None, f"no partner copy of series {e.series_id}"
    theirs = sorted(control(stack, "GET", f"/_sandbox/users/{e.partner}/events/{copy['id']}/instances"),
                    key=lambda i: i["originalStart"])
    control(stack, "POST", f"/_sandbox/users/{e.partner}/events/{theirs[1]['id']}/respond", {"response": "declined"})
    e.declined = 1
    mine = sorted(control(stack, "GET", f"/_sandbox/users/{e.organizer}/events/{master['id']}/instances"),
                  key=lambda i: i["originalStart"])
    e.starts[2] += timedelta(hours=2)
    control(stack, "POST", f"/_sandbox/users/{e.organizer}/events/{mine[2]['id']}/move",
            {"start": e.starts[2].isoformat(), "end": (e.starts[2] + timedelta(minutes=e.minutes)).isoformat()})
    e.moved = 2


def converge_series(stack: ProcessStack, series: list[ExpectedSeries], timeout: float,
                    progress: Callable[[str], None] = lambda _: None) -> list[str]:
    """Wait until every series matches; the remaining mismatches when time runs out."""
    deadline = time.monotonic() + timeout
    why: dict[str, str] = {}
    left = list(series)
    while left:
        still = []
        for e in left:
            problem = series_mismatch(series_doc(stack, e), e)
            if problem is not None:
                why[e.series_id] = f"series {e.series_id}: {problem}"
                still.append(e)
        left = still
        if not left or time.monotonic() > deadline:
            break
        time.sleep(2.0)
    if left:
        progress(f"{len(left)} series not as expected")
    return [why[e.series_id] for e in left]


def count_series_duplicates(stack: ProcessStack, series: list[ExpectedSeries]) -> int:
    """Masters beyond one per series in organizers' calendars, copies beyond one in partners'."""
    extra = 0
    for e in series:
        mine = [ev for ev in control(stack, "GET", f"/_sandbox/users/{e.organizer}/events")
                if ev.get("transactionId") == e.series_id]
        extra += max(0, len(mine) - 1)
        if mine:
            theirs = [ev for ev in control(stack, "GET", f"/_sandbox/users/{e.partner}/events")
                      if ev.get("iCalUId") == mine[0].get("iCalUId")]
            extra += max(0, len(theirs) - 1)
    return extra


def run_scenario(plan: FaultPlan, *, progress: Callable[[str], None] = lambda _: None,
                 work: Path | None = None) -> Report:
    """Run ``plan`` on a fresh process stack and return the report (the stack is torn down)."""
    report = Report(bookings=plan.bookings, changes=min(plan.changes, plan.bookings))
    began = time.monotonic()
    organizers = max(1, min(plan.organizers, plan.bookings))
    env = {"RECONCILE_SCHEDULE": "*/30 * * * * *", "RECONCILE_NEAR_SCHEDULE": "*/30 * * * * *",
           "RENEWAL_SCHEDULE": "0 0 0 1 1 *"}
    receiver = product_receiver.FlappingReceiver(fail_rate=plan.receiver_fail_rate).start()
    with ProcessStack.create(work=work, extra_env=env, extra_users=2 * organizers) as stack:
        stack.onboard(seed.CONTOSO, seed.CONTOSO_ADMIN, owner_email="owner@contoso.test")
        admin = stack.token(seed.CONTOSO_ADMIN, roles=["Integration.Admin"])
        created = call(stack, "POST", "/webhooks/endpoints", admin, {"url": receiver.url}, ok=frozenset({201}))
        assert created.status_code == 201, created.text
        secret = str(created.json()["secret"])
        receiver.secret = secret
        events_since = datetime.now(UTC)
        progress(f"product webhook endpoint registered ({plan.receiver_fail_rate:.0%} 5xx)")
        pairs = make_pairings(stack, organizers)
        tokens = {o: stack.token(o) for o, _, _ in pairs}
        ids = {u["userPrincipalName"].lower(): u["id"] for t in control(stack, "GET", "/_sandbox/tenants")
               for u in t["users"]}
        seq = stack.last_seq()
        control(stack, "POST", "/_sandbox/faults", plan.graph_faults)
        progress(f"faults on: {plan.graph_faults}")

        # -- bookings, with a host kill halfway and a Graph outage after ---------------------
        base = (datetime.now(UTC) + timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
        sessions: list[Expected] = []

        def one(i: int) -> Expected:
            organizer, partner, pairing_id = pairs[i % organizers]
            start = base + timedelta(minutes=45 * (i // organizers))
            sid = book(stack, tokens[organizer], pairing_id, start)
            return Expected(sid, organizer, partner, tokens[organizer], start, start + timedelta(minutes=30),
                            partner_id=ids[partner.lower()])

        series: list[ExpectedSeries] = []

        def one_series(i: int) -> ExpectedSeries:
            organizer, partner, pairing_id = pairs[i % organizers]
            start = base + timedelta(hours=12, minutes=45 * i)
            sid = book_series(stack, tokens[organizer], pairing_id, start, plan.series_weeks)
            return ExpectedSeries(sid, organizer, partner, tokens[organizer],
                                  [start + timedelta(weeks=n) for n in range(plan.series_weeks)],
                                  partner_id=ids[partner.lower()])

        half = plan.bookings // 2
        with ThreadPoolExecutor(max_workers=8) as pool:
            series_futures = [pool.submit(one_series, i) for i in range(plan.series)]
            sessions += pool.map(one, range(half))
            if plan.kill_host:
                time.sleep(1.0)  # event writes in flight
                stack.kill_host()
                report.host_kills += 1
                progress("host SIGKILLed with event writes in flight")
                pending = [pool.submit(one, i) for i in range(half, plan.bookings)]  # clients keep retrying
                time.sleep(2.0)
                stack.start_host()
                progress("host restarted")
                sessions += [f.result() for f in pending]
            else:
                sessions += pool.map(one, range(half, plan.bookings))
            series += [f.result() for f in series_futures]
        report.series = len(series)
        report.series_occurrences = len(series) * plan.series_weeks
        if plan.outage_seconds:
            # Outage with the token cached, as it is on a warm instance (a cold one: see the closing note).
            wait_one_booked(stack, sessions)
            control(stack, "POST", "/_sandbox/faults", {**plan.graph_faults, "outageSeconds": plan.outage_seconds})
            progress(f"Graph outage for {plan.outage_seconds} s")
        statuses = wait_settled(stack, sessions, plan.settle_timeout)
        series_settled(stack, series, plan.settle_timeout)
        report.settled_booked = sum(1 for s in statuses.values() if s == "booked")
        report.settled_failed = sum(1 for s in statuses.values() if s == "failed")
        progress(f"bookings settled: {Counter(statuses.values())}")

        # -- Outlook-side changes, with an Azurite restart and a host kill in the middle -----------
        control(stack, "POST", "/_sandbox/faults", plan.graph_faults)
        booked = [e for e in sessions if statuses.get(e.session_id) == "booked"]
        kinds = ["move", "accept", "cancel", "move", "decline"]
        targets = booked[: report.changes]
        third = max(1, len(targets) // 3)
        outage = receiver.outage(plan.receiver_outage_seconds, progress) if plan.receiver_outage_seconds else None
        for n, e in enumerate(targets):
            if n == third and plan.restart_azurite:
                stack.stop_azurite()
                progress("Azurite stopped")
            outlook_change(stack, e, kinds[n % len(kinds)])
            if n == third and plan.restart_azurite:
                time.sleep(2.0)
                stack.start_azurite()
                report.azurite_restarts += 1
                progress("Azurite started again")
            if n == third:
                for s_expected in series:
                    series_outlook_changes(stack, s_expected)
                progress(f"Outlook: a decline and a move in each of {len(series)} series")
            if n == 2 * third and plan.kill_host:
                stack.kill_host()
                report.host_kills += 1
                progress("host SIGKILLed with notifications queued")
                time.sleep(1.0)
                stack.start_host()
                progress("host restarted")

        # -- convergence -------------------------------------------------------------------------
        control(stack, "POST", "/_sandbox/faults", {})
        report.lost = converge(stack, sessions, plan.settle_timeout, progress)
        report.lost += converge_series(stack, series, plan.settle_timeout, progress)
        report.duplicates = count_duplicates(stack, sessions) + count_series_duplicates(stack, series)
        report.graph_status = dict(Counter(int(r["status"]) for r in stack.graph_requests(since=seq)))
        progress(f"converged: {len(report.lost)} lost, {report.duplicates} duplicates")

        # -- failures must be visible ------------------------------------------------------------
        report_doomed: list[Expected] = []
        if plan.doomed:
            report.doomed_expected = plan.doomed
            report.doomed_failed = doomed_bookings(stack, plan, progress, report_doomed)
        report.alerts = alerts_in(stack.outbox)
        if outage is not None:
            outage.join()
        report.product = product_events_converge(stack, receiver, secret, since=events_since,
                                                 sessions=sessions + report_doomed, timeout=plan.settle_timeout,
                                                 progress=progress, series=series)
        receiver.stop()
        logs = stack.host_log()
        report.log_leaks = logs.count(SUBJECT) + len(JWT_PATTERN.findall(logs))
        report.seconds = time.monotonic() - began
        if not report.ok:
            progress(f"host logs in {stack.work}")
    return report


def product_events_converge(stack: ProcessStack, receiver: product_receiver.FlappingReceiver, secret: str, *,
                            since: datetime, sessions: list[Expected], timeout: float,
                            progress: Callable[[str], None],
                            series: list[ExpectedSeries] | None = None) -> product_receiver.ProductReport:
    """Wait until the product received every session and series event (or time runs out); the comparison."""
    final = {e.session_id: session_doc(stack, e) for e in sessions}
    for e in series or []:
        doc = series_doc(stack, e)
        final[product_receiver.series_key(e.series_id)] = doc
        final.update({o["id"]: o for o in doc["occurrences"]})
    deadline = time.monotonic() + timeout
    while True:
        found = product_receiver.check(receiver, secret, stack.tables, tenant_id=seed.CONTOSO, since=since,
                                       final=final)
        if found.ok or time.monotonic() > deadline:
            progress(f"product events: {found.delivered} delivered, {len(found.lost)} lost")
            return found
        time.sleep(2.0)


def doomed_bookings(stack: ProcessStack, plan: FaultPlan, progress: Callable[[str], None],
                    doomed: list[Expected] | None = None) -> int:
    """Bookings Outlook refuses for good (organizers outside the app's allowed scope): how many end failed."""
    admin = stack.token(seed.CONTOSO_ADMIN, roles=["Integration.Admin"])
    start = (datetime.now(UTC) + timedelta(days=9)).replace(hour=1, minute=0, second=0, microsecond=0)
    doomed = doomed if doomed is not None else []
    for i in range(plan.doomed):
        organizer = upn(f"scoped{i % 3 + 1}")
        r = call(stack, "PUT", f"/pairings/faults-doomed-{i}", admin,
                 {"mentor": organizer, "mentee": upn("bob"), "active": True})
        assert r.status_code == 200, r.text
        token = stack.token(organizer)
        sid = book(stack, token, f"faults-doomed-{i}", start + timedelta(hours=i))
        doomed.append(Expected(sid, organizer, upn("bob"), token, start, start))
    statuses = wait_settled(stack, doomed, 120)
    failed = sum(1 for s in statuses.values() if s == "failed")
    # Give the owner-alert worker time to mail (and any duplicate claim time to show up).
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and f"{seed.CONTOSO}:session_failed" not in alerts_in(stack.outbox):
        time.sleep(1.0)
    time.sleep(3.0)
    progress(f"doomed bookings: {Counter(statuses.values())}")
    return failed
