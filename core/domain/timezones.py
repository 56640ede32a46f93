"""Time zones as Graph names them, resolved to ``tzinfo`` objects the slot engine can trust.

Graph reports a person's zone (``mailboxSettings.timeZone``, getSchedule's
``workingHours.timeZone``) as a Windows name ("Pacific Standard Time") by default, an
IANA name when the user chose one, a few Graph-only names ("tzone://Microsoft/Utc"), or
a ``customTimeZone`` with its own bias and transition rules. Windows names are mapped
with the CLDR ``windowsZones`` table that tzlocal ships (maintained upstream, not a hand
list); custom zones become :class:`GraphCustomZone`, a ``tzinfo`` that follows the
Windows ``TIME_ZONE_INFORMATION`` rules exactly, folds included (PEP 495).

A name we cannot resolve raises :class:`UnknownTimeZone` (a ``ValidationFailed``) so
callers can report which zone was not understood instead of silently using UTC.
"""

from __future__ import annotations

import calendar as _calendar
from bisect import bisect_right
from datetime import date, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import win_tz  # CLDR windowsZones: Windows name -> IANA (pure data)

from core.domain.calendar import TimeZoneSpec, TransitionRule
from core.domain.errors import UnknownTimeZone

__all__ = [
    "GraphCustomZone",
    "UnknownTimeZone",
    "iana_name",
    "is_valid_iana",
    "resolve_zone",
]

# Names Graph uses that are in neither CLDR nor the IANA database.
_GRAPH_ALIASES: dict[str, str] = {
    "tzone://Microsoft/Utc": "Etc/UTC",
}
# Graph's name for a custom zone; only meaningful together with its bias and rules.
_GRAPH_CUSTOM_NAME = "tzone://Microsoft/Custom"
_MAX_NAME_LENGTH = 128
_LAST_OCCURRENCE = 5
_ONE_DAY = timedelta(hours=24)

_WIN_TZ_FOLDED: dict[str, str] = {name.casefold(): iana for name, iana in win_tz.items()}




def is_valid_iana(name: str) -> bool:
    """Whether ``name`` is an IANA zone this runtime can load (what API callers must send)."""
    if not name or len(name) > _MAX_NAME_LENGTH:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # OSError covers directory names such as "America".
        return False
    return True


def iana_name(spec: TimeZoneSpec) -> str | None:
    """The IANA name for a named Graph zone, or ``None`` (custom or unknown zones).

    Windows names go through the CLDR table first (so "UTC" and friends map the way
    Windows means them), then names that already are IANA, then a case-insensitive
    Windows match because Graph's casing is not guaranteed.
    """
    if spec.is_custom:
        return None
    return _named_iana(spec.name.strip())


@lru_cache(maxsize=1024)
def _named_iana(name: str) -> str | None:
    if name in _GRAPH_ALIASES:
        return _GRAPH_ALIASES[name]
    if name in win_tz:
        return win_tz[name]
    if is_valid_iana(name):
        return name
    return _WIN_TZ_FOLDED.get(name.casefold())


def resolve_zone(spec: TimeZoneSpec) -> tzinfo:
    """The ``tzinfo`` for a Graph zone; raises :class:`UnknownTimeZone` when there is none."""
    return _resolve(spec)


@lru_cache(maxsize=256)
def _resolve(spec: TimeZoneSpec) -> tzinfo:
    if spec.is_custom:
        return GraphCustomZone(spec)
    name = spec.name.strip()
    if name == _GRAPH_CUSTOM_NAME:
        raise UnknownTimeZone(name, "a custom time zone arrived without its bias and rules")
    iana = _named_iana(name)
    if iana is None:
        raise UnknownTimeZone(name)
    return ZoneInfo(iana)


def _nth_weekday(year: int, rule: TransitionRule) -> date:
    """The Nth ``rule.day_of_week`` of ``rule.month`` in ``year``; occurrence 5 means the last."""
    first_weekday, days_in_month = _calendar.monthrange(year, rule.month)  # Monday = 0
    target = rule.day_of_week.iso - 1
    if rule.day_occurrence >= _LAST_OCCURRENCE:
        last_weekday = (first_weekday + days_in_month - 1) % 7
        return date(year, rule.month, days_in_month - (last_weekday - target) % 7)
    first = 1 + (target - first_weekday) % 7
    return date(year, rule.month, first + 7 * (rule.day_occurrence - 1))


# One offset change: (UTC instant as a naive datetime, offset before, offset after).
_Transition = tuple[datetime, timedelta, timedelta]


class GraphCustomZone(tzinfo):
    """A Graph ``customTimeZone`` as a ``tzinfo``, following Windows' rules.

    Local time = UTC - bias; in daylight time the bias is ``bias + daylight.bias_minutes``.
    Daylight time starts at ``daylight.time`` on its rule day, read on the standard-time
    clock, and ends at ``standard.time`` read on the daylight-time clock (both as Windows
    ``TIME_ZONE_INFORMATION`` defines them). Rule month 0, a missing rule or equal
    biases mean the zone has no daylight time. A rule with ``year`` != 0 applies only
    in that year. Ambiguous and missing wall times follow PEP 495: ``fold=0`` takes the
    offset in force before the transition, ``fold=1`` the one after.
    """

    def __init__(self, spec: TimeZoneSpec) -> None:
        if spec.bias_minutes is None:
            raise UnknownTimeZone(spec.name, "it is not a custom time zone")
        standard_extra = spec.standard.bias_minutes if spec.standard else 0
        self._name = spec.name
        self._std = timedelta(minutes=-(spec.bias_minutes + standard_extra))
        self._dst = self._std
        self._standard_rule: TransitionRule | None = None
        self._daylight_rule: TransitionRule | None = None
        if spec.standard is not None and spec.daylight is not None:
            self._dst = timedelta(minutes=-(spec.bias_minutes + spec.daylight.bias_minutes))
            if spec.standard.month != 0 and spec.daylight.month != 0 and self._dst != self._std:
                _check_rule(spec.name, spec.standard)
                _check_rule(spec.name, spec.daylight)
                self._standard_rule = spec.standard
                self._daylight_rule = spec.daylight
        for offset in (self._std, self._dst):
            if abs(offset) >= _ONE_DAY:
                raise UnknownTimeZone(spec.name, "its bias is a day or more")
        self._key = (self._std, self._dst, self._standard_rule, self._daylight_rule)
        self._years: dict[int, list[_Transition]] = {}

    @property
    def has_daylight_time(self) -> bool:
        """Whether the zone ever changes offset."""
        return self._daylight_rule is not None

    def __repr__(self) -> str:
        return f"GraphCustomZone(name={self._name!r}, standard={self._std}, daylight={self._dst})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GraphCustomZone):
            return NotImplemented
        return self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def _year_transitions(self, year: int) -> list[_Transition]:
        cached = self._years.get(year)
        if cached is not None:
            return cached
        found: list[_Transition] = []
        start_rule, end_rule = self._daylight_rule, self._standard_rule
        if start_rule is not None and start_rule.year in (0, year):
            wall = datetime.combine(_nth_weekday(year, start_rule), start_rule.time)
            found.append((wall - self._std, self._std, self._dst))
        if end_rule is not None and end_rule.year in (0, year):
            wall = datetime.combine(_nth_weekday(year, end_rule), end_rule.time)
            found.append((wall - self._dst, self._dst, self._std))
        found.sort()
        self._years[year] = found
        return found

    def _around(self, year: int) -> list[_Transition]:
        if self._daylight_rule is None or not 1 < year < 9999:
            return []
        return [t for y in (year - 1, year, year + 1) for t in self._year_transitions(y)]

    def _offset_for_wall(self, wall: datetime, fold: int) -> timedelta:
        transitions = self._around(wall.year)
        if not transitions:
            return self._std
        # fold=0 sees a transition at its later wall time, fold=1 at its earlier one.
        if fold:
            points = [utc + min(before, after) for utc, before, after in transitions]
        else:
            points = [utc + max(before, after) for utc, before, after in transitions]
        index = bisect_right(points, wall) - 1
        return transitions[index][2] if index >= 0 else transitions[0][1]

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        if dt is None:
            return None if self.has_daylight_time else self._std
        return self._offset_for_wall(dt.replace(tzinfo=None), dt.fold)

    def dst(self, dt: datetime | None) -> timedelta | None:
        offset = self.utcoffset(dt)
        return None if offset is None else offset - self._std

    def tzname(self, dt: datetime | None) -> str | None:
        return self._name

    def fromutc(self, dt: datetime) -> datetime:
        if dt.tzinfo is not self:
            raise ValueError("fromutc: dt.tzinfo is not self")
        utc = dt.replace(tzinfo=None)
        transitions = self._around(utc.year)
        if not transitions:
            return (utc + self._std).replace(tzinfo=self, fold=0)
        index = bisect_right([t[0] for t in transitions], utc) - 1
        if index < 0:
            return (utc + transitions[0][1]).replace(tzinfo=self, fold=0)
        instant, before, after = transitions[index]
        local = utc + after
        # Second pass through a repeated wall-clock hour (clocks went back).
        fold = 1 if before > after and local < instant + before else 0
        return local.replace(tzinfo=self, fold=fold)


def _check_rule(name: str, rule: TransitionRule) -> None:
    if not 1 <= rule.month <= 12 or not 1 <= rule.day_occurrence <= _LAST_OCCURRENCE:
        raise UnknownTimeZone(name, "its daylight-saving rules are not valid")
