"""Shared arrangement (no tests here) for the booking and event-writer unit tests: fakes of every port, seeded."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from core.adapters.sealer import AesGcmSealer
from core.domain.errors import StorageUnavailable
from core.domain.integration import Integration, IntegrationStatus, PairingPolicy
from core.names import Queues, Tables
from core.ports import Entity
from core.services.alerts import OwnerAlerts
from core.services.authz import Caller
from core.services.booking import BookingRequest, BookingService
from core.services.event_writer import EventWriter, WriteOutcome
from core.services.stores.integrations import IntegrationRepository
from core.services.stores.pairings import Pairing, PairingRepository
from tests.support.fake_graph import FakeCalendarGateway, FakeTokenProvider
from tests.support.memory import FixedClock, InMemoryCommandQueue, InMemorySecretStore, InMemoryTableStore

TENANT = "aaaaaaaa-0000-4000-8000-00000000000a"
ALICE_ID = "a0000000-0000-4000-8000-000000000001"
BOB_ID = "a0000000-0000-4000-8000-000000000002"
CAROL_ID = "a0000000-0000-4000-8000-000000000003"
ALICE = "alice@contoso.test"
BOB = "bob@contoso.test"
CAROL = "carol@contoso.test"
ROOM = "room.oak@contoso.test"
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
START = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
END = START + timedelta(minutes=45)
SUBJECT = "Confidential subject: career plans"  # a log_guard fixed sentinel


class FlakyTables(InMemoryTableStore):
    """An in-memory table store whose next session writes can be made to fail (a crash or an outage)."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_session_updates = 0
        self.before_session_update: list[Any] = []

    def update(self, table: str, entity: Entity) -> Entity:
        if table == Tables.SESSIONS and entity.row_key.startswith("s~"):
            if self.before_session_update:
                self.before_session_update.pop(0)()
            if self.fail_session_updates > 0:
                self.fail_session_updates -= 1
                raise StorageUnavailable()
        return super().update(table, entity)


@dataclass
class World:
    """Every port faked, one tenant with Alice (mentor), Bob (mentee), Carol and a room."""

    clock: FixedClock = field(default_factory=lambda: FixedClock(NOW))
    tables: FlakyTables = field(default_factory=FlakyTables)
    secrets: InMemorySecretStore = field(default_factory=InMemorySecretStore)
    hooked: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.queues = InMemoryCommandQueue(now=self.clock.now)
        self.tokens = FakeTokenProvider([TENANT])
        self.graph = FakeCalendarGateway(tokens=self.tokens, clock=self.clock)
        for uid, address in ((ALICE_ID, ALICE), (BOB_ID, BOB), (CAROL_ID, CAROL)):
            self.graph.add_user(TENANT, address, user_id=uid)
        self.graph.add_room(TENANT, ROOM, "Oak")
        self.sealer = AesGcmSealer(self.secrets)
        self.set_integration()
        PairingRepository(self.tables).save(
            Pairing(TENANT, "p1", ALICE_ID, ALICE, BOB_ID, BOB, True, NOW)
        )
        self.booking = BookingService(self.graph, self.tables, self.queues, self.clock, self.sealer)
        self.writer = self.new_writer()

    def new_writer(self, **kw: Any) -> EventWriter:
        return EventWriter(
            self.graph, self.tables, self.queues, self.clock, self.sealer,
            alerts=OwnerAlerts(self.tables, self.queues, self.clock),
            on_first_booking=lambda t, u: self.hooked.append((t, u)), **kw,
        )

    def set_integration(self, *, policy: PairingPolicy = PairingPolicy.REGISTERED, enabled: bool = True) -> None:
        repo = IntegrationRepository(self.tables)
        found = repo.get(TENANT)
        value = Integration(TENANT, owner_email="owner@contoso.test", status=IntegrationStatus.CONNECTED,
                            pairing_policy=policy, enabled=enabled)
        repo.save(value, found.etag if found else None)

    def caller(self, oid: str = ALICE_ID) -> Caller:
        return Caller(TENANT, oid, scopes=frozenset({"access_as_user"}))

    def book(self, **kw: Any) -> str:
        request = BookingRequest(**{"start": START, "end": END, "time_zone": "Europe/Paris", "pairing_id": "p1",
                                    "subject": SUBJECT, **kw})
        return self.booking.create(self.caller(), request).session_id

    def commands(self) -> list[Any]:
        """Take every visible event-write command (what the host would hand the worker next)."""
        return [m for m in self.queues.take(Queues.EVENT_WRITES)]

    def drain(self, *, dequeue_count: int = 1, include_delayed: bool = False) -> list[WriteOutcome]:
        """Run the worker over the queued commands until none is left."""
        outcomes: list[WriteOutcome] = []
        for _ in range(50):
            batch = self.queues.take(Queues.EVENT_WRITES, include_delayed=include_delayed)
            if not batch:
                return outcomes
            outcomes.extend(self.writer.handle(m.body, dequeue_count=dequeue_count) for m in batch)
        raise AssertionError("the queue never drained")

    def alerts(self) -> list[str]:
        return [m.body["alert"] for m in self.queues.pending(Queues.OWNER_ALERTS)]

    def organizer_events(self) -> list[Any]:
        return self.graph.events_of(TENANT, ALICE)
