"""The owner-alert worker: turn a queued ``AlertCommand`` into one plain-text email to the owner.

``OwnerAlerts.notify`` (core/services/alerts.py) already decided that this alert
should go out (one per tenant and kind per period); this worker renders what broke,
since when and what to do, with a link to the app, and sends it through the
``Mailer`` port to the integration's owner email. The text carries codes and counts
only: never a token, secret, clientState, or anything from an event.

Queue delivery is at least once, so a message that was already mailed (same tenant,
kind, time and detail) is recognised by a marker row and not mailed twice.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Final

from core.domain.commands import AlertCommand, AlertKind
from core.ports import Clock, Mailer, TableStore
from core.services.stores.alerts import AlertClaims
from core.services.stores.integrations import IntegrationRepository

log = logging.getLogger("core.services.owner_alert_worker")



@dataclass(frozen=True, slots=True)
class AlertText:
    """What the owner reads for one kind of alert."""

    title: str
    what: str
    todo: str


TEXTS: Final[dict[AlertKind, AlertText]] = {
    AlertKind.CONSENT_REVOKED: AlertText(
        "Microsoft 365 consent was revoked",
        "The calendar integration can no longer sign in to Microsoft 365 for your organisation: the admin "
        "consent was removed or the app was deleted from your tenant. Bookings and calendar sync have stopped.",
        "A Microsoft 365 administrator should open the integration settings and grant admin consent again.",
    ),
    AlertKind.TOKEN_FAILURE: AlertText(
        "The calendar integration cannot sign in to Microsoft 365",
        "Microsoft Entra ID refused the integration a token for your organisation, so calendar work has stopped.",
        "Check the code below: Conditional Access policies, a missing Exchange Online service, or an expired "
        "app credential (the deployment owner must renew it) are the usual causes. Then rerun the access test.",
    ),
    AlertKind.ACCESS_TEST_REGRESSED: AlertText(
        "Fewer calendars are reachable",
        "The latest access test reached fewer of your users' calendars than the one before.",
        "Open the integration settings to see which users are affected and the fix for each reason "
        "(application access policy scope, on-premises or unlicensed mailboxes), then rerun the test.",
    ),
    AlertKind.SUBSCRIPTION_FAILURE: AlertText(
        "Outlook changes are no longer being tracked",
        "Change notifications for some calendars could not be created or renewed, so moves and "
        "cancellations made in Outlook may not reach the scheduling product.",
        "Rerun the access test; if users are reachable, the service retries on its own. If this repeats, "
        "check the function app's public URL and its logs.",
    ),
    AlertKind.POISON_MESSAGE: AlertText(
        "A background job failed repeatedly",
        "A calendar job failed on every retry and was set aside; the affected item shows a failed state.",
        "Check the integration status and the affected sessions; rerun the access test to see whether "
        "Microsoft 365 is reachable.",
    ),
    AlertKind.SESSION_FAILED: AlertText(
        "A session could not be written to Outlook",
        "A booked, moved or cancelled session could not be written to the organizer's calendar.",
        "The organizer sees the session as failed; check the integration status and ask them to try again.",
    ),
    AlertKind.USER_RECONNECT_REQUIRED: AlertText(
        "A user must reconnect their calendar",
        "A user's Microsoft 365 connection expired or was revoked (per-user method), so their calendar "
        "is not updated.",
        "Ask the user to sign in again from their calendar connection page.",
    ),
    AlertKind.WEBHOOK_ENDPOINT_DISABLED: AlertText(
        "A webhook endpoint of your scheduling product was disabled",
        "The scheduling product's webhook endpoint named below stopped accepting events (it failed for "
        "24 hours, or answered 410 Gone), so it no longer hears about bookings and changes.",
        "Fix the receiving endpoint, enable it again on the Webhooks page, then replay the events "
        "since it failed from its delivery log.",
    ),
}


def render(command: AlertCommand, app_url: str) -> tuple[str, str]:
    """The subject and plain-text body of one alert (codes and counts only)."""
    text = TEXTS[command.kind]
    since = command.since.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"What broke: {text.what}",
    ]
    if command.detail:
        lines.append(f"Details: {command.detail}")
    lines += [
        f"Since: {since}",
        f"What to do: {text.todo}",
        "",
        f"Integration settings: {app_url}/",
        f"Organisation (Microsoft Entra tenant id): {command.tenant_id}",
        "",
        "You receive this because you are the owner of your organisation's calendar integration. "
        "You get at most one message of this kind per period while the problem lasts.",
    ]
    return f"Calendar integration: {text.title}", "\n".join(lines) + "\n"


class OwnerAlertWorker:
    """Consumes ``owner-alerts`` messages and mails the integration owner."""

    def __init__(self, *, tables: TableStore, mailer: Mailer, clock: Clock, app_url: str) -> None:
        self.claims = AlertClaims(tables)
        self.mailer = mailer
        self.clock = clock
        self.app_url = app_url.rstrip("/")
        self.integrations = IntegrationRepository(tables)

    def handle(self, message: Mapping[str, Any]) -> bool:
        """Send one alert; False when there is nobody to send it to or it was already sent."""
        command = AlertCommand.from_message(dict(message))
        found = self.integrations.get(command.tenant_id)
        owner = found.value.owner_email if found else ""
        if not owner:
            log.warning("owner alert not sent: no owner email", extra={"tenant": command.tenant_id})
            return False
        marker = hashlib.sha256(
            f"{command.kind.value}|{command.since.isoformat()}|{command.detail}".encode()
        ).hexdigest()[:32]
        if self.claims.was_sent(command.tenant_id, marker):
            log.info("owner alert already sent; duplicate ignored", extra={"tenant": command.tenant_id})
            return False
        subject, text = render(command, self.app_url)
        self.mailer.send(owner, subject, text)
        self.claims.mark_sent(command.tenant_id, marker, command.kind.value, self.clock.now())
        log.info("owner alert sent", extra={"tenant": command.tenant_id, "event": command.kind.value})
        return True
