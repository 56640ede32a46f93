"""A fake ``DelegatedAuthFlow`` (MSAL's auth code flow in production): no network, whoever the test says signs in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.domain.errors import Forbidden, ServiceError
from core.names import user_token_secret_name
from core.ports import AuthStart, SignedInUser
from tests.support.memory import InMemorySecretStore


class FakeAuthFlow:
    """DelegatedAuthFlow fake: remembers flows, signs in whoever the test says, stores caches in a secret store."""

    def __init__(self, secrets: InMemorySecretStore, signed_in: SignedInUser | None = None) -> None:
        self.secrets = secrets
        self.begun: list[dict[str, Any]] = []
        # Who Microsoft's page "signs in"; tests set it before the callback.
        self.signed_in = signed_in or SignedInUser("00000000-0000-4000-8000-000000000000",
                                                   "00000000-0000-4000-8000-000000000001", None, "{}")
        self.fail_with: ServiceError | None = None
        self.redeemed = 0

    def begin(self, tenant_id: str, scopes: Sequence[str], redirect_uri: str, state: str,
              login_hint: str | None) -> AuthStart:
        flow = {"state": state, "scope": list(scopes), "redirect_uri": redirect_uri, "code_verifier": "v" * 43}
        self.begun.append({"tenant": tenant_id, "login_hint": login_hint, **flow})
        return AuthStart(f"https://login.example/{tenant_id}/authorize?state={state}", flow)

    def redeem(self, tenant_id: str, flow: Mapping[str, Any], response: Mapping[str, str]) -> SignedInUser:
        self.redeemed += 1
        if response.get("state") != flow["state"]:
            raise Forbidden("state mismatch", code="connection_state_invalid")
        if self.fail_with is not None:
            raise self.fail_with
        return self.signed_in

    def keep(self, tenant_id: str, user_id: str, signed_in: SignedInUser) -> None:
        self.secrets.set(user_token_secret_name(tenant_id, user_id), signed_in.token_cache)

    def forget(self, tenant_id: str, user_id: str) -> None:
        self.secrets.delete(user_token_secret_name(tenant_id, user_id))
