"""Benchmark of recurring series (not a test): expansion cost and the getSchedule calls a series needs.

1. Expanding a 52-week weekly series (09:00 Europe/Berlin, across both DST changes), with
   validation as a session series gets it (``validate_series``) and bare (``expand``), plus
   a 104-occurrence series at the limit.
2. Availability of a 52-week series for 2 people + 1 room: how many getSchedule calls it
   needs (windows under Graph's 62 days x groups of 20 addresses), for the whole span and
   for the occurrences only, and the floor no split can beat (``ceil(span / 62 days)``).
3. Mapping 52 occurrences to clashes against 3 x 2,000 busy items.

Run: ``.venv/bin/python bench/recurrence.py [--quick]``.
"""

from __future__ import annotations

import math
import random
import statistics
import sys
import time
from datetime import date, datetime, timedelta
from datetime import time as wall
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import latency_line, machine_line, parser
from core.domain.calendar import GET_SCHEDULE_MAX_WINDOW, BusyInterval, FreeBusyStatus, Weekday
from core.domain.recurrence import (
    PatternedRecurrence,
    RecurrencePattern,
    RecurrencePatternType,
    RecurrenceRange,
    RecurrenceRangeType,
    clashes,
    expand,
    occurrence_windows,
    schedule_calls,
    schedule_windows,
    validate_series,
)

ZONE = "Europe/Berlin"
FIRST = date(2025, 1, 6)  # a Monday; the year crosses both Berlin DST changes


def weekly(count: int) -> PatternedRecurrence:
    return PatternedRecurrence(
        RecurrencePattern(RecurrencePatternType.WEEKLY, 1, (Weekday.MONDAY,)),
        RecurrenceRange(RecurrenceRangeType.NUMBERED, FIRST, number_of_occurrences=count),
    )


def timed(label: str, runs: int, fn: object) -> None:
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append((time.perf_counter() - began) * 1000)
    print(latency_line(label, samples))


def main() -> None:
    args = parser(__doc__).parse_args()
    runs = 50 if args.quick else 500
    print(machine_line())
    start = datetime.combine(FIRST, wall(9), tzinfo=ZoneInfo(ZONE))
    end = start + timedelta(minutes=45)
    year, limit = weekly(52), weekly(104)

    timed("expand 52 weekly", runs, lambda: expand(year, start, end, ZONE))
    timed("validate_series 52 weekly (checks + expansion)", runs, lambda: validate_series(year, start, end, ZONE))
    timed("validate_series 104 weekly (the limit)", runs, lambda: validate_series(limit, start, end, ZONE))

    occurrences = expand(year, start, end, ZONE)
    hours = sorted({o.start.astimezone(ZoneInfo(ZONE)).hour for o in occurrences})
    print(f"52 occurrences, local start hours {hours}, UTC start hours {sorted({o.start.hour for o in occurrences})}")

    addresses = 3  # 2 people + 1 room
    span_start, span_end = occurrences[0].start, occurrences[-1].end
    span = span_end - span_start
    span_windows = schedule_windows(span_start, span_end)
    occ_windows = occurrence_windows(occurrences)
    floor = math.ceil(span / GET_SCHEDULE_MAX_WINDOW)
    print(
        f"getSchedule for 52 weeks, {addresses} addresses: span {span.days} d; "
        f"span windows {len(span_windows)} -> {schedule_calls(addresses, len(span_windows))} calls; "
        f"occurrence windows {len(occ_windows)} -> {schedule_calls(addresses, len(occ_windows))} calls; "
        f"floor ceil(span / 62 d) = {floor}"
    )
    longest = max(b - a for a, b in occ_windows)
    print(f"longest window {longest} (Graph's limit: under {GET_SCHEDULE_MAX_WINDOW.days} days)")

    rng = random.Random(52)
    busy = {}
    for who in ("mentor@x.test", "mentee@x.test", "room@x.test"):
        items = []
        for _ in range(2_000):
            at = span_start + timedelta(minutes=15 * rng.randrange(int(span / timedelta(minutes=15))))
            items.append(BusyInterval(at, at + timedelta(minutes=15 * rng.randint(1, 8)), FreeBusyStatus.BUSY))
        busy[who] = sorted(items, key=lambda i: i.start)
    found = clashes(occurrences, busy)
    timed("clashes 52 occurrences x 3 x 2,000 busy items", max(10, runs // 5), lambda: clashes(occurrences, busy))
    print(f"{len(found)} of 52 occurrences clash (random data); median busy per address "
          f"{statistics.median(len(v) for v in busy.values()):.0f}")


if __name__ == "__main__":
    main()
