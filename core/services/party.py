"""Who a group session invites: attendees (colleagues and guests), host candidates, and the rules.

``POST /api/sessions`` (and ``POST /api/availability``) name people as ``{user | email,
name?, type}``. Resolution, in one directory ``$batch`` for everyone (the organizer
included):

* ``user`` names a colleague by object id or email/UPN; one the directory does not
  know is 422 ``user_not_found``.
* ``email`` names anyone by address: a user of the tenant is treated as that colleague
  (so a colleague is never invited "as a guest" around the pairing policy); anyone else
  is a **guest**: invited, never looked up again, their calendar never read. A guest's
  ``name`` is shown in the Outlook invitation and travels sealed with the command; it
  is never stored or logged.

Refused with 422 and a code: more than ``MAX_ATTENDEES`` people (``too_many_attendees``)
or ``MAX_HOST_CANDIDATES`` hosts (``too_many_hosts``), an address that is not an email
address (``invalid_attendee_email``), the same person twice, by id or by address in any
case, among attendees and hosts (``duplicate_attendee``), the organizer among them
(``organizer_as_attendee``), a colleague without a mailbox (``user_without_mailbox``).

**Pairing policy.** ``sameTenant``: any colleague, any guest. ``registered``: every
colleague (attendee or host candidate) must be in an active pairing with the organizer
(403 ``attendee_not_paired``), and guests are not allowed (403 ``guests_not_allowed``),
unless the booking is made by the product's server (acting for the organizer) or by a
tenant admin: under ``registered`` the product decides who meets whom, and it (or the
admin) is the one party that may put together a group beyond the registered pairs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from core.domain.assignment import MAX_HOST_CANDIDATES, HostCandidate
from core.domain.calendar import DirectoryUser, GraphIdentity
from core.domain.errors import Forbidden, ServiceError, UserNotFound, ValidationFailed
from core.domain.integration import Integration, PairingPolicy
from core.domain.sessions import MAX_ATTENDEES, AttendeeState, AttendeeType, is_email
from core.ports import CalendarGateway
from core.services.authz import Caller
from core.services.stores.pairings import PairingRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AttendeeRequest:
    """One person as the request names them: ``user`` (a colleague) or ``email`` (anyone)."""

    user: str | None = None
    email: str | None = None
    name: str | None = None
    type: AttendeeType = AttendeeType.REQUIRED


@dataclass(frozen=True, slots=True)
class Invitee:
    """A resolved attendee; ``name`` only for guests, and only on its way to Outlook."""

    address: str
    user_id: str | None = None
    type: AttendeeType = AttendeeType.REQUIRED
    guest: bool = False
    name: str | None = None

    def state(self) -> AttendeeState:
        return AttendeeState(self.address, user_id=self.user_id, type=self.type, guest=self.guest)


@dataclass(frozen=True, slots=True)
class Party:
    """The organizer's address, the invitees and the host candidates of one booking."""

    organizer_address: str
    invitees: tuple[Invitee, ...] = ()
    hosts: tuple[HostCandidate, ...] = ()
    pairing_id: str | None = None

    @property
    def colleague_ids(self) -> list[str]:
        return [i.user_id for i in self.invitees if i.user_id]

    @property
    def required_ids(self) -> list[str]:
        return [i.user_id for i in self.invitees if i.user_id and i.type is AttendeeType.REQUIRED]

    @property
    def required_addresses(self) -> list[str]:
        return [i.address for i in self.invitees if not i.guest and i.type is AttendeeType.REQUIRED]

    @property
    def names(self) -> dict[str, str]:
        return {i.address: i.name for i in self.invitees if i.guest and i.name}

    @property
    def size(self) -> int:
        """People in the session once a host is chosen: the organizer, the invitees and one host."""
        return 1 + len(self.invitees) + (1 if self.hosts else 0)


def _field(where: str, index: int, key: str, msg: str, kind: str) -> dict[str, object]:
    return {"loc": ["body", where, index, key], "msg": msg, "type": kind}


def check_counts(attendees: Sequence[AttendeeRequest], hosts: Sequence[str]) -> None:
    """422 for more people or hosts than the documented limits, and for malformed addresses."""
    if len(attendees) > MAX_ATTENDEES:
        raise ValidationFailed(f"A session may invite at most {MAX_ATTENDEES} people besides the organizer.",
                               code="too_many_attendees", details={"max": MAX_ATTENDEES})
    if len(hosts) > MAX_HOST_CANDIDATES:
        raise ValidationFailed(f"At most {MAX_HOST_CANDIDATES} host candidates may be given.",
                               code="too_many_hosts", details={"max": MAX_HOST_CANDIDATES})
    bad = [_field("attendees", i, "email" if a.email is not None else "user", "not an email address",
                  "invalid_attendee_email")
           for i, a in enumerate(attendees)
           if (a.email is not None and not is_email(a.email)) or (a.user is not None and "@" in a.user
                                                                  and not is_email(a.user))]
    bad += [_field("hosts", i, "user", "not an email address", "invalid_attendee_email")
            for i, h in enumerate(hosts) if "@" in h and not is_email(h)]
    if bad:
        raise ValidationFailed("An attendee's email address is not valid.", code="invalid_attendee_email",
                               details={"fields": bad})


class DirectoryCache(Protocol):
    """A per-process time-limited cache (``core.services.availability.TtlCache``)."""

    def get(self, key: tuple[str, str]) -> DirectoryUser | None: ...

    def put(self, key: tuple[str, str], value: DirectoryUser) -> DirectoryUser: ...


_NOT_A_USER = DirectoryUser(user_id="", display_name=None, user_principal_name=None, mail=None)


class PartyResolver:
    """Resolves attendees and hosts through the directory and applies the rules (module docstring).

    With a ``cache`` (availability: the same group asked about week after week) directory
    answers, "no such user" included, are kept per process for the cache's lifetime, so a
    repeated question costs only its getSchedule calls."""

    def __init__(self, gateway: Callable[[], CalendarGateway], pairings: PairingRepository,
                 cache: DirectoryCache | None = None) -> None:
        self._gateway = gateway
        self.pairings = pairings
        self._cache = cache

    def _lookup(self, who: GraphIdentity, refs: Sequence[str]) -> dict[str, DirectoryUser | ServiceError]:
        """The directory's answer per ref: one ``$batch`` (per 20) for the refs not cached."""
        out: dict[str, DirectoryUser | ServiceError] = {}
        missing: list[str] = []
        for ref in dict.fromkeys(refs):
            cached = self._cache.get((who.tenant_id, ref.lower())) if self._cache is not None else None
            if cached is None:
                missing.append(ref)
            else:
                out[ref] = cached if cached.user_id else UserNotFound()
        if missing:
            for ref, found in self._gateway().get_users(who, missing).items():
                out[ref] = found
                if self._cache is not None and isinstance(found, DirectoryUser):
                    self._cache.put((who.tenant_id, ref.lower()), found)
                elif self._cache is not None and isinstance(found, UserNotFound):
                    self._cache.put((who.tenant_id, ref.lower()), _NOT_A_USER)
        return out

    def resolve(self, caller: Caller, integration: Integration, who: GraphIdentity,
                attendees: Sequence[AttendeeRequest], hosts: Sequence[str], *,
                where: str = "attendees") -> Party:
        check_counts(attendees, hosts)
        refs = [caller.object_id, *(a.user or a.email or "" for a in attendees), *hosts]
        found = self._lookup(who, [r for r in refs if r])
        me = found.get(caller.object_id)
        if not isinstance(me, DirectoryUser):
            raise me if isinstance(me, ServiceError) else UserNotFound()
        if not me.mail:
            raise ValidationFailed("You have no mailbox to organize the session from.", code="user_without_mailbox")
        organizer = {caller.object_id.lower(), me.mail.lower(), (me.user_principal_name or me.mail).lower()}
        seen: set[str] = set()
        invitees: list[Invitee] = []
        for i, a in enumerate(attendees):
            ref = a.user or a.email or ""
            user = self._colleague(found.get(ref), where, i, "user" if a.user else "email", guest_ok=a.user is None)
            if user is None:
                invitee = Invitee(ref.strip(), None, a.type, guest=True, name=(a.name or "").strip() or None)
            else:
                assert user.mail is not None
                invitee = Invitee(user.mail, user.user_id.lower(), a.type)
            self._once(organizer, seen, invitee.address, invitee.user_id, loc=(where, i, "user" if a.user else "email"))
            invitees.append(invitee)
        candidates: list[HostCandidate] = []
        for i, ref in enumerate(hosts):
            user = self._colleague(found.get(ref), "hosts", i, "user", guest_ok=False)
            assert user is not None and user.mail is not None
            self._once(organizer, seen, user.mail, user.user_id.lower(), loc=("hosts", i, "user"))
            candidates.append(HostCandidate(user.user_id.lower(), user.mail))
        party = Party(me.mail, tuple(invitees), tuple(candidates))
        self._require_policy(caller, integration, party)
        return party

    @staticmethod
    def _colleague(found: DirectoryUser | ServiceError | None, where: str, index: int, key: str,
                   *, guest_ok: bool) -> DirectoryUser | None:
        """The directory user, or None for a guest (an email the directory does not know)."""
        if isinstance(found, DirectoryUser):
            if not found.account_enabled:  # a room mailbox, or someone who left: never invited as a person
                raise ValidationFailed("This is not an active user of your organisation (a room goes in room or "
                                       "rooms).", code="user_not_found",
                                       details={"fields": [_field(where, index, key, "not an active user",
                                                                  "user_not_found")]})
            if not found.mail:
                raise ValidationFailed("This colleague has no mailbox.", code="user_without_mailbox",
                                       details={"fields": [_field(where, index, key, "no mailbox",
                                                                  "user_without_mailbox")]})
            return found
        if isinstance(found, UserNotFound) or found is None:
            if guest_ok:
                return None
            raise ValidationFailed("This colleague is not a user of your organisation.", code="user_not_found",
                                   details={"fields": [_field(where, index, key, "no such user", "user_not_found")]})
        raise found

    @staticmethod
    def _once(organizer: set[str], seen: set[str], address: str, user_id: str | None, *,
              loc: tuple[str, int, str]) -> None:
        """422 for the organizer among the people, or for someone named twice (id or address, any case)."""
        where, index, key = loc
        names = {address.lower(), *([user_id.lower()] if user_id else [])}
        if names & organizer:
            raise ValidationFailed("The organizer cannot also be an attendee or a host.", code="organizer_as_attendee",
                                   details={"fields": [_field(where, index, key, "that is the organizer",
                                                              "organizer_as_attendee")]})
        if names & seen:
            raise ValidationFailed("The same person is named twice.", code="duplicate_attendee",
                                   details={"fields": [_field(where, index, key, "named twice", "duplicate_attendee")]})
        seen.update(names)

    def _require_policy(self, caller: Caller, integration: Integration, party: Party) -> None:
        if integration.pairing_policy is PairingPolicy.SAME_TENANT or caller.acting_app or caller.is_admin:
            return
        if any(i.guest for i in party.invitees):
            raise Forbidden("Your organisation only allows guests from outside it in sessions booked by the "
                            "scheduling product or an admin.", code="guests_not_allowed")
        paired = set()
        for pairing in self.pairings.list_for_user(caller.tenant_id, caller.object_id):
            if pairing.active:
                paired.add(pairing.partner_of(caller.object_id)[0].lower())
        strangers = [i.address for i in party.invitees if i.user_id and i.user_id not in paired]
        strangers += [h.address for h in party.hosts if h.user_id not in paired]
        if strangers:
            raise Forbidden("You can only book sessions with people you are paired with.",
                            code="attendee_not_paired", details={"attendees": strangers})


__all__ = ["AttendeeRequest", "Invitee", "Party", "PartyResolver", "check_counts"]
