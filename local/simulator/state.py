"""The simulator's world: tenants, mailboxes, calendars, events, subscriptions, tokens, faults.

One ``SimState`` holds everything behind a single re-entrant lock (``state.lock``);
every HTTP handler takes it for the duration of a read or a change. Outbound HTTP
(validation handshakes, change notifications) never happens under the lock: changes
only *enqueue* notifications on the ``Notifier``, whose own thread POSTs them.

Every change to an event gets a new value from one global sequence (``seq``). That
number drives change keys / etags, ``calendarView/delta`` (keyset on seq, tombstones
for deletions) and the order notifications are queued in.
"""

from __future__ import annotations

import base64
import random
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from local.simulator.timeutil import iso_z, now_utc

DEFAULT_CLIENT_ID = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
PRODUCT_SERVER_CLIENT_ID = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
SPA_CLIENT_ID = "cccccccc-cccc-4ccc-8ccc-cccccccccccc"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"

# hybrid: an on-premises mailbox in an Exchange hybrid deployment. With hybrid free/busy,
# getSchedule still answers its real availability, while every REST call on the mailbox
# itself fails with MailboxNotEnabledForRESTAPI: REST access to hybrid mailboxes ended in
# March 2023 (microsoftgraph/microsoft-graph-docs-contrib concepts/hybrid-rest-support.md).
# onPremises keeps meaning "no free/busy at all".
KINDS = ("normal", "onPremises", "unlicensed", "outsideScope", "hybrid")
NO_REST_KINDS = ("onPremises", "unlicensed", "hybrid")


@dataclass
class Calendar:
    """One calendar folder of a mailbox."""

    id: str
    name: str
    is_default: bool
    color: str = "auto"


@dataclass
class Event:
    """One event in one mailbox (organizer's original or an attendee's copy)."""

    id: str
    ical_uid: str
    mailbox_id: str
    calendar_id: str
    subject: str
    start: datetime
    end: datetime
    start_tz: str = "UTC"
    end_tz: str = "UTC"
    body_html: str = ""
    is_all_day: bool = False
    show_as: str = "busy"
    sensitivity: str = "normal"
    importance: str = "normal"
    organizer_name: str = ""
    organizer_address: str = ""
    attendees: list[dict[str, Any]] = field(default_factory=list)
    is_organizer: bool = True
    response: str = "organizer"
    response_time: datetime | None = None
    is_online: bool = False
    provider: str = "unknown"
    join_url: str | None = None
    location: dict[str, Any] = field(default_factory=dict)
    is_cancelled: bool = False
    transaction_id: str | None = None
    categories: list[str] = field(default_factory=list)
    reminder_minutes: int = 15
    created: datetime = field(default_factory=now_utc)
    modified: datetime = field(default_factory=now_utc)
    seq: int = 0
    # Recurring series (local/simulator/series.py): a master keeps Graph's patternedRecurrence, its
    # exceptions (by original start, "YYYYmmddTHHMMSSZ") and the occurrences deleted from it.
    recurrence: dict[str, Any] | None = None
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    # Set only on the transient events that stand for one occurrence or exception.
    type: str = "singleInstance"
    series_master_id: str | None = None
    original_start: datetime | None = None

    @property
    def change_key(self) -> str:
        return base64.b64encode(f"sim-ck-{self.seq:012d}".encode()).decode()


@dataclass
class Mailbox:
    """A directory user with (maybe) an Exchange Online mailbox; rooms are mailboxes too."""

    id: str
    tenant_id: str
    upn: str
    display_name: str
    kind: str = "normal"
    account_enabled: bool = True
    given_name: str | None = None
    surname: str | None = None
    job_title: str | None = None
    department: str | None = None
    office_location: str | None = None
    usage_location: str | None = "US"
    preferred_language: str | None = "en-US"
    time_zone: str = "UTC"
    working_hours: dict[str, Any] = field(default_factory=dict)
    allowed_providers: list[str] = field(default_factory=lambda: ["teamsForBusiness"])
    default_provider: str = "teamsForBusiness"
    is_room: bool = False
    capacity: int | None = None
    building: str | None = None
    floor: int | None = None
    room_list_email: str | None = None
    place_id: str | None = None
    calendars: dict[str, Calendar] = field(default_factory=dict)
    events: dict[str, Event] = field(default_factory=dict)
    tombstones: list[tuple[int, str]] = field(default_factory=list)
    transactions: dict[str, str] = field(default_factory=dict)
    # Ids of users with delegate (editor) rights on this mailbox's calendars: with a delegated
    # Calendars.ReadWrite.Shared token they may read and write them (the service-account method).
    delegates: set[str] = field(default_factory=set)

    @property
    def mail(self) -> str:
        return self.upn

    @property
    def default_calendar_id(self) -> str:
        for cal in self.calendars.values():
            if cal.is_default:
                return cal.id
        raise KeyError("no default calendar")

    @property
    def has_rest_mailbox(self) -> bool:
        """False for on-premises, hybrid and unlicensed users: Graph answers MailboxNotEnabledForRESTAPI."""
        return self.kind not in NO_REST_KINDS

    @property
    def has_free_busy(self) -> bool:
        """getSchedule answers availability for Exchange Online mailboxes and, through hybrid free/busy,
        for hybrid ones."""
        return self.has_rest_mailbox or self.kind == "hybrid"


@dataclass
class RoomList:
    """A room list (a distribution group of rooms)."""

    id: str
    email: str
    display_name: str
    room_emails: list[str] = field(default_factory=list)
    city: str = "Seattle"


@dataclass
class Tenant:
    """One customer directory with its consent switches."""

    id: str
    domain: str
    display_name: str
    mailboxes: dict[str, Mailbox] = field(default_factory=dict)
    room_lists: list[RoomList] = field(default_factory=list)
    consent_granted: bool = False
    consent_page_grants: bool = True
    user_consent_allowed: bool = True
    app_sp_id: str = ""
    # When consent was last granted (the propagation fault counts from here).
    consent_granted_at: datetime | None = None
    # What the consent page answers when it declines: the OAuth error and the AADSTS number
    # (v2-admin-consent.md documents consent_required + AADSTS65004).
    consent_decline_error: str = "consent_required"
    consent_decline_aadsts: int = 65004
    _index: dict[str, str] = field(default_factory=dict)

    def add(self, mailbox: Mailbox) -> None:
        self.mailboxes[mailbox.id] = mailbox
        self._index[mailbox.id.lower()] = mailbox.id
        self._index[mailbox.upn.lower()] = mailbox.id

    def find(self, ref: str) -> Mailbox | None:
        """A mailbox by object id, UPN or SMTP address (case-insensitive)."""
        key = self._index.get(ref.strip().lower())
        return self.mailboxes.get(key) if key else None

    @property
    def users(self) -> list[Mailbox]:
        return [m for m in self.mailboxes.values() if not m.is_room]

    @property
    def rooms(self) -> list[Mailbox]:
        return [m for m in self.mailboxes.values() if m.is_room]


@dataclass
class Subscription:
    """A Graph change-notification subscription on one mailbox's events."""

    id: str
    tenant_id: str
    app_id: str
    resource: str
    mailbox_id: str
    change_types: tuple[str, ...]
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expiration: datetime
    creator_id: str
    needs_reauthorization: bool = False


@dataclass
class AuthCode:
    """A single-use authorization code (delegated sign-in)."""

    tenant_id: str
    user_id: str
    client_id: str
    redirect_uri: str
    code_challenge: str
    scopes: tuple[str, ...]
    nonce: str | None
    expires: datetime
    used: bool = False


@dataclass
class RefreshToken:
    """A refresh token; rotated on every use."""

    tenant_id: str
    user_id: str
    client_id: str
    scopes: tuple[str, ...]
    valid: bool = True
    revoked_reason: str | None = None


@dataclass
class Faults:
    """Fault injection for Graph (and, for outages, the token endpoint)."""

    throttle_rate: float = 0.0
    fail_rate: float = 0.0
    latency_ms: int = 0
    latency_spike_rate: float = 0.0
    latency_spike_ms: int = 3000
    outage_until: datetime | None = None
    notifications: bool = True
    duplicates: int = 1
    retry_after_seconds: int = 1
    # Subscription lifetime Graph enforces (None: the --max-subscription-minutes start-up value).
    # 4230 reproduces the older documented maximum, so clients exercise their fallback.
    max_subscription_minutes: int | None = None
    # For this many seconds after an admin consent, app-only token requests for the tenant fail
    # as Entra does while the new service principal and grants replicate (observed, not
    # documented: microsoftgraph/microsoft-graph-docs-contrib#7087, #4160;
    # AzureAD/microsoft-authentication-library-for-dotnet#2612). 0 = off, the default, since
    # Microsoft documents no delay.
    consent_propagation_seconds: float = 0.0
    consent_propagation_aadsts: int = 700016

    def to_json(self) -> dict[str, Any]:
        remaining = 0.0
        if self.outage_until is not None:
            remaining = max(0.0, (self.outage_until - now_utc()).total_seconds())
        return {
            "throttleRate": self.throttle_rate,
            "failRate": self.fail_rate,
            "latencyMs": self.latency_ms,
            "latencySpikeRate": self.latency_spike_rate,
            "latencySpikeMs": self.latency_spike_ms,
            "outageSeconds": round(remaining, 1),
            "notifications": self.notifications,
            "duplicates": self.duplicates,
            "retryAfterSeconds": self.retry_after_seconds,
            "maxSubscriptionMinutes": self.max_subscription_minutes,
            "consentPropagationSeconds": self.consent_propagation_seconds,
            "consentPropagationAadsts": self.consent_propagation_aadsts,
        }

    def in_outage(self) -> bool:
        return self.outage_until is not None and now_utc() < self.outage_until


@dataclass(frozen=True, slots=True)
class Config:
    """Start-up options of one simulator instance."""

    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str | None = None
    service_url: str | None = None
    max_subscription_minutes: int = 10080
    validation_timeout: float = 10.0
    extra_users: int = 0
    mailbox_concurrency: int = 4
    notification_retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)


NotificationSink = Callable[[str, dict[str, Any]], None]
NOTIFICATION_FORMS = ("path", "suffix", "key")


class SimState:
    """Everything the simulator knows; guard every access with ``lock``."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.base_url = "https://127.0.0.1"
        self.rng = random.Random(1234)
        self.sink: NotificationSink = lambda url, item: None
        self._log_lock = threading.Lock()
        self.request_log: deque[dict[str, Any]] = deque(maxlen=20000)
        self._log_seq = 0
        self.faults = Faults()
        self._slots: dict[tuple[str, str], int] = {}
        self._slots_lock = threading.Lock()
        self.reset_hooks: list[Callable[[], None]] = []
        self.change_hooks: list[Callable[[], None]] = []
        self.notification_forms: tuple[str, ...] = NOTIFICATION_FORMS
        self.notification_count = 0
        self.reset()

    def changed(self) -> None:
        """Something a tenant would keep changed: tell the persister (if any)."""
        for hook in self.change_hooks:
            hook()

    # -- lifecycle -------------------------------------------------------------------
    def reset(self) -> None:
        """Re-seed the world (tenants, calendars) and forget subscriptions, tokens, faults."""
        from local.simulator.seed import seed

        with self.lock:
            self.seq = 0
            self.tenants: dict[str, Tenant] = {}
            self.subscriptions: dict[str, Subscription] = {}
            self.codes: dict[str, AuthCode] = {}
            self.refresh_tokens: dict[str, RefreshToken] = {}
            self.app_token_ids: dict[str, str] = {}  # jti -> tenant id (app-only Graph tokens)
            self.revoked_jtis: set[str] = set()
            self.faults = Faults()
            self.rng = random.Random(1234)
            self.notification_count = 0
            for tenant in seed(self, extra_users=self.config.extra_users):
                self.tenants[tenant.id] = tenant
        with self._log_lock:
            self.request_log.clear()
        for hook in self.reset_hooks:
            hook()
        self.changed()

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    # -- lookups ---------------------------------------------------------------------
    def tenant(self, ref: str) -> Tenant | None:
        """A tenant by id or domain."""
        ref_l = ref.lower()
        for tenant in self.tenants.values():
            if ref_l in (tenant.id, tenant.domain):
                return tenant
        return None

    def find_user_anywhere(self, ref: str) -> tuple[Tenant, Mailbox] | None:
        """A mailbox by id/UPN in any tenant (control API)."""
        for tenant in self.tenants.values():
            mb = tenant.find(ref)
            if mb is not None:
                return tenant, mb
        return None

    # -- changes & notifications -----------------------------------------------------
    def touch(self, tenant: Tenant, mailbox: Mailbox, event: Event, change: str) -> None:
        """Record a change to ``event`` ('created'/'updated'/'deleted') and notify subscribers."""
        event.seq = self.next_seq()
        event.modified = now_utc()
        if change == "deleted":
            mailbox.events.pop(event.id, None)
            mailbox.tombstones.append((event.seq, event.id))
        else:
            mailbox.events[event.id] = event
        self._notify(tenant, mailbox, event, change)

    def _notify(self, tenant: Tenant, mailbox: Mailbox, event: Event, change: str) -> None:
        self.purge_expired()
        for sub in self.subscriptions.values():
            if sub.tenant_id != tenant.id or sub.mailbox_id != mailbox.id or change not in sub.change_types:
                continue
            resource = self.notification_resource(tenant, mailbox, event)
            item = {
                "subscriptionId": sub.id,
                "subscriptionExpirationDateTime": iso_z(sub.expiration),
                "changeType": change,
                "resource": resource,
                "clientState": sub.client_state,
                "tenantId": tenant.id,
                "resourceData": {
                    "@odata.type": "#Microsoft.Graph.Event",
                    "@odata.id": resource,
                    "@odata.etag": f'W/"{event.change_key}"',
                    "id": event.id,
                },
            }
            self.sink(sub.notification_url, item)

    def notification_resource(self, tenant: Tenant, mailbox: Mailbox, event: Event) -> str:
        """The ``resource`` of one change notification, rotating deterministically among the
        spellings Microsoft's documentation shows (microsoftgraph/microsoft-graph-docs-contrib):
        ``Users/{id}/Events/{id}`` (outlook-change-notifications-overview.md, basic notifications),
        ``users/{id}@{tenantId}/events/{id}`` (change-notifications-delivery-webhooks.md) and
        ``Users('{id}')/Events('{id}')`` (outlook-change-notifications-overview.md, rich
        notifications), so a client that understands only one of them drops notifications here too."""
        form = self.notification_forms[self.notification_count % len(self.notification_forms)]
        self.notification_count += 1
        if form == "suffix":
            return f"users/{mailbox.id}@{tenant.id}/events/{event.id}"
        if form == "key":
            return f"Users('{mailbox.id}')/Events('{event.id}')"
        return f"Users/{mailbox.id}/Events/{event.id}"

    def purge_expired(self) -> None:
        """Graph silently deletes subscriptions that were not renewed in time."""
        now = now_utc()
        for sub_id in [s.id for s in self.subscriptions.values() if s.expiration <= now]:
            del self.subscriptions[sub_id]

    # -- request log -----------------------------------------------------------------
    def log_request(self, method: str, path: str, status: int, tenant: str | None, *, batch: bool = False) -> None:
        with self._log_lock:
            self._log_seq += 1
            entry: dict[str, Any] = {
                "seq": self._log_seq,
                "method": method,
                "path": path,
                "status": status,
                "tenant": tenant,
                "at": iso_z(now_utc()),
            }
            if batch:
                entry["batch"] = True
            self.request_log.append(entry)

    def requests_since(self, since: int) -> list[dict[str, Any]]:
        with self._log_lock:
            return [dict(e) for e in self.request_log if e["seq"] > since]

    # -- per-mailbox concurrency -------------------------------------------------------
    def acquire_slot(self, key: tuple[str, str]) -> bool:
        """Take one of the mailbox's concurrent-request slots; False if all are in use."""
        with self._slots_lock:
            used = self._slots.get(key, 0)
            if used >= self.config.mailbox_concurrency:
                return False
            self._slots[key] = used + 1
            return True

    def release_slot(self, key: tuple[str, str]) -> None:
        with self._slots_lock:
            used = self._slots.get(key, 1) - 1
            if used <= 0:
                self._slots.pop(key, None)
            else:
                self._slots[key] = used


def new_id(prefix: str = "AAMkAG") -> str:
    """An opaque, Graph-looking item id (URL-safe)."""
    raw = uuid.uuid4().bytes + uuid.uuid4().bytes
    return prefix + base64.urlsafe_b64encode(raw).decode().rstrip("=")
