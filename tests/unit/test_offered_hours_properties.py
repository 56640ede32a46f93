"""Properties of offered hours over generated rules, DST weeks in three zones, overrides, caps and notice.

The oracle works instant by instant from Python's own zone arithmetic: an instant is
offered exactly when its local wall-clock time lies in a window of the date that governs
it (its own date's windows, or the previous date's window running past midnight unless
this date has an off/replace override), it is not too soon, and its local day and week
are below their caps. Every check samples instants at and around each quarter hour of
the window, so the expansion's segment arithmetic is never trusted by the test.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.domain.calendar import BusyInterval, FreeBusyStatus, Weekday
from core.domain.offered_hours import (
    DateOverride,
    OfferedHours,
    OverrideMode,
    WeeklyWindow,
    Window,
    offered_intervals,
    offered_spans,
    validate,
)
from core.domain.slots import Participant, SlotRequest, find_slots

PROPERTY_SETTINGS = settings(deadline=None, max_examples=80, suppress_health_check=[HealthCheck.too_slow])
ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney"]
# Spring-forward and fall-back days of 2025 in those zones: every generated window starts near one.
DST_DAYS = [date(2025, 3, 30), date(2025, 10, 26), date(2025, 3, 9), date(2025, 11, 2), date(2025, 4, 6),
            date(2025, 10, 5)]
QUARTERS_PER_DAY = 96
WEEK_QUARTERS = 7 * QUARTERS_PER_DAY
BY_ISO = {day.iso: day for day in Weekday}


@st.composite
def weekly_windows(draw: st.DrawFn) -> tuple[WeeklyWindow, ...]:
    """Up to 8 non-overlapping windows on the week's quarter-hour grid, some crossing midnight."""
    count = draw(st.integers(0, 8))
    points = sorted(draw(st.lists(st.integers(0, WEEK_QUARTERS - 1), min_size=2 * count, max_size=2 * count,
                                  unique=True)))
    out = []
    for i in range(count):
        start, end = points[2 * i], points[2 * i + 1]
        end = min(end, start + QUARTERS_PER_DAY)
        day, minute = divmod(start, QUARTERS_PER_DAY)
        out.append(WeeklyWindow(BY_ISO[day + 1], Window(minute * 15, minute * 15 + (end - start) * 15)))
    return tuple(out)


@st.composite
def date_windows(draw: st.DrawFn) -> tuple[Window, ...]:
    """1-3 non-overlapping windows starting on one date (possibly ending on the next)."""
    count = draw(st.integers(1, 3))
    points = sorted(draw(st.lists(st.integers(0, 2 * QUARTERS_PER_DAY - 1), min_size=2 * count,
                                  max_size=2 * count, unique=True)))
    out = []
    for i in range(count):
        start, end = points[2 * i], points[2 * i + 1]
        if start >= QUARTERS_PER_DAY:
            break
        out.append(Window(start * 15, min(end, start + QUARTERS_PER_DAY) * 15))
    return tuple(out) or (Window(600, 660),)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[OfferedHours, datetime, datetime, datetime | None, list[datetime]]:
    """Rules in a DST zone, a window of 1-9 days starting near a DST change, maybe a now and booked sessions."""
    zone = draw(st.sampled_from(ZONES))
    first = draw(st.sampled_from(DST_DAYS)) + timedelta(days=draw(st.integers(-3, 2)))
    start = datetime(first.year, first.month, first.day, tzinfo=UTC) + timedelta(minutes=draw(st.integers(0, 1439)))
    end = start + timedelta(minutes=draw(st.integers(60, 9 * 1440)))
    days = [first + timedelta(days=n) for n in range(-1, 11)]
    chosen = draw(st.lists(st.sampled_from(days), unique=True, max_size=4))
    overrides = []
    for day in chosen:
        mode = draw(st.sampled_from(list(OverrideMode)))
        overrides.append(DateOverride(day, mode, () if mode is OverrideMode.OFF else draw(date_windows())))
    now = None
    if draw(st.booleans()):
        now = start + timedelta(minutes=draw(st.integers(-600, 4 * 1440)))
    booked = [start + timedelta(minutes=draw(st.integers(-3 * 1440, 10 * 1440)))
              for _ in range(draw(st.integers(0, 10)))]
    rules = validate(OfferedHours(
        time_zone=zone,
        weekly=draw(weekly_windows()),
        overrides=tuple(overrides),
        min_notice_minutes=draw(st.sampled_from([0, 0, 30, 24 * 60, 3 * 1440])),
        max_per_day=draw(st.sampled_from([None, None, 1, 2])),
        max_per_week=draw(st.sampled_from([None, None, 1, 2, 4])),
    ))
    return rules, start, end, now, booked


def oracle(rules: OfferedHours, now: datetime | None, booked: list[datetime]) -> Callable[[int], bool]:
    """Is the instant ``t`` (UTC seconds) offered? From the definition, with Python's zone arithmetic."""
    zone = ZoneInfo(rules.time_zone)
    per_day = Counter(b.astimezone(zone).date() for b in booked)
    per_week: Counter[date] = Counter()
    for day, n in per_day.items():
        per_week[day - timedelta(days=day.weekday())] += n
    earliest = None if now is None else now.timestamp() + rules.min_notice_minutes * 60

    def offered(t: int) -> bool:
        if earliest is not None and t < earliest:
            return False
        wall = datetime.fromtimestamp(t, zone).replace(tzinfo=None)
        day = wall.date()
        if rules.max_per_day is not None and per_day[day] >= rules.max_per_day:
            return False
        if rules.max_per_week is not None and per_week[day - timedelta(days=day.weekday())] >= rules.max_per_week:
            return False
        minute = (wall - datetime(day.year, day.month, day.day)).total_seconds() / 60
        if any(w.start <= minute < w.end for w in rules.windows_on(day)):
            return True
        if rules.owns_whole_day(day):
            return False
        return any(w.start <= minute + 1440 < w.end for w in rules.windows_on(day - timedelta(days=1)))

    return offered


def sample_instants(start: datetime, end: datetime) -> list[int]:
    """Every quarter hour of [start, end), one second before it, and halfway to the next."""
    first = int(start.timestamp()) // 900 * 900
    out = []
    for q in range(first, int(end.timestamp()) + 1, 900):
        out += [q - 1, q, q + 450]
    return [t for t in out if start.timestamp() <= t < end.timestamp()]


def inside(spans: list[tuple[int, int]], t: int) -> bool:
    i = bisect.bisect_right([s for s, _ in spans], t) - 1
    return i >= 0 and spans[i][0] <= t < spans[i][1]


@PROPERTY_SETTINGS
@given(scenarios())
def test_offered_time_is_exactly_the_definition_instant_by_instant(
    case: tuple[OfferedHours, datetime, datetime, datetime | None, list[datetime]],
) -> None:
    """DST in three zones, windows across midnight, overrides, notice and caps: spans equal the oracle everywhere."""
    rules, start, end, now, booked = case
    spans = offered_spans(rules, int(start.timestamp()), int(end.timestamp()),
                          now=None if now is None else int(now.timestamp()),
                          booked_starts=[int(b.timestamp()) for b in booked])
    assert all(a < b for a, b in spans) and all(spans[i][1] < spans[i + 1][0] for i in range(len(spans) - 1))
    expected = oracle(rules, now, booked)
    wrong = [t for t in sample_instants(start, end) if inside(spans, t) != expected(t)]
    assert not wrong, [datetime.fromtimestamp(t, UTC).isoformat() for t in wrong[:5]]


@PROPERTY_SETTINGS
@given(scenarios())
def test_offered_is_always_inside_the_weekly_windows_or_an_override_window(
    case: tuple[OfferedHours, datetime, datetime, datetime | None, list[datetime]],
) -> None:
    """Whatever else happens, an offered instant's local time is in a weekly window or an override's window."""
    rules, start, end, now, booked = case
    zone = ZoneInfo(rules.time_zone)
    extra = {o.day: o.windows for o in rules.overrides}
    for interval in offered_intervals(rules, start, end, now=now, booked_starts=booked):
        t = interval.start
        while t < interval.end:
            wall = t.astimezone(zone).replace(tzinfo=None)
            candidates = []
            for back in (0, 1):
                day = wall.date() - timedelta(days=back)
                minute = (wall - datetime(day.year, day.month, day.day)).total_seconds() / 60
                own = [w.window for w in rules.weekly if w.day.iso == day.isoweekday()]
                candidates += [(w, minute) for w in own + list(extra.get(day, ()))]
            assert any(w.start <= m < w.end for w, m in candidates), t
            t += timedelta(minutes=7)


@PROPERTY_SETTINGS
@given(scenarios())
def test_overrides_beat_the_weekly_windows(
    case: tuple[OfferedHours, datetime, datetime, datetime | None, list[datetime]],
) -> None:
    """Nothing is offered on an off date; on a replace date only the replacement windows (or nothing) are."""
    rules, start, end, now, booked = case
    zone = ZoneInfo(rules.time_zone)
    by_day = {o.day: o for o in rules.overrides}
    for interval in offered_intervals(rules, start, end, now=now, booked_starts=booked):
        t = interval.start
        while t < interval.end:
            wall = t.astimezone(zone).replace(tzinfo=None)
            override = by_day.get(wall.date())
            assert override is None or override.mode is not OverrideMode.OFF, t
            if override is not None and override.mode is OverrideMode.REPLACE:
                minute = wall.hour * 60 + wall.minute + wall.second / 60
                assert any(w.start <= minute < w.end for w in override.windows), t
            t += timedelta(minutes=7)


@PROPERTY_SETTINGS
@given(scenarios())
def test_caps_and_notice_hold_in_the_offered_result(
    case: tuple[OfferedHours, datetime, datetime, datetime | None, list[datetime]],
) -> None:
    """No offered instant is sooner than the notice, or on a local day or Monday-started week already at its cap."""
    rules, start, end, now, booked = case
    zone = ZoneInfo(rules.time_zone)
    per_day = Counter(b.astimezone(zone).date() for b in booked)
    for interval in offered_intervals(rules, start, end, now=now, booked_starts=booked):
        if now is not None:
            assert interval.start >= now + timedelta(minutes=rules.min_notice_minutes)
        for t in (interval.start, interval.end - timedelta(seconds=1)):
            day = t.astimezone(zone).date()
            monday = day - timedelta(days=day.weekday())
            if rules.max_per_day is not None:
                assert per_day[day] < rules.max_per_day
            if rules.max_per_week is not None:
                week = sum(n for d, n in per_day.items() if monday <= d < monday + timedelta(days=7))
                assert week < rules.max_per_week


@settings(deadline=None, max_examples=40)
@given(st.sampled_from(ZONES), st.integers(-10, 10), st.integers(0, 23 * 4))
def test_a_daily_window_keeps_its_local_times_and_length_across_dst(zone: str, shift: int, quarter: int) -> None:
    """A daily window of 2 hours not touching 01:00-04:00 starts and ends at its wall times every day around a
    DST change, so its real length is 2 hours on both sides."""
    tz = ZoneInfo(zone)
    start_minute = 4 * 60 + (quarter * 15) % (18 * 60)  # 04:00 .. 21:45
    every_day = tuple(WeeklyWindow(d, Window(start_minute, start_minute + 120)) for d in Weekday)
    rules = validate(OfferedHours(zone, weekly=every_day))
    for dst_day in DST_DAYS:
        first = dst_day + timedelta(days=shift)
        window_start = datetime(first.year, first.month, first.day, tzinfo=tz) - timedelta(days=1)
        for interval in offered_intervals(rules, window_start, window_start + timedelta(days=4)):
            local_start, local_end = interval.start.astimezone(tz), interval.end.astimezone(tz)
            if interval.start <= window_start or interval.end >= window_start + timedelta(days=4):
                continue  # clipped by the query window
            assert local_start.hour * 60 + local_start.minute == start_minute
            assert interval.end - interval.start == timedelta(hours=2)
            assert local_end.hour * 60 + local_end.minute == (start_minute + 120) % 1440


@PROPERTY_SETTINGS
@given(scenarios(), st.lists(st.tuples(st.integers(0, 9 * 96), st.integers(1, 12)), max_size=25))
def test_every_slot_of_a_rule_owner_lies_inside_their_offered_time(
    case: tuple[OfferedHours, datetime, datetime, datetime | None, list[datetime]], busy: list[tuple[int, int]],
) -> None:
    """The slot engine never returns a slot that leaves the offered intervals or meets the owner's busy time."""
    rules, start, end, now, booked = case
    offered = offered_intervals(rules, start, end, now=now, booked_starts=booked)
    items = [BusyInterval(start + timedelta(minutes=15 * q), start + timedelta(minutes=15 * (q + n)),
                          FreeBusyStatus.BUSY) for q, n in busy]
    request = SlotRequest(start, end, 30, rules.time_zone, step_minutes=15, working_hours_only=False)
    owner = Participant("owner", busy=items, offered=offered)
    for slot in find_slots(request, [owner, Participant("other")]):
        assert any(i.start <= slot.start and slot.end <= i.end for i in offered), slot
        assert not any(b.start < slot.end and slot.start < b.end for b in items), slot
