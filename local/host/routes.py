"""Route templates as Azure Functions (ASP.NET Core routing) reads them.

A template is ``/``-separated segments of literals and parameters: ``{name}``,
``{name:int}`` (constraints chain: ``{n:int:min(1)}``), optional ``{name?}``,
defaults ``{name=value}`` and a trailing catch-all ``{*rest}``. Literals match
case-insensitively; parameter values are URL-decoded per segment, so an encoded
``%2F`` stays inside one parameter. When several templates match, the most specific
wins (literal before constrained parameter before parameter before catch-all).
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote

from local.host.config import HostConfigError

_LITERAL, _COMPLEX, _CONSTRAINED, _PARAM, _CATCH_ALL = 1, 2, 3, 4, 5


@dataclass(frozen=True, slots=True)
class _Param:
    name: str
    constraints: tuple[str, ...]
    checks: tuple[Callable[[str], bool], ...]
    optional: bool
    default: str | None
    catch_all: bool


@dataclass(frozen=True, slots=True)
class RouteTemplate:
    """A compiled route template."""

    template: str
    pattern: re.Pattern[str]
    params: tuple[_Param, ...]
    precedence: tuple[int, ...]

    def match(self, path: str) -> dict[str, str] | None:
        """Route values for ``path`` (no leading slash, still percent-encoded), or None."""
        m = self.pattern.fullmatch(path)
        if m is None:
            return None
        values: dict[str, str] = {}
        for param in self.params:
            raw = m.group(param.name)
            if raw is None or raw == "":
                if param.default is not None:
                    values[param.name] = param.default
                elif param.optional or param.catch_all:
                    continue
                else:
                    return None
                continue
            value = unquote(raw)
            if not all(check(value) for check in param.checks):
                return None
            values[param.name] = value
        return values


def compile_route(template: str) -> RouteTemplate:
    """Compile a Functions route template; ``HostConfigError`` if it is malformed."""
    text = template.strip().strip("/")
    segments = text.split("/") if text else []
    regex = ""
    params: list[_Param] = []
    precedence: list[int] = []
    for index, segment in enumerate(segments):
        parts = _split_segment(segment, template)
        last = index == len(segments) - 1
        if len(parts) == 1 and isinstance(parts[0], _Param):
            param = parts[0]
            if param.catch_all and not last:
                raise HostConfigError(f"route {template!r}: a catch-all parameter must be the last segment")
            body = f"(?P<{param.name}>.*)" if param.catch_all else f"(?P<{param.name}>[^/]+)"
            if param.optional or param.default is not None or param.catch_all:
                regex += f"(?:/{body})?" if index else f"(?:{body})?"
            else:
                regex += ("/" if index else "") + body
            params.append(param)
            if param.catch_all:
                precedence.append(_CATCH_ALL)
            else:
                precedence.append(_CONSTRAINED if param.constraints else _PARAM)
            continue
        piece = ""
        for part in parts:
            if isinstance(part, _Param):
                if part.catch_all:
                    raise HostConfigError(f"route {template!r}: a catch-all must be a whole segment")
                piece += f"(?P<{part.name}>[^/]+)"
                params.append(part)
            else:
                piece += re.escape(part)
        regex += ("/" if index else "") + piece
        precedence.append(_LITERAL if len(parts) == 1 else _COMPLEX)
    names = [p.name.lower() for p in params]
    if len(names) != len(set(names)):
        raise HostConfigError(f"route {template!r} names a parameter twice")
    try:
        pattern = re.compile(regex, re.IGNORECASE | re.DOTALL)
    except re.error as exc:
        raise HostConfigError(f"route {template!r} cannot be compiled: {exc}") from exc
    return RouteTemplate(template, pattern, tuple(params), tuple(precedence))


def sort_key(route: RouteTemplate) -> tuple[tuple[int, ...], int]:
    """Most specific first: per-segment precedence, then longer templates first."""
    return route.precedence, -len(route.precedence)


def _split_segment(segment: str, template: str) -> list[str | _Param]:
    """Literals and parameters of one segment; ``{{``/``}}`` are literal braces."""
    if segment == "":
        raise HostConfigError(f"route {template!r} has an empty segment")
    parts: list[str | _Param] = []
    literal = ""
    i = 0
    while i < len(segment):
        ch = segment[i]
        if segment.startswith("{{", i) or segment.startswith("}}", i):
            literal += ch
            i += 2
            continue
        if ch == "}":
            raise HostConfigError(f"route {template!r}: unbalanced '}}'")
        if ch != "{":
            literal += ch
            i += 1
            continue
        if literal:
            parts.append(literal)
            literal = ""
        inner = ""
        i += 1
        while True:
            if i >= len(segment):
                raise HostConfigError(f"route {template!r}: unclosed '{{'")
            if segment.startswith("{{", i) or segment.startswith("}}", i):
                inner += segment[i]
                i += 2
                continue
            if segment[i] == "}":
                i += 1
                break
            inner += segment[i]
            i += 1
        parts.append(_parse_param(inner, template))
    if literal:
        parts.append(literal)
    for a, b in itertools.pairwise(parts):
        if isinstance(a, _Param) and isinstance(b, _Param):
            raise HostConfigError(f"route {template!r}: two parameters need a literal between them")
    return parts


def _parse_param(inner: str, template: str) -> _Param:
    catch_all = inner.startswith("*")
    text = inner.lstrip("*")
    default: str | None = None
    # name[:constraint[(args)]]...[?|=default]; constraint args may contain ':' or '='.
    name_match = re.match(r"[A-Za-z_][A-Za-z0-9_]*", text)
    if not name_match:
        raise HostConfigError(f"route {template!r}: {inner!r} is not a valid parameter")
    name = name_match.group(0)
    rest = text[name_match.end() :]
    constraints: list[str] = []
    while rest.startswith(":"):
        c = re.match(r":([A-Za-z]+)(\((?:[^()\\]|\\.|\([^()]*\))*\))?", rest)
        if not c:
            raise HostConfigError(f"route {template!r}: bad constraint in {inner!r}")
        constraints.append(c.group(0)[1:])
        rest = rest[c.end() :]
    optional = False
    if rest.startswith("="):
        default = rest[1:]
    elif rest == "?":
        optional = True
    elif rest:
        raise HostConfigError(f"route {template!r}: cannot read {inner!r}")
    checks = tuple(_constraint_checker(c, template) for c in constraints)
    return _Param(name, tuple(constraints), checks, optional, default, catch_all)


_SIMPLE: dict[str, Callable[[str], bool]] = {}


def _is_int(bits: int) -> Callable[[str], bool]:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def check(value: str) -> bool:
        return re.fullmatch(r"[+-]?\d+", value) is not None and low <= int(value) <= high

    return check


def _is_float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return value.strip().lower() not in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity")


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


_SIMPLE.update(
    {
        "int": _is_int(32),
        "long": _is_int(64),
        "bool": lambda v: v.lower() in ("true", "false"),
        "alpha": lambda v: re.fullmatch(r"[A-Za-z]+", v) is not None,
        "guid": _is_guid,
        "double": _is_float,
        "float": _is_float,
        "decimal": _is_float,
        "datetime": _is_datetime,
        "required": lambda v: v != "",
    }
)


def _constraint_checker(constraint: str, template: str) -> Callable[[str], bool]:
    name, _, args_text = constraint.partition("(")
    key = name.lower()
    if not args_text:
        if key not in _SIMPLE:
            raise HostConfigError(f"route {template!r}: unknown constraint {name!r}")
        return _SIMPLE[key]
    args = args_text[:-1]
    if key == "regex":
        try:
            pattern = re.compile(args.replace("\\\\", "\\"), re.IGNORECASE)
        except re.error as exc:
            raise HostConfigError(f"route {template!r}: bad regex constraint: {exc}") from exc
        return lambda v: pattern.search(v) is not None
    try:
        nums = [int(a) for a in args.split(",")]
    except ValueError as exc:
        raise HostConfigError(f"route {template!r}: {constraint!r} needs whole-number arguments") from exc
    checks: dict[str, Callable[[str], bool]] = {
        "minlength": lambda v: len(v) >= nums[0],
        "maxlength": lambda v: len(v) <= nums[0],
        "length": (lambda v: len(v) == nums[0]) if len(nums) == 1 else (lambda v: nums[0] <= len(v) <= nums[-1]),
        "min": lambda v: _is_int(64)(v) and int(v) >= nums[0],
        "max": lambda v: _is_int(64)(v) and int(v) <= nums[0],
        "range": lambda v: _is_int(64)(v) and nums[0] <= int(v) <= nums[-1],
    }
    if key not in checks:
        raise HostConfigError(f"route {template!r}: unknown constraint {name!r}")
    return checks[key]
