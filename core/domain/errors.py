"""The service's error tree.

Every failure the service can explain is one of these. Adapters translate vendor
errors (Graph error envelopes, MSAL error dicts, Azure SDK exceptions) into the most
specific class here with ``raise ... from exc``; ``functions/`` maps the tree to the
HTTP error envelope in one place (``functions/http.py``). Nothing outside adapters
ever sees an Azure, MSAL or requests exception.

    ServiceError                         500 internal_error (never shown with details)
    ├── BadRequest                       400 malformed request (bad JSON, bad query)
    ├── PayloadTooLarge                  413
    ├── ValidationFailed                 422 valid JSON, invalid values (field details)
    │   ├── UnknownTimeZone              a time zone (or custom zone) with no real rules
    │   ├── InvalidRecurrence            a recurrence rule we refuse (``code`` names the problem)
    │   ├── ParticipantUnreachable       someone's free/busy cannot be read (details per participant)
    │   ├── OfferedHoursInvalid          offered-hours rules that cannot be used (code of the first problem)
    │   ├── OutsideOfferedHours          a booking outside a participant's offered hours (no reason given)
    │   └── IdempotencyKeyReused         an Idempotency-Key sent again with another request
    ├── Unauthenticated                  401 missing or invalid bearer token
    │   ├── MissingToken                 no bearer token: a bare challenge
    │   └── InvalidToken                 a token that fails a check (never quoted)
    ├── Forbidden                        403 valid caller, not allowed
    │   ├── TenantNotOnboarded           403 token from a tenant that has not onboarded
    │   └── InsufficientScope            403 a delegated token without this API's scope
    ├── NotFound                         404 (also for other tenants' ids)
    ├── Conflict                         409 state changed, slot taken
    │   ├── ConcurrencyConflict          409 lost an ETag race
    │   ├── PreconditionFailed           412 If-Match / If-None-Match does not hold
    │   ├── CalendarNotConnected         409 a per-user tenant's user must (re)connect first
    │   ├── ServiceAccountNotConnected   409 a service-account tenant without its scheduling mailbox
    │   ├── DirectoryUnreadable          409 the scheduling mailbox may not list the directory
    │   ├── SlotTaken                    409 the organizer, an attendee or the room is no longer free
    │   └── IdempotencyKeyInUse          409 the same Idempotency-Key is still being processed
    ├── RateLimited                      429 a caller exceeded its budget (retry_after)
    ├── NotImplementedYet                501 a contract route whose feature has not landed
    ├── DependencyError                  503 something we depend on failed (retry_after)
    │   ├── StorageUnavailable           Table/Queue storage unreachable
    │   ├── SecretStoreUnavailable       Key Vault unreachable
    │   ├── Throttled                    Graph 429/503 after the retry budget (retry_after)
    │   └── TransientGraphError          Graph 5xx, timeouts, connection errors
    ├── UnsealFailed                     a sealed queue text does not open (wrong key, tampered, other context)
    ├── InvalidMessage                   a queue message that can never be valid (also a ValueError)
    ├── GraphError                       Graph answered with a definite error
    │   ├── MailboxUnavailable           MailboxNotEnabledForRESTAPI: on-premises/hybrid, unlicensed, inactive
    │   ├── OutsideAppScope              403 ErrorAccessDenied on a mailbox (application access policy / RBAC)
    │   ├── UserNotFound                 ErrorInvalidUser / 404 on a user
    │   ├── ItemNotFound                 404 on an event, subscription or place
    │   ├── GraphConflict                409/412 from Graph
    │   ├── GraphRequestRejected         other 4xx (a bug on our side or an unsupported shape)
    │   └── GraphAuthError               401 from Graph: token rejected
    └── AuthorizationError               getting a token failed (AADSTS code kept)
        ├── ConsentMissing               65001, 65004, 90094, 90095, 500011 (consent missing, declined or revoked)
        ├── AppNotInTenant               700016
        ├── TenantNotFound               90002, 90072, 50020-style tenant errors
        ├── TenantLacksService           650052 (e.g. no Exchange Online)
        ├── CredentialInvalid            7000222 (secret expired), 7000215, 700027, AADSTS7000112
        ├── ConditionalAccessBlocked     53003 and friends
        └── ReconnectRequired            invalid_grant, 700082, 70043, 50173: the user must sign in again

Each class carries a stable snake_case ``code`` for clients and a plain-language
``message``. Messages never contain secrets, tokens or event content.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final


class ServiceError(Exception):
    """Base of every error the service explains to a caller."""

    http_status: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "Something went wrong on our side."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.code = code or self.default_code
        self.details: dict[str, Any] = dict(details or {})
        self.retry_after = retry_after
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class BadRequest(ServiceError):
    http_status = 400
    default_code = "bad_request"
    default_message = "The request could not be read."


class PayloadTooLarge(ServiceError):
    http_status = 413
    default_code = "payload_too_large"
    default_message = "The request body is too large."


class ValidationFailed(ServiceError):
    http_status = 422
    default_code = "validation_failed"
    default_message = "Some values are not valid."


class UnknownTimeZone(ValidationFailed):
    """A time zone name (or custom zone) that we cannot map to real rules."""

    default_code = "unknown_time_zone"
    default_message = "The time zone is not recognised."

    def __init__(self, name: str, reason: str | None = None) -> None:
        message = f"The time zone {name!r} is not recognised."
        if reason:
            message = f"The time zone {name!r} cannot be used: {reason}."
        super().__init__(message, details={"timeZone": name})
        self.name = name


class InvalidRecurrence(ValidationFailed):
    """A recurrence rule (Graph ``patternedRecurrence``) we refuse, before anything reaches Graph.

    ``code`` names the one problem (``interval_not_positive``, ``days_of_week_required``,
    ``too_many_occurrences``...; the full list is ``core.domain.recurrence.PROBLEMS``) and
    ``details.field`` the Graph property at fault, so clients can point at it.
    """

    default_code = "invalid_recurrence"
    default_message = "The recurrence is not valid."

    def __init__(self, code: str, message: str, *, field: str | None = None, **details: Any) -> None:
        extra: dict[str, Any] = {"field": field} if field else {}
        super().__init__(message, code=code, details={**extra, **details})


class ParticipantUnreachable(ValidationFailed):
    """Someone's calendar cannot be read, so no honest set of common slots exists (422).

    ``details.participants`` lists every participant: ``{user, address?, status, message?}``
    with ``status`` ``ok`` or the reason (``mailbox_on_premises_or_unlicensed``,
    ``outside_app_scope``, ``user_not_found``, ``other``).
    """

    default_code = "participant_unreachable"
    default_message = "Microsoft 365 cannot give the free/busy time of every participant."

    def __init__(self, participants: Sequence[Mapping[str, Any]]) -> None:
        super().__init__(details={"participants": [dict(p) for p in participants]})


class IdempotencyKeyReused(ValidationFailed):
    """The same ``Idempotency-Key`` came back with a different request (422)."""

    default_code = "idempotency_key_reused"
    default_message = "This Idempotency-Key was already used with a different request; use a new key."


class OfferedHoursInvalid(ValidationFailed):
    """Offered-hours rules that cannot be used (422).

    The code is the first problem's (``inverted_window``, ``overlapping_windows``,
    ``too_many_windows``, ``invalid_cap``, ...); ``details.fields`` lists every problem
    as ``{loc, msg, type}`` with ``type`` its own code.
    """

    default_code = "offered_hours_invalid"
    default_message = "These offered hours cannot be used; see details.fields."

    def __init__(self, problems: Sequence[Mapping[str, Any]]) -> None:
        fields = [dict(p) for p in problems]
        code = str(fields[0].get("type")) if fields else None
        super().__init__(code=code, details={"fields": fields})


class OutsideOfferedHours(ValidationFailed):
    """A booking at a time someone in it does not offer (422). It never says who or why
    (outside their windows, too short notice, a cap reached, a buffer), so a booker learns
    nothing about another person's calendar."""

    default_code = "outside_offered_hours"
    default_message = "This time is not offered by everyone in the session; choose a time from the free slots."


class Unauthenticated(ServiceError):
    http_status = 401
    default_code = "unauthenticated"
    default_message = "A valid bearer token is required."


class MissingToken(Unauthenticated):
    """No bearer token: a bare challenge (RFC 6750 section 3.1: no error code when no credentials)."""

    default_code = "unauthenticated"
    default_message = "Sign in: a bearer token is required."
    challenge: Final = "Bearer"


class InvalidToken(Unauthenticated):
    """401 with ``WWW-Authenticate: Bearer error="invalid_token"``; the message never quotes the token."""

    default_code = "invalid_token"
    default_message = "The bearer token is not valid for this API."


class Forbidden(ServiceError):
    http_status = 403
    default_code = "forbidden"
    default_message = "You are not allowed to do this."


class TenantNotOnboarded(Forbidden):
    default_code = "tenant_not_onboarded"
    default_message = "Your organisation has not set up the calendar integration."


class InsufficientScope(Forbidden):
    """A delegated token without this API's scope (RFC 6750 ``insufficient_scope``)."""

    default_code = "insufficient_scope"
    default_message = "The token does not carry this API's scope."

    def __init__(self, scope: str) -> None:
        super().__init__()
        self.challenge = f'Bearer error="insufficient_scope", scope="{scope}"'


class NotFound(ServiceError):
    http_status = 404
    default_code = "not_found"
    default_message = "Not found."


class Conflict(ServiceError):
    http_status = 409
    default_code = "conflict"
    default_message = "The resource changed; reload and try again."


class ConcurrencyConflict(Conflict):
    default_code = "concurrent_update"
    default_message = "Someone else changed this at the same time; reload and try again."


class PreconditionFailed(Conflict):
    """``If-Match`` names a version that is no longer current, or ``If-None-Match: *`` met an existing one (412)."""

    http_status = 412
    default_code = "precondition_failed"
    default_message = "This was changed since you read it; reload and try again."


class CalendarNotConnected(Conflict):
    """A per-user tenant's user who has not connected their calendar (or must reconnect) (409).

    Raised before anything is queued, so a booking or availability request fails at once
    with a reason the SPA can act on (show the connect button) rather than as a failed session.
    """

    default_code = "calendar_not_connected"
    default_message = "This person has not connected their Microsoft 365 calendar yet."


class ServiceAccountNotConnected(Conflict):
    """A service-account tenant whose admin has not connected the scheduling mailbox yet."""

    default_code = "service_account_not_connected"
    default_message = "Your organisation's scheduling mailbox is not connected yet; ask your administrator."


class DirectoryUnreadable(Conflict):
    """The scheduling mailbox's token may not list the directory, so no calendars can be sampled."""

    default_code = "directory_not_readable"
    default_message = "The scheduling mailbox cannot list your organisation's users."


class SlotTaken(Conflict):
    """The organizer, a required attendee or the room is busy at the requested time (409).

    ``details.busy`` lists the addresses found busy (the caller's own pairing members and
    rooms; never what they are busy with). Send ``allowConflicts: true`` to book anyway.
    """

    default_code = "slot_taken"
    default_message = "That time is no longer free; pick another time."


class IdempotencyKeyInUse(Conflict):
    """A request with the same ``Idempotency-Key`` is still being processed (409, retry shortly)."""

    default_code = "idempotency_key_in_use"
    default_message = "A request with this Idempotency-Key is still being processed; retry in a moment."


class RateLimited(ServiceError):
    http_status = 429
    default_code = "rate_limited"
    default_message = "Too many requests; try again later."


class NotImplementedYet(ServiceError):
    http_status = 501
    default_code = "not_implemented"
    default_message = "This feature is not available yet."


class DependencyError(ServiceError):
    http_status = 503
    default_code = "dependency_unavailable"
    default_message = "A service we depend on is unavailable; try again shortly."


class StorageUnavailable(DependencyError):
    default_code = "storage_unavailable"
    default_message = "Storage is unavailable; try again shortly."


class SecretStoreUnavailable(DependencyError):
    default_code = "secret_store_unavailable"
    default_message = "The secret store is unavailable; try again shortly."


class Throttled(DependencyError):
    default_code = "graph_throttled"
    default_message = "Microsoft 365 is throttling requests; try again later."


class TransientGraphError(DependencyError):
    default_code = "graph_unavailable"
    default_message = "Microsoft 365 is not answering; try again shortly."


class UnsealFailed(ServiceError):
    """A sealed value could not be opened: wrong key, tampered, or sealed for another context."""

    default_code = "unseal_failed"
    default_message = "A sealed value could not be opened."


class InvalidMessage(ServiceError, ValueError):
    """A queue message that can never be valid (not a JSON object, or not the command it claims to be)."""

    default_code = "invalid_message"
    default_message = "A queue message could not be read."


class GraphError(ServiceError):
    """Graph answered with a definite (non-transient) error."""

    http_status = 502
    default_code = "graph_error"
    default_message = "Microsoft 365 refused the request."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
        graph_code: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, code=code, details=details, retry_after=retry_after)
        self.graph_code = graph_code
        self.status = status


class MailboxUnavailable(GraphError):
    http_status = 422
    default_code = "mailbox_on_premises_or_unlicensed"
    default_message = (
        "This mailbox cannot be reached through Microsoft Graph: it is on-premises or hybrid, "
        "unlicensed, or inactive. Only Exchange Online mailboxes are supported."
    )


class OutsideAppScope(GraphError):
    http_status = 422
    default_code = "outside_app_scope"
    default_message = "This mailbox is outside the mailboxes your organisation allows this app to reach."


class UserNotFound(GraphError):
    http_status = 404
    default_code = "user_not_found"
    default_message = "No such user in this organisation."


class ItemNotFound(GraphError):
    http_status = 404
    default_code = "item_not_found"
    default_message = "Microsoft 365 no longer has this item."


class GraphConflict(GraphError):
    http_status = 409
    default_code = "graph_conflict"
    default_message = "Microsoft 365 reports a conflicting change."


class GraphRequestRejected(GraphError):
    default_code = "graph_request_rejected"


class GraphAuthError(GraphError):
    default_code = "graph_token_rejected"
    default_message = "Microsoft 365 rejected the service's credentials."


class AuthorizationError(ServiceError):
    """Getting a token failed. ``aadsts`` keeps the AADSTS number when there was one."""

    http_status = 503
    default_code = "authorization_failed"
    default_message = "The service could not sign in to Microsoft 365 for your organisation."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
        aadsts: int | None = None,
        oauth_error: str | None = None,
    ) -> None:
        super().__init__(message, code=code, details=details, retry_after=retry_after)
        self.aadsts = aadsts
        self.oauth_error = oauth_error


class ConsentMissing(AuthorizationError):
    default_code = "consent_missing"
    default_message = "An administrator has not granted (or has revoked) consent for this app."


class AppNotInTenant(AuthorizationError):
    default_code = "app_not_in_tenant"
    default_message = "This app is not registered in your organisation; an administrator must consent first."


class TenantNotFound(AuthorizationError):
    default_code = "tenant_not_found"
    default_message = "Microsoft does not know this organisation (tenant)."


class TenantLacksService(AuthorizationError):
    default_code = "tenant_lacks_exchange_online"
    default_message = "Your organisation has no Exchange Online service for this app to use."


class CredentialInvalid(AuthorizationError):
    default_code = "app_credential_invalid"
    default_message = "The service's own credential is expired or invalid; the deployment owner must renew it."


class ConditionalAccessBlocked(AuthorizationError):
    default_code = "conditional_access_blocked"
    default_message = "A Conditional Access policy in your organisation blocks this app."


class ReconnectRequired(AuthorizationError):
    default_code = "reconnect_required"
    default_message = "Your Microsoft 365 connection has expired; please connect again."
