"""Microsoft Graph adapter: ``GraphClient`` (transport, retries, paging, ``$batch``, errors)
and ``GraphGateway`` (the ``CalendarGateway`` operations)."""

from core.adapters.graph.client import GraphClient, GraphResponse, RetryPolicy
from core.adapters.graph.gateway import GraphGateway

__all__ = ["GraphClient", "GraphGateway", "GraphResponse", "RetryPolicy"]
