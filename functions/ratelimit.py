"""The rate-limit policies routes declare by name (``@endpoint(..., rate_limit=GRAPH_READS)``).

The budgets (per caller and per tenant) and the limiter that enforces them across every
instance are ``core/services/ratelimits.py``, offered by the container as ``rate_limiter``;
``functions/endpoint.py`` calls it after authentication and validation (429 + Retry-After).
"""

from __future__ import annotations

from typing import Final

SESSION_WRITES: Final = "session_writes"  # booking, reschedule, cancel
GRAPH_READS: Final = "graph_reads"  # routes that read Microsoft Graph for the caller
WEBHOOK_SENDS: Final = "webhook_sends"  # webhook ping and replays (each queues deliveries)
