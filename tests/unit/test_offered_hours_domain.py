"""Offered-hours rules (core/domain/offered_hours.py): validation codes, expansion, DST, overrides, caps, notice."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.domain.calendar import BusyInterval, Weekday
from core.domain.errors import OfferedHoursInvalid, UnknownTimeZone
from core.domain.offered_hours import (
    MAX_OVERRIDES,
    MAX_WINDOWS_PER_DAY,
    DateOverride,
    OfferedHours,
    OverrideMode,
    WeeklyWindow,
    Window,
    clear_of_buffers,
    clock_minutes,
    covers,
    offered_intervals,
    validate,
)
from core.domain.slots import Interval, Participant, SlotRequest, find_slots

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
MON, TUE, WED, THU, FRI, SAT, SUN = (Weekday.MONDAY, Weekday.TUESDAY, Weekday.WEDNESDAY, Weekday.THURSDAY,
                                     Weekday.FRIDAY, Weekday.SATURDAY, Weekday.SUNDAY)


def weekly(day: Weekday, start: str, end: str, *, next_day: bool = False) -> WeeklyWindow:
    return WeeklyWindow(day, Window.of(start, end, ends_next_day=next_day))


def rules(*windows: WeeklyWindow, zone: str = "Europe/Berlin", **kw: object) -> OfferedHours:
    return OfferedHours(zone, weekly=tuple(windows), **kw)  # type: ignore[arg-type]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def local(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone)  # type: ignore[misc]


def spans(r: OfferedHours, start: datetime, end: datetime, **kw: object) -> list[tuple[datetime, datetime]]:
    return [(i.start, i.end) for i in offered_intervals(r, start, end, **kw)]  # type: ignore[arg-type]


def problem_codes(exc: OfferedHoursInvalid) -> list[str]:
    return [f["type"] for f in exc.details["fields"]]


# --- validation ----------------------------------------------------------------------------------


def test_usable_rules_validate_to_themselves() -> None:
    """Two Tuesday and Thursday windows, an overnight Friday window, overrides, notice, buffers and caps pass."""
    r = rules(weekly(TUE, "14:00", "17:00"), weekly(THU, "14:00", "17:00"), weekly(THU, "18:00", "19:00"),
              weekly(FRI, "22:00", "02:00", next_day=True),
              overrides=(DateOverride(date(2025, 3, 4), OverrideMode.OFF),
                         DateOverride(date(2025, 3, 6), OverrideMode.REPLACE, (Window.of("09:00", "10:00"),))),
              min_notice_minutes=24 * 60, buffer_before_minutes=10, buffer_after_minutes=15, max_per_day=2,
              max_per_week=5)
    assert validate(r) is r


@pytest.mark.parametrize(("window", "code"), [
    (Window.of("17:00", "14:00"), "inverted_window"),
    (Window.of("14:00", "14:00"), "inverted_window"),
    (Window.of("14:00", "14:03"), "window_too_short"),
    (Window.of("14:00", "15:00", ends_next_day=True), "window_too_long"),
    (Window.of("00:00", "24:00", ends_next_day=True), "window_too_long"),
])
def test_each_unusable_window_has_its_own_code(window: Window, code: str) -> None:
    """Inverted (end not after start without endsNextDay), too short and longer-than-a-day windows are 422s."""
    with pytest.raises(OfferedHoursInvalid) as caught:
        validate(rules(WeeklyWindow(MON, window)))
    assert caught.value.code == code
    assert caught.value.http_status == 422
    assert caught.value.details["fields"][0]["loc"] == ["body", "weekly", 0]


def test_a_whole_day_and_a_day_crossing_window_are_usable() -> None:
    """00:00-24:00 and a 24-hour window starting at 09:00 are accepted (exactly a day long)."""
    validate(rules(weekly(MON, "00:00", "24:00"), weekly(WED, "09:00", "09:00", next_day=True)))


@pytest.mark.parametrize("windows", [
    (weekly(TUE, "14:00", "17:00"), weekly(TUE, "16:00", "18:00")),
    (weekly(FRI, "22:00", "02:00", next_day=True), weekly(SAT, "01:00", "03:00")),
    (weekly(SUN, "23:00", "01:00", next_day=True), weekly(MON, "00:30", "02:00")),
    (weekly(TUE, "09:00", "18:00"), weekly(TUE, "10:00", "11:00"), weekly(TUE, "12:00", "13:00")),
])
def test_overlapping_windows_are_refused_even_across_midnight_and_the_week_end(
    windows: tuple[WeeklyWindow, ...],
) -> None:
    """Overlaps on one day, through midnight, and from Sunday night into Monday morning are 422 overlapping_windows."""
    with pytest.raises(OfferedHoursInvalid) as caught:
        validate(rules(*windows))
    assert caught.value.code == "overlapping_windows"


def test_touching_windows_are_fine() -> None:
    """A window may start where another ends (they join)."""
    r = validate(rules(weekly(TUE, "09:00", "12:00"), weekly(TUE, "12:00", "13:00")))
    assert spans(r, utc(2025, 3, 4), utc(2025, 3, 5)) == [(utc(2025, 3, 4, 8), utc(2025, 3, 4, 12))]


def test_too_many_windows_a_day_is_refused() -> None:
    """More than the documented per-day limit is 422 too_many_windows."""
    many = [weekly(MON, f"{h:02d}:00", f"{h:02d}:30") for h in range(MAX_WINDOWS_PER_DAY + 1)]
    with pytest.raises(OfferedHoursInvalid) as caught:
        validate(rules(*many))
    assert caught.value.code == "too_many_windows"


@pytest.mark.parametrize(("overrides", "code"), [
    ((DateOverride(date(2025, 3, 4), OverrideMode.OFF), DateOverride(date(2025, 3, 4), OverrideMode.OFF)),
     "duplicate_override_date"),
    ((DateOverride(date(2025, 3, 4), OverrideMode.OFF, (Window.of("09:00", "10:00"),)),), "invalid_override"),
    ((DateOverride(date(2025, 3, 4), OverrideMode.REPLACE),), "invalid_override"),
    ((DateOverride(date(2025, 3, 4), OverrideMode.ADD, (Window.of("09:00", "11:00"), Window.of("10:00", "12:00"))),),
     "overlapping_windows"),
    (tuple(DateOverride(date(2025, 1, 1) + timedelta(days=n), OverrideMode.OFF) for n in range(MAX_OVERRIDES + 1)),
     "too_many_overrides"),
])
def test_unusable_overrides_have_their_own_codes(overrides: tuple[DateOverride, ...], code: str) -> None:
    """Two overrides for one date, a day off with windows, replace without windows, overlaps, too many: 422s."""
    with pytest.raises(OfferedHoursInvalid) as caught:
        validate(rules(overrides=overrides))
    assert caught.value.code == code


@pytest.mark.parametrize(("field", "value", "code"), [
    ("min_notice_minutes", -1, "notice_out_of_range"),
    ("min_notice_minutes", 30 * 1440 + 1, "notice_out_of_range"),
    ("buffer_before_minutes", 241, "buffer_out_of_range"),
    ("buffer_after_minutes", -5, "buffer_out_of_range"),
    ("max_per_day", 0, "invalid_cap"),
    ("max_per_week", 0, "invalid_cap"),
    ("max_per_day", 25, "invalid_cap"),
])
def test_out_of_range_numbers_name_their_field(field: str, value: int, code: str) -> None:
    """Notice, buffers and caps outside their documented ranges (a cap of zero included) are 422 with the field."""
    with pytest.raises(OfferedHoursInvalid) as caught:
        validate(rules(weekly(MON, "09:00", "10:00"), **{field: value}))
    assert caught.value.code == code
    assert len(caught.value.details["fields"]) == 1


def test_every_problem_is_listed_and_the_first_names_the_error() -> None:
    """Several problems at once: all are in details.fields, each with its own code."""
    with pytest.raises(OfferedHoursInvalid) as caught:
        validate(rules(weekly(MON, "10:00", "09:00"), max_per_week=0, buffer_before_minutes=999))
    assert problem_codes(caught.value) == ["inverted_window", "buffer_out_of_range", "invalid_cap"]
    assert caught.value.code == "inverted_window"


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", "Europe", "../etc/passwd", "X" * 200])
def test_a_time_zone_that_does_not_exist_is_refused(zone: str) -> None:
    """Unknown, empty, directory and absurd zone names are 422 unknown_time_zone."""
    with pytest.raises(UnknownTimeZone) as caught:
        validate(rules(weekly(MON, "09:00", "10:00"), zone=zone))
    assert caught.value.code == "unknown_time_zone"


@pytest.mark.parametrize("text", ["9:00", "24:01", "12:60", "ab:cd", "12-00", "25:00", ""])
def test_clock_times_are_strict(text: str) -> None:
    """Only HH:MM from 00:00 to 24:00 parses."""
    with pytest.raises(ValueError, match="time"):
        clock_minutes(text)


def test_window_text_round_trips_with_ends_next_day_and_midnight() -> None:
    """22:00-02:00 (next day) and 18:00-24:00 read back as they were written."""
    overnight = Window.of("22:00", "02:00", ends_next_day=True)
    assert (overnight.start, overnight.end) == (1320, 1560)
    assert (overnight.start_text(), overnight.end_text(), overnight.ends_next_day) == ("22:00", "02:00", True)
    evening = Window.of("18:00", "24:00")
    assert (evening.end_text(), evening.ends_next_day) == ("24:00", False)


# --- expansion -----------------------------------------------------------------------------------


def test_weekly_windows_become_utc_intervals_on_their_days_only() -> None:
    """Tue and Thu 14:00-17:00 Berlin in a winter week are exactly two 13:00-16:00Z intervals."""
    r = validate(rules(weekly(TUE, "14:00", "17:00"), weekly(THU, "14:00", "17:00")))
    assert spans(r, utc(2025, 1, 6), utc(2025, 1, 13)) == [
        (utc(2025, 1, 7, 13), utc(2025, 1, 7, 16)),
        (utc(2025, 1, 9, 13), utc(2025, 1, 9, 16)),
    ]


def test_a_berlin_window_stays_at_14_local_on_both_sides_of_the_dst_change() -> None:
    """14:00-17:00 Berlin is 13:00Z before 30 March 2025 and 12:00Z after; three real hours both times."""
    r = validate(rules(weekly(TUE, "14:00", "17:00")))
    found = spans(r, utc(2025, 3, 24), utc(2025, 4, 7))
    assert found == [(utc(2025, 3, 25, 13), utc(2025, 3, 25, 16)), (utc(2025, 4, 1, 12), utc(2025, 4, 1, 15))]
    for start, end in found:
        assert start.astimezone(BERLIN).hour == 14 and end.astimezone(BERLIN).hour == 17


def test_wall_times_skipped_by_spring_forward_offer_nothing() -> None:
    """On 30 March 2025 (Berlin) 02:00-03:00 does not exist: that window is empty, 01:30-02:30 lasts 30 minutes."""
    gap = validate(rules(weekly(SUN, "02:00", "03:00")))
    assert spans(gap, utc(2025, 3, 29), utc(2025, 3, 31)) == []
    half = validate(rules(weekly(SUN, "01:30", "02:30")))
    [(start, end)] = spans(half, utc(2025, 3, 29), utc(2025, 3, 31))
    assert (start, end) == (local(BERLIN, 2025, 3, 30, 1, 30).astimezone(UTC), utc(2025, 3, 30, 1))
    assert end - start == timedelta(minutes=30)


def test_wall_times_repeated_by_fall_back_are_offered_on_both_passes() -> None:
    """On 26 October 2025 (Berlin) 02:00-03:00 happens twice: the window lasts two real hours."""
    r = validate(rules(weekly(SUN, "02:00", "03:00")))
    [(start, end)] = spans(r, utc(2025, 10, 25), utc(2025, 10, 27))
    assert (start, end) == (utc(2025, 10, 26, 0), utc(2025, 10, 26, 2))


def test_a_window_crossing_midnight_runs_into_the_next_day() -> None:
    """Friday 22:00-02:00 New York is one interval ending 02:00 on Saturday."""
    r = validate(rules(weekly(FRI, "22:00", "02:00", next_day=True), zone="America/New_York"))
    [(start, end)] = spans(r, utc(2025, 1, 6), utc(2025, 1, 13))
    assert start.astimezone(NEW_YORK) == local(NEW_YORK, 2025, 1, 10, 22)
    assert end.astimezone(NEW_YORK) == local(NEW_YORK, 2025, 1, 11, 2)


def test_a_day_off_also_cuts_the_tail_of_the_previous_nights_window() -> None:
    """An off override on Saturday leaves Friday 22:00-24:00 only; Friday's window itself stays."""
    r = validate(rules(weekly(FRI, "22:00", "02:00", next_day=True),
                       overrides=(DateOverride(date(2025, 1, 11), OverrideMode.OFF),)))
    [(start, end)] = spans(r, utc(2025, 1, 6), utc(2025, 1, 13))
    assert (start, end) == (local(BERLIN, 2025, 1, 10, 22).astimezone(UTC), local(BERLIN, 2025, 1, 11).astimezone(UTC))


def test_replace_and_add_overrides_beat_or_extend_the_weekly_windows() -> None:
    """Replace swaps a Tuesday's 14-17 for 09-10; add keeps Thursday's 14-17 and adds 18-19."""
    r = validate(rules(
        weekly(TUE, "14:00", "17:00"), weekly(THU, "14:00", "17:00"),
        overrides=(DateOverride(date(2025, 1, 7), OverrideMode.REPLACE, (Window.of("09:00", "10:00"),)),
                   DateOverride(date(2025, 1, 9), OverrideMode.ADD, (Window.of("18:00", "19:00"),))),
    ))
    assert spans(r, utc(2025, 1, 6), utc(2025, 1, 13)) == [
        (utc(2025, 1, 7, 8), utc(2025, 1, 7, 9)),
        (utc(2025, 1, 9, 13), utc(2025, 1, 9, 16)),
        (utc(2025, 1, 9, 17), utc(2025, 1, 9, 18)),
    ]


def test_minimum_notice_removes_the_near_future() -> None:
    """With 24 h notice at Tuesday 15:00, Tuesday is gone and Wednesday from 15:00 on is offered."""
    r = validate(rules(*(weekly(d, "09:00", "17:00") for d in (TUE, WED)), min_notice_minutes=24 * 60,
                       zone="UTC"))
    found = spans(r, utc(2025, 1, 6), utc(2025, 1, 13), now=utc(2025, 1, 7, 15))
    assert found == [(utc(2025, 1, 8, 15), utc(2025, 1, 8, 17))]


def test_a_day_at_its_cap_offers_nothing_more() -> None:
    """maxPerDay 1 with a session on Tuesday withdraws Tuesday; Thursday stays."""
    r = validate(rules(weekly(TUE, "09:00", "17:00"), weekly(THU, "09:00", "17:00"), max_per_day=1, zone="UTC"))
    found = spans(r, utc(2025, 1, 6), utc(2025, 1, 13), booked_starts=[utc(2025, 1, 7, 20)])
    assert found == [(utc(2025, 1, 9, 9), utc(2025, 1, 9, 17))]


def test_weeks_start_on_monday_in_the_rules_zone() -> None:
    """maxPerWeek 2: sessions on Monday 6 and Sunday 12 January (Berlin) close that week, not the next.

    Monday 13 January 00:30 Berlin is still Sunday in UTC; it counts for the local week of the
    13th, so with it instead the week of the 6th stays open.
    """
    r = validate(rules(*(weekly(d, "09:00", "17:00") for d in (MON, TUE, WED, THU, FRI)), max_per_week=2))
    booked = [local(BERLIN, 2025, 1, 6, 10), local(BERLIN, 2025, 1, 12, 23, 30)]
    found = spans(r, utc(2025, 1, 6), utc(2025, 1, 20), booked_starts=booked)
    assert found[0][0] == local(BERLIN, 2025, 1, 13, 9).astimezone(UTC)
    assert len(found) == 5
    moved = [local(BERLIN, 2025, 1, 6, 10), local(BERLIN, 2025, 1, 13, 0, 30)]
    assert len(spans(r, utc(2025, 1, 6), utc(2025, 1, 20), booked_starts=moved)) == 10


def test_covers_requires_the_whole_session_inside_one_offered_stretch() -> None:
    """A session inside a window is covered; one running past its end, or in a capped day, is not."""
    r = validate(rules(weekly(TUE, "14:00", "17:00"), zone="UTC", max_per_day=1))
    assert covers(r, utc(2025, 1, 7, 14), utc(2025, 1, 7, 15))
    assert covers(r, utc(2025, 1, 7, 16), utc(2025, 1, 7, 17))
    assert not covers(r, utc(2025, 1, 7, 16, 30), utc(2025, 1, 7, 17, 30))
    assert not covers(r, utc(2025, 1, 7, 14), utc(2025, 1, 7, 15), booked_starts=[utc(2025, 1, 7, 9)])
    assert not covers(r, utc(2025, 1, 7, 14), utc(2025, 1, 7, 15), now=utc(2025, 1, 7, 14, 30))


def test_buffers_keep_time_free_around_other_sessions() -> None:
    """With 15 minutes before and 10 after: start 15 min after another session ends, end 10 min before one starts."""
    r = validate(rules(weekly(TUE, "09:00", "17:00"), zone="UTC", buffer_before_minutes=15, buffer_after_minutes=10))
    other = [(utc(2025, 1, 7, 12), utc(2025, 1, 7, 13))]
    assert clear_of_buffers(r, utc(2025, 1, 7, 13, 15), utc(2025, 1, 7, 14), other)
    assert not clear_of_buffers(r, utc(2025, 1, 7, 13, 10), utc(2025, 1, 7, 14), other)
    assert clear_of_buffers(r, utc(2025, 1, 7, 11), utc(2025, 1, 7, 11, 50), other)
    assert not clear_of_buffers(r, utc(2025, 1, 7, 11), utc(2025, 1, 7, 11, 55), other)
    assert not clear_of_buffers(r, utc(2025, 1, 7, 12, 30), utc(2025, 1, 7, 12, 45), other)


# --- the slot engine seam ------------------------------------------------------------------------


def test_the_slot_engine_only_offers_inside_a_participants_offered_intervals() -> None:
    """A participant offering 14:00-15:00 limits 30-minute slots of an otherwise free day to 14:00 and 14:30."""
    request = SlotRequest(utc(2025, 1, 7), utc(2025, 1, 8), 30, "UTC", step_minutes=30, working_hours_only=False)
    offered = [Interval(utc(2025, 1, 7, 14), utc(2025, 1, 7, 15))]
    slots = find_slots(request, [Participant("a", offered=offered), Participant("b")])
    assert [s.start.hour * 60 + s.start.minute for s in slots] == [14 * 60, 14 * 60 + 30]
    assert find_slots(request, [Participant("a", offered=[]), Participant("b")]) == []


def test_a_participants_own_buffer_widens_only_their_busy_time() -> None:
    """A 30-minute after-buffer on A's busy 12:00-13:00 removes the 11:30 slot; B's busy time keeps no buffer."""
    request = SlotRequest(utc(2025, 1, 7, 10), utc(2025, 1, 7, 16), 30, "UTC", step_minutes=30,
                          working_hours_only=False)
    a = Participant("a", busy=[BusyInterval(utc(2025, 1, 7, 12), utc(2025, 1, 7, 13))], buffer_after_minutes=30,
                    buffer_before_minutes=30)
    b = Participant("b", busy=[BusyInterval(utc(2025, 1, 7, 14), utc(2025, 1, 7, 15))])
    starts = [s.start.strftime("%H:%M") for s in find_slots(request, [a, b])]
    assert starts == ["10:00", "10:30", "11:00", "13:30", "15:00", "15:30"]


@pytest.mark.parametrize(("start", "end"), [
    (datetime(1, 1, 1, tzinfo=UTC), datetime(1, 1, 9, tzinfo=UTC)),
    (datetime(9999, 12, 24, tzinfo=UTC), datetime(9999, 12, 31, 23, tzinfo=UTC)),
])
def test_the_ends_of_the_calendar_offer_nothing_instead_of_failing(start: datetime, end: datetime) -> None:
    """Windows at year 1 or 9999 in a zone far from UTC: whatever lies beyond Python's dates is simply not offered."""
    r = validate(rules(*(weekly(d, "00:00", "24:00") for d in Weekday), zone="Pacific/Kiritimati",
                       overrides=(DateOverride(date(9999, 12, 31), OverrideMode.ADD,
                                               (Window.of("22:00", "02:00", ends_next_day=True),)),)))
    found = spans(r, start, end, booked_starts=[start], now=start)
    assert all(start <= s < e <= end for s, e in found)
