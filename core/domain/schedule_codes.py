"""getSchedule's per-schedule ``responseCode`` values -> the error each one means.

getSchedule stays 200 when some addresses cannot be answered; each such schedule carries
``error: {message, responseCode}`` (the ``freeBusyError`` type,
microsoftgraph/microsoft-graph-docs-contrib ``api-reference/v1.0/resources/freebusyerror.md``).
Microsoft lists no ``responseCode`` values; these are the ones tenants report. One table,
shared by the access test (``core/domain/access_test.py``: a reason per sampled user) and
availability (``core/services/availability.py``: why a participant or room cannot be read),
so both read a code the same way:

    responseCode (case-insensitive)                          -> error
    ├── MailboxNotEnabledForRESTAPI, MailboxNotSupportedForRESTAPI  MailboxUnavailable
    ├── ErrorAccessDenied                                           OutsideAppScope
    ├── 5009, ErrorInvalidUser, ErrorMailRecipientNotFound,
    │   ErrorNonExistentMailbox, ErrorMailboxNotFound,
    │   NoScheduleReturned                                          UserNotFound
    ├── ErrorServerBusy, ErrorTimeoutExpired                        TransientGraphError
    └── anything else                                               None (unknown: "other")
"""

from __future__ import annotations

from typing import Final

from core.domain.errors import (
    MailboxUnavailable,
    OutsideAppScope,
    ServiceError,
    TransientGraphError,
    UserNotFound,
)

SCHEDULE_ERRORS: Final[dict[str, type[ServiceError]]] = {
    "mailboxnotenabledforrestapi": MailboxUnavailable,
    "mailboxnotsupportedforrestapi": MailboxUnavailable,
    "erroraccessdenied": OutsideAppScope,
    "5009": UserNotFound,
    "errorinvaliduser": UserNotFound,
    "errormailrecipientnotfound": UserNotFound,
    "errornonexistentmailbox": UserNotFound,
    "errormailboxnotfound": UserNotFound,
    "noschedulereturned": UserNotFound,
    "errorserverbusy": TransientGraphError,
    "errortimeoutexpired": TransientGraphError,
}

# The errors that name a mailbox problem (as opposed to Graph having a bad moment).
MAILBOX_PROBLEMS: Final = (MailboxUnavailable, OutsideAppScope, UserNotFound)


def schedule_error(code: str | None) -> type[ServiceError] | None:
    """The error a per-schedule ``responseCode`` means; None for no code or an unknown one."""
    if code is None:
        return None
    return SCHEDULE_ERRORS.get(code.strip().lower())
