"""A local Azure Functions host for machines without Core Tools (``python -m local.host``).

Everything is discovered from ``app.get_functions()`` binding metadata. HTTP functions
are served on http://127.0.0.1:7071/api (see ``web``), queue triggers poll Azurite
with Functions semantics (see ``queues``) and timer triggers fire on NCRONTAB
schedules (see ``timers``); ``%NAME%`` in queue names and schedules is resolved from
the app settings. ``Host`` is embeddable (tests start one on a free port); ``main``
is the command line, which also validates settings, ensures Azurite, creates the
app's tables and queues, and stops every child process on Ctrl-C or SIGTERM.

Nothing here is imported by deployed code; ``func start`` works on the same app.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from local.host.config import (
    FunctionInfo,
    HostConfigError,
    HostJson,
    QueueOptions,
    discover,
    resolve_settings,
)
from local.host.invoke import invoke
from local.host.queues import QueueListener, ensure_queue, queue_client
from local.host.routes import compile_route, sort_key
from local.host.timers import TimerRunner
from local.host.web import CorsPolicy, HttpFront, HttpRoute, HttpServer
from local.ncrontab import ScheduleError
from local.ncrontab import parse as parse_schedule
from local.settings import ROOT

__all__ = ["Host", "HostConfigError", "QueueOptions"]

log = logging.getLogger("local.host")


class Host:
    """The app's HTTP, queue and timer functions running in this process until ``stop()``.

    ``env`` resolves ``%NAME%`` binding expressions and ``CORS_ALLOWED_ORIGINS``; the app
    itself reads ``os.environ`` (as in the Functions worker), so whoever embeds the host
    sets that first - the CLI copies ``env`` into ``os.environ`` before importing the app.
    """

    def __init__(
        self,
        app: Any,
        *,
        env: Mapping[str, str],
        host_json: Path | None,
        port: int = 7071,
        storage_connection_string: str | None = None,
        poll: QueueOptions | None = None,
        web_dir: Path | None = None,
        bind: str = "127.0.0.1",
    ) -> None:
        self.env = dict(env)
        self.config = HostJson.load(host_json).with_queues(poll)
        self.functions = discover(app)
        self._connection = storage_connection_string
        self._stop_lock = threading.Lock()
        self._started = False
        encode = self.config.queues.message_encoding == "base64"
        self._encode = encode

        routes: list[HttpRoute] = []
        self._listeners: list[QueueListener] = []
        self._timers: list[TimerRunner] = []
        self._output_queues: dict[str, dict[str, str]] = {}
        for fn in self.functions:
            self._output_queues[fn.name] = {
                b.name: resolve_settings(str(b.raw.get("queueName", "")), self.env, where=f"function {fn.name}")
                for b in fn.outputs
                if b.type == "queue"
            }
            raw = fn.trigger.raw
            if fn.trigger.type == "httpTrigger":
                template = str(raw.get("route") or fn.name)
                methods = raw.get("methods")
                routes.append(
                    HttpRoute(
                        compile_route(template),
                        frozenset(str(m).upper() for m in methods) if methods else None,
                        fn,
                    )
                )
            elif fn.trigger.type == "queueTrigger":
                name = resolve_settings(str(raw.get("queueName", "")), self.env, where=f"function {fn.name}")
                self._listeners.append(QueueListener(fn, name, self._storage_for(fn), self.config.queues, self._run))
            elif fn.trigger.type == "timerTrigger":
                expression = resolve_settings(str(raw.get("schedule", "")), self.env, where=f"function {fn.name}")
                try:
                    schedule = parse_schedule(expression)
                except ScheduleError as exc:
                    raise HostConfigError(f"function {fn.name}: {exc}") from exc
                self._timers.append(TimerRunner(fn, schedule, self._run, run_on_startup=bool(raw.get("runOnStartup"))))
        routes.sort(key=lambda r: sort_key(r.route))
        if web_dir is None:
            configured = self.env.get("LOCAL_WEB_DIR")
            web_dir = Path(configured) if configured else ROOT / "web" / "dist"
        self._front = HttpFront(
            routes,
            route_prefix=self.config.route_prefix,
            cors=CorsPolicy.from_setting(self.env.get("CORS_ALLOWED_ORIGINS")),
            invoke=self._run,
            web_dir=web_dir,
        )
        self._server = HttpServer(self._front, host=bind, port=port)

    @property
    def url(self) -> str:
        """Base URL of the HTTP server (``http://127.0.0.1:<port>``)."""
        return f"http://127.0.0.1:{self._server.port}"

    @property
    def api_url(self) -> str:
        prefix = self.config.route_prefix
        return f"{self.url}/{prefix}" if prefix else self.url

    def start(self) -> None:
        """Serve HTTP and start every queue poller and timer."""
        self._started = True
        self._server.start()
        for listener in self._listeners:
            listener.start()
        for timer in self._timers:
            timer.start()
        log.info(
            "local host: %d HTTP, %d queue, %d timer function(s) on %s",
            len(self._front.routes),
            len(self._listeners),
            len(self._timers),
            self.api_url,
        )

    def stop(self) -> None:
        """Stop timers and pollers (letting running invocations finish), then the HTTP server."""
        with self._stop_lock:
            if not self._started:
                return
            self._started = False
        for timer in self._timers:
            timer.stop()
        for listener in self._listeners:
            listener.stop()
        self._server.stop()

    def __enter__(self) -> Host:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals ---------------------------------------------------------------

    def _storage_for(self, fn: FunctionInfo) -> str:
        setting = str(fn.trigger.raw.get("connection") or "AzureWebJobsStorage")
        for name in (setting, f"AzureWebJobs{setting}"):
            value = self.env.get(name)
            if value and name != "AzureWebJobsStorage" and "AccountName=" in value:
                return value
        if not self._connection:
            raise HostConfigError(
                f"function {fn.name} is queue-triggered but the host has no storage connection string"
            )
        return self._connection

    def _run(self, fn: FunctionInfo, trigger_value: Any) -> Any:
        return invoke(
            fn,
            trigger_value,
            queue_names=self._output_queues.get(fn.name, {}),
            send=self._send if self._connection else None,
            encode_base64=self._encode,
        )

    def _send(self, queue_name: str, texts: list[str]) -> None:
        assert self._connection is not None
        with queue_client(self._connection, queue_name) as client:
            ensure_queue(client)
            for text in texts:
                client.send_message(text)
