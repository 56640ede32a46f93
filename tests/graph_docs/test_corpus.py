"""Microsoft's documented payloads, fed through the service's real parsing and handling code.

Every file in ``corpus/`` is one example from Microsoft's documentation (source repository, path,
commit and heading inside it; see README.md). Each is loaded by a parametrized test that runs
it through the code that meets it in production:

- change and lifecycle notifications: the webhook's schema (``NotificationBatch``) and its per-item
  checks (``check_changes`` / ``check_lifecycle``) with a real ``ClientStateSigner``;
- getSchedule, ``$batch`` and subscription answers: the real ``GraphGateway`` over ``responses``;
- Graph error bodies: ``error_from_graph``; token errors: ``error_from_msal``;
- admin-consent redirects: ``consent_error_code`` (core/domain/aadsts.py);
- and every Graph payload against the official v1.0 CSDL, with Microsoft's own deviations from
  its metadata listed per file (``csdlExceptions``) instead of hidden.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from core.adapters.aadsts import error_from_msal
from core.adapters.graph import GraphClient, GraphGateway, RetryPolicy, parse
from core.adapters.graph.errors import error_from_graph
from core.domain.aadsts import CONSENT_MESSAGES, consent_error_code
from core.domain.calendar import BatchRequest, GraphIdentity
from core.domain.errors import GraphError, Throttled
from core.services.client_state import ClientStateSigner
from core.services.subscriptions import SubscriptionService
from functions.schemas.webhooks import NotificationBatch
from functions.webhooks import check_changes, check_lifecycle
from tests.support.csdl import graph_model

CORPUS = Path(__file__).parent / "corpus"
BASE = "https://graph.microsoft.com/v1.0"
SIGNER = ClientStateSigner(b"graph-docs-corpus-key-0123456789abcdef")
WHO = GraphIdentity("84bd8158-6d4d-4958-8b9f-9d6445542f95")
KINDS = {"change_notification", "lifecycle_notification", "schedule_response", "batch_response", "graph_error",
         "subscription", "subscription_list", "admin_consent_redirect", "token_error"}
CSDL_TYPES = {"change_notification": "changeNotificationCollection",
              "lifecycle_notification": "changeNotificationCollection",
              "subscription": "subscription"}


def _files(kinds: set[str] | None = None) -> list[Path]:
    paths = sorted(CORPUS.glob("*.json"))
    return [p for p in paths if kinds is None or json.loads(p.read_text(encoding="utf-8"))["kind"] in kinds]


def _load(path: Path) -> dict[str, Any]:
    """The corpus entry with its ``fill`` placeholders (the docs' ``{user_guid}`` and the like) replaced."""
    raw = path.read_text(encoding="utf-8")
    doc: dict[str, Any] = json.loads(raw)
    for placeholder, value in (doc.get("fill") or {}).items():
        raw = raw.replace(placeholder, value)
    filled: dict[str, Any] = json.loads(raw)
    filled["fill"] = doc.get("fill") or {}
    return filled


@pytest.fixture(params=_files(), ids=lambda p: p.stem)
def entry(request: pytest.FixtureRequest) -> dict[str, Any]:
    return _load(request.param)


class _Tokens:
    def token(self, who: GraphIdentity) -> str:
        return "token"

    def invalidate(self, tenant_id: str) -> None:
        return None


@dataclass
class Graph:
    """The real gateway on a ``responses`` mock of Graph."""

    gateway: GraphGateway
    http: responses.RequestsMock


@pytest.fixture
def graph() -> Iterator[Graph]:
    retry = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.01, max_total_wait=0.05, sleep=lambda _s: None)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as http:
        yield Graph(GraphGateway(GraphClient(BASE, requests.Session(), _Tokens(), retry)), http)


def _signed(payload: dict[str, Any], user: str) -> dict[str, Any]:
    """The payload as our own subscription would deliver it: each item's clientState is ours for its mailbox."""
    items = [{**item, "clientState": SIGNER.sign(str(item.get("tenantId")), user)} for item in payload["value"]]
    return {**payload, "value": items}


# --- the corpus itself ---------------------------------------------------------------------------


def test_every_entry_names_its_source_and_a_known_kind(entry: dict[str, Any]) -> None:
    """Each file says which repository, path, commit and heading it came from, and what kind of payload it is."""
    source = entry["source"]
    assert source["repo"] in ("microsoftgraph/microsoft-graph-docs-contrib", "MicrosoftDocs/entra-docs")
    assert source["path"] and source["heading"]
    assert source["commit"] is None or len(source["commit"]) == 40
    assert entry["kind"] in KINDS
    assert "expect" in entry


@pytest.mark.parametrize(
    "path", _files({*CSDL_TYPES, "schedule_response", "subscription_list"}), ids=lambda p: p.stem
)
def test_every_graph_payload_matches_the_csdl_except_where_microsoft_does_not(path: Path) -> None:
    """Notification, schedule and subscription payloads validate against the v1.0 CSDL; the only problems are
    the ones recorded for that example (Microsoft's examples do not always follow its own metadata)."""
    entry = _load(path)
    model = graph_model()
    kind = entry["kind"]
    if kind == "schedule_response":
        problems = model.validate("scheduleInformation", entry["payload"]["value"])
    elif kind == "subscription_list":
        problems = model.validate("subscription", entry["payload"]["value"])
    else:
        problems = model.validate(CSDL_TYPES[kind], entry["payload"])
    assert problems == entry.get("csdlExceptions", [])


# --- handling, by kind -------------------------------------------------------------------------------


def test_entry_is_handled_as_microsoft_documents(entry: dict[str, Any], graph: Graph) -> None:
    """The real parsing/handling code gives the recorded outcome for this documented payload."""
    handlers = {
        "change_notification": _change, "lifecycle_notification": _lifecycle, "schedule_response": _schedule,
        "batch_response": _batch, "graph_error": _graph_error, "subscription": _subscription,
        "subscription_list": _subscription_list, "admin_consent_redirect": _consent, "token_error": _token_error,
    }
    handlers[entry["kind"]](entry, graph)


def _change(entry: dict[str, Any], _graph: Graph) -> None:
    expect = entry["expect"]
    batch = NotificationBatch.model_validate(_signed(entry["payload"], expect["user"]))
    good, dropped = check_changes(batch, SIGNER)
    assert [[i.user_id, i.event_id] for i in good] == expect["accepted"]
    assert dict(dropped) == expect["dropped"]
    assert all(i.tenant_id == i.tenant_id.lower() for i in good)


def _lifecycle(entry: dict[str, Any], _graph: Graph) -> None:
    expect = entry["expect"]
    batch = NotificationBatch.model_validate(_signed(entry["payload"], expect["user"]))
    good, dropped = check_lifecycle(batch, SIGNER)
    assert [i.event for i in good] == expect["accepted"]
    assert {i.user_id for i in good} <= {expect["user"]}
    assert dict(dropped) == expect["dropped"]


def _schedule(entry: dict[str, Any], graph: Graph) -> None:
    graph.http.add(responses.POST, f"{BASE}/users/anchor@contoso.com/calendar/getSchedule",
                  json=entry["payload"], status=entry["status"])
    addresses = list(entry["expect"])
    start = datetime(2019, 3, 15, tzinfo=UTC)
    schedules = graph.gateway.get_schedule(WHO, "anchor@contoso.com", addresses, start, start + timedelta(days=1))
    assert [s.address for s in schedules] == addresses
    for schedule in schedules:
        wanted = entry["expect"][schedule.address]
        if "error" in wanted:
            assert (schedule.ok, schedule.error_code) == (False, wanted["error"])
            assert schedule.busy == ()
            continue
        assert schedule.ok
        assert [b.status.value for b in schedule.busy] == wanted["busy"]
        assert all(b.start < b.end and b.start.tzinfo is not None for b in schedule.busy)
        assert schedule.working_hours is not None and schedule.working_hours.time_zone.name == wanted["tz"]


def _batch(entry: dict[str, Any], graph: Graph) -> None:
    graph.http.add(responses.POST, f"{BASE}/$batch", json=entry["payload"], status=entry["status"])
    requests_ = [BatchRequest(id=pid, method="GET", url=url) for pid, url in entry["requests"].items()]
    outcomes = {o.id: o for o in graph.gateway.batch(WHO, requests_)}
    for pid, wanted in entry["expect"].items():
        outcome = outcomes[pid]
        if wanted == "ok":
            assert outcome.ok and outcome.body is not None
        else:
            assert type(outcome.error).__name__ == wanted
    for pid, seconds in (entry.get("retryAfter") or {}).items():
        error = outcomes[pid].error
        assert isinstance(error, Throttled) and error.retry_after == seconds


def _graph_error(entry: dict[str, Any], _graph: Graph) -> None:
    expect = entry["expect"]
    error = error_from_graph(entry["status"], entry["payload"], entry["path"])
    assert type(error).__name__ == expect["class"]
    assert isinstance(error, GraphError) and error.status == entry["status"]
    if "request_id" in expect:
        assert error.details["request_id"] == expect["request_id"]
    if "graph_code" in expect:
        assert error.graph_code == expect["graph_code"]
    if "lifetime_refused" in expect:
        assert SubscriptionService._refused_lifetime(error) is expect["lifetime_refused"]
    assert entry["payload"]["error"]["message"] not in error.message  # Graph's text never becomes ours


def _subscription(entry: dict[str, Any], _graph: Graph) -> None:
    info = parse.subscription(entry["payload"])
    assert [info.subscription_id] == entry["expect"]["ids"]
    assert info.expiration.isoformat() == entry["expect"]["expiration"]


def _subscription_list(entry: dict[str, Any], graph: Graph) -> None:
    second = {"value": [{**entry["payload"]["value"][0], "id": "second-page"}]}
    first = {**entry["payload"], "@odata.nextLink": f"{BASE}/subscriptions?$skiptoken=p2"}
    graph.http.add(responses.GET, f"{BASE}/subscriptions?$skiptoken=p2", json=second)
    graph.http.add(responses.GET, f"{BASE}/subscriptions", json=first)
    listed = graph.gateway.list_subscriptions(WHO)
    assert [s.subscription_id for s in listed] == [*entry["expect"]["ids"], "second-page"]
    assert listed[0].expiration.isoformat() == entry["expect"]["expiration"]


def _consent(entry: dict[str, Any], _graph: Graph) -> None:
    expect = entry["expect"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(entry["payload"]["url"]).query).items()}
    assert query["state"] == expect["state"]
    assert query["admin_consent"] == "True"  # present on errors too, so never proof of success
    if expect["granted"]:
        assert "error" not in query and query["tenant"] == expect["tenant"]
        return
    code = consent_error_code(query.get("error"), query.get("error_description"))
    assert code == expect["code"]
    assert code in CONSENT_MESSAGES


def _token_error(entry: dict[str, Any], _graph: Graph) -> None:
    error = error_from_msal(entry["payload"])
    assert type(error).__name__ == entry["expect"]["class"]
    assert getattr(error, "aadsts", None) == entry["expect"]["aadsts"]
    assert error.details["trace_id"] == entry["payload"]["trace_id"]
    assert entry["payload"]["error_description"] not in error.message


def test_corpus_covers_every_kind_and_every_resource_spelling() -> None:
    """The corpus holds each kind the brief asks for and each documented notification resource spelling."""
    entries = [_load(p) for p in _files()]
    assert {e["kind"] for e in entries} == KINDS
    resources = [item["resource"] for e in entries if e["kind"] == "change_notification"
                 for item in e["payload"]["value"]]
    assert any(r.startswith("Users/") and "/Events/" in r for r in resources)
    assert any("@" in r.split("/")[1] for r in resources if r.startswith("users/"))
    assert any(r.startswith("Users('") for r in resources)
    lifecycle = {item["lifecycleEvent"] for e in entries if e["kind"] == "lifecycle_notification"
                 for item in e["payload"]["value"]}
    assert {"reauthorizationRequired", "subscriptionRemoved", "missed"} < lifecycle
