"""Graph time-zone names and custom zones resolve to the real rules (core/domain/timezones.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tzlocal.windows_tz import win_tz

from core.domain.calendar import TimeZoneSpec, TransitionRule, Weekday
from core.domain.errors import UnknownTimeZone, ValidationFailed
from core.domain.timezones import GraphCustomZone, iana_name, is_valid_iana, resolve_zone

# Custom zones built the way Graph reports them (bias: local = UTC - bias).
PACIFIC = TimeZoneSpec(
    "Customized Time Zone",
    bias_minutes=480,
    standard=TransitionRule(time(2), 1, Weekday.SUNDAY, 11),
    daylight=TransitionRule(time(2), 2, Weekday.SUNDAY, 3, bias_minutes=-60),
)
CENTRAL_EUROPE = TimeZoneSpec(
    "Customized Time Zone",
    bias_minutes=-60,
    standard=TransitionRule(time(3), 5, Weekday.SUNDAY, 10),
    daylight=TransitionRule(time(2), 5, Weekday.SUNDAY, 3, bias_minutes=-60),
)
SYDNEY = TimeZoneSpec(
    "Customized Time Zone",
    bias_minutes=-600,
    standard=TransitionRule(time(3), 1, Weekday.SUNDAY, 4),
    daylight=TransitionRule(time(2), 1, Weekday.SUNDAY, 10, bias_minutes=-60),
)
EQUIVALENTS = [
    (PACIFIC, "America/Los_Angeles"),
    (CENTRAL_EUROPE, "Europe/Berlin"),
    (SYDNEY, "Australia/Sydney"),
]
# Instants 2024-01-01 .. 2027-01-01 (within the current rules of all three zones).
INSTANTS = st.integers(min_value=1_704_067_200, max_value=1_798_761_600)


@pytest.mark.parametrize("windows_name", sorted(win_tz))
def test_every_cldr_windows_name_resolves_to_its_iana_zone(windows_name: str) -> None:
    """Each Windows zone name in the CLDR table resolves to the IANA zone CLDR maps it to."""
    zone = resolve_zone(TimeZoneSpec(windows_name))
    assert isinstance(zone, ZoneInfo)
    assert zone.key == win_tz[windows_name]
    assert iana_name(TimeZoneSpec(windows_name)) == win_tz[windows_name]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Pacific Standard Time", "America/Los_Angeles"),
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("Europe/Paris", "Europe/Paris"),
        ("tzone://Microsoft/Utc", "Etc/UTC"),
        ("UTC", "Etc/UTC"),
        ("pacific standard time", "America/Los_Angeles"),
        ("  India Standard Time ", "Asia/Calcutta"),
    ],
)
def test_graph_names_map_to_iana(name: str, expected: str) -> None:
    """Windows, IANA, Graph-only and oddly cased/padded names all map to an IANA name."""
    assert iana_name(TimeZoneSpec(name)) == expected
    assert ZoneInfo(expected).utcoffset(datetime(2025, 1, 15)) == resolve_zone(TimeZoneSpec(name)).utcoffset(
        datetime(2025, 1, 15)
    )


def test_unknown_name_raises_a_validation_error_naming_the_zone() -> None:
    """A name we cannot map raises UnknownTimeZone (a 422 ValidationFailed) carrying the name."""
    with pytest.raises(UnknownTimeZone) as caught:
        resolve_zone(TimeZoneSpec("Mars Standard Time"))
    assert isinstance(caught.value, ValidationFailed)
    assert caught.value.code == "unknown_time_zone"
    assert caught.value.details == {"timeZone": "Mars Standard Time"}
    assert iana_name(TimeZoneSpec("Mars Standard Time")) is None


def test_custom_marker_without_rules_is_rejected() -> None:
    """Graph's custom-zone name without a bias cannot be resolved and says why."""
    with pytest.raises(UnknownTimeZone, match="without its bias"):
        resolve_zone(TimeZoneSpec("tzone://Microsoft/Custom"))


def test_custom_zone_with_impossible_rule_is_rejected() -> None:
    """A custom zone whose rule names month 13 is reported instead of guessed at."""
    spec = TimeZoneSpec(
        "Broken",
        bias_minutes=0,
        standard=TransitionRule(time(2), 1, Weekday.SUNDAY, 13),
        daylight=TransitionRule(time(2), 1, Weekday.SUNDAY, 3, bias_minutes=-60),
    )
    with pytest.raises(UnknownTimeZone, match="rules are not valid"):
        resolve_zone(spec)


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("Europe/Berlin", True),
        ("UTC", True),
        ("America/Argentina/Buenos_Aires", True),
        ("", False),
        ("America", False),
        ("../../etc/passwd", False),
        ("/etc/localtime", False),
        ("Not/AZone", False),
        ("Pacific Standard Time", False),
        ("x" * 500, False),
    ],
)
def test_is_valid_iana_accepts_only_loadable_zone_names(name: str, valid: bool) -> None:
    """Only real IANA zone keys pass; directories, paths, Windows names and junk do not."""
    assert is_valid_iana(name) is valid


def test_custom_zone_has_no_iana_name() -> None:
    """A custom zone has rules, not a name, so iana_name gives None rather than a guess."""
    assert iana_name(PACIFIC) is None
    assert isinstance(resolve_zone(PACIFIC), GraphCustomZone)


@pytest.mark.parametrize(("spec", "iana"), EQUIVALENTS)
@settings(deadline=None, max_examples=150)
@given(instant=INSTANTS)
def test_custom_zone_converts_utc_like_the_equivalent_iana_zone(spec: TimeZoneSpec, iana: str, instant: int) -> None:
    """UTC -> local through a custom zone gives the same wall time, offset and fold as IANA."""
    custom = datetime.fromtimestamp(instant, resolve_zone(spec))
    real = datetime.fromtimestamp(instant, ZoneInfo(iana))
    assert custom.replace(tzinfo=None) == real.replace(tzinfo=None)
    assert custom.utcoffset() == real.utcoffset()
    assert custom.dst() == real.dst()
    assert custom.fold == real.fold
    assert custom.timestamp() == instant


@pytest.mark.parametrize(("spec", "iana"), EQUIVALENTS)
@settings(deadline=None, max_examples=150)
@given(instant=INSTANTS, fold=st.sampled_from([0, 1]))
def test_custom_zone_reads_wall_times_like_the_equivalent_iana_zone(
    spec: TimeZoneSpec, iana: str, instant: int, fold: int
) -> None:
    """Local -> UTC (incl. gaps and repeated hours, either fold) matches the IANA zone."""
    wall = datetime.fromtimestamp(instant, UTC).replace(tzinfo=None)
    custom = wall.replace(tzinfo=resolve_zone(spec), fold=fold)
    real = wall.replace(tzinfo=ZoneInfo(iana), fold=fold)
    assert custom.utcoffset() == real.utcoffset()
    assert custom.timestamp() == real.timestamp()


TRANSITION_DAYS = [
    ("America/Los_Angeles", PACIFIC, date(2025, 3, 9), 23),
    ("America/Los_Angeles", PACIFIC, date(2025, 11, 2), 25),
    ("Europe/Berlin", CENTRAL_EUROPE, date(2025, 3, 30), 23),
    ("Europe/Berlin", CENTRAL_EUROPE, date(2025, 10, 26), 25),
    ("Australia/Sydney", SYDNEY, date(2025, 4, 6), 25),
    ("Australia/Sydney", SYDNEY, date(2025, 10, 5), 23),
]


def _day_hours(zone: tzinfo, day: date) -> float:
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return (end.timestamp() - start.timestamp()) / 3600


@pytest.mark.parametrize(("iana", "custom", "day", "hours"), TRANSITION_DAYS)
def test_dst_change_days_have_the_right_length(iana: str, custom: TimeZoneSpec, day: date, hours: int) -> None:
    """Spring-forward days last 23 hours and fall-back days 25, in IANA and custom form."""
    assert _day_hours(ZoneInfo(iana), day) == hours
    assert _day_hours(resolve_zone(custom), day) == hours


@pytest.mark.parametrize(("iana", "custom", "day", "hours"), TRANSITION_DAYS)
def test_quarter_hours_of_dst_change_days_match_iana(iana: str, custom: TimeZoneSpec, day: date, hours: int) -> None:
    """Every quarter hour of each change day converts identically both ways and both folds."""
    real_zone, custom_zone = ZoneInfo(iana), resolve_zone(custom)
    start = datetime.combine(day, time(0), tzinfo=real_zone).timestamp() - 3 * 3600
    for quarter in range((hours + 6) * 4):
        instant = start + quarter * 900
        real = datetime.fromtimestamp(instant, real_zone)
        mine = datetime.fromtimestamp(instant, custom_zone)
        assert (mine.replace(tzinfo=None), mine.fold) == (real.replace(tzinfo=None), real.fold)
        wall = real.replace(tzinfo=None)
        for fold in (0, 1):
            assert wall.replace(tzinfo=custom_zone, fold=fold).timestamp() == (
                wall.replace(tzinfo=real_zone, fold=fold).timestamp()
            )


def test_custom_zone_without_daylight_rules_is_a_fixed_offset() -> None:
    """A custom zone whose daylight month is 0 never changes offset (e.g. India, +05:30)."""
    spec = TimeZoneSpec(
        "Customized Time Zone",
        bias_minutes=-330,
        standard=TransitionRule(time(0), 1, Weekday.SUNDAY, 0),
        daylight=TransitionRule(time(0), 1, Weekday.SUNDAY, 0, bias_minutes=-60),
    )
    zone = resolve_zone(spec)
    for month in (1, 7):
        moment = datetime(2025, month, 1, 12, tzinfo=zone)
        assert moment.utcoffset() == timedelta(hours=5, minutes=30)
        assert moment.dst() == timedelta(0)
    assert zone.utcoffset(None) == timedelta(hours=5, minutes=30)


def test_custom_zone_rule_for_one_year_applies_only_that_year() -> None:
    """A rule with a year set shifts the clocks in that year and leaves other years standard."""
    spec = TimeZoneSpec(
        "Customized Time Zone",
        bias_minutes=0,
        standard=TransitionRule(time(2), 1, Weekday.SUNDAY, 10, year=2025),
        daylight=TransitionRule(time(1), 1, Weekday.SUNDAY, 4, year=2025, bias_minutes=-60),
    )
    zone = resolve_zone(spec)
    assert datetime(2025, 7, 1, tzinfo=zone).utcoffset() == timedelta(hours=1)
    assert datetime(2026, 7, 1, tzinfo=zone).utcoffset() == timedelta(0)


def test_custom_zones_with_the_same_rules_are_equal() -> None:
    """Two custom zones with identical rules compare and hash equal whatever their names."""
    renamed = TimeZoneSpec(
        "Another name",
        bias_minutes=PACIFIC.bias_minutes,
        standard=PACIFIC.standard,
        daylight=PACIFIC.daylight,
    )
    assert GraphCustomZone(PACIFIC) == GraphCustomZone(renamed)
    assert hash(GraphCustomZone(PACIFIC)) == hash(GraphCustomZone(renamed))
    assert GraphCustomZone(PACIFIC) != GraphCustomZone(SYDNEY)
