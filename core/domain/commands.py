"""Queue messages: every command and item type a queue carries, and the one envelope they share.

Every message is a JSON object built by ``envelope``:

    {"kind": "<kind>", "tenantId": "<tid or "">", "attempt": n, "correlationId"?: "...", ...fields}

``kind`` names the message type (the worker of a queue may accept several kinds: the
lifecycle queue carries Graph lifecycle items and planned ``reconcile`` groups);
``attempt`` counts the retries a worker scheduled itself (back-off), separate from the
host's dequeue count; ``correlationId`` ties the worker's logs to the request that queued
the work. Messages carry metadata only: ids, times, versions; free text (a subject, a
cancel comment) travels sealed (``EventWriteCommand.sealed``).

    queue            kinds
    event-writes     event_write          EventWriteCommand
                     series_write         SeriesWriteCommand (a series' master: create, reschedule, cancel)
    notifications    notifications        ChangeItem (one webhook POST's checked items)
    lifecycle        lifecycle, reconcile LifecycleItem; session ids re-read with one $batch
    renewals         renew_subscriptions  RenewalItem (up to 20 of one tenant)
                     audit_subscriptions  one tenant's records checked against GET /subscriptions
    access-tests     access_test          AccessTestCommand
                     verify_consent       ConsentVerifyCommand (re-prove admin consent while Entra propagates it)
    owner-alerts     owner_alert          AlertCommand
    product-events   webhook_delivery     WebhookDeliveryCommand (one pending delivery to one endpoint)
                     webhook_replay       WebhookReplayCommand (a page of "replay since" for one endpoint)

``from_message`` parsers raise ``ValueError`` for a message that can never be valid; the
queue-trigger decorator (``functions/jobs.py``) sends such a message to the poison queue.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, TypeVar

from core.domain.errors import InvalidMessage
from core.domain.series import SeriesOp
from core.domain.sessions import PendingOp

T = TypeVar("T")

GROUP_SIZE: Final = 20  # Graph's $batch limit: one message's work is one $batch

EVENT_WRITE: Final = "event_write"
SERIES_WRITE: Final = "series_write"
NOTIFICATIONS: Final = "notifications"
LIFECYCLE: Final = "lifecycle"
RECONCILE: Final = "reconcile"
RENEWAL: Final = "renew_subscriptions"
AUDIT_SUBSCRIPTIONS: Final = "audit_subscriptions"
ACCESS_TEST: Final = "access_test"
VERIFY_CONSENT: Final = "verify_consent"
OWNER_ALERT: Final = "owner_alert"
WEBHOOK_DELIVERY: Final = "webhook_delivery"
WEBHOOK_REPLAY: Final = "webhook_replay"

# Lifecycle events the service acts on; Microsoft adds new ones, which are dropped item by item.
LIFECYCLE_EVENTS: Final = frozenset({"reauthorizationRequired", "subscriptionRemoved", "missed"})


def envelope(kind: str, *, tenant_id: str = "", attempt: int | None = None, correlation_id: str | None = None,
             **fields: Any) -> dict[str, Any]:
    """The one message envelope (module docstring); ``None`` fields are left out."""
    message: dict[str, Any] = {"kind": kind, "tenantId": tenant_id}
    if attempt is not None:
        message["attempt"] = attempt
    if correlation_id:
        message["correlationId"] = correlation_id
    message.update({k: v for k, v in fields.items() if v is not None})
    return message


def chunks(items: Sequence[T], size: int = GROUP_SIZE) -> Iterable[Sequence[T]]:
    """``items`` in consecutive groups of at most ``size``."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def backoff_seconds(attempt: int, *, base: float = 5.0, cap: float = 300.0) -> float:
    """Exponential back-off for a worker's own retry ``attempt``: base, 2 x base, ... capped."""
    return float(min(cap, base * (2**attempt)))


def _one_tenant(tenants: set[str]) -> str:
    return next(iter(tenants)) if len(tenants) == 1 else ""


@dataclass(frozen=True, slots=True)
class EventWriteCommand:
    """One queued change of a session: apply ``op`` as of session ``version``."""

    tenant_id: str
    session_id: str
    op: PendingOp
    version: int
    correlation_id: str = "-"
    sealed: str | None = None
    deferrals: int = 0

    def to_message(self) -> dict[str, Any]:
        return envelope(EVENT_WRITE, tenant_id=self.tenant_id, correlation_id=self.correlation_id,
                        sessionId=self.session_id, op=self.op.value, version=self.version, sealed=self.sealed,
                        deferrals=self.deferrals or None)

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> EventWriteCommand:
        """Parse a queued command; ``ValueError`` when it is not one."""
        if message.get("kind") != EVENT_WRITE:
            raise InvalidMessage("not an event_write command")
        tenant, session, version = message.get("tenantId"), message.get("sessionId"), message.get("version")
        if not isinstance(tenant, str) or not isinstance(session, str) or not tenant or not session:
            raise InvalidMessage("tenantId and sessionId are required")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise InvalidMessage("version must be a positive integer")
        sealed, deferrals = message.get("sealed"), message.get("deferrals", 0)
        try:
            op = PendingOp(str(message.get("op")))
        except ValueError as exc:
            raise InvalidMessage("op is not a session change") from exc
        return cls(
            tenant_id=tenant,
            session_id=session,
            op=op,
            version=version,
            correlation_id=str(message.get("correlationId") or "-"),
            sealed=sealed if isinstance(sealed, str) else None,
            deferrals=deferrals if isinstance(deferrals, int) and not isinstance(deferrals, bool) else 0,
        )


@dataclass(frozen=True, slots=True)
class SeriesWriteCommand:
    """One queued change of a series: apply ``op`` as of series ``version`` (versioned like sessions)."""

    tenant_id: str
    series_id: str
    op: SeriesOp
    version: int
    correlation_id: str = "-"
    sealed: str | None = None
    deferrals: int = 0

    def to_message(self) -> dict[str, Any]:
        return envelope(SERIES_WRITE, tenant_id=self.tenant_id, correlation_id=self.correlation_id,
                        seriesId=self.series_id, op=self.op.value, version=self.version, sealed=self.sealed,
                        deferrals=self.deferrals or None)

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> SeriesWriteCommand:
        """Parse a queued series command; ``InvalidMessage`` when it is not one."""
        if message.get("kind") != SERIES_WRITE:
            raise InvalidMessage("not a series_write command")
        tenant, series, version = message.get("tenantId"), message.get("seriesId"), message.get("version")
        if not isinstance(tenant, str) or not isinstance(series, str) or not tenant or not series:
            raise InvalidMessage("tenantId and seriesId are required")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise InvalidMessage("version must be a positive integer")
        try:
            op = SeriesOp(str(message.get("op")))
        except ValueError as exc:
            raise InvalidMessage("op is not a series change") from exc
        sealed, deferrals = message.get("sealed"), message.get("deferrals", 0)
        return cls(
            tenant_id=tenant,
            series_id=series,
            op=op,
            version=version,
            correlation_id=str(message.get("correlationId") or "-"),
            sealed=sealed if isinstance(sealed, str) else None,
            deferrals=deferrals if isinstance(deferrals, int) and not isinstance(deferrals, bool) else 0,
        )


@dataclass(frozen=True, slots=True)
class AccessTestCommand:
    """The queued job; ``requested_by`` is the admin's object id (None for timer runs)."""

    tenant_id: str
    test_id: str
    requested_by: str | None = None
    correlation_id: str | None = None

    def to_message(self) -> dict[str, Any]:
        return envelope(ACCESS_TEST, tenant_id=self.tenant_id, correlation_id=self.correlation_id,
                        testId=self.test_id, requestedBy=self.requested_by or None)

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> AccessTestCommand:
        tenant, test = message.get("tenantId"), message.get("testId")
        if not isinstance(tenant, str) or not isinstance(test, str) or not tenant or not test:
            raise InvalidMessage("an access_test message needs tenantId and testId")
        requested = message.get("requestedBy")
        cid = message.get("correlationId")
        return cls(
            tenant_id=tenant.lower(),
            test_id=test,
            requested_by=requested if isinstance(requested, str) and requested else None,
            correlation_id=cid if isinstance(cid, str) else None,
        )


@dataclass(frozen=True, slots=True)
class ConsentVerifyCommand:
    """Prove admin consent again (``attempt`` of the chain ``chain``, started at ``since``): right after
    consent Entra ID can refuse the app's first token for a while (AADSTS700016 / 65001)."""

    tenant_id: str
    admin_oid: str
    chain: str
    attempt: int
    since: datetime
    correlation_id: str | None = None

    @property
    def step(self) -> str:
        """What the consent row must say for this message to be the current one."""
        return f"{self.chain}:{self.attempt}"

    def to_message(self) -> dict[str, Any]:
        return envelope(VERIFY_CONSENT, tenant_id=self.tenant_id, attempt=self.attempt,
                        correlation_id=self.correlation_id, adminOid=self.admin_oid, chain=self.chain,
                        since=self.since.isoformat())

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> ConsentVerifyCommand:
        if message.get("kind") != VERIFY_CONSENT:
            raise InvalidMessage("not a verify_consent message")
        tenant, admin, chain = message.get("tenantId"), message.get("adminOid"), message.get("chain")
        attempt, cid = message.get("attempt"), message.get("correlationId")
        if not all(isinstance(v, str) and v for v in (tenant, admin, chain)):
            raise InvalidMessage("a verify_consent message needs tenantId, adminOid and chain")
        if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 0:
            raise InvalidMessage("attempt must be a non-negative integer")
        try:
            since = datetime.fromisoformat(str(message.get("since")))
        except ValueError as exc:
            raise InvalidMessage("since must be an ISO 8601 time") from exc
        if since.tzinfo is None:
            raise InvalidMessage("since must carry its offset")
        return cls(str(tenant).lower(), str(admin).lower(), str(chain), attempt, since,
                   cid if isinstance(cid, str) else None)


class AlertKind(StrEnum):
    CONSENT_REVOKED = "consent_revoked"
    TOKEN_FAILURE = "token_failure"  # noqa: S105 - an alert kind, not a credential
    ACCESS_TEST_REGRESSED = "access_test_regressed"
    SUBSCRIPTION_FAILURE = "subscription_failure"
    POISON_MESSAGE = "poison_message"
    SESSION_FAILED = "session_failed"
    USER_RECONNECT_REQUIRED = "user_reconnect_required"
    WEBHOOK_ENDPOINT_DISABLED = "webhook_endpoint_disabled"


@dataclass(frozen=True, slots=True)
class AlertCommand:
    """The queued alert: what broke, since when; no secrets, no event content."""

    tenant_id: str
    kind: AlertKind
    detail: str
    since: datetime

    def to_message(self) -> dict[str, Any]:
        return envelope(OWNER_ALERT, tenant_id=self.tenant_id, alert=self.kind.value, detail=self.detail,
                        since=self.since.isoformat())

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> AlertCommand:
        """Parse a queued alert; ``ValueError`` when it is not one."""
        try:
            return cls(
                tenant_id=str(message["tenantId"]),
                kind=AlertKind(message["alert"]),
                detail=str(message.get("detail") or "")[:1000],
                since=datetime.fromisoformat(str(message["since"])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidMessage("not an owner_alert message") from exc


@dataclass(frozen=True, slots=True)
class ChangeItem:
    """One checked change notification: metadata only (never the clientState)."""

    tenant_id: str
    user_id: str
    event_id: str
    change_type: str
    subscription_id: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "tenantId": self.tenant_id,
            "userId": self.user_id,
            "eventId": self.event_id,
            "changeType": self.change_type,
            "subscriptionId": self.subscription_id,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ChangeItem:
        return cls(
            tenant_id=str(raw["tenantId"]).lower(),
            user_id=str(raw["userId"]).lower(),
            event_id=str(raw["eventId"]),
            change_type=str(raw.get("changeType") or "updated"),
            subscription_id=str(raw.get("subscriptionId") or ""),
        )


def notifications_message(
    items: Sequence[ChangeItem], *, correlation_id: str | None = None, attempt: int = 0
) -> dict[str, Any]:
    """The queue message for a group of checked items."""
    return envelope(NOTIFICATIONS, tenant_id=_one_tenant({i.tenant_id for i in items}), attempt=attempt,
                    correlation_id=correlation_id, items=[i.to_json() for i in items])


@dataclass(frozen=True, slots=True)
class LifecycleItem:
    """A checked lifecycle notification (``reauthorizationRequired``, ``subscriptionRemoved``, ``missed``).

    ``nonce`` is the subscription's nonce from the verified clientState (never the clientState
    itself; "" for version-1 values): the worker acts only when it and the subscription id are
    those of the mailbox's current record."""

    tenant_id: str
    user_id: str
    subscription_id: str
    event: str
    nonce: str = ""

    def to_json(self) -> dict[str, str]:
        return {"tenantId": self.tenant_id, "userId": self.user_id, "subscriptionId": self.subscription_id,
                "lifecycleEvent": self.event, "nonce": self.nonce}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> LifecycleItem:
        return cls(str(raw["tenantId"]).lower(), str(raw["userId"]).lower(), str(raw.get("subscriptionId") or ""),
                   str(raw["lifecycleEvent"]), str(raw.get("nonce") or ""))


def lifecycle_message(items: Sequence[LifecycleItem], *, correlation_id: str | None = None,
                      attempt: int = 0) -> dict[str, Any]:
    """The ``lifecycle`` queue message for a group of checked items."""
    return envelope(LIFECYCLE, tenant_id=_one_tenant({i.tenant_id for i in items}), attempt=attempt,
                    correlation_id=correlation_id, items=[i.to_json() for i in items])


@dataclass(frozen=True, slots=True)
class RenewalItem:
    user_id: str
    subscription_id: str
    bucket: str

    def to_json(self) -> dict[str, str]:
        return {"userId": self.user_id, "subscriptionId": self.subscription_id, "bucket": self.bucket}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> RenewalItem:
        return cls(str(raw["userId"]), str(raw["subscriptionId"]), str(raw.get("bucket") or ""))


def renewal_message(tenant_id: str, items: Sequence[RenewalItem], attempt: int = 0) -> dict[str, Any]:
    return envelope(RENEWAL, tenant_id=tenant_id, attempt=attempt, items=[i.to_json() for i in items])


def audit_message(tenant_id: str, users: Sequence[str] = (), *, attempt: int = 0) -> dict[str, Any]:
    """An ``audit_subscriptions`` message on the renewals queue: compare one tenant's subscription records
    (of ``users`` only, per-user tenants: one Graph identity each) with what Graph lists."""
    return envelope(AUDIT_SUBSCRIPTIONS, tenant_id=tenant_id, attempt=attempt, users=list(users) or None)


def reconcile_message(tenant_id: str, session_ids: Sequence[str], *, attempt: int = 0,
                      correlation_id: str | None = None) -> dict[str, Any]:
    """A ``reconcile`` message on the lifecycle queue: up to 20 session ids re-read with one ``$batch``."""
    return envelope(RECONCILE, tenant_id=tenant_id, attempt=attempt, correlation_id=correlation_id,
                    sessionIds=list(session_ids))


def _required_str(message: Mapping[str, Any], *names: str) -> list[str]:
    values = [message.get(n) for n in names]
    if not all(isinstance(v, str) and v for v in values):
        raise InvalidMessage(f"{', '.join(names)} are required")
    return [str(v) for v in values]


def _optional_time(message: Mapping[str, Any], name: str) -> datetime | None:
    raw = message.get(name)
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise InvalidMessage(f"{name} must be an ISO 8601 time")
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidMessage(f"{name} must be an ISO 8601 time") from exc
    if value.tzinfo is None:
        raise InvalidMessage(f"{name} needs an offset")
    return value


@dataclass(frozen=True, slots=True)
class WebhookDeliveryCommand:
    """Attempt the pending delivery ``row`` (of ``endpoint_id``) when it is due.

    ``due`` is the attempt time the sender scheduled this message for: a message that arrives
    before its row is due and does not carry the row's own schedule is a stale duplicate.
    """

    tenant_id: str
    endpoint_id: str
    row: str
    event_id: str
    due: datetime | None = None
    correlation_id: str | None = None

    def to_message(self) -> dict[str, Any]:
        return envelope(WEBHOOK_DELIVERY, tenant_id=self.tenant_id, correlation_id=self.correlation_id,
                        endpointId=self.endpoint_id, row=self.row, eventId=self.event_id,
                        due=self.due.isoformat() if self.due else None)

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> WebhookDeliveryCommand:
        if message.get("kind") != WEBHOOK_DELIVERY:
            raise InvalidMessage("not a webhook_delivery message")
        tenant, endpoint, row, event = _required_str(message, "tenantId", "endpointId", "row", "eventId")
        cid = message.get("correlationId")
        return cls(tenant, endpoint, row, event, _optional_time(message, "due"),
                   cid if isinstance(cid, str) else None)


@dataclass(frozen=True, slots=True)
class WebhookReplayCommand:
    """Queue deliveries to ``endpoint_id`` of the tenant's events since ``since``, a page at a time
    (``after``: the last event id already handled)."""

    tenant_id: str
    endpoint_id: str
    since: datetime
    after: str | None = None
    correlation_id: str | None = None

    def to_message(self) -> dict[str, Any]:
        return envelope(WEBHOOK_REPLAY, tenant_id=self.tenant_id, correlation_id=self.correlation_id,
                        endpointId=self.endpoint_id, since=self.since.isoformat(), after=self.after)

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> WebhookReplayCommand:
        if message.get("kind") != WEBHOOK_REPLAY:
            raise InvalidMessage("not a webhook_replay message")
        tenant, endpoint = _required_str(message, "tenantId", "endpointId")
        since = _optional_time(message, "since")
        if since is None:
            raise InvalidMessage("since is required")
        after, cid = message.get("after"), message.get("correlationId")
        return cls(tenant, endpoint, since, after if isinstance(after, str) and after else None,
                   cid if isinstance(cid, str) else None)
