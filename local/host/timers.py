"""Timer triggers: one thread per timer function, firing on its NCRONTAB or TimeSpan schedule.

As on Azure: UTC, one invocation at a time per timer (occurrences missed while an
invocation runs are skipped, not queued), no retry on failure, ``runOnStartup``
fires once when the host starts, and ``past_due`` is true when the invocation
starts noticeably after its scheduled time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.functions.timer import TimerRequest

from local.host.config import FunctionInfo
from local.ncrontab import CronSchedule, IntervalSchedule

log = logging.getLogger("local.host.timers")

PAST_DUE_AFTER = timedelta(seconds=1)

Invoke = Callable[[FunctionInfo, TimerRequest], Any]


def _now() -> datetime:
    return datetime.now(UTC)


class TimerRunner:
    """Runs one timer-triggered function until stopped."""

    def __init__(
        self,
        function: FunctionInfo,
        schedule: CronSchedule | IntervalSchedule,
        invoke: Invoke,
        *,
        run_on_startup: bool = False,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.function = function
        self.schedule = schedule
        self.run_on_startup = run_on_startup
        self._invoke = invoke
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"timer-{function.name}", daemon=True)
        self._last: datetime | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        if self.run_on_startup:
            self._fire(self._clock(), past_due=False)
        previous = self._clock()
        while not self._stop.is_set():
            due = self.schedule.next_after(previous)
            now = self._clock()
            if due < now - PAST_DUE_AFTER:  # missed while the last invocation ran: skip ahead
                due = self.schedule.next_after(now)
            while (remaining := (due - self._clock()).total_seconds()) > 0:
                if self._stop.wait(remaining):
                    return
            started = self._clock()
            self._fire(due, past_due=started - due > PAST_DUE_AFTER)
            previous = due

    def _fire(self, due: datetime, *, past_due: bool) -> None:
        status = {
            "Last": (self._last or due).isoformat(),
            "Next": self.schedule.next_after(due).isoformat(),
            "LastUpdated": self._clock().isoformat(),
        }
        request = TimerRequest(past_due=past_due, schedule_status=status, schedule={"AdjustForDST": False})
        try:
            self._invoke(self.function, request)
        except Exception:
            log.exception("timer function %s failed (timers are not retried)", self.function.name)
        self._last = due
