"""Health: liveness (``GET /api/health``, no I/O) and readiness (``GET /api/health/ready``, cached).

Both are anonymous, so neither may let a stranger drive load at storage or Key Vault:

- ``/api/health`` answers from the process alone (the app is loaded and serving): 200
  ``{"status": "ok", "checks": {"process": "ok"}}``. Platform and load-balancer probes,
  ``make run`` and the fault suite use it.
- ``/api/health/ready`` checks storage (one read of a provisioned table and of a known queue)
  and Key Vault (when configured) in parallel, each within 3 s, and answers 200 or 503
  naming the failing check with ``Retry-After``. The result is kept for ``READY_CACHE_SECONDS``
  per instance, so however often it is called an instance touches each dependency at most
  once per that period; a response says how old its result is (``Age``).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import azure.functions as func

from core.bootstrap import Container
from core.domain.errors import ServiceError
from functions.auth import Auth
from functions.endpoint import Models, RequestContext, endpoint
from functions.http import json_response

bp = func.Blueprint()
M = Models("functions.schemas.meta")

CHECK_TIMEOUT_SECONDS = 3.0
READY_CACHE_SECONDS = 10.0
_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="health")
_ready_lock = threading.Lock()
_ready: dict[int, tuple[float, dict[str, str]]] = {}  # id(container) -> (monotonic time checked, results)


@endpoint(bp, "GET", "health", auth=Auth.ANONYMOUS, response=M.Health,
          summary="Liveness: the app is up (no dependency is called)", tags=("meta",))
def health(ctx: RequestContext[None]) -> func.HttpResponse:
    """200 whenever the process serves requests; dependencies are /api/health/ready's."""
    return json_response({"status": "ok", "checks": {"process": "ok"}}, 200, {"Cache-Control": "no-store"})


@endpoint(bp, "GET", "health/ready", auth=Auth.ANONYMOUS, response=M.Health, extra_statuses=(503,),
          summary="Readiness: are storage (and Key Vault, when configured) reachable? Cached a few seconds",
          tags=("meta",))
def health_ready(ctx: RequestContext[None]) -> func.HttpResponse:
    """200 when every dependency answered within a few seconds (at most ``READY_CACHE_SECONDS`` ago), else 503
    naming the failing check."""
    results, age = _checked(ctx.container)
    healthy = all(v == "ok" for v in results.values())
    body = {"status": "ok" if healthy else "unhealthy", "checks": results}
    headers = {"Cache-Control": "no-store", "Age": str(int(age))}
    if not healthy:
        headers["Retry-After"] = "10"
    return json_response(body, 200 if healthy else 503, headers)


def _checked(container: Container) -> tuple[dict[str, str], float]:
    """The dependency checks, run at most once per ``READY_CACHE_SECONDS`` per container (and its age)."""
    key = id(container)
    with _ready_lock:
        now = time.monotonic()
        cached = _ready.get(key)
        if cached is not None and now - cached[0] < READY_CACHE_SECONDS:
            return cached[1], now - cached[0]
        results = _run_checks(container)
        _ready.clear()  # one container per process (tests install others): keep only the current one
        _ready[key] = (time.monotonic(), results)
        return results, 0.0


def _run_checks(container: Container) -> dict[str, str]:
    checks: dict[str, Any] = {"tables": container.tables.ping, "queues": container.queues.ping}
    if container.settings.key_vault_uri:
        checks["keyVault"] = container.secrets.ping
    futures = {name: _pool.submit(fn) for name, fn in checks.items()}
    results: dict[str, str] = {}
    for name, future in futures.items():
        try:
            future.result(timeout=CHECK_TIMEOUT_SECONDS)
            results[name] = "ok"
        except FutureTimeout:
            results[name] = "timeout"
        except ServiceError as err:
            results[name] = err.code
        except Exception as exc:
            results[name] = type(exc).__name__
    return results
