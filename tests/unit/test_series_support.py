"""Shared arrangement (no tests here) for the series unit tests: the booking world plus the series services."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from core.domain.calendar import (
    GraphIdentity,
    PatternedRecurrence,
    RecurrencePattern,
    RecurrencePatternType,
    RecurrenceRange,
    RecurrenceRangeType,
    Weekday,
)
from core.domain.commands import ChangeItem
from core.domain.recurrence import expand
from core.domain.series import OnConflict, Series
from core.domain.sessions import Session
from core.names import Queues
from core.services.client_state import ClientStateKeyCache
from core.services.event_writer import WriteOutcome
from core.services.notifications import NotificationWorker
from core.services.reconcile import Reconciler
from core.services.series import SeriesRequest, SeriesService
from core.services.series_writer import SeriesWriter
from core.services.stores.series import SeriesRepository
from core.services.stores.sessions import SessionRepository
from core.services.subscriptions import SubscriptionService
from tests.unit.test_booking_support import ALICE, ALICE_ID, NOW, SUBJECT, TENANT, World

# Tuesday 3 March 2026, 10:00 UTC (11:00 in Paris): weekly for 12 weeks.
FIRST = datetime(2026, 3, 3, 10, 0, tzinfo=NOW.tzinfo)
LENGTH = timedelta(minutes=45)
ZONE = "Europe/Paris"


def weekly(count: int = 12, *, start: date | None = None, interval: int = 1,
           days: tuple[Weekday, ...] = (Weekday.TUESDAY,)) -> PatternedRecurrence:
    return PatternedRecurrence(
        RecurrencePattern(RecurrencePatternType.WEEKLY, interval, days),
        RecurrenceRange(RecurrenceRangeType.NUMBERED, start or FIRST.date(), number_of_occurrences=count),
    )


def week(n: int) -> tuple[datetime, datetime]:
    """The n-th (0-based) weekly occurrence's times: 11:00 in Paris, so 10:00Z before 29 March and 09:00Z after."""
    o = expand(weekly(104), FIRST, FIRST + LENGTH, ZONE)[n]
    return o.start, o.end


@dataclass
class SeriesWorld(World):
    """The booking world with the series service, its writer, the notification worker and the reconciler."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.series = SeriesService(self.booking, self.tables, self.queues, self.clock, self.sealer)
        self.series_writer = self.new_series_writer()
        self.notifications = NotificationWorker(self.tables, self.queues, self.graph, self.clock)
        keys = ClientStateKeyCache(self.secrets)
        subscriptions = SubscriptionService(self.tables, self.queues, self.graph, self.clock, keys,
                                            public_base_url="https://func.example.com")
        self.reconciler = Reconciler(self.tables, self.graph, self.clock, subscriptions, queues=self.queues)

    def new_series_writer(self, **kw: Any) -> SeriesWriter:
        return SeriesWriter(self.graph, self.tables, self.queues, self.clock, self.sealer,
                            on_first_booking=lambda t, u: self.hooked.append((t, u)), **kw)

    def request(self, **kw: Any) -> SeriesRequest:
        values: dict[str, Any] = {"start": FIRST, "end": FIRST + LENGTH, "time_zone": ZONE, "recurrence": weekly(),
                                  "pairing_id": "p1", "subject": SUBJECT, **kw}
        return SeriesRequest(**values)

    def book_series(self, **kw: Any) -> str:
        return self.series.book(self.caller(), self.request(**kw)).series_id

    def drain(self, *, dequeue_count: int = 1, include_delayed: bool = False) -> list[WriteOutcome]:
        """Run the right worker over every queued event write (sessions and series) until none is left."""
        outcomes: list[WriteOutcome] = []
        for _ in range(50):
            batch = self.queues.take(Queues.EVENT_WRITES, include_delayed=include_delayed)
            if not batch:
                return outcomes
            for m in batch:
                worker: Any = self.series_writer if m.body.get("kind") == "series_write" else self.writer
                outcomes.append(worker.handle(m.body, dequeue_count=dequeue_count))
        raise AssertionError("the queue never drained")

    def get(self, series_id: str) -> Series:
        return SeriesRepository(self.tables).require(TENANT, series_id).value

    def rows(self, series_id: str) -> list[Session]:
        return [r.value for r in SessionRepository(self.tables).occurrences(TENANT, series_id)]

    def master(self, series_id: str) -> str:
        master = self.get(series_id).master_event_id
        assert master is not None
        return master

    def notify(self, event_id: str, change: str = "updated", user: str = ALICE_ID) -> Any:
        """Deliver a change notification naming ``event_id`` in the organizer's mailbox."""
        return self.notifications.handle([ChangeItem(TENANT, user, event_id, change, "sub-1")])

    def organizer_instances(self, series_id: str) -> list[Any]:
        return list(self.graph.list_instances(GraphIdentity(TENANT), ALICE, self.master(series_id),
                                              FIRST - timedelta(days=1), FIRST + timedelta(days=400)))


__all__ = ["FIRST", "LENGTH", "ZONE", "OnConflict", "SeriesWorld", "week", "weekly"]
