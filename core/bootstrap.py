"""The composition root: the one place that builds adapters and wires services.

``Container`` holds the adapters (the ports of ``core/ports.py``) and offers every
service as a typed, lazily built attribute (``container.booking``,
``container.event_writer``...): each is built once per container, on first use, from
the adapters and the other services here, and nowhere else. ``functions/`` modules
read what they need from the container and construct nothing.

``get_container()`` builds the real adapters from ``Settings.from_env()`` once per
process (lazily, so importing ``function_app`` stays cheap and never touches the
network). Tests build a ``Container`` over fakes (``tests/support``), swapping any
adapter in one place, and install it with ``set_container``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from core.clock import SystemClock
from core.domain.errors import DependencyError
from core.log import configure_logging
from core.settings import Settings, SettingsError, deployed_adapter_problems

if TYPE_CHECKING:  # ports are types only; services are imported when first built (cold start)
    from core.ports import (
        CalendarGateway,
        Clock,
        CommandQueue,
        DelegatedAuthFlow,
        Mailer,
        Sealer,
        SecretStore,
        TableStore,
        TokenProvider,
        TokenValidator,
        WebhookSender,
    )
    from core.services.access_test import AccessTestService
    from core.services.alerts import OwnerAlerts
    from core.services.availability import AvailabilityService
    from core.services.booking import BookingService
    from core.services.client_state import ClientStateKeyCache
    from core.services.connections import ConnectionHealth, ConnectionService
    from core.services.event_writer import EventWriter
    from core.services.idempotency import IdempotencyService
    from core.services.integration import IntegrationService
    from core.services.notifications import NotificationWorker
    from core.services.offered_hours import OfferedHoursService
    from core.services.on_behalf import OnBehalfResolver
    from core.services.owner_alert_worker import OwnerAlertWorker
    from core.services.pairings import PairingService
    from core.services.product_events.delivery import WebhookDeliveryWorker
    from core.services.product_events.dispatcher import ProductEventDispatcher
    from core.services.product_events.endpoints import WebhookEndpointService
    from core.services.ratelimits import RateLimiter
    from core.services.reconcile import LifecycleWorker, Reconciler
    from core.services.request_cleanup import RequestStateCleanup
    from core.services.series import SeriesService
    from core.services.series_writer import SeriesWriter
    from core.services.stores.audit import AuditTrail
    from core.services.subscriptions import SubscriptionService
    from core.services.tenancy import TenantGate

T = TypeVar("T")

log = logging.getLogger(__name__)


class _Service(Generic[T]):
    """A container attribute built once per container, on first use, under the container's lock."""

    def __init__(self, build: Callable[[Container], T]) -> None:
        self._build = build
        self._name = build.__name__
        self.__doc__ = build.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, container: None, owner: type | None = None) -> _Service[T]: ...

    @overload
    def __get__(self, container: Container, owner: type | None = None) -> T: ...

    def __get__(self, container: Container | None, owner: type | None = None) -> T | _Service[T]:
        if container is None:
            return self
        built = container._built
        if self._name not in built:
            # Re-entrant: a service's builder reads the services it depends on.
            with container._lock:
                if self._name not in built:
                    built[self._name] = self._build(container)
        value: T = built[self._name]
        return value


def service(build: Callable[[Container], T]) -> _Service[T]:
    """Declare a lazily built, per-container service (see ``_Service``)."""
    return _Service(build)


class Container:
    """The adapters of one process and the services wired from them (module docstring)."""

    def __init__(
        self,
        *,
        settings: Settings,
        tables: TableStore,
        queues: CommandQueue,
        secrets: SecretStore,
        clock: Clock,
        tokens: TokenProvider | None = None,
        graph: CalendarGateway | None = None,
        mailer: Mailer | None = None,
        sealer: Sealer | None = None,
        auth_flow: DelegatedAuthFlow | None = None,
        validator: TokenValidator | None = None,
        webhooks: WebhookSender | None = None,
    ) -> None:
        self.settings = settings
        self.tables = tables
        self.queues = queues
        self.secrets = secrets
        self.clock = clock
        self.tokens = tokens
        self.graph = graph
        self.mailer = mailer
        self.auth_flow = auth_flow
        self.validator = validator
        self._sealer = sealer
        self._webhooks = webhooks
        self._built: dict[str, Any] = {}
        self._lock = threading.RLock()
        # Outbox rows written through this store are dispatched right after their commit.
        from core.services.stores.outbox import attach_relay

        attach_relay(tables, _ContainerRelay(self))

    # --- adapters that must be present ----------------------------------------------------

    @property
    def gateway(self) -> CalendarGateway:
        """The Microsoft Graph gateway (tests install a fake one)."""
        if self.graph is None:
            raise DependencyError("Microsoft Graph is not configured for this process.")
        return self.graph

    @property
    def token_validator(self) -> TokenValidator:
        """The bearer-token validator (built on first use; its JWKS are fetched lazily)."""
        if self.validator is None:
            with self._lock:
                if self.validator is None:
                    from core.adapters.jwt_validator import JwtValidator

                    self.validator = JwtValidator(self.settings)
        return self.validator

    @service
    def sealer(self) -> Sealer:
        """Seals queued free text (its key read from the secret store once)."""
        if self._sealer is not None:
            return self._sealer
        from core.adapters.sealer import AesGcmSealer

        return AesGcmSealer(self.secrets)

    @service
    def webhook_sender(self) -> WebhookSender:
        """Posts signed webhooks to the product (checks and pins addresses); tests install a fake."""
        if self._webhooks is not None:
            return self._webhooks
        from core.adapters.webhook_sender import RequestsWebhookSender

        return RequestsWebhookSender(local_mode=self.settings.local_mode)

    def delegated_sign_in(self) -> DelegatedAuthFlow:
        if self.auth_flow is None:
            raise DependencyError("Delegated sign-in is not configured for this process.")
        return self.auth_flow

    def mail(self) -> Mailer:
        if self.mailer is None:
            raise DependencyError("Email is not configured for this process.")
        return self.mailer

    # --- services --------------------------------------------------------------------------

    @service
    def rate_limiter(self) -> RateLimiter:
        """Per-caller and per-tenant request budgets shared by every instance (table ``ratelimits``)."""
        from core.services.ratelimits import RateLimiter
        from core.services.stores.ratelimits import RateLimitStore

        return RateLimiter(RateLimitStore(self.tables), self.clock)

    @service
    def tenant_gate(self) -> TenantGate:
        """Which tenants have onboarded (cached per process)."""
        from core.services.tenancy import TenantGate

        return TenantGate(self.tables)

    @service
    def owner_alerts(self) -> OwnerAlerts:
        """Claims and queues owner alerts (one per kind and period)."""
        from core.services.alerts import OwnerAlerts

        return OwnerAlerts(self.tables, self.queues, self.clock)

    @service
    def owner_alert_worker(self) -> OwnerAlertWorker:
        from core.services.owner_alert_worker import OwnerAlertWorker

        return OwnerAlertWorker(tables=self.tables, mailer=self.mail(), clock=self.clock,
                                app_url=self.settings.app_url)

    @service
    def connection_health(self) -> ConnectionHealth:
        """Flags connections whose delegated token died and alerts the owner once."""
        from core.services.connections import ConnectionHealth
        from core.services.stores.connections import ConnectionRepository

        return ConnectionHealth(ConnectionRepository(self.tables), self.owner_alerts, self.clock)

    @service
    def client_state_keys(self) -> ClientStateKeyCache:
        """The clientState HMAC key, read once per process (shared by the webhook and subscriptions)."""
        from core.services.client_state import ClientStateKeyCache

        return ClientStateKeyCache(self.secrets)

    @service
    def subscriptions(self) -> SubscriptionService:
        from core.services.subscriptions import SubscriptionService

        return SubscriptionService(
            self.tables, self.queues, self.gateway, self.clock, self.client_state_keys,
            public_base_url=self.settings.public_base_url, url_code=self.settings.webhook_url_code,
            alerts=self.owner_alerts,
        )

    @service
    def notifications(self) -> NotificationWorker:
        from core.services.notifications import NotificationWorker

        return NotificationWorker(self.tables, self.queues, self.gateway, self.clock, alerts=self.owner_alerts)

    @service
    def reconciler(self) -> Reconciler:
        from core.services.reconcile import Reconciler

        return Reconciler(self.tables, self.gateway, self.clock, self.subscriptions, queues=self.queues)

    @service
    def lifecycle(self) -> LifecycleWorker:
        from core.services.reconcile import LifecycleWorker

        return LifecycleWorker(self.queues, self.gateway, self.subscriptions, self.reconciler, self.owner_alerts)

    @service
    def event_writer(self) -> EventWriter:
        from core.services.event_writer import EventWriter

        return EventWriter(
            self.gateway, self.tables, self.queues, self.clock, self.sealer, alerts=self.owner_alerts,
            # After an organizer's first booking, make sure their mailbox is watched.
            on_first_booking=self.subscriptions.ensure_for_mailbox,
        )

    @service
    def booking(self) -> BookingService:
        from core.services.booking import BookingService

        return BookingService(self.graph, self.tables, self.queues, self.clock, self.sealer)

    @service
    def series(self) -> SeriesService:
        from core.services.series import SeriesService

        return SeriesService(self.booking, self.tables, self.queues, self.clock, self.sealer)

    @service
    def series_writer(self) -> SeriesWriter:
        from core.services.series_writer import SeriesWriter

        return SeriesWriter(
            self.gateway, self.tables, self.queues, self.clock, self.sealer, alerts=self.owner_alerts,
            on_first_booking=self.subscriptions.ensure_for_mailbox,
        )

    @service
    def availability(self) -> AvailabilityService:
        from core.services.availability import AvailabilityService

        return AvailabilityService(self.gateway, self.tables, self.clock)

    @service
    def pairings(self) -> PairingService:
        from core.services.pairings import PairingService

        return PairingService(self.graph, self.tables, self.clock)

    @service
    def access_tests(self) -> AccessTestService:
        from core.services.access_test import AccessTestService

        return AccessTestService(
            tables=self.tables, queues=self.queues, clock=self.clock, gateway=self.graph, alerts=self.owner_alerts,
            app_id=self.settings.entra_client_id, tokens=self.tokens,
        )

    @service
    def integration(self) -> IntegrationService:
        from core.services.integration import IntegrationService

        return IntegrationService(
            tables=self.tables, clock=self.clock, settings=self.settings, gateway=self.graph,
            secrets_store=self.secrets, alerts=self.owner_alerts, access_tests=self.access_tests,
            tokens=self.tokens, queues=self.queues,
            # Resolved when called: the subscription service needs Graph, building this one does not.
            delete_subscriptions=lambda tenant_id: self.subscriptions.remove_all_for_tenant(tenant_id),  # noqa: PLW0108
        )

    @service
    def product_events(self) -> ProductEventDispatcher:
        """Moves outbox rows to the product-events queue (right after commits, and the sweep timer)."""
        from core.services.product_events.dispatcher import ProductEventDispatcher

        return ProductEventDispatcher(self.tables, self.queues, self.clock)

    @service
    def webhook_endpoints(self) -> WebhookEndpointService:
        """The product's webhook endpoints: CRUD, secrets, ping, delivery log, replay, retention."""
        from core.services.product_events.endpoints import WebhookEndpointService

        return WebhookEndpointService(
            tables=self.tables, queues=self.queues, clock=self.clock, secrets=self.secrets,
            sender=self.webhook_sender, dispatcher=self.product_events, local_mode=self.settings.local_mode,
        )

    @service
    def webhook_delivery(self) -> WebhookDeliveryWorker:
        """The product-events queue worker (signed delivery, order, retries, disable)."""
        from core.services.product_events.delivery import WebhookDeliveryWorker

        return WebhookDeliveryWorker(
            tables=self.tables, queues=self.queues, clock=self.clock, secrets=self.secrets,
            sender=self.webhook_sender, alerts=self.owner_alerts, dispatcher=self.product_events,
        )

    @service
    def connections(self) -> ConnectionService:
        from core.services.connections import ConnectionService

        return ConnectionService(
            tables=self.tables, clock=self.clock, settings=self.settings, flow=self.delegated_sign_in(),
            sealer=self.sealer, gateway=self.graph,
            remove_subscriptions=lambda tenant_id, user_id: self.subscriptions.remove_for_mailbox(  # noqa: PLW0108
                tenant_id, user_id),
        )

    @service
    def offered_hours(self) -> OfferedHoursService:
        """Users' offered hours and the tenant default (Graph only to name users on admin routes)."""
        from core.services.offered_hours import OfferedHoursService

        # Graph resolved when needed (tests install a fake gateway after building the container).
        return OfferedHoursService(self.tables, self.clock, lambda: self.gateway)


    # --- the product's server: acting for users, idempotent writes, the app audit trail --------

    @service
    def on_behalf(self) -> OnBehalfResolver:
        """Resolves X-On-Behalf-Of to an object id of the token's tenant (cached per process)."""
        from core.services.on_behalf import OnBehalfResolver

        return OnBehalfResolver(self.graph, self.tables)

    @service
    def idempotency(self) -> IdempotencyService:
        """Idempotency-Key records of write routes (the route framework's, not handlers')."""
        from core.services.idempotency import IdempotencyService

        return IdempotencyService(self.tables, self.clock)

    @service
    def audit(self) -> AuditTrail:
        """The tenant's audit trail (admin changes and every app action)."""
        from core.services.stores.audit import AuditTrail

        return AuditTrail(self.tables, self.clock)

    @service
    def request_cleanup(self) -> RequestStateCleanup:
        """Hourly: expired idempotency keys and past slot claims."""
        from core.services.request_cleanup import RequestStateCleanup

        return RequestStateCleanup(self.tables, self.clock, self.idempotency)


class _ContainerRelay:
    """The outbox relay of a container's table store: the dispatcher, built on first commit."""

    def __init__(self, container: Container) -> None:
        self._container = container

    def committed(self, table: str, tenant_id: str, streams: Sequence[str]) -> None:
        self._container.product_events.committed(table, tenant_id, streams)


_lock = threading.Lock()
_container: Container | None = None


def build_container(settings: Settings) -> Container:
    """Real adapters for the given settings. Heavy SDKs are imported here, not at module import."""
    from core.adapters.delegated_tokens import DelegatedTokenProvider
    from core.adapters.graph import GraphClient, GraphGateway
    from core.adapters.http import build_session
    from core.adapters.method_tokens import MethodAwareTokenProvider
    from core.adapters.queues import AzureCommandQueue
    from core.adapters.tables import AzureTableStore
    from core.adapters.tokens import AppCredential, AppOnlyTokenProvider

    missing = deployed_adapter_problems(settings)
    if missing:
        # Never fall back to local files or a local outbox in a deployment (core/settings.py checks this too).
        raise SettingsError([f"{name}: expected {expected}" for name, expected in missing])
    secrets: SecretStore
    if settings.key_vault_uri:
        from core.adapters.keyvault import KeyVaultSecretStore

        secrets = KeyVaultSecretStore.from_settings(settings)
    else:
        from core.adapters.local_secrets import LocalFileSecretStore

        secrets = LocalFileSecretStore(settings.local_secrets_dir)
    mailer: Mailer
    if settings.acs_endpoint:
        from core.adapters.mailer_acs import AcsMailer

        mailer = AcsMailer.from_settings(settings)
    else:
        from core.adapters.mailer_local import LocalOutboxMailer

        mailer = LocalOutboxMailer(settings.local_outbox_dir)
    clock = SystemClock()
    session = build_session(settings)
    tables = AzureTableStore.from_settings(settings.storage)
    queues = AzureCommandQueue.from_settings(settings.storage)
    # One app credential (one federation token) for the app-only and the delegated provider.
    credential = AppCredential(settings, secrets, clock)
    delegated = DelegatedTokenProvider(settings, session, secrets, clock, credential=credential)
    tokens = MethodAwareTokenProvider(
        AppOnlyTokenProvider(settings, session, secrets, clock, credential=credential), delegated
    )
    container = Container(
        settings=settings,
        tables=tables,
        queues=queues,
        secrets=secrets,
        clock=clock,
        tokens=tokens,
        graph=GraphGateway(GraphClient(settings.graph_base_url, session, tokens)),
        mailer=mailer,
        auth_flow=delegated,
    )
    # A dead refresh token flags the connection and alerts the owner (a service: wired after the fact).
    delegated.on_reconnect = container.connection_health
    return container


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
