"""The one HTTP session per process that Graph calls and MSAL share.

Why one: connection pooling (TLS handshakes to Graph and the authority dominate the
cost of a short function invocation) and one place for timeouts and trust. Retries
are *not* done here (``max_retries=0``): the Graph client owns the retry policy so it
can honour ``Retry-After`` and hand ``Throttled`` to queue workers.

Trust: the default CA bundle, except on a developer machine (``LOCAL_MODE=true``) where
``LOCAL_CA_BUNDLE`` lets the local Microsoft 365 simulator's certificate be trusted.
"""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter

from core.settings import Settings

CONNECT_TIMEOUT_SECONDS = 3.05
READ_TIMEOUT_SECONDS = 30.0
DEFAULT_TIMEOUT: tuple[float, float] = (CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS)
POOL_CONNECTIONS = 8  # distinct hosts kept: Graph, the authority, the managed-identity endpoint
POOL_MAXSIZE = 32  # concurrent connections per host (a Functions worker runs calls in threads)
USER_AGENT = "m365-scheduling-integration/0.1.0"


class TimeoutSession(requests.Session):
    """A session whose requests always time out: a caller (MSAL included) that passes no
    ``timeout`` gets ``DEFAULT_TIMEOUT`` instead of waiting forever."""

    def __init__(self, timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        return super().request(method, url, *args, **kwargs)


def build_session(settings: Settings) -> requests.Session:
    """The shared, pooled session configured from settings (build once per process)."""
    session = TimeoutSession()
    adapter = HTTPAdapter(pool_connections=POOL_CONNECTIONS, pool_maxsize=POOL_MAXSIZE, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    if settings.local_mode and settings.local_ca_bundle:
        session.verify = settings.local_ca_bundle
        # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override ``session.verify`` for every
        # call that passes no ``verify`` (GraphClient and MSAL pass none), which would silently
        # drop the simulator's CA on machines that set them. Local mode reads no environment.
        session.trust_env = False
    else:
        session.verify = True
    return session
