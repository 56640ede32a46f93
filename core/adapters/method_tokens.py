"""One ``TokenProvider`` that routes by identity: a user's delegated token, or the app's own.

    GraphIdentity(tid, user_id)  -> that user's delegated token (a per-user connection, or the
                                    tenant's scheduling mailbox)
    GraphIdentity(tid)           -> the app-only token of the tenant

Which identity a call uses is decided in one place, ``core/services/identity.py``; this
provider only follows it (it never looks at the tenant's connection method).
"""

from __future__ import annotations

from core.domain.calendar import GraphIdentity
from core.ports import TokenProvider


class MethodAwareTokenProvider:
    """Routes each token request to the app-only or the delegated provider (module docstring)."""

    def __init__(self, app_only: TokenProvider, delegated: TokenProvider) -> None:
        self.app_only = app_only
        self.delegated = delegated

    def token(self, who: GraphIdentity) -> str:
        """The credential ``who`` stands for."""
        if who.user_id is not None:
            return self.delegated.token(who)
        return self.app_only.token(who)

    def invalidate(self, tenant_id: str) -> None:
        """Forget both providers' cached clients and tokens of the tenant."""
        self.app_only.invalidate(tenant_id)
        self.delegated.invalidate(tenant_id)
