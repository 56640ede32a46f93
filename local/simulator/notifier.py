"""Outbound webhooks: the subscription validation handshake and change/lifecycle notifications.

Notifications are queued by state changes (under the state lock) and POSTed by one
background thread (never under the lock). Items that queue up for the same URL are
sent together in one ``{"value": [...]}`` body, as Graph does. A 5xx answer or a
network error is retried with back-off; faults can switch delivery off or send every
POST several times (Graph is observed to deliver duplicates).

The simulator only ever calls loopback addresses: anything else is refused, so a
local run can never POST to the internet.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from local.simulator.timeutil import iso_z, now_utc

log = logging.getLogger("local.simulator.notifier")

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def is_allowed_url(url: str) -> bool:
    """https anywhere would be Graph's rule; locally only loopback hosts (http or https)."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and (parts.hostname or "") in _LOOPBACK


def validate_endpoint(url: str, *, timeout: float, verify: str | bool) -> bool:
    """Graph's handshake: POST ?validationToken=..., expect 200 + the exact token as text."""
    token = f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
    sep = "&" if "?" in url else "?"
    try:
        resp = requests.post(
            f"{url}{sep}validationToken={quote(token)}",
            data=b"",
            headers={"Content-Type": "text/plain; charset=utf-8"},
            timeout=timeout,
            verify=verify,
        )
    except requests.RequestException:
        return False
    return resp.status_code == 200 and resp.text == token


@dataclass
class Delivery:
    """One attempted POST, for the control API (no clientState, no event data)."""

    at: str
    url: str
    items: int
    status: int | None
    attempt: int
    kind: str

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "url": self.url,
            "items": self.items,
            "status": self.status,
            "attempt": self.attempt,
            "kind": self.kind,
        }


@dataclass
class _Pending:
    url: str
    items: list[dict[str, Any]] = field(default_factory=list)
    kind: str = "change"


class Notifier:
    """A background sender of change and lifecycle notifications."""

    def __init__(self, *, verify: str | bool, retry_delays: tuple[float, ...], faults: Any) -> None:
        self._verify = verify
        self._retry_delays = retry_delays
        self._faults = faults  # callable returning (enabled, duplicates)
        self._queue: deque[tuple[str, dict[str, Any], str]] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._stop = False
        self.deliveries: deque[Delivery] = deque(maxlen=2000)
        self.dropped = 0
        self._session = requests.Session()
        self._thread = threading.Thread(target=self._run, name="sim-notifier", daemon=True)
        self._thread.start()

    def enqueue(self, url: str, item: dict[str, Any], kind: str = "change") -> None:
        """Queue one notification item for ``url`` (non-blocking; safe under the state lock)."""
        with self._cond:
            self._queue.append((url, item, kind))
            self._cond.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until nothing is queued or being sent (for tests and scripted demos)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=5)
        self._session.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                self._busy = True
            # let a burst of changes collect into one POST per URL
            time.sleep(0.02)
            with self._cond:
                batch = list(self._queue)
                self._queue.clear()
            try:
                self._send_all(batch)
            except Exception:  # the sender thread must survive anything
                log.exception("notification sender failed")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _send_all(self, batch: list[tuple[str, dict[str, Any], str]]) -> None:
        grouped: dict[tuple[str, str], _Pending] = {}
        for url, item, kind in batch:
            grouped.setdefault((url, kind), _Pending(url, kind=kind)).items.append(item)
        enabled, duplicates = self._faults()
        for pending in grouped.values():
            if not enabled:
                self.dropped += len(pending.items)
                continue
            for _ in range(max(1, duplicates)):
                self._deliver(pending)

    def _deliver(self, pending: _Pending) -> None:
        shown_url = pending.url.split("?")[0]
        if not is_allowed_url(pending.url):
            self.deliveries.append(Delivery(iso_z(now_utc()), shown_url, len(pending.items), None, 0, pending.kind))
            return
        body = {"value": pending.items}
        for attempt, delay in enumerate((0.0, *self._retry_delays)):
            if delay:
                time.sleep(delay)
            status: int | None
            try:
                # a fresh connection per POST: receivers may close idle keep-alive sockets at any time
                resp = self._session.post(
                    pending.url, json=body, timeout=10, verify=self._verify, headers={"Connection": "close"}
                )
                status = resp.status_code
            except requests.RequestException:
                status = None
            self.deliveries.append(
                Delivery(iso_z(now_utc()), shown_url, len(pending.items), status, attempt + 1, pending.kind)
            )
            if status is not None and status < 500:
                return
