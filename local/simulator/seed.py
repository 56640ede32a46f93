"""Deterministic seed data: four tenants, users in many time zones, unreachable users, rooms.

Everything comes from one fixed random seed, so ids, users and rooms are identical on
every run; seeded events are laid out relative to *today* (UTC) over the next
8 weeks, so they are identical for every run on the same day.

Well-known accounts (see README.md):

- Contoso (``CONTOSO``, contoso.test): ``admin@contoso.test`` (tenant admin),
  ``alice@contoso.test`` (mentor, Pacific, lunch 12:00-13:00 every weekday),
  ``bob@contoso.test`` (mentee, W. Europe, stand-up 09:00-09:30 every weekday),
  ``onprem1/2@`` (onPremises), ``nolicense1/2@`` (unlicensed),
  ``scoped1/2/3@`` (outsideScope), ``hybrid1/2@`` (hybrid: free/busy yes, REST no),
  ``trent@``/``uma@`` (disabled accounts),
  ``victor@``/``wendy@`` (Skype for Business only), ``xavier@``/``yvonne@`` (no online
  meeting provider), ``peggy@`` (custom working-hours zone), ``oscar@`` (IANA zone).
- Fabrikam (``FABRIKAM``, fabrikam.test): ``admin@fabrikam.test`` and 9 more users.
- Northwind (``NORTHWIND``, northwind.test) and Tailspin (``TAILSPIN``, tailspin.test):
  consent granted, user consent allowed, an admin, a scheduling mailbox
  ``scheduler@`` (the service-account method's mailbox) and 8 more users each, two rooms.
  End-to-end tests that switch a tenant's connection method use these, so Contoso and
  Fabrikam keep the domain-wide method other tests rely on.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from local.simulator.state import Calendar, Event, Mailbox, RoomList, Tenant
from local.simulator.timeutil import zone

if TYPE_CHECKING:
    from local.simulator.state import SimState

CONTOSO = "11111111-1111-4111-8111-111111111111"
FABRIKAM = "22222222-2222-4222-8222-222222222222"
CONTOSO_DOMAIN = "contoso.test"
FABRIKAM_DOMAIN = "fabrikam.test"
NORTHWIND = "33333333-3333-4333-8333-333333333333"
TAILSPIN = "44444444-4444-4444-8444-444444444444"
NORTHWIND_DOMAIN = "northwind.test"
TAILSPIN_DOMAIN = "tailspin.test"

CONTOSO_ADMIN_ID = "10000000-0000-4000-8000-000000000001"
ALICE_ID = "10000000-0000-4000-8000-0000000a11ce"
BOB_ID = "10000000-0000-4000-8000-000000000b0b"
FABRIKAM_ADMIN_ID = "20000000-0000-4000-8000-000000000001"
NORTHWIND_ADMIN_ID = "30000000-0000-4000-8000-000000000001"
NORTHWIND_SCHEDULER_ID = "30000000-0000-4000-8000-00000000005c"
TAILSPIN_ADMIN_ID = "40000000-0000-4000-8000-000000000001"
TAILSPIN_SCHEDULER_ID = "40000000-0000-4000-8000-00000000005c"

ALICE = "alice@contoso.test"
BOB = "bob@contoso.test"
CONTOSO_ADMIN = "admin@contoso.test"
FABRIKAM_ADMIN = "admin@fabrikam.test"
NORTHWIND_ADMIN = "admin@northwind.test"
NORTHWIND_SCHEDULER = "scheduler@northwind.test"
TAILSPIN_ADMIN = "admin@tailspin.test"
TAILSPIN_SCHEDULER = "scheduler@tailspin.test"

SEED = 20240611
_SEEDED_AT = datetime(2024, 6, 11, tzinfo=UTC)  # created/modified of seeded events (deterministic)
SEED_DAYS = 56

MON_FRI = ["monday", "tuesday", "wednesday", "thursday", "friday"]
SUN_THU = ["sunday", "monday", "tuesday", "wednesday", "thursday"]
TUE_SAT = ["tuesday", "wednesday", "thursday", "friday", "saturday"]
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]

# local part, display name, time zone, days, start, end, flags
_CONTOSO_PEOPLE: list[tuple[str, str, str, list[str], str, str, str]] = [
    ("admin", "Megan Admin", "Eastern Standard Time", MON_FRI, "08:00", "17:00", "admin"),
    ("alice", "Alice Mentor", "Pacific Standard Time", MON_FRI, "09:00", "17:00", ""),
    ("bob", "Bob Mentee", "W. Europe Standard Time", MON_FRI, "09:00", "17:00", ""),
    ("carol", "Carol Chen", "Pacific Standard Time", MON_FRI, "08:30", "16:30", ""),
    ("dave", "Dave Diaz", "Eastern Standard Time", MON_FRI, "09:00", "18:00", ""),
    ("erin", "Erin Evans", "Central Standard Time", MON_FRI, "08:00", "16:00", ""),
    ("frank", "Frank Foster", "GMT Standard Time", MON_FRI, "09:00", "17:30", ""),
    ("grace", "Grace Gruber", "W. Europe Standard Time", MON_FRI, "08:00", "16:00", ""),
    ("heidi", "Heidi Iyer", "India Standard Time", MON_FRI, "10:00", "19:00", ""),
    ("ivan", "Ivan Ivanov", "AUS Eastern Standard Time", MON_FRI, "08:30", "16:30", ""),
    ("judy", "Judy Jones", "Tokyo Standard Time", MON_FRI, "09:30", "18:30", ""),
    ("ken", "Ken Kato", "E. South America Standard Time", MON_FRI, "09:00", "18:00", ""),
    ("laura", "Laura Lange", "South Africa Standard Time", MON_FRI, "08:00", "17:00", ""),
    ("mallory", "Mallory Mizrahi", "Israel Standard Time", SUN_THU, "08:00", "17:00", ""),
    ("nina", "Nina Nasser", "Arab Standard Time", SUN_THU, "09:00", "17:00", ""),
    ("oscar", "Oscar Ong", "Asia/Singapore", MON_FRI, "09:00", "18:00", ""),
    ("peggy", "Peggy Petit", "W. Central Africa Standard Time", MON_FRI, "08:00", "16:00", "custom"),
    ("quentin", "Quentin Quinn", "Pacific Standard Time", TUE_SAT, "10:00", "18:00", ""),
    ("rupert", "Rupert Reid", "New Zealand Standard Time", MON_FRI, "08:00", "16:30", ""),
    ("sybil", "Sybil Shrestha", "Nepal Standard Time", MON_FRI, "10:00", "17:00", ""),
    ("trent", "Trent Turner", "Eastern Standard Time", MON_FRI, "09:00", "17:00", "disabled"),
    ("uma", "Uma Ulrich", "W. Europe Standard Time", MON_FRI, "09:00", "17:00", "disabled"),
    ("victor", "Victor Vance", "Pacific Standard Time", MON_FRI, "09:00", "17:00", "skype"),
    ("wendy", "Wendy Walsh", "GMT Standard Time", MON_FRI, "09:00", "17:00", "skype"),
    ("xavier", "Xavier Xu", "India Standard Time", MON_FRI, "09:30", "18:00", "noonline"),
    ("yvonne", "Yvonne Young", "AUS Eastern Standard Time", MON_FRI, "09:00", "17:00", "noonline"),
    ("zoe", "Zoe Zimmer", "Central Standard Time", MON_FRI, "07:30", "15:30", ""),
    ("aaron", "Aaron Abbott", "Eastern Standard Time", MON_FRI, "09:00", "17:00", ""),
    ("beth", "Beth Brooks", "Pacific Standard Time", MON_FRI, "09:00", "17:00", ""),
    ("chris", "Chris Clement", "W. Europe Standard Time", MON_FRI, "09:00", "17:00", ""),
    ("onprem1", "Olga Onprem", "Eastern Standard Time", MON_FRI, "09:00", "17:00", "onPremises"),
    ("onprem2", "Otto Onprem", "GMT Standard Time", MON_FRI, "09:00", "17:00", "onPremises"),
    ("nolicense1", "Nora Nolicense", "Pacific Standard Time", MON_FRI, "09:00", "17:00", "unlicensed"),
    ("nolicense2", "Ned Nolicense", "W. Europe Standard Time", MON_FRI, "09:00", "17:00", "unlicensed"),
    ("scoped1", "Sam Scoped", "Pacific Standard Time", MON_FRI, "09:00", "17:00", "outsideScope"),
    ("scoped2", "Sue Scoped", "Eastern Standard Time", MON_FRI, "09:00", "17:00", "outsideScope"),
    ("scoped3", "Sid Scoped", "India Standard Time", MON_FRI, "09:00", "17:00", "outsideScope"),
]

_HYBRID_PEOPLE: list[tuple[str, str, str, list[str], str, str, str]] = [
    ("hybrid1", "Hank Hybrid", "Eastern Standard Time", MON_FRI, "09:00", "17:00", "hybrid"),
    ("hybrid2", "Hilda Hybrid", "GMT Standard Time", MON_FRI, "09:00", "17:00", "hybrid"),
]

_FABRIKAM_PEOPLE: list[tuple[str, str, str, list[str], str, str, str]] = [
    ("admin", "Fiona Admin", "GMT Standard Time", MON_FRI, "09:00", "17:00", "admin"),
    ("felix", "Felix Fox", "GMT Standard Time", MON_FRI, "09:00", "17:00", ""),
    ("gina", "Gina Gold", "Eastern Standard Time", MON_FRI, "08:00", "16:00", ""),
    ("hugo", "Hugo Hart", "W. Europe Standard Time", MON_FRI, "09:00", "17:00", ""),
    ("iris", "Iris Irwin", "Pacific Standard Time", MON_FRI, "09:00", "17:00", ""),
    ("jack", "Jack Jaeger", "India Standard Time", MON_FRI, "10:00", "18:00", ""),
    ("kara", "Kara Kim", "Tokyo Standard Time", MON_FRI, "09:00", "18:00", ""),
    ("liam", "Liam Lowe", "AUS Eastern Standard Time", MON_FRI, "08:00", "16:00", ""),
    ("mona", "Mona Moss", "Central Standard Time", MON_FRI, "09:00", "17:00", ""),
    ("nolicense1", "Nils Nolicense", "GMT Standard Time", MON_FRI, "09:00", "17:00", "unlicensed"),
]

_NORTHWIND_PEOPLE: list[tuple[str, str, str, list[str], str, str, str]] = [
    ("admin", "Nadia Admin", "Eastern Standard Time", MON_FRI, "08:00", "17:00", "admin"),
    ("scheduler", "Northwind Scheduling", "Eastern Standard Time", MON_FRI, "08:00", "18:00", "noevents"),
    ("nancy", "Nancy Davolio", "Pacific Standard Time", MON_FRI, "09:00", "17:00", ""),
    ("andrew", "Andrew Fuller", "Eastern Standard Time", MON_FRI, "09:00", "17:00", ""),
    ("janet", "Janet Leverling", "GMT Standard Time", MON_FRI, "09:00", "17:00", ""),
    ("margaret", "Margaret Peacock", "W. Europe Standard Time", MON_FRI, "08:00", "16:00", ""),
    ("steven", "Steven Buchanan", "GMT Standard Time", MON_FRI, "09:00", "17:30", ""),
    ("michael", "Michael Suyama", "Central Standard Time", MON_FRI, "08:00", "16:00", ""),
    ("robert", "Robert King", "Pacific Standard Time", MON_FRI, "09:00", "17:00", ""),
    ("laura", "Laura Callahan", "Eastern Standard Time", MON_FRI, "09:00", "17:00", ""),
]

_TAILSPIN_PEOPLE: list[tuple[str, str, str, list[str], str, str, str]] = [
    ("admin", "Tara Admin", "GMT Standard Time", MON_FRI, "09:00", "17:00", "admin"),
    ("scheduler", "Tailspin Scheduling", "GMT Standard Time", MON_FRI, "08:00", "18:00", "noevents"),
    ("toby", "Toby Tailor", "GMT Standard Time", MON_FRI, "09:00", "17:00", ""),
    ("ursula", "Ursula Usher", "W. Europe Standard Time", MON_FRI, "09:00", "17:00", ""),
    ("vince", "Vince Vale", "Eastern Standard Time", MON_FRI, "08:00", "16:00", ""),
    ("wanda", "Wanda Webb", "Pacific Standard Time", MON_FRI, "09:00", "17:00", ""),
    ("xena", "Xena Xiong", "India Standard Time", MON_FRI, "10:00", "18:00", ""),
    ("yusuf", "Yusuf Yilmaz", "GMT Standard Time", MON_FRI, "09:00", "17:00", ""),
    ("zara", "Zara Zeller", "Central Standard Time", MON_FRI, "09:00", "17:00", ""),
    ("quinn", "Quinn Quade", "Eastern Standard Time", MON_FRI, "09:00", "17:00", ""),
]

_FIXED_IDS = {
    (CONTOSO, "admin"): CONTOSO_ADMIN_ID,
    (CONTOSO, "alice"): ALICE_ID,
    (CONTOSO, "bob"): BOB_ID,
    (FABRIKAM, "admin"): FABRIKAM_ADMIN_ID,
    (NORTHWIND, "admin"): NORTHWIND_ADMIN_ID,
    (NORTHWIND, "scheduler"): NORTHWIND_SCHEDULER_ID,
    (TAILSPIN, "admin"): TAILSPIN_ADMIN_ID,
    (TAILSPIN, "scheduler"): TAILSPIN_SCHEDULER_ID,
}

_SUBJECTS = [
    "1:1",
    "Team sync",
    "Project review",
    "Customer call",
    "Focus time",
    "Planning",
    "Interview",
    "Design review",
    "Budget meeting",
    "All hands",
    "Training",
    "Lunch & learn",
]

_CUSTOM_ZONE: dict[str, Any] = {
    "@odata.type": "#microsoft.graph.customTimeZone",
    "bias": -60,
    "name": "Customized Time Zone",
    "standardOffset": {"time": "00:00:00.0000000", "dayOccurrence": 0, "dayOfWeek": "sunday", "month": 0, "year": 0},
    "daylightOffset": {
        "daylightBias": 0,
        "time": "00:00:00.0000000",
        "dayOccurrence": 0,
        "dayOfWeek": "sunday",
        "month": 0,
        "year": 0,
    },
}

# email, display name, capacity, building, floor, room list, zone
_CONTOSO_ROOMS = [
    ("room-orca@contoso.test", "Orca (B1, 8)", 8, "Building 1", 1, "rooms-b1@contoso.test", "Pacific Standard Time"),
    (
        "room-puffin@contoso.test",
        "Puffin (B1, 4)",
        4,
        "Building 1",
        2,
        "rooms-b1@contoso.test",
        "Pacific Standard Time",
    ),
    (
        "room-salmon@contoso.test",
        "Salmon (B1, 12)",
        12,
        "Building 1",
        3,
        "rooms-b1@contoso.test",
        "Pacific Standard Time",
    ),
    ("room-thames@contoso.test", "Thames (B2, 6)", 6, "Building 2", 1, "rooms-b2@contoso.test", "GMT Standard Time"),
    ("room-severn@contoso.test", "Severn (B2, 10)", 10, "Building 2", 2, "rooms-b2@contoso.test", "GMT Standard Time"),
    ("room-avon@contoso.test", "Avon (B2, 2)", 2, "Building 2", 2, "rooms-b2@contoso.test", "GMT Standard Time"),
]
_CONTOSO_LISTS = [
    ("rooms-b1@contoso.test", "Building 1 Rooms", "Seattle"),
    ("rooms-b2@contoso.test", "Building 2 Rooms", "London"),
]
_FABRIKAM_ROOMS = [
    ("room-oak@fabrikam.test", "Oak (6)", 6, "HQ", 1, "rooms-hq@fabrikam.test", "GMT Standard Time"),
    ("room-elm@fabrikam.test", "Elm (12)", 12, "HQ", 2, "rooms-hq@fabrikam.test", "GMT Standard Time"),
]
_FABRIKAM_LISTS = [("rooms-hq@fabrikam.test", "HQ Rooms", "Dublin")]
_NORTHWIND_ROOMS = [
    ("room-cedar@northwind.test", "Cedar (6)", 6, "Main", 1, "rooms-main@northwind.test", "Eastern Standard Time"),
    ("room-maple@northwind.test", "Maple (10)", 10, "Main", 2, "rooms-main@northwind.test", "Eastern Standard Time"),
]
_NORTHWIND_LISTS = [("rooms-main@northwind.test", "Main Building Rooms", "Boston")]
_TAILSPIN_ROOMS = [
    ("room-falcon@tailspin.test", "Falcon (4)", 4, "Hangar", 1, "rooms-hangar@tailspin.test", "GMT Standard Time"),
    ("room-osprey@tailspin.test", "Osprey (8)", 8, "Hangar", 1, "rooms-hangar@tailspin.test", "GMT Standard Time"),
]
_TAILSPIN_LISTS = [("rooms-hangar@tailspin.test", "Hangar Rooms", "Bristol")]


_TenantSpec = tuple[
    str,
    str,
    str,
    list[tuple[str, str, str, list[str], str, str, str]],
    list[tuple[str, str, int, str, int, str, str]],
    list[tuple[str, str, str]],
    bool,
]


def seed(state: SimState, *, extra_users: int = 0, today: date | None = None) -> list[Tenant]:
    """Build the seeded tenants (Contoso consent NOT granted; Fabrikam, Northwind and Tailspin granted)."""
    rng = random.Random(SEED)
    day0 = today or datetime.now(UTC).date()
    contoso_spec: _TenantSpec = (
        CONTOSO,
        CONTOSO_DOMAIN,
        "Contoso",
        _CONTOSO_PEOPLE,
        _CONTOSO_ROOMS,
        _CONTOSO_LISTS,
        False,
    )
    fabrikam_spec: _TenantSpec = (
        FABRIKAM,
        FABRIKAM_DOMAIN,
        "Fabrikam",
        _FABRIKAM_PEOPLE,
        _FABRIKAM_ROOMS,
        _FABRIKAM_LISTS,
        True,
    )
    contoso = _tenant(state, rng, contoso_spec, day0)
    fabrikam = _tenant(state, rng, fabrikam_spec, day0)
    # Hybrid mailboxes draw from their own generator, so no earlier id moves. Their calendars
    # live on premises: getSchedule sees them (hybrid free/busy), Graph REST calls do not.
    hybrid_rng = random.Random(SEED + 3)
    for row in _HYBRID_PEOPLE:
        _seed_events(state, hybrid_rng, _person(hybrid_rng, contoso, row), day0)
    extra_rng = random.Random(SEED + 1)  # load-test users never shift the base seed's ids
    zones = ["Pacific Standard Time", "Eastern Standard Time", "W. Europe Standard Time", "India Standard Time"]
    for i in range(extra_users):
        row = (f"user{i + 1:04d}", f"Load User {i + 1:04d}", zones[i % 4], MON_FRI, "09:00", "17:00", "")
        _seed_events(state, extra_rng, _person(extra_rng, contoso, row), day0)
    # The connection-method tenants draw from their own generator: Contoso's and Fabrikam's ids never move.
    method_rng = random.Random(SEED + 2)
    northwind = _tenant(state, method_rng, (NORTHWIND, NORTHWIND_DOMAIN, "Northwind", _NORTHWIND_PEOPLE,
                                            _NORTHWIND_ROOMS, _NORTHWIND_LISTS, True), day0)
    tailspin = _tenant(state, method_rng, (TAILSPIN, TAILSPIN_DOMAIN, "Tailspin", _TAILSPIN_PEOPLE,
                                           _TAILSPIN_ROOMS, _TAILSPIN_LISTS, True), day0)
    return [contoso, fabrikam, northwind, tailspin]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _tenant(state: SimState, rng: random.Random, spec: _TenantSpec, day0: date) -> Tenant:
    tid, domain, name, people, rooms, lists, consent = spec
    tenant = Tenant(id=tid, domain=domain, display_name=name, consent_granted=consent, app_sp_id=_uuid(rng))
    for row in people:
        mb = _person(rng, tenant, row)
        if mb.has_rest_mailbox and row[6] != "noevents":
            _seed_events(state, rng, mb, day0)
    for list_email, list_name, city in lists:
        tenant.room_lists.append(RoomList(id=_uuid(rng), email=list_email, display_name=list_name, city=city))
    for email, display, capacity, building, floor, list_email, tz in rooms:
        room = Mailbox(
            id=_uuid(rng),
            tenant_id=tid,
            upn=email,
            display_name=display,
            account_enabled=False,
            time_zone=tz,
            working_hours=_hours(MON_FRI, "08:00", "18:00", {"name": tz}),
            is_room=True,
            capacity=capacity,
            building=building,
            floor=floor,
            room_list_email=list_email,
            place_id=_uuid(rng),
            usage_location=None,
            preferred_language=None,
        )
        room.calendars = {c.id: c for c in [Calendar(id=_cal_id(rng), name="Calendar", is_default=True)]}
        tenant.add(room)
        for rl in tenant.room_lists:
            if rl.email == list_email:
                rl.room_emails.append(email)
        _seed_events(state, rng, room, day0, room=True)
    return tenant


def _person(rng: random.Random, tenant: Tenant, row: tuple[str, str, str, list[str], str, str, str]) -> Mailbox:
    local, display, tz, days, start, end, flags = row
    uid = _FIXED_IDS.get((tenant.id, local)) or _uuid(rng)
    given, _, surname = display.partition(" ")
    kind = flags if flags in ("onPremises", "unlicensed", "outsideScope", "hybrid") else "normal"
    wh_zone: dict[str, Any] = dict(_CUSTOM_ZONE) if flags == "custom" else {"name": tz}
    mb = Mailbox(
        id=uid,
        tenant_id=tenant.id,
        upn=f"{local}@{tenant.domain}",
        display_name=display,
        kind=kind,
        account_enabled=flags != "disabled",
        given_name=given,
        surname=surname or None,
        job_title="Administrator" if flags == "admin" else rng.choice(["Engineer", "Designer", "Manager", "Analyst"]),
        department=rng.choice(["Engineering", "Sales", "People", "Finance"]),
        office_location=rng.choice(["Seattle", "London", "Berlin", "Remote"]),
        time_zone=tz,
        working_hours=_hours(days, start, end, wh_zone),
    )
    if flags == "skype":
        mb.allowed_providers, mb.default_provider = ["skypeForBusiness"], "skypeForBusiness"
    elif flags == "noonline":
        mb.allowed_providers, mb.default_provider = [], "unknown"
    mb.calendars = {c.id: c for c in [Calendar(id=_cal_id(rng), name="Calendar", is_default=True)]}
    tenant.add(mb)
    return mb


def _hours(days: list[str], start: str, end: str, tz: dict[str, Any]) -> dict[str, Any]:
    return {
        "daysOfWeek": list(days),
        "startTime": f"{start}:00.0000000",
        "endTime": f"{end}:00.0000000",
        "timeZone": tz,
    }


def _cal_id(rng: random.Random) -> str:
    return "AAMkAGCal" + uuid.UUID(int=rng.getrandbits(128), version=4).hex


def _event_id(rng: random.Random) -> str:
    return (
        "AAMkAGEvt"
        + uuid.UUID(int=rng.getrandbits(128), version=4).hex
        + uuid.UUID(int=rng.getrandbits(128), version=4).hex[:16]
    )


def _seed_events(state: SimState, rng: random.Random, mb: Mailbox, day0: date, *, room: bool = False) -> None:
    tz = zone(mb.time_zone)
    wh = mb.working_hours
    days = set(wh["daysOfWeek"])
    start_h = time.fromisoformat(wh["startTime"][:8])
    end_h = time.fromisoformat(wh["endTime"][:8])
    oof_days = set() if room else {rng.randrange(3, SEED_DAYS) for _ in range(rng.randint(0, 2))}
    for offset in range(SEED_DAYS):
        day = day0 + timedelta(days=offset)
        if _WEEKDAYS[day.weekday()] not in days:
            continue
        if offset in oof_days:
            start = datetime.combine(day, time(0), tz)
            _add(
                state,
                rng,
                mb,
                subject="Out of office",
                start=start,
                end=start + timedelta(days=1),
                show_as="oof",
                all_day=True,
            )
            continue
        if mb.id == ALICE_ID:
            lunch = datetime.combine(day, time(12), tz)
            _add(state, rng, mb, subject="Lunch", start=lunch, end=lunch + timedelta(hours=1), show_as="busy")
        if mb.id == BOB_ID:
            standup = datetime.combine(day, time(9), tz)
            _add(
                state,
                rng,
                mb,
                subject="Team stand-up",
                start=standup,
                end=standup + timedelta(minutes=30),
                show_as="busy",
            )
        first = datetime.combine(day, start_h, tz)
        slots = max(1, int((datetime.combine(day, end_h, tz) - first).total_seconds() // 1800) - 2)
        for _ in range(rng.randint(0, 2 if room else 3)):
            start = first + timedelta(minutes=30 * rng.randrange(slots))
            length = timedelta(minutes=rng.choice([30, 30, 60, 60, 90]))
            roll = rng.random()
            show_as = (
                "busy" if roll < 0.7 else "tentative" if roll < 0.85 else "workingElsewhere" if roll < 0.92 else "free"
            )
            subject = "Room booking" if room else rng.choice(_SUBJECTS)
            _add(
                state,
                rng,
                mb,
                subject=subject,
                start=start,
                end=start + length,
                show_as=show_as,
                private=rng.random() < 0.1,
            )


def _add(
    state: SimState,
    rng: random.Random,
    mb: Mailbox,
    *,
    subject: str,
    start: datetime,
    end: datetime,
    show_as: str,
    all_day: bool = False,
    private: bool = False,
) -> None:
    event = Event(
        id=_event_id(rng),
        ical_uid="040000008200E00074C5B7101A82E008" + uuid.UUID(int=rng.getrandbits(128)).hex,
        mailbox_id=mb.id,
        calendar_id=mb.default_calendar_id,
        subject=subject,
        start=start.astimezone(UTC),
        end=end.astimezone(UTC),
        start_tz=mb.time_zone,
        end_tz=mb.time_zone,
        is_all_day=all_day,
        show_as=show_as,
        sensitivity="private" if private else "normal",
        organizer_name=mb.display_name,
        organizer_address=mb.upn,
        location={"displayName": mb.display_name, "locationType": "conferenceRoom"} if mb.is_room else {},
        created=_SEEDED_AT,
        modified=_SEEDED_AT,
    )
    event.seq = state.next_seq()
    mb.events[event.id] = event
