"""Ports: the interfaces services are written against.

Each port has an in-memory fake (``tests/support/memory.py``, never deployed) and a real adapter in
``core/adapters``; one contract suite (``tests/contract``) runs against both so the
fake cannot drift from the real thing. Services never import an adapter: they get
ports from ``core/bootstrap.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, Protocol

from core.domain.calendar import (
    BatchOutcome,
    BatchRequest,
    CalendarInfo,
    CalendarItem,
    CreatedEvent,
    DeltaPage,
    DirectoryUser,
    EventMetadata,
    GraphIdentity,
    MailboxSettings,
    NewEvent,
    PatternedRecurrence,
    Room,
    RoomList,
    Schedule,
    SubscriptionInfo,
)
from core.domain.errors import ServiceError

# Values a table entity property may hold. Nested data is stored as a JSON string by
# the repository that owns it (Table Storage has no nested properties).
EntityValue = str | int | float | bool | datetime | None


@dataclass(frozen=True, slots=True)
class Entity:
    """A table row as services see it: raw (decoded) keys, plain properties, the ETag."""

    partition_key: str
    row_key: str
    data: Mapping[str, EntityValue] = field(default_factory=dict)
    etag: str | None = None


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """The claims of a token that passed every check (values already type-checked)."""

    tenant_id: str
    object_id: str
    scopes: frozenset[str]
    roles: frozenset[str]
    is_app: bool
    name: str | None
    username: str | None
    app_id: str | None = None  # the client the token was issued to (``azp``, v1 ``appid``), lower-case


class TokenValidator(Protocol):
    """Checks a bearer token issued for this API (signature, issuer, audience, expiry)."""

    def validate(self, token: str) -> TokenClaims:
        """The token's claims when every rule holds; ``InvalidToken`` (401) otherwise."""
        ...


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


TableOpKind = Literal["insert", "update", "upsert", "delete"]
MAX_TRANSACTION_OPS = 100  # Azure Table Storage: an entity-group transaction holds at most 100 operations


@dataclass(frozen=True, slots=True)
class TableOp:
    """One operation of an entity-group transaction (``TableStore.transact``).

    ``insert``, ``update`` (ETag-guarded when ``entity.etag`` is set), ``upsert`` (replace) and
    ``delete`` (of ``entity``'s keys; ETag-guarded when set) mean what the single calls mean.
    """

    kind: TableOpKind
    entity: Entity


def check_transaction(partition_key: str, operations: Sequence[TableOp]) -> None:
    """The shape rules of an entity-group transaction, shared by every ``TableStore``:
    1-100 operations, all in ``partition_key``, each row at most once."""
    if not 1 <= len(operations) <= MAX_TRANSACTION_OPS:
        raise ValueError(f"a transaction holds 1 to {MAX_TRANSACTION_OPS} operations, not {len(operations)}")
    rows: set[str] = set()
    for op in operations:
        if op.entity.partition_key != partition_key:
            raise ValueError("every operation of a transaction must be in its one partition")
        if op.entity.row_key in rows:
            raise ValueError("a transaction may touch each row only once")
        rows.add(op.entity.row_key)


class TableStore(Protocol):
    """Table storage with optimistic concurrency.

    Keys are any strings: implementations encode them so that user ids, emails or
    Graph ids never produce an invalid PartitionKey/RowKey (``/ \\ # ?``, control
    characters, over 1 KiB), and decode them on the way out. Key order is preserved
    for keys made of letters, digits, ``-``, ``_``, ``.``, ``:`` and ``@`` so range
    queries work on such keys.
    """

    def get(self, table: str, partition_key: str, row_key: str) -> Entity | None:
        """The entity, or None when it does not exist."""
        ...

    def insert(self, table: str, entity: Entity) -> Entity:
        """Create; raise ``Conflict`` if the key exists. Returns the entity with its ETag."""
        ...

    def update(self, table: str, entity: Entity) -> Entity:
        """Replace an existing entity if ``entity.etag`` still matches (``ConcurrencyConflict``
        otherwise, ``NotFound`` if it is gone). ``etag=None`` replaces unconditionally."""
        ...

    def upsert(self, table: str, entity: Entity) -> Entity:
        """Insert or replace unconditionally."""
        ...

    def delete(self, table: str, partition_key: str, row_key: str, etag: str | None = None) -> None:
        """Delete; a missing entity is not an error. With ``etag``, ``ConcurrencyConflict`` on mismatch."""
        ...

    def query(
        self,
        table: str,
        partition_key: str,
        *,
        row_key_from: str | None = None,
        row_key_to: str | None = None,
        limit: int | None = None,
    ) -> Iterator[Entity]:
        """Entities of one partition in row-key order; ``row_key_from`` inclusive, ``row_key_to`` exclusive."""
        ...

    def transact(self, table: str, partition_key: str, operations: Sequence[TableOp]) -> list[Entity | None]:
        """Apply 1-100 operations on one partition of one table atomically (an entity-group
        transaction): all of them or none. Returns what each stored (with its new ETag; ``None``
        for a delete), in order. A failing operation fails the whole transaction with the error
        its single call would raise (``ConcurrencyConflict``, ``Conflict`` ``already_exists``,
        ``NotFound``); ``ValueError`` for an empty or oversized list, another partition, or the
        same row twice. Unlike the single ``delete``, a delete of a missing row is ``NotFound``."""
        ...

    def ping(self) -> None:
        """Cheap reachability check; raise ``StorageUnavailable`` if storage does not answer."""
        ...


class CommandQueue(Protocol):
    """Queues of JSON commands, consumed by queue-triggered functions (at least once)."""

    def send(self, queue: str, message: Mapping[str, Any], *, delay_seconds: float = 0) -> None:
        """Enqueue one JSON message; ``delay_seconds`` hides it that long (scheduled retries)."""
        ...

    def ping(self) -> None:
        """Cheap reachability check; raise ``StorageUnavailable`` if the queue service does not answer."""
        ...


class SecretStore(Protocol):
    """Credentials only. Names are any strings; implementations encode them to the vault's rules."""

    def get(self, name: str) -> str | None:
        """The secret's value, or None if there is none. Cached in memory by real adapters."""
        ...

    def set(self, name: str, value: str) -> None:
        ...

    def delete(self, name: str) -> None:
        """Forget a secret; a missing one is not an error."""
        ...

    def ping(self) -> None:
        """Cheap reachability check; raise ``SecretStoreUnavailable`` on failure."""
        ...


# --- Microsoft 365 ports (Graph gateway, tokens) are added below by the gateway work. ---


class TokenProvider(Protocol):
    """Access tokens for Microsoft Graph: app-only per customer tenant (``who.user_id`` None)
    or, for per-user connections, that user's delegated token.

    Raises the ``AuthorizationError`` subclasses (AADSTS code kept), ``TransientGraphError``
    when Entra ID does not answer, ``SecretStoreUnavailable`` when the credential cannot be read.
    """

    def token(self, who: GraphIdentity) -> str:
        """A bearer token for Graph (cached by the provider until near expiry)."""
        ...

    def invalidate(self, tenant_id: str) -> None:
        """Forget cached clients and tokens of a tenant (after consent was revoked or a 401)."""
        ...


class CalendarGateway(Protocol):
    """Microsoft Graph calendar operations, metadata only.

    Every call names ``who`` (whose token: tenant app-only or a user's delegated one).
    Failures are the ``GraphError`` tree (``MailboxUnavailable``, ``OutsideAppScope``,
    ``UserNotFound``, ``ItemNotFound``, ``GraphConflict``, ``GraphRequestRejected``,
    ``GraphAuthError``), ``Throttled(retry_after)`` once the retry budget is spent,
    ``TransientGraphError`` for 5xx/timeouts, and ``AuthorizationError`` from the token.
    """

    def list_users(self, who: GraphIdentity, *, page_size: int = 100) -> Iterator[DirectoryUser]:
        """Enabled accounts that have a mailbox, lazily across pages."""
        ...

    def get_user(self, who: GraphIdentity, user: str) -> DirectoryUser:
        """One user by id or UPN; ``UserNotFound`` if it does not resolve."""
        ...

    def get_calendar(self, who: GraphIdentity, user: str) -> CalendarInfo:
        """The user's default calendar: allowed online-meeting providers (is Teams allowed)."""
        ...

    def find_calendar(self, who: GraphIdentity, user: str, name: str) -> CalendarInfo | None:
        """The user's calendar named ``name`` (case-insensitive), or None when there is none."""
        ...

    def create_calendar(self, who: GraphIdentity, user: str, name: str) -> CalendarInfo:
        """Create a secondary calendar in ``user``'s mailbox; ``GraphConflict`` when the name is taken."""
        ...

    def get_schedule(
        self,
        who: GraphIdentity,
        anchor_user: str,
        addresses: Sequence[str],
        start: datetime,
        end: datetime,
        *,
        interval_minutes: int = 30,
    ) -> list[Schedule]:
        """Free/busy of 1-20 addresses over a window under 62 days (aware datetimes), in
        the order of ``addresses``; a per-address failure is ``Schedule.error_code``."""
        ...

    def get_mailbox_settings(self, who: GraphIdentity, user: str) -> MailboxSettings:
        """The mailbox's time zone and working hours."""
        ...

    def create_event(self, who: GraphIdentity, user: str, event: NewEvent) -> CreatedEvent:
        """Create (and send) an event in ``user``'s calendar; ``transaction_id`` makes retries idempotent."""
        ...

    def update_event(
        self,
        who: GraphIdentity,
        user: str,
        event_id: str,
        start: datetime,
        end: datetime,
        *,
        time_zone: str = "UTC",
    ) -> EventMetadata:
        """Move an event (PATCH start/end); returns its metadata after the change."""
        ...

    def cancel_event(self, who: GraphIdentity, user: str, event_id: str, comment: str | None = None) -> None:
        """Cancel as organizer (attendees are notified); ``ItemNotFound`` if it is already gone."""
        ...

    def delete_event(self, who: GraphIdentity, user: str, event_id: str) -> None:
        """Delete from ``user``'s calendar without notifying; ``ItemNotFound`` if already gone."""
        ...

    def get_event(self, who: GraphIdentity, user: str, event_id: str) -> EventMetadata:
        """Metadata of one event (times, cancelled, attendee responses); never subject or body."""
        ...

    def find_event_by_transaction_id(
        self, who: GraphIdentity, user: str, transaction_id: str, start: datetime, end: datetime
    ) -> EventMetadata | None:
        """The event created with ``transaction_id`` within [start, end), for crash recovery."""
        ...

    # --- recurring series -------------------------------------------------------------------
    # A series is created with ``create_event`` (``NewEvent.recurrence``): the id it returns is
    # the series master's. Occurrence ids (from ``list_instances``) work with the single-event
    # calls: ``get_event`` reads one occurrence, ``update_event`` on an occurrence id makes it
    # an exception (Outlook refuses a move onto or past a neighbour's day:
    # ``GraphRequestRejected`` ``ErrorOccurrenceCrossingBoundary``), ``cancel_event`` on an
    # occurrence id cancels that one occurrence and on the master the whole series.

    def list_instances(
        self, who: GraphIdentity, user: str, series_id: str, start: datetime, end: datetime
    ) -> Iterator[EventMetadata]:
        """The occurrences and exceptions of a series master overlapping [start, end), in start order,
        every page followed (``GET .../events/{id}/instances``, metadata only); cancelled ones are
        not listed. ``ItemNotFound`` when the master is gone."""
        ...

    def update_series(
        self,
        who: GraphIdentity,
        user: str,
        series_id: str,
        *,
        recurrence: PatternedRecurrence | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        time_zone: str = "UTC",
    ) -> EventMetadata:
        """PATCH the series master: a new rule and/or new times for every occurrence (``start``/``end``
        are the first occurrence's). Exchange then drops the series' exceptions and cancelled
        occurrences when the pattern or the times change; attendees answer again."""
        ...

    def end_series(self, who: GraphIdentity, user: str, series_id: str, last_date: date) -> EventMetadata:
        """End the series after ``last_date`` (a date in the series' zone): its range becomes
        ``endDate`` = ``last_date``; occurrences and exceptions up to it stay as they are.
        ``InvalidRecurrence`` ``end_before_start`` when ``last_date`` is before the series began."""
        ...

    def calendar_view(
        self, who: GraphIdentity, user: str, start: datetime, end: datetime, *, include_subject: bool = False
    ) -> Iterator[CalendarItem]:
        """Occurrences in [start, end); subjects only when showing users their own calendar."""
        ...

    def calendar_view_delta(
        self, who: GraphIdentity, user: str, start: datetime, end: datetime, delta_link: str | None = None
    ) -> DeltaPage:
        """Changes since ``delta_link`` (or a full initial sync of the window), all pages followed."""
        ...

    def list_room_lists(self, who: GraphIdentity) -> list[RoomList]:
        """The tenant's room lists."""
        ...

    def list_rooms(self, who: GraphIdentity, room_list_email: str | None = None) -> list[Room]:
        """All rooms, or the rooms of one room list."""
        ...

    def create_subscription(
        self,
        who: GraphIdentity,
        *,
        resource: str,
        change_type: str,
        notification_url: str,
        lifecycle_url: str,
        client_state: str,
        expiration: datetime,
    ) -> SubscriptionInfo:
        """Create a change-notification subscription; the result carries the expiry Graph granted."""
        ...

    def renew_subscription(self, who: GraphIdentity, subscription_id: str, expiration: datetime) -> SubscriptionInfo:
        """Extend a subscription; ``ItemNotFound`` if Graph already removed it."""
        ...

    def delete_subscription(self, who: GraphIdentity, subscription_id: str) -> None:
        """Delete a subscription; one that is already gone is not an error."""
        ...

    def reauthorize_subscription(self, who: GraphIdentity, subscription_id: str) -> None:
        """Answer a ``reauthorizationRequired`` lifecycle notification."""
        ...

    def list_subscriptions(self, who: GraphIdentity) -> list[SubscriptionInfo]:
        """The calling app's active subscriptions in ``who``'s tenant (app-only: all of them; delegated:
        those created for that user), every page followed (GET /subscriptions)."""
        ...

    def batch(self, who: GraphIdentity, requests: Sequence[BatchRequest]) -> list[BatchOutcome]:
        """Send requests in ``$batch`` groups of 20; throttled parts are retried; one outcome per request."""
        ...

    def get_events(
        self, who: GraphIdentity, refs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], EventMetadata | ServiceError]:
        """Metadata of many (user, event id) pairs via ``$batch``; failures per pair."""
        ...

    def get_users(self, who: GraphIdentity, refs: Sequence[str]) -> dict[str, DirectoryUser | ServiceError]:
        """Many users by id or UPN/email via ``$batch`` (20 per call), keyed by the ref as given;
        ``UserNotFound`` (or another error) per ref that does not resolve."""
        ...

    def renew_subscriptions(
        self, who: GraphIdentity, renewals: Sequence[tuple[str, datetime]]
    ) -> dict[str, SubscriptionInfo | ServiceError]:
        """Renew many subscriptions via ``$batch``; failures per subscription id."""
        ...

    def probe_mailboxes(self, who: GraphIdentity, users: Sequence[str]) -> dict[str, ServiceError | None]:
        """Can the app reach each user's calendar? ``None`` = reachable, else the classified error."""
        ...


class Mailer(Protocol):
    """Sends plain-text email to an integration owner (ACS Email deployed, a local outbox locally)."""

    def send(self, to: str, subject: str, text: str) -> None:
        """Send one message; raise ``DependencyError`` when the mail service is unavailable."""
        ...


# --- delegated sign-in and sealing ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthStart:
    """Where to send the browser, and the flow to keep server-side until the callback."""

    authorize_url: str
    flow: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class SignedInUser:
    """Who signed in (from the id token) and their token cache, opaque to services and never logged."""

    tenant_id: str
    object_id: str
    username: str | None
    token_cache: str = field(repr=False)


class DelegatedAuthFlow(Protocol):
    """Delegated sign-in (auth code + PKCE) and the per-user token store behind it (MSAL in production)."""

    def begin(
        self, tenant_id: str, scopes: Sequence[str], redirect_uri: str, state: str, login_hint: str | None
    ) -> AuthStart:
        """Start a flow whose authorize URL carries ``state``; ``scopes`` without the OIDC ones."""
        ...

    def redeem(self, tenant_id: str, flow: Mapping[str, Any], response: Mapping[str, str]) -> SignedInUser:
        """Redeem the code of ``response`` for the flow: ``Forbidden`` on a state mismatch, the
        ``AuthorizationError`` tree for Entra's refusals, ``TransientGraphError`` when it does not answer."""
        ...

    def keep(self, tenant_id: str, user_id: str, signed_in: SignedInUser) -> None:
        """Store the user's token cache (replacing an older one)."""
        ...

    def forget(self, tenant_id: str, user_id: str) -> None:
        """Forget the user's tokens (secret and in-memory cache); nothing stored is not an error."""
        ...


class ReconnectNotifier(Protocol):
    """Told when a user's delegated token dies for good (revoked, expired, password reset):
    the connection is flagged ``needsReconnect`` and the integration owner alerted once."""

    def needs_reconnect(self, tenant_id: str, user_id: str, reason: str) -> None:
        ...


class Sealer(Protocol):
    """Seals short texts for one context (e.g. ``tenant:session``) and opens them again.

    Free text that must ride through a queue (a meeting subject, a cancel comment) is
    sealed by the API and opened only by the worker, so queue storage (and poison queues,
    which keep messages) never holds it readable. The AES-GCM adapter with its key from
    the secret store is ``core/adapters/sealer.py``.
    """

    def seal(self, plaintext: str, context: str) -> str:
        """An opaque ASCII token that reveals nothing of ``plaintext`` and opens only with ``context``."""
        ...

    def unseal(self, token: str, context: str) -> str:
        """The text sealed with ``seal(text, context)``; ``UnsealFailed`` for anything else."""
        ...


# --- outbound webhooks to the product (Standard Webhooks) ------------------------------------


@dataclass(frozen=True, slots=True)
class WebhookAttempt:
    """What one POST to a product's endpoint gave: the status (None when no response came),
    how long it took, and a short code for a failure without a status (``timeout``,
    ``connection_failed``, ``address_refused``, ``tls_failed``...). The body is never read."""

    status: int | None
    latency_ms: int
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class WebhookSender(Protocol):
    """Delivers signed webhooks (Standard Webhooks) to product endpoints, and vets their URLs.

    The real adapter (``core/adapters/webhook_sender.py``) resolves the host, refuses private,
    loopback, link-local, CGNAT, multicast, unspecified and cloud-metadata addresses (loopback
    over http only in local mode), and connects to the address it checked (no DNS rebinding
    between check and connect). It signs with the ``standardwebhooks`` package.
    """

    def check_url(self, url: str) -> None:
        """``ValidationFailed`` (with a ``code``) when ``url`` may not receive webhooks now."""
        ...

    def deliver(
        self, url: str, *, message_id: str, timestamp: datetime, body: str, secrets: Sequence[str]
    ) -> WebhookAttempt:
        """POST ``body`` once with ``webhook-id``/``webhook-timestamp``/``webhook-signature`` (one
        ``v1,`` signature per secret), 10 s in all, redirects not followed. Never raises for what
        the endpoint does; a refused address is ``WebhookAttempt(None, 0, "address_refused")``."""
        ...
