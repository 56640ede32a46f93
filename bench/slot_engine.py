"""Benchmark of the slot engine (not a test): the issue's case, seeded random data.

Two participants with 2,000 busy items each over 62 days, a 15-minute step, 30- and
60-minute slots, working hours in two different zones (Berlin and New York). Target:
under 5 ms per ``find_slots`` call. Run: ``.venv/bin/python bench/slot_engine.py``.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from datetime import time as wall
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.domain.calendar import BusyInterval, FreeBusyStatus, TimeZoneSpec, Weekday, WorkingHours
from core.domain.slots import Participant, SlotRequest, find_slots

RUNS = 200
ITEMS = 2_000
DAYS = 62
WINDOW_START = datetime(2025, 3, 1, tzinfo=UTC)  # spans the US and EU spring-forward days
WEEKDAYS = frozenset({Weekday.MONDAY, Weekday.TUESDAY, Weekday.WEDNESDAY, Weekday.THURSDAY, Weekday.FRIDAY})
STATUSES = (
    [FreeBusyStatus.BUSY] * 6
    + [FreeBusyStatus.TENTATIVE] * 2
    + [FreeBusyStatus.OOF, FreeBusyStatus.WORKING_ELSEWHERE, FreeBusyStatus.FREE]
)


def busy_items(rng: random.Random, *, shuffled: bool) -> tuple[BusyInterval, ...]:
    """2,000 items of 15-120 minutes anywhere in the 62 days, as getSchedule (sorted) or shuffled."""
    items = []
    for _ in range(ITEMS):
        start = WINDOW_START + timedelta(minutes=15 * rng.randrange(DAYS * 96))
        length = timedelta(minutes=15 * rng.randint(1, 8))
        items.append(BusyInterval(start, start + length, rng.choice(STATUSES)))
    items.sort(key=lambda item: item.start)
    if shuffled:
        random.Random(len(items)).shuffle(items)  # same items, order independent of ``rng``
    return tuple(items)


def participants(seed: int, *, shuffled: bool) -> list[Participant]:
    rng = random.Random(seed)
    berlin = WorkingHours(WEEKDAYS, wall(8), wall(18), TimeZoneSpec("W. Europe Standard Time"))
    new_york = WorkingHours(WEEKDAYS, wall(9), wall(17), TimeZoneSpec("America/New_York"))
    return [
        Participant("a@example.com", busy_items(rng, shuffled=shuffled), berlin),
        Participant("b@example.com", busy_items(rng, shuffled=shuffled), new_york),
    ]


def measure(label: str, request: SlotRequest, people: list[Participant]) -> None:
    find_slots(request, people)  # warm caches (zone resolution)
    timings = []
    count = 0
    for _ in range(RUNS):
        began = time.perf_counter()
        count = len(find_slots(request, people))
        timings.append((time.perf_counter() - began) * 1000)
    timings.sort()
    p50 = statistics.median(timings)
    p99 = timings[min(len(timings) - 1, round(0.99 * len(timings)) - 1)]
    print(
        f"{label:<48} mean {statistics.fmean(timings):6.3f} ms  p50 {p50:6.3f} ms  p99 {p99:6.3f} ms  ({count} slots)"
    )


def main() -> None:
    end = WINDOW_START + timedelta(days=DAYS)
    print(f"find_slots: 2 participants x {ITEMS} busy items, {DAYS} days, 15-min step, {RUNS} runs")
    for shuffled in (False, True):
        people = participants(20250301, shuffled=shuffled)
        order = "shuffled input" if shuffled else "sorted input"
        for duration in (30, 60):
            for hours_only in (True, False):
                request = SlotRequest(
                    window_start=WINDOW_START,
                    window_end=end,
                    duration_minutes=duration,
                    time_zone="Europe/London",
                    step_minutes=15,
                    buffer_before_minutes=5,
                    buffer_after_minutes=10,
                    working_hours_only=hours_only,
                )
                scope = "working hours" if hours_only else "any time"
                measure(f"{duration} min, {scope}, {order}", request, people)
    # Not the case: the cost of materialising ~6,000 slots when nobody is busy.
    empty = [Participant("a@example.com"), Participant("b@example.com")]
    request = SlotRequest(
        window_start=WINDOW_START,
        window_end=end,
        duration_minutes=30,
        time_zone="Europe/London",
        working_hours_only=False,
    )
    measure("(extra) 30 min, any time, empty calendars", request, empty)


if __name__ == "__main__":
    main()
