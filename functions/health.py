"""GET /api/health: is storage (and Key Vault, when configured) reachable?"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import azure.functions as func

from core.domain.errors import ServiceError
from functions.auth import Auth
from functions.endpoint import Models, RequestContext, endpoint
from functions.http import json_response

bp = func.Blueprint()
M = Models("functions.schemas.meta")

CHECK_TIMEOUT_SECONDS = 3.0
_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="health")


@endpoint(bp, "GET", "health", auth=Auth.ANONYMOUS, response=M.Health, extra_statuses=(503,),
          summary="Is storage (and Key Vault, when configured) reachable?", tags=("meta",))
def health(ctx: RequestContext[None]) -> func.HttpResponse:
    """200 when every dependency answers within a few seconds, else 503 naming the failing check."""
    container = ctx.container
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
    healthy = all(v == "ok" for v in results.values())
    body = {"status": "ok" if healthy else "unhealthy", "checks": results}
    return json_response(body, 200 if healthy else 503, None if healthy else {"Retry-After": "10"})
