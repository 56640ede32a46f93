"""DelegatedTokenProvider with real MSAL against the in-process simulator: sign-in, rotation, reconnect, size."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from core.adapters.delegated_tokens import MAX_SECRET_BYTES, DelegatedTokenProvider, persistable
from core.adapters.http import build_session
from core.adapters.method_tokens import MethodAwareTokenProvider
from core.adapters.tokens import CLIENT_SECRET_NAME, AppOnlyTokenProvider
from core.domain.calendar import GraphIdentity
from core.domain.errors import ReconnectRequired, ServiceError
from core.names import Queues, user_token_secret_name
from core.ports import SignedInUser
from core.services.alerts import OwnerAlerts
from core.services.connections import ConnectionHealth
from core.services.stores.connections import (
    USER_SCOPES,
    ConnectionPurpose,
    ConnectionRecord,
    ConnectionRepository,
    ConnectionStatus,
)
from core.settings import Settings
from local.simulator import SimulatorHandle, seed
from tests.support.memory import FixedClock, InMemoryCommandQueue, InMemorySecretStore, InMemoryTableStore
from tests.support.simulator import LOCAL_CLIENT_SECRET, SimulatorControl, running_simulator, simulator_settings

TENANT = seed.CONTOSO
ALICE = "10000000-0000-4000-8000-0000000a11ce"
BOB = "10000000-0000-4000-8000-000000000b0b"
REDIRECT = "http://127.0.0.1:7071/api/me/connection/callback"
NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    with running_simulator() as handle:
        yield handle


@dataclass
class Rig:
    sim: SimulatorHandle
    settings: Settings
    session: requests.Session
    secrets: InMemorySecretStore
    tables: InMemoryTableStore
    queues: InMemoryCommandQueue
    provider: DelegatedTokenProvider
    control: SimulatorControl

    def provider_with(self, secrets: Any) -> DelegatedTokenProvider:
        """A second instance (another worker process) over the given secret store."""
        clock = FixedClock(NOW)
        alerts = OwnerAlerts(self.tables, self.queues, clock)
        health = ConnectionHealth(ConnectionRepository(self.tables), alerts, clock)
        return DelegatedTokenProvider(self.settings, self.session, secrets, clock, on_reconnect=health)

    def connect(self, upn: str, provider: DelegatedTokenProvider | None = None) -> SignedInUser:
        """Sign ``upn`` in through MSAL's flow at the simulator and keep the tokens, as the service does."""
        provider = provider or self.provider
        scopes = [f"{self.sim.url}/{s}" for s in USER_SCOPES]
        started = provider.begin(TENANT, scopes, REDIRECT, f"{TENANT}.{'s' * 43}", upn)
        page = self.session.get(started.authorize_url, allow_redirects=False, timeout=10)
        assert page.status_code == 302, page.text
        response = {k: v[0] for k, v in parse_qs(urlsplit(page.headers["Location"]).query).items()}
        signed_in = provider.redeem(TENANT, started.flow, response)
        provider.keep(TENANT, signed_in.object_id, signed_in)
        ConnectionRepository(self.tables).save(ConnectionRecord(
            TENANT, signed_in.object_id, ConnectionPurpose.USER, ConnectionStatus.CONNECTED, connected_at=NOW))
        return signed_in

    def stored(self, user: str) -> dict[str, Any]:
        raw = self.secrets.get(user_token_secret_name(TENANT, user))
        assert raw is not None
        doc: dict[str, Any] = json.loads(raw)
        doc["cache"] = json.loads(doc["cache"])
        return doc

    def refresh_token(self, user: str) -> str:
        (entry,) = self.stored(user)["cache"]["RefreshToken"].values()
        return str(entry["secret"])

    def revoke(self, user: str, **body: str) -> None:
        """The user's refresh tokens die at the simulator (password reset, revocation, inactivity)."""
        r = self.session.post(f"{self.sim.url}/_sandbox/users/{user}/revoke", json=body, timeout=10)
        assert r.status_code == 200, r.text

    def token_posts(self, since: int) -> int:
        return sum(1 for r in self.control.requests_since(since)
                   if r["method"] == "POST" and r["path"].endswith("/oauth2/v2.0/token"))

    def alerts(self) -> list[dict[str, Any]]:
        return [dict(m.body) for m in self.queues.pending(Queues.OWNER_ALERTS)]


@pytest.fixture
def rig(sim: SimulatorHandle) -> Rig:
    control = SimulatorControl(sim)
    control.reset()
    settings = simulator_settings(sim)
    session = build_session(settings)
    session.trust_env = False
    secrets = InMemorySecretStore({CLIENT_SECRET_NAME: LOCAL_CLIENT_SECRET})
    tables = InMemoryTableStore()
    queues = InMemoryCommandQueue()
    clock = FixedClock(NOW)
    health = ConnectionHealth(ConnectionRepository(tables), OwnerAlerts(tables, queues, clock), clock)
    provider = DelegatedTokenProvider(settings, session, secrets, clock, on_reconnect=health)
    return Rig(sim, settings, session, secrets, tables, queues, provider, control)


def test_sign_in_keeps_only_what_a_refresh_needs_well_under_the_vault_limit(rig: Rig) -> None:
    """The stored value holds the account and refresh token, no access or id token, and is far below 25 KB."""
    signed_in = rig.connect("alice@contoso.test")
    assert (signed_in.tenant_id, signed_in.object_id, signed_in.username) == (TENANT, ALICE, "alice@contoso.test")
    raw = rig.secrets.get(user_token_secret_name(TENANT, ALICE))
    assert raw is not None and len(raw.encode()) < MAX_SECRET_BYTES // 5
    doc = rig.stored(ALICE)
    assert set(doc["cache"]) <= {"Account", "RefreshToken", "AppMetadata"}
    assert "RefreshToken" in doc["cache"] and "Account" in doc["cache"]
    assert "access_token" not in raw and "IdToken" not in raw
    assert not {"openid", "profile", "offline_access"} & set(doc["scopes"])
    assert rig.refresh_token(ALICE) not in repr(signed_in)


def test_refresh_rotates_the_stored_refresh_token_and_later_calls_use_memory(rig: Rig) -> None:
    """The first token call redeems the refresh token; the new one replaces the stored one; the next call is free."""
    rig.connect("alice@contoso.test")
    first_rt = rig.refresh_token(ALICE)
    since = rig.control.last_seq()
    token = rig.provider.token(GraphIdentity(TENANT, ALICE))
    second_rt = rig.refresh_token(ALICE)
    assert second_rt != first_rt
    assert rig.provider.token(GraphIdentity(TENANT, ALICE)) == token
    assert rig.token_posts(since) == 1
    calendar = rig.session.get(f"{rig.sim.url}/v1.0/me/calendar", headers={"Authorization": f"Bearer {token}"},
                               timeout=10)
    assert calendar.status_code == 200
    # The replaced refresh token is dead at Entra: only the stored one can refresh now.
    fresh = rig.provider_with(rig.secrets)
    fresh.token(GraphIdentity(TENANT, ALICE))
    assert rig.refresh_token(ALICE) not in (first_rt, second_rt)


def test_revoked_refresh_token_marks_needs_reconnect_and_alerts_the_owner_once(rig: Rig) -> None:
    """AADSTS50173: ReconnectRequired, the row flagged with the reason, one alert however often it is asked."""
    rig.connect("alice@contoso.test")
    rig.revoke(ALICE)
    with pytest.raises(ReconnectRequired) as caught:
        rig.provider.token(GraphIdentity(TENANT, ALICE))
    assert caught.value.aadsts == 50173
    record = ConnectionRepository(rig.tables).get(TENANT, ALICE)
    assert record is not None and record.needs_reconnect and record.reason == "50173"
    since = rig.control.last_seq()
    for _ in range(3):
        with pytest.raises(ReconnectRequired):
            rig.provider.token(GraphIdentity(TENANT, ALICE))
    assert rig.token_posts(since) == 0  # a dead cache is not sent to Entra again
    alerts = rig.alerts()
    assert [a["alert"] for a in alerts] == ["user_reconnect_required"]
    assert rig.refresh_token(ALICE) not in json.dumps(alerts)


def test_inactivity_expiry_is_reconnect_with_its_own_reason(rig: Rig) -> None:
    """AADSTS700082 (inactive for 90 days) flags the connection with reason 700082."""
    rig.connect("bob@contoso.test")
    rig.revoke(BOB, reason="inactivity")
    with pytest.raises(ReconnectRequired):
        rig.provider.token(GraphIdentity(TENANT, BOB))
    record = ConnectionRepository(rig.tables).get(TENANT, BOB)
    assert record is not None and record.reason == "700082"


def test_reconnecting_clears_the_dead_cache(rig: Rig) -> None:
    """After a fresh sign-in the provider uses the new tokens at once."""
    rig.connect("alice@contoso.test")
    rig.revoke(ALICE)
    with pytest.raises(ReconnectRequired):
        rig.provider.token(GraphIdentity(TENANT, ALICE))
    rig.connect("alice@contoso.test")
    assert rig.provider.token(GraphIdentity(TENANT, ALICE))


class StaleOnce:
    """A secret store that answers the first read with an older value (another instance's stale cache)."""

    def __init__(self, inner: InMemorySecretStore, stale: dict[str, str]) -> None:
        self.inner = inner
        self.stale = dict(stale)

    def get(self, name: str) -> str | None:
        if name in self.stale:
            return self.stale.pop(name)
        return self.inner.get(name)

    def set(self, name: str, value: str) -> None:
        self.inner.set(name, value)

    def delete(self, name: str) -> None:
        self.inner.delete(name)

    def ping(self) -> None:
        return None


def test_rotation_by_another_instance_is_picked_up_instead_of_reconnecting(rig: Rig) -> None:
    """Instance B starts from a stale refresh token that A already rotated: it re-reads the store and succeeds."""
    rig.connect("alice@contoso.test")
    name = user_token_secret_name(TENANT, ALICE)
    before = rig.secrets.get(name)
    assert before is not None
    rig.provider.token(GraphIdentity(TENANT, ALICE))  # instance A rotates
    instance_b = rig.provider_with(StaleOnce(rig.secrets, {name: before}))
    assert instance_b.token(GraphIdentity(TENANT, ALICE))
    record = ConnectionRepository(rig.tables).get(TENANT, ALICE)
    assert record is not None and not record.needs_reconnect
    assert rig.alerts() == []


def test_a_user_who_never_connected_is_not_flagged_or_alerted(rig: Rig) -> None:
    """No stored tokens: ReconnectRequired calendar_not_connected, without touching rows or alerts."""
    with pytest.raises(ReconnectRequired) as caught:
        rig.provider.token(GraphIdentity(TENANT, BOB))
    assert caught.value.code == "calendar_not_connected"
    assert ConnectionRepository(rig.tables).get(TENANT, BOB) is None
    assert rig.alerts() == []


def test_an_oversized_cache_is_refused_before_it_reaches_the_vault(rig: Rig) -> None:
    """A cache whose refresh-relevant part would exceed 25 KB raises instead of being written."""
    huge = json.dumps({"RefreshToken": {"k": {"secret": "x" * MAX_SECRET_BYTES}}, "AccessToken": {"a": 1}})
    assert "AccessToken" not in persistable(huge)
    with pytest.raises(ServiceError) as caught:
        rig.provider.keep(TENANT, ALICE, SignedInUser(TENANT, ALICE, None, "x" * MAX_SECRET_BYTES))
    assert caught.value.code == "token_cache_too_large"
    assert rig.secrets.get(user_token_secret_name(TENANT, ALICE)) is None


def test_method_aware_provider_routes_by_identity(rig: Rig) -> None:
    """A user identity gets that user's delegated token; GraphIdentity(tid) the app-only token, whatever the method."""
    rig.control.grant_consent(TENANT)
    app_only = AppOnlyTokenProvider(rig.settings, rig.session, rig.secrets)
    tokens = MethodAwareTokenProvider(app_only, rig.provider)
    rig.connect("alice@contoso.test")
    me = rig.session.get(f"{rig.sim.url}/v1.0/me", timeout=10,
                         headers={"Authorization": f"Bearer {tokens.token(GraphIdentity(TENANT, ALICE))}"})
    assert me.json()["id"] == ALICE
    assert tokens.token(GraphIdentity(TENANT)) == app_only.token(GraphIdentity(TENANT))
    rig.connect("bob@contoso.test")
    tokens.invalidate(TENANT)
    me = rig.session.get(f"{rig.sim.url}/v1.0/me", timeout=10,
                         headers={"Authorization": f"Bearer {tokens.token(GraphIdentity(TENANT, BOB))}"})
    assert me.json()["id"] == BOB
