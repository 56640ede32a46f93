"""What the host reads before it runs anything: host.json, app-setting expressions, bindings.

Functions are discovered from ``app.get_functions()`` - the same binding metadata the
Python worker hands to the real Functions host - so there is no second list of
functions to keep in step with ``function_app.py``.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from local.ncrontab import ScheduleError, parse_timespan

_SETTING_REF = re.compile(r"%([^%]+)%")


class HostConfigError(Exception):
    """The app or host.json asks for something the host cannot do (the message says what)."""


@dataclass(frozen=True, slots=True)
class QueueOptions:
    """host.json ``extensions.queues``, with the Functions defaults."""

    batch_size: int = 16
    new_batch_threshold: int | None = None  # default: batch_size / 2
    max_polling_interval: float = 60.0  # seconds
    min_polling_interval: float = 0.1
    visibility_timeout: float = 0.0  # seconds a failed message stays invisible
    max_dequeue_count: int = 5
    message_encoding: str = "base64"
    receive_visibility: float = 600.0  # seconds a message being processed stays invisible

    @property
    def threshold(self) -> int:
        return self.batch_size // 2 if self.new_batch_threshold is None else self.new_batch_threshold


@dataclass(frozen=True, slots=True)
class HostJson:
    """The parts of host.json the local host honours."""

    route_prefix: str = "api"
    queues: QueueOptions = field(default_factory=QueueOptions)
    function_timeout: float | None = None

    @classmethod
    def load(cls, path: Path | None) -> HostJson:
        """Read host.json (missing file: the defaults)."""
        if path is None or not path.exists():
            return cls()
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise HostConfigError(f"{path} is not valid JSON: {exc}") from exc
        extensions = doc.get("extensions") or {}
        http = extensions.get("http") or {}
        q = extensions.get("queues") or {}
        defaults = QueueOptions()
        timeout = doc.get("functionTimeout")
        function_timeout = _seconds(timeout, "functionTimeout") if timeout else None
        queues = QueueOptions(
            batch_size=int(q.get("batchSize", defaults.batch_size)),
            new_batch_threshold=int(q["newBatchThreshold"]) if "newBatchThreshold" in q else None,
            max_polling_interval=_seconds(q.get("maxPollingInterval", "00:01:00"), "maxPollingInterval"),
            visibility_timeout=_seconds(q.get("visibilityTimeout", "00:00:00"), "visibilityTimeout"),
            max_dequeue_count=int(q.get("maxDequeueCount", defaults.max_dequeue_count)),
            message_encoding=str(q.get("messageEncoding", "base64")).lower(),
            receive_visibility=max(60.0, min(function_timeout or 600.0, 600.0)),
        )
        if queues.batch_size < 1 or queues.max_dequeue_count < 1:
            raise HostConfigError(f"{path}: queues.batchSize and queues.maxDequeueCount must be at least 1")
        if queues.message_encoding not in ("base64", "none"):
            raise HostConfigError(f"{path}: queues.messageEncoding must be base64 or none")
        prefix = str(http.get("routePrefix", "api")).strip("/")
        return cls(route_prefix=prefix, queues=queues, function_timeout=function_timeout)

    def with_queues(self, queues: QueueOptions | None) -> HostJson:
        return self if queues is None else replace(self, queues=queues)


def _seconds(value: Any, name: str) -> float:
    """A host.json duration: a TimeSpan string, or a number of milliseconds (Functions v1 style)."""
    if isinstance(value, int | float):
        return float(value) / 1000.0
    try:
        return parse_timespan(str(value)).total_seconds()
    except ScheduleError as exc:
        raise HostConfigError(f"host.json {name}: {exc}") from exc


def resolve_settings(value: str, env: Mapping[str, str], *, where: str) -> str:
    """Replace ``%NAME%`` with the app setting, as Functions binding expressions do."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        resolved = env.get(name)
        if resolved is None or resolved == "":
            raise HostConfigError(f"{where} uses %{name}%, but the app setting {name} is not set")
        return resolved

    return _SETTING_REF.sub(sub, value)


@dataclass(frozen=True, slots=True)
class Binding:
    """One entry of a function's binding metadata."""

    type: str
    name: str
    direction: str
    raw: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class FunctionInfo:
    """A function of the app: its name, trigger, other bindings and the user callable."""

    name: str
    trigger: Binding
    bindings: tuple[Binding, ...]
    call: Callable[..., Any]
    wants_context: bool

    @property
    def outputs(self) -> tuple[Binding, ...]:
        return tuple(b for b in self.bindings if b.direction.upper() == "OUT")


TRIGGERS = ("httpTrigger", "queueTrigger", "timerTrigger")


def discover(app: Any) -> list[FunctionInfo]:
    """Every function of a ``func.FunctionApp`` with the trigger it runs on."""
    found: list[FunctionInfo] = []
    # get_functions() records every function it indexes and refuses to index one twice in a
    # process (the Functions worker indexes once); give it an empty record so the host, the
    # tests' in-process client and anything else can each index the same app.
    seen = getattr(app, "functions_bindings", None)
    if seen is not None:
        app.functions_bindings = {}
    try:
        indexed = app.get_functions()
    finally:
        if seen is not None:
            app.functions_bindings = seen
    for fn in indexed:
        bindings = tuple(_binding(raw) for raw in fn.get_raw_bindings())
        triggers = [b for b in bindings if b.type in TRIGGERS or b.type.endswith("Trigger")]
        name = fn.get_function_name()
        if len(triggers) != 1:
            raise HostConfigError(f"function {name} has {len(triggers)} triggers; exactly one is expected")
        trigger = triggers[0]
        if trigger.type not in TRIGGERS:
            raise HostConfigError(
                f"function {name}: the local host runs HTTP, queue and timer triggers, not {trigger.type}"
            )
        user = fn.get_user_function()
        try:
            params = inspect.signature(user).parameters
        except (TypeError, ValueError):
            params = {}  # type: ignore[assignment]
        found.append(
            FunctionInfo(
                name=name,
                trigger=trigger,
                bindings=bindings,
                call=user,
                wants_context="context" in params and not any(b.name == "context" for b in bindings),
            )
        )
    return found


def _binding(raw: str | Mapping[str, Any]) -> Binding:
    doc: Mapping[str, Any] = json.loads(raw) if isinstance(raw, str) else raw
    return Binding(
        type=str(doc.get("type", "")),
        name=str(doc.get("name", "")),
        direction=str(doc.get("direction", "IN")),
        raw=doc,
    )
