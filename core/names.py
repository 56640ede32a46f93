"""Names of the tables and queues the app uses. infra/ provisions exactly these (tests/infra)."""

from __future__ import annotations

from typing import Final


class Tables:
    INTEGRATIONS: Final = "integrations"
    AUDIT: Final = "audit"
    ACCESS_TESTS: Final = "accesstests"
    PAIRINGS: Final = "pairings"
    SESSIONS: Final = "sessions"
    EVENT_INDEX: Final = "eventindex"
    SUBSCRIPTIONS: Final = "subscriptions"
    SUBSCRIPTION_EXPIRY: Final = "subscriptionexpiry"
    OAUTH_STATES: Final = "oauthstates"
    ALERTS: Final = "alerts"
    CONNECTIONS: Final = "connections"
    RATE_LIMITS: Final = "ratelimits"
    IDEMPOTENCY: Final = "idempotency"
    SLOT_CLAIMS: Final = "slotclaims"
    AVAILABILITY_RULES: Final = "availabilityrules"
    # Events to the product (core/services/stores/webhooks.py)
    WEBHOOK_ENDPOINTS: Final = "webhookendpoints"
    WEBHOOK_DELIVERIES: Final = "webhookdeliveries"
    PRODUCT_EVENTS: Final = "productevents"

    ALL: Final = (
        INTEGRATIONS, AUDIT, ACCESS_TESTS, PAIRINGS, SESSIONS, EVENT_INDEX, SUBSCRIPTIONS,
        SUBSCRIPTION_EXPIRY, OAUTH_STATES, ALERTS, CONNECTIONS, RATE_LIMITS,
        IDEMPOTENCY, SLOT_CLAIMS, AVAILABILITY_RULES,
        WEBHOOK_ENDPOINTS, WEBHOOK_DELIVERIES, PRODUCT_EVENTS,
    )


class Queues:
    EVENT_WRITES: Final = "event-writes"
    NOTIFICATIONS: Final = "notifications"
    LIFECYCLE: Final = "lifecycle"
    RENEWALS: Final = "renewals"
    ACCESS_TESTS: Final = "access-tests"
    OWNER_ALERTS: Final = "owner-alerts"
    PRODUCT_EVENTS: Final = "product-events"  # webhook deliveries to the product (and replays)

    ALL: Final = (EVENT_WRITES, NOTIFICATIONS, LIFECYCLE, RENEWALS, ACCESS_TESTS, OWNER_ALERTS, PRODUCT_EVENTS)

    @staticmethod
    def poison(name: str) -> str:
        return f"{name}-poison"


def user_token_secret_name(tenant_id: str, user_id: str) -> str:
    """The secret holding one user's token cache (already valid for Key Vault: letters, digits, '-')."""
    return f"user-token-{tenant_id.lower()}-{user_id.lower()}"


def webhook_secret_name(tenant_id: str, endpoint_id: str, version: int) -> str:
    """The secret holding one version of a product webhook endpoint's signing secret."""
    return f"webhook-{tenant_id.lower()}-{endpoint_id.lower().replace('_', '-')}-v{version}"
