"""X-On-Behalf-Of: object ids taken as they are, emails resolved once per few minutes, anything else a 422."""

from __future__ import annotations

import pytest

from core.domain.errors import ValidationFailed
from core.services.authz import Caller, acting_for
from core.services.on_behalf import OnBehalfResolver
from core.services.stores.audit import AuditTrail
from tests.support.fake_graph import FakeCalendarGateway, FakeTokenProvider
from tests.support.memory import FixedClock, InMemoryTableStore
from tests.unit.test_booking_support import ALICE, ALICE_ID, NOW, TENANT

APP = "e0000000-0000-4000-8000-00000000000e"


def _resolver(now: list[float] | None = None) -> tuple[OnBehalfResolver, FakeCalendarGateway]:
    graph = FakeCalendarGateway(tokens=FakeTokenProvider([TENANT]))
    graph.add_user(TENANT, ALICE, user_id=ALICE_ID)
    clock = now if now is not None else [0.0]
    return OnBehalfResolver(graph, InMemoryTableStore(), monotonic=lambda: clock[0]), graph


def test_an_object_id_is_used_as_is_without_a_graph_call() -> None:
    """A GUID names the user directly (lower-cased); Graph is not asked."""
    resolver, graph = _resolver()
    assert resolver.resolve(TENANT, ALICE_ID.upper()) == ALICE_ID
    assert graph.call_count() == 0


def test_an_email_is_resolved_once_and_cached_for_a_few_minutes() -> None:
    """Two requests for the same user cost one directory read; after the cache time, another."""
    clock = [0.0]
    resolver, graph = _resolver(clock)
    assert resolver.resolve(TENANT, ALICE) == ALICE_ID
    assert resolver.resolve(TENANT, ALICE.upper()) == ALICE_ID
    assert graph.call_count("get_user") == 1
    clock[0] += 301
    resolver.resolve(TENANT, ALICE)
    assert graph.call_count("get_user") == 2


@pytest.mark.parametrize(("ref", "code"), [("nobody@contoso.test", "user_not_found"),
                                           ("not-a-user", "validation_failed"),
                                           ("", "on_behalf_of_required"),
                                           ("x" * 300 + "@contoso.test", "validation_failed")])
def test_a_value_naming_nobody_is_a_422_naming_the_header(ref: str, code: str) -> None:
    """Unknown users and malformed values are refused with the header as the field."""
    resolver, _ = _resolver()
    with pytest.raises(ValidationFailed) as err:
        resolver.resolve(TENANT, ref)
    assert err.value.code == code
    assert err.value.details["fields"][0]["loc"] == ["header", "X-On-Behalf-Of"]


def test_an_app_acting_for_a_user_is_that_user_with_no_roles_of_its_own() -> None:
    """The acting caller is the user (participant rules apply), never an admin, and remembers the app."""
    app = Caller(TENANT, "5e000000-0000-4000-8000-000000000001", roles=frozenset({"Sessions.ReadWrite.All",
                                                                                 "Integration.Admin"}),
                 is_app=True, app_id=APP)
    acting = acting_for(app, ALICE_ID.upper())
    assert (acting.object_id, acting.acting_app, acting.is_app, acting.roles) == (ALICE_ID, APP, False, frozenset())
    assert acting.is_user(ALICE_ID) and not acting.is_admin and acting.by_app


def test_app_actions_are_audited_with_app_user_action_and_ids_only() -> None:
    """The audit entry names the acting app, the user, the action, the ids and the outcome."""
    trail = AuditTrail(InMemoryTableStore(), FixedClock(NOW))
    trail.record_app_action(TENANT, APP, "session_create", on_behalf_of=ALICE_ID,
                            ids={"id": "s1", "pairingId": "p1"}, status=202)
    trail.record_app_action(TENANT, APP, "session_cancel", on_behalf_of=ALICE_ID, ids={"id": "s1"}, status=404,
                            code="not_found")
    newest, oldest = trail.entries(TENANT)
    assert (oldest.actor, oldest.action, oldest.on_behalf_of, oldest.ids, oldest.status) == (
        f"app:{APP}", "session_create", ALICE_ID, {"id": "s1", "pairingId": "p1"}, 202)
    assert (newest.action, newest.status, newest.code) == ("session_cancel", 404, "not_found")
