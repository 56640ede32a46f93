"""The composition root: the one place that wires adapters to services.

``get_container()`` builds the real adapters from ``Settings.from_env()`` once per
process (lazily, so importing ``function_app`` stays cheap and never touches the
network). Tests call ``set_container(Container(...fakes...))``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from core.clock import SystemClock
from core.domain.errors import DependencyError
from core.log import configure_logging
from core.ports import CalendarGateway, Clock, CommandQueue, Mailer, SecretStore, TableStore, TokenProvider
from core.settings import Settings, SettingsError

T = TypeVar("T")

log = logging.getLogger(__name__)


@dataclass
class Container:
    """Everything a function needs, already wired."""

    settings: Settings
    tables: TableStore
    queues: CommandQueue
    secrets: SecretStore
    clock: Clock
    tokens: TokenProvider | None = None
    graph: CalendarGateway | None = None
    mailer: Mailer | None = None
    _services: dict[str, Any] = field(default_factory=dict, repr=False)
    # Reentrant: a service factory may ask the container for the services it depends on.
    _services_lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def gateway(self) -> CalendarGateway:
        """The Microsoft Graph gateway (tests install a fake one)."""
        if self.graph is None:
            raise DependencyError("Microsoft Graph is not configured for this process.")
        return self.graph

    def service(self, name: str, factory: Callable[[Container], T]) -> T:
        """A service built once per container from its ports (``factory(container)``)."""
        with self._services_lock:
            if name not in self._services:
                self._services[name] = factory(self)
            return self._services[name]  # type: ignore[no-any-return]


_lock = threading.Lock()
_container: Container | None = None


def build_container(settings: Settings) -> Container:
    """Real adapters for the given settings. Heavy SDKs are imported here, not at module import."""
    from core.adapters.graph import GraphClient, GraphGateway
    from core.adapters.http import build_session
    from core.adapters.method_tokens import build_method_aware_tokens
    from core.adapters.queues import AzureCommandQueue
    from core.adapters.tables import AzureTableStore

    secrets: SecretStore
    if settings.key_vault_uri:
        from core.adapters.keyvault import KeyVaultSecretStore

        secrets = KeyVaultSecretStore.from_settings(settings)
    else:
        from core.adapters.local_secrets import LocalFileSecretStore

        secrets = LocalFileSecretStore(settings.local_secrets_dir)
    clock = SystemClock()
    session = build_session(settings)
    tables = AzureTableStore.from_settings(settings.storage)
    queues = AzureCommandQueue.from_settings(settings.storage)
    # App-only for domain-wide tenants, the user's (or the scheduling mailbox's) delegated
    # token for per-user and service-account tenants: services never need to know which.
    tokens = build_method_aware_tokens(settings, session, secrets, tables=tables, queues=queues, clock=clock)
    mailer: Mailer
    if settings.acs_endpoint:
        from core.adapters.mailer_acs import AcsMailer

        mailer = AcsMailer.from_settings(settings)
    else:
        from core.adapters.mailer_local import LocalOutboxMailer

        mailer = LocalOutboxMailer(settings.local_outbox_dir)
    return Container(
        settings=settings,
        tables=tables,
        queues=queues,
        secrets=secrets,
        clock=clock,
        tokens=tokens,
        graph=GraphGateway(GraphClient(settings.graph_base_url, session, tokens)),
        mailer=mailer,
    )


def get_container() -> Container:
    """The process-wide container, built on first use. Raises ``SettingsError`` if misconfigured."""
    global _container  # noqa: PLW0603 - one container per worker process
    if _container is None:
        with _lock:
            if _container is None:
                settings = Settings.from_env()
                configure_logging(settings.log_level)
                _container = build_container(settings)
    return _container


def set_container(container: Container | None) -> None:
    """Install a container (tests, the local host); ``None`` resets to lazy building."""
    global _container  # noqa: PLW0603
    with _lock:
        _container = container


def check_settings_at_startup() -> None:
    """Log every settings problem once at start-up, without breaking function indexing."""
    try:
        Settings.from_env()
    except SettingsError as exc:
        log.critical("%s", exc)
