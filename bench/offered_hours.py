"""Benchmark of the slot engine with offered hours (not a test): the issue's case plus rules, seeded random data.

Two participants with 2,000 busy items each over 62 days (the slot engine benchmark's
calendars), each with offered hours: weekly windows on every weekday (two a day, one
crossing midnight on Fridays), 20 date overrides of every kind, 10-minute buffers, caps
of 3 a day and 10 a week with 40 booked sessions to count, in two zones (Berlin and New
York, both DST changes inside the window). Figures: expanding the rules alone, the slot
engine without rules, with precomputed offered intervals, and both together (what one
availability request costs in CPU). Run: ``.venv/bin/python bench/offered_hours.py``.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import parser, percentile
from core.domain.calendar import BusyInterval, FreeBusyStatus, TimeZoneSpec, Weekday, WorkingHours
from core.domain.offered_hours import (
    DateOverride,
    OfferedHours,
    OverrideMode,
    WeeklyWindow,
    Window,
    offered_intervals,
    validate,
)
from core.domain.slots import Participant, SlotRequest, find_slots

ITEMS = 2_000
DAYS = 62
BOOKED = 40
WINDOW_START = datetime(2025, 3, 1, tzinfo=UTC)  # spans the US and EU spring-forward days
WEEKDAYS = (Weekday.MONDAY, Weekday.TUESDAY, Weekday.WEDNESDAY, Weekday.THURSDAY, Weekday.FRIDAY)
STATUSES = (
    [FreeBusyStatus.BUSY] * 6
    + [FreeBusyStatus.TENTATIVE] * 2
    + [FreeBusyStatus.OOF, FreeBusyStatus.WORKING_ELSEWHERE, FreeBusyStatus.FREE]
)


def busy_items(rng: random.Random) -> tuple[BusyInterval, ...]:
    items = []
    for _ in range(ITEMS):
        start = WINDOW_START + timedelta(minutes=15 * rng.randrange(DAYS * 96))
        items.append(BusyInterval(start, start + timedelta(minutes=15 * rng.randint(1, 8)), rng.choice(STATUSES)))
    items.sort(key=lambda item: item.start)
    return tuple(items)


def rules_for(zone: str, rng: random.Random) -> OfferedHours:
    weekly = [WeeklyWindow(d, Window.of("09:00", "12:00")) for d in WEEKDAYS]
    weekly += [WeeklyWindow(d, Window.of("13:00", "17:30")) for d in WEEKDAYS[:4]]
    weekly.append(WeeklyWindow(Weekday.FRIDAY, Window.of("20:00", "01:00", ends_next_day=True)))
    first = WINDOW_START.date()
    dates = rng.sample([first + timedelta(days=n) for n in range(DAYS)], 20)
    overrides = []
    for n, day in enumerate(sorted(dates)):
        mode = (OverrideMode.OFF, OverrideMode.REPLACE, OverrideMode.ADD)[n % 3]
        windows = () if mode is OverrideMode.OFF else (Window.of("07:00", "08:30"), Window.of("18:00", "19:00"))
        overrides.append(DateOverride(day, mode, windows))
    return validate(OfferedHours(zone, weekly=tuple(weekly), overrides=tuple(overrides), buffer_before_minutes=10,
                                 buffer_after_minutes=10, max_per_day=3, max_per_week=10))


def booked(rng: random.Random) -> list[datetime]:
    return sorted(WINDOW_START + timedelta(minutes=30 * rng.randrange(DAYS * 48)) for _ in range(BOOKED))


def measure(label: str, runs: int, work: Callable[[], int]) -> None:
    work()  # warm caches (zone resolution)
    timings = []
    count = 0
    for _ in range(runs):
        began = time.perf_counter()
        count = work()
        timings.append((time.perf_counter() - began) * 1000)
    print(f"{label:<58} mean {statistics.fmean(timings):6.3f} ms  p50 {statistics.median(timings):6.3f} ms  "
          f"p99 {percentile(timings, 0.99):6.3f} ms  ({count})")


def main() -> None:
    args = parser(__doc__).parse_args()
    runs = 20 if args.quick else 200
    rng = random.Random(20250301)
    end = WINDOW_START + timedelta(days=DAYS)
    zones = (("W. Europe Standard Time", "Europe/Berlin"), ("America/New_York", "America/New_York"))
    people = []
    for windows_zone, rules_zone in zones:
        rules = rules_for(rules_zone, rng)
        hours = WorkingHours(frozenset(WEEKDAYS), wall(8), wall(18), TimeZoneSpec(windows_zone))
        people.append((busy_items(rng), hours, rules, booked(rng)))
    now = WINDOW_START - timedelta(hours=1)

    def expand() -> int:
        return sum(len(offered_intervals(r, WINDOW_START, end, now=now, booked_starts=b)) for _, _, r, b in people)

    plain = [Participant(f"p{n}@example.com", busy, hours) for n, (busy, hours, _, _) in enumerate(people)]
    offered = [offered_intervals(r, WINDOW_START, end, now=now, booked_starts=b) for _, _, r, b in people]
    ruled = [
        Participant(f"p{n}@example.com", busy, hours, offered=offered[n], buffer_before_minutes=r.buffer_before_minutes,
                    buffer_after_minutes=r.buffer_after_minutes)
        for n, (busy, hours, r, _) in enumerate(people)
    ]
    request = SlotRequest(window_start=WINDOW_START, window_end=end, duration_minutes=30, time_zone="Europe/London",
                          step_minutes=15, now=now)

    def both() -> int:
        intervals = [offered_intervals(r, WINDOW_START, end, now=now, booked_starts=b) for _, _, r, b in people]
        participants = [
            Participant(p.id, p.busy, p.working_hours, offered=intervals[n],
                        buffer_before_minutes=people[n][2].buffer_before_minutes,
                        buffer_after_minutes=people[n][2].buffer_after_minutes)
            for n, p in enumerate(plain)
        ]
        return len(find_slots(request, participants))

    print(f"offered hours: 2 participants x {ITEMS} busy items, {DAYS} days, 9 weekly windows + 20 overrides + caps "
          f"({BOOKED} booked sessions each), 30-min slots, 15-min step, {runs} runs")
    measure("expand the rules of both participants (offered_intervals)", runs, expand)
    measure("find_slots without rules (baseline)", runs, lambda: len(find_slots(request, plain)))
    measure("find_slots with offered intervals and buffers", runs, lambda: len(find_slots(request, ruled)))
    measure("expand + find_slots (one availability request's CPU)", runs, both)
    first: date = WINDOW_START.date()
    print(f"(window {first} .. {end.date()}, {sum(len(o) for o in offered)} offered intervals in total)")


if __name__ == "__main__":
    main()
