"""``parse_event_resource``: every documented spelling of a notification resource names one mailbox and event."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.domain.notification_resources import EventResource, parse_event_resource

TENANT = "84bd8158-6d4d-4958-8b9f-9d6445542f95"
OTHER_TENANT = "11111111-1111-4111-8111-111111111111"
USER = "622EAAFF-0683-4862-9DE4-F2EC83C2BD98"
EVENT = "AAMkAGUwNjQ4ZjIxAAA/x+y=="


@pytest.mark.parametrize(
    "resource",
    [
        f"Users/{USER}/Events/{EVENT}",  # basic notification (outlook-change-notifications-overview.md)
        f"users/{USER}@{TENANT}/events/{EVENT}",  # change-notifications-delivery-webhooks.md example
        f"Users('{USER}')/Events('{EVENT}')",  # rich notification key syntax
        f"/users/{USER}/events/{EVENT}",
        f"Users('{USER}@{TENANT}')/events/{EVENT}",
        f"Users/{USER}/Calendars/AAMkCal=/Events/{EVENT}",
        f"USERS/{USER}/EVENTS/{EVENT}",
    ],
)
def test_every_documented_form_gives_the_same_mailbox_and_event(resource: str) -> None:
    """Path, @tenant-suffixed and OData-key spellings all yield the lower-cased user id and the exact event id."""
    assert parse_event_resource(resource, TENANT) == EventResource(USER.lower(), EVENT)


@pytest.mark.parametrize(
    "resource",
    [
        None,
        "",
        f"Users/{USER}/Messages/{EVENT}",  # a message, not an event
        f"Users('{USER}')/messages('{EVENT}')",
        f"Users/{USER}/Events",  # the collection
        f"Users/{USER}/Events/",
        f"users/{USER}@{OTHER_TENANT}/events/{EVENT}",  # suffix names another tenant
        "Users//Events/x",
        f"Users('')/Events('{EVENT}')",
        "groups/x/events/y",
    ],
)
def test_non_event_or_foreign_resources_give_none(resource: str | None) -> None:
    """Anything that is not one event of one mailbox of this tenant is None (the webhook drops it as malformed)."""
    assert parse_event_resource(resource, TENANT) is None


def test_upn_users_keep_their_domain_and_quotes_in_keys_are_unescaped() -> None:
    """A UPN's @domain is not a tenant suffix; ``''`` in an OData key stands for one quote."""
    assert parse_event_resource("users/Alice@Contoso.com/events/e1", TENANT) == ("alice@contoso.com", "e1")
    assert parse_event_resource("Users('o''brien')/Events('a''b')", TENANT) == ("o'brien", "a'b")


def test_suffix_is_stripped_without_a_tenant_to_compare() -> None:
    """Without the notification's tenant id, a GUID suffix is still removed (the HMAC check decides)."""
    assert parse_event_resource(f"users/{USER}@{OTHER_TENANT}/events/e", None) == (USER.lower(), "e")


_ID_CHARS = string.ascii_letters + string.digits + "+/=-_"
ids = st.text(alphabet=_ID_CHARS, min_size=1, max_size=80).filter(lambda s: not s.startswith("/"))
users = st.uuids().map(str)


@given(user=users, event=ids, upper=st.booleans(), suffix=st.booleans(), form=st.sampled_from(["path", "key"]))
def test_property_any_form_round_trips_user_and_event(
    user: str, event: str, upper: bool, suffix: bool, form: str
) -> None:
    """For any GUID user and base64-ish event id (with '/', '+', '='), every spelling parses back exactly."""
    shown_user = (user.upper() if upper else user) + (f"@{TENANT}" if suffix else "")
    users_seg, events_seg = ("Users", "Events") if upper else ("users", "events")
    resource = (
        f"{users_seg}/{shown_user}/{events_seg}/{event}"
        if form == "path"
        else f"{users_seg}('{shown_user}')/{events_seg}('{event}')"
    )
    assert parse_event_resource(resource, TENANT) == EventResource(user.lower(), event)


@given(st.text(max_size=200))
def test_property_never_raises_and_never_returns_empty_parts(text: str) -> None:
    """Arbitrary text either gives None or a non-empty lower-case user id and a non-empty event id."""
    parsed = parse_event_resource(text, TENANT)
    if parsed is not None:
        assert parsed.user_id and parsed.user_id == parsed.user_id.lower()
        assert parsed.event_id
