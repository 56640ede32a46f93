"""GraphClient: retry policy, Retry-After, throttling budget, paging, $batch, headers, error translation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses

from core.adapters.graph.client import GraphClient, RetryPolicy, route_of
from core.adapters.graph.errors import error_from_graph, parse_retry_after
from core.adapters.http import USER_AGENT, build_session
from core.domain.calendar import BatchRequest, GraphIdentity
from core.domain.errors import (
    GraphAuthError,
    GraphConflict,
    GraphRequestRejected,
    ItemNotFound,
    MailboxUnavailable,
    OutsideAppScope,
    Throttled,
    TransientGraphError,
    UserNotFound,
)
from core.settings import Settings, StorageSettings

BASE = "https://graph.microsoft.com/v1.0"
TENANT = "11111111-2222-3333-4444-555555555555"
WHO = GraphIdentity(TENANT)


def graph_error(code: str, message: str = "msg") -> dict[str, Any]:
    """Graph's error envelope as documented (/graph/errors)."""
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {"request-id": "req-1", "date": "2025-01-02T10:00:00", "client-request-id": "c-1"},
        }
    }


class FakeTokens:
    """TokenProvider fake: hands out numbered tokens and records invalidations."""

    def __init__(self) -> None:
        self.issued = 0
        self.invalidated: list[str] = []

    def token(self, who: GraphIdentity) -> str:
        self.issued += 1
        return f"token-{len(self.invalidated)}"

    def invalidate(self, tenant_id: str) -> None:
        self.invalidated.append(tenant_id)


class Sleeper:
    """Records the delays the retry policy asked for instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def settings() -> Settings:
    return Settings(
        storage=StorageSettings("UseDevelopmentStorage=true", None, None, None),
        entra_client_id="aaaaaaaa-0000-0000-0000-000000000000",
        entra_credential="secret",
        api_audience="aaaaaaaa-0000-0000-0000-000000000000",
        api_scope="access_as_user",
        authority_host="https://login.microsoftonline.com",
        graph_base_url=BASE,
        public_base_url="https://app.example.com",
        app_url="https://spa.example.com",
    )


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def sleeper() -> Sleeper:
    return Sleeper()


@pytest.fixture
def tokens() -> FakeTokens:
    return FakeTokens()


@pytest.fixture
def client(sleeper: Sleeper, tokens: FakeTokens) -> GraphClient:
    policy = RetryPolicy(max_attempts=4, base_delay=1.0, max_delay=8.0, max_total_wait=30.0, sleep=sleeper,
                         random=lambda: 0.5)
    return GraphClient(BASE, build_session(settings()), tokens, policy)


# --- headers -------------------------------------------------------------------------------


def test_every_request_carries_immutable_id_preference_token_and_client_request_id(
    mock: responses.RequestsMock, client: GraphClient
) -> None:
    """Prefer IdType="ImmutableId", the bearer token, a client-request-id and our User-Agent go on every call."""
    mock.get(f"{BASE}/users/u1/calendar", json={"id": "c"})
    mock.post(f"{BASE}/users/u1/events", json={"id": "e"}, status=201)
    client.get(WHO, "/users/u1/calendar")
    client.request(WHO, "POST", "/users/u1/events", json={"subject": "x"})
    for call in mock.calls:
        assert call.request.headers["Prefer"] == 'IdType="ImmutableId"'
        assert call.request.headers["Authorization"] == "Bearer token-0"
        assert len(call.request.headers["client-request-id"]) == 36
        assert call.request.headers["User-Agent"] == USER_AGENT


def test_extra_prefer_is_combined_with_the_immutable_id_preference(
    mock: responses.RequestsMock, client: GraphClient
) -> None:
    """A caller's Prefer (page size) is added to, not a replacement of, IdType="ImmutableId"."""
    mock.get(f"{BASE}/x", json={})
    client.get(WHO, "/x", headers={"Prefer": "odata.maxpagesize=50"})
    assert mock.calls[0].request.headers["Prefer"] == 'IdType="ImmutableId", odata.maxpagesize=50'


# --- retries ---------------------------------------------------------------------------------


def test_retry_after_is_honoured_then_success(
    mock: responses.RequestsMock, client: GraphClient, sleeper: Sleeper
) -> None:
    """A 429 with Retry-After: 7 waits exactly 7 s, then the retried call's answer is returned."""
    mock.get(f"{BASE}/users/u1/calendar", json=graph_error("TooManyRequests"), status=429,
             headers={"Retry-After": "7"})
    mock.get(f"{BASE}/users/u1/calendar", json={"id": "cal"})
    assert client.get(WHO, "/users/u1/calendar") == {"id": "cal"}
    assert sleeper.delays == [7.0]
    assert len(mock.calls) == 2
    ids = {c.request.headers["client-request-id"] for c in mock.calls}
    assert len(ids) == 1  # one logical call, one correlation id across its attempts


def test_budget_spent_raises_throttled_with_retry_after(
    mock: responses.RequestsMock, client: GraphClient, sleeper: Sleeper
) -> None:
    """When Retry-After would exceed the total-wait budget, the caller gets Throttled(retry_after) at once."""
    mock.get(f"{BASE}/users/u1/calendar", json=graph_error("TooManyRequests"), status=429,
             headers={"Retry-After": "20"})
    with pytest.raises(Throttled) as caught:
        client.get(WHO, "/users/u1/calendar")
    assert caught.value.retry_after == 20.0
    assert sleeper.delays == [20.0]  # 20 fits the 30 s budget once; 40 would not
    assert len(mock.calls) == 2


def test_attempts_exhausted_raises_throttled(
    mock: responses.RequestsMock, client: GraphClient, sleeper: Sleeper
) -> None:
    """After max_attempts throttled answers the error is Throttled carrying the last Retry-After."""
    for _ in range(4):
        mock.get(f"{BASE}/x", json=graph_error("TooManyRequests"), status=429, headers={"Retry-After": "1"})
    with pytest.raises(Throttled) as caught:
        client.get(WHO, "/x")
    assert caught.value.retry_after == 1.0
    assert sleeper.delays == [1.0, 1.0, 1.0]
    assert len(mock.calls) == 4


def test_jittered_exponential_backoff_without_retry_after(
    mock: responses.RequestsMock, tokens: FakeTokens, sleeper: Sleeper
) -> None:
    """Without Retry-After, delays grow exponentially (capped) with the injected jitter applied."""
    draws = iter([0.0, 1.0, 0.5])
    policy = RetryPolicy(max_attempts=4, base_delay=2.0, max_delay=6.0, max_total_wait=60.0, sleep=sleeper,
                         random=lambda: next(draws))
    client = GraphClient(BASE, build_session(settings()), tokens, policy)
    for _ in range(3):
        mock.get(f"{BASE}/x", status=504)
    mock.get(f"{BASE}/x", json={"ok": True})
    assert client.get(WHO, "/x") == {"ok": True}
    # ceilings 2, 4, 6 (capped from 8); equal jitter: ceiling/2 + r*ceiling/2
    assert sleeper.delays == [1.0, 4.0, 4.5]


def test_503_without_retry_after_after_budget_is_transient(
    mock: responses.RequestsMock, client: GraphClient
) -> None:
    """503s with no Retry-After exhaust the budget into TransientGraphError carrying a suggested retry_after."""
    for _ in range(4):
        mock.get(f"{BASE}/x", status=503)
    with pytest.raises(TransientGraphError) as caught:
        client.get(WHO, "/x")
    assert caught.value.retry_after is not None and caught.value.retry_after > 0


def test_503_with_retry_after_after_budget_is_throttled(mock: responses.RequestsMock, client: GraphClient) -> None:
    """A 503 that names a Retry-After beyond the budget is Throttled, like a 429."""
    mock.get(f"{BASE}/x", status=503, headers={"Retry-After": "120"})
    with pytest.raises(Throttled) as caught:
        client.get(WHO, "/x")
    assert caught.value.retry_after == 120.0


def test_connection_error_on_get_is_retried(
    mock: responses.RequestsMock, client: GraphClient, sleeper: Sleeper
) -> None:
    """A dropped connection on an idempotent GET is retried with back-off."""
    mock.get(f"{BASE}/x", body=requests.ConnectionError("reset"))
    mock.get(f"{BASE}/x", json={"ok": True})
    assert client.get(WHO, "/x") == {"ok": True}
    assert len(sleeper.delays) == 1


def test_connection_error_on_post_is_not_retried(
    mock: responses.RequestsMock, client: GraphClient, sleeper: Sleeper
) -> None:
    """A POST that may have landed is not blindly re-sent: the caller gets TransientGraphError."""
    mock.post(f"{BASE}/users/u/events", body=requests.ConnectTimeout("slow"))
    with pytest.raises(TransientGraphError):
        client.request(WHO, "POST", "/users/u/events", json={})
    assert sleeper.delays == []


def test_401_refreshes_the_token_once_then_succeeds(
    mock: responses.RequestsMock, client: GraphClient, tokens: FakeTokens
) -> None:
    """A first 401 invalidates the tenant's cached token and retries with a new one."""
    mock.get(f"{BASE}/x", json=graph_error("InvalidAuthenticationToken"), status=401)
    mock.get(f"{BASE}/x", json={"ok": True})
    assert client.get(WHO, "/x") == {"ok": True}
    assert tokens.invalidated == [TENANT]
    assert mock.calls[1].request.headers["Authorization"] == "Bearer token-1"


def test_second_401_is_graph_auth_error(mock: responses.RequestsMock, client: GraphClient) -> None:
    """Two 401s in a row mean the token itself is rejected: GraphAuthError, code kept."""
    mock.get(f"{BASE}/x", json=graph_error("InvalidAuthenticationToken"), status=401)
    mock.get(f"{BASE}/x", json=graph_error("InvalidAuthenticationToken"), status=401)
    with pytest.raises(GraphAuthError) as caught:
        client.get(WHO, "/x")
    assert caught.value.graph_code == "InvalidAuthenticationToken"
    assert caught.value.status == 401


# --- paging ----------------------------------------------------------------------------------


def test_paging_follows_next_link_as_given(mock: responses.RequestsMock, client: GraphClient) -> None:
    """Pages are followed through @odata.nextLink verbatim (its $skiptoken untouched) until there is none."""
    next_link = f"{BASE}/users?$select=id&$skiptoken=X%27abc%27"
    mock.get(f"{BASE}/users", json={"value": [{"id": "1"}, {"id": "2"}], "@odata.nextLink": next_link})
    mock.get(next_link, json={"value": [{"id": "3"}]})
    assert [u["id"] for u in client.items(WHO, "/users", {"$select": "id"})] == ["1", "2", "3"]
    assert mock.calls[1].request.url == next_link


def test_next_link_to_another_host_is_refused(mock: responses.RequestsMock, client: GraphClient) -> None:
    """The bearer token is never sent to a host other than the configured Graph origin."""
    mock.get(f"{BASE}/users", json={"value": [], "@odata.nextLink": "https://evil.example.com/v1.0/users"})
    with pytest.raises(GraphRequestRejected):
        list(client.items(WHO, "/users"))
    assert len(mock.calls) == 1


# --- $batch ----------------------------------------------------------------------------------


def _batch_body(call: Any) -> dict[str, Any]:
    return json.loads(call.request.body)


def test_batch_retries_only_failed_parts_after_longest_retry_after(
    mock: responses.RequestsMock, client: GraphClient, sleeper: Sleeper
) -> None:
    """Only the 429/503 parts are re-sent, after the longest Retry-After; outcomes correlate by id."""
    mock.post(
        f"{BASE}/$batch",
        json={
            "responses": [
                {"id": "b", "status": 429, "headers": {"Retry-After": "3"}, "body": graph_error("TooManyRequests")},
                {"id": "a", "status": 200, "headers": {}, "body": {"id": "cal-a"}},
                {"id": "c", "status": 503, "headers": {"retry-after": "5"}, "body": graph_error("ServiceUnavailable")},
                {"id": "d", "status": 404, "body": graph_error("ErrorItemNotFound")},
            ]
        },
    )
    mock.post(
        f"{BASE}/$batch",
        json={
            "responses": [
                {"id": "c", "status": 200, "body": {"id": "cal-c"}},
                {"id": "b", "status": 200, "body": {"id": "cal-b"}},
            ]
        },
    )
    reqs = [BatchRequest(id=i, method="GET", url=f"/users/{i}/events/e1") for i in "abcd"]
    outcomes = client.batch(WHO, reqs)
    assert [o.id for o in outcomes] == ["a", "b", "c", "d"]
    assert [o.body["id"] if o.body else None for o in outcomes] == ["cal-a", "cal-b", "cal-c", None]
    assert isinstance(outcomes[3].error, ItemNotFound)
    assert sleeper.delays == [5.0]
    second = _batch_body(mock.calls[1])
    assert sorted(r["id"] for r in second["requests"]) == ["b", "c"]


def test_batch_parts_carry_prefer_and_content_type(mock: responses.RequestsMock, client: GraphClient) -> None:
    """Each part repeats Prefer IdType; parts with a body declare JSON."""
    mock.post(f"{BASE}/$batch", json={"responses": [{"id": "1", "status": 200, "body": {}}]})
    client.batch(WHO, [BatchRequest(id="1", method="PATCH", url="/subscriptions/s1", body={"x": 1})])
    part = _batch_body(mock.calls[0])["requests"][0]
    assert part["headers"]["Prefer"] == 'IdType="ImmutableId"'
    assert part["headers"]["Content-Type"] == "application/json"
    assert part == {**part, "id": "1", "method": "PATCH", "url": "/subscriptions/s1", "body": {"x": 1}}


def test_batch_groups_of_twenty(mock: responses.RequestsMock, client: GraphClient) -> None:
    """45 requests go out as batches of 20, 20 and 5."""

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        parts = json.loads(request.body)["requests"]
        return 200, {}, json.dumps({"responses": [{"id": p["id"], "status": 204} for p in parts]})

    mock.add_callback(responses.POST, f"{BASE}/$batch", callback=answer)
    outcomes = client.batch(WHO, [BatchRequest(id=str(i), method="DELETE", url=f"/x/{i}") for i in range(45)])
    assert [len(_batch_body(c)["requests"]) for c in mock.calls] == [20, 20, 5]
    assert all(o.ok and o.status == 204 for o in outcomes)


def test_batch_throttled_parts_become_throttled_outcomes_when_budget_spent(
    mock: responses.RequestsMock, client: GraphClient
) -> None:
    """A part still throttled when the budget is spent gets a Throttled outcome; nothing raises."""
    mock.post(
        f"{BASE}/$batch",
        json={"responses": [{"id": "1", "status": 429, "headers": {"Retry-After": "600"}, "body": {}}]},
    )
    [outcome] = client.batch(WHO, [BatchRequest(id="1", method="GET", url="/x")])
    assert isinstance(outcome.error, Throttled)
    assert outcome.error.retry_after == 600.0


def test_batch_rejects_duplicate_ids(client: GraphClient) -> None:
    """Graph requires unique ids inside a batch; duplicates are a programming error."""
    with pytest.raises(ValueError, match="unique"):
        client.batch(WHO, [BatchRequest(id="1", method="GET", url="/a"), BatchRequest(id="1", method="GET", url="/b")])


# --- error mapping ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "path", "expected"),
    [
        (404, "MailboxNotEnabledForRESTAPI", "/users/u/calendar", MailboxUnavailable),
        (400, "MailboxNotEnabledForRESTAPI", "/users/u/calendar/getSchedule", MailboxUnavailable),
        (403, "ErrorAccessDenied", "/users/u/calendar", OutsideAppScope),
        (403, "ErrorAccessDenied", "/users/u/events/e", OutsideAppScope),
        (403, "Authorization_RequestDenied", "/users", GraphRequestRejected),
        (404, "ErrorInvalidUser", "/users/u/calendar", UserNotFound),
        (404, "Request_ResourceNotFound", "/users/u", UserNotFound),
        (404, "Request_ResourceNotFound", "/users/u/calendar", UserNotFound),
        (404, "ErrorItemNotFound", "/users/u/events/e", ItemNotFound),
        (404, "ResourceNotFound", "/subscriptions/s", ItemNotFound),
        (401, "InvalidAuthenticationToken", "/users/u", GraphAuthError),
        (409, "ErrorIrresolvableConflict", "/users/u/events/e", GraphConflict),
        (412, "PreconditionFailed", "/users/u/events/e", GraphConflict),
        (400, "ErrorInvalidRequest", "/users/u/events", GraphRequestRejected),
        (400, "ErrorInvalidIdMalformed", "/users/u/events/bad", GraphRequestRejected),
        (500, "generalException", "/users/u/events", TransientGraphError),
        (502, None, "/users/u/events", TransientGraphError),
    ],
)
def test_error_mapping_by_status_code_and_path(status: int, code: str | None, path: str, expected: type) -> None:
    """Each Graph answer maps to the most specific error by status, code and path shape (never message)."""
    payload = graph_error(code) if code else None
    error = error_from_graph(status, payload, path)
    assert type(error) is expected
    if code and hasattr(error, "graph_code"):
        assert error.graph_code == code
        assert error.status == status  # type: ignore[attr-defined]
        assert error.details["request_id"] == "req-1"


def test_error_message_text_is_never_copied(mock: responses.RequestsMock, client: GraphClient) -> None:
    """Graph's message (which may contain addresses) does not reach the error's message or details."""
    secret_text = "The requested user 'alice@contoso.com' is invalid."
    mock.get(f"{BASE}/users/alice%40contoso.com/calendar", json=graph_error("ErrorInvalidUser", secret_text),
             status=404)
    with pytest.raises(UserNotFound) as caught:
        client.get(WHO, "/users/alice%40contoso.com/calendar")
    assert "alice" not in caught.value.message
    assert "alice" not in json.dumps(caught.value.details)


def test_errors_survive_real_http_through_the_client(mock: responses.RequestsMock, client: GraphClient) -> None:
    """The mapping is applied to real responses: 403 on a mailbox path is OutsideAppScope."""
    mock.get(f"{BASE}/users/u1/calendar", json=graph_error("ErrorAccessDenied", "Access to OData is disabled."),
             status=403)
    with pytest.raises(OutsideAppScope) as caught:
        client.get(WHO, "/users/u1/calendar")
    assert caught.value.graph_code == "ErrorAccessDenied"


def test_retry_after_parses_seconds_and_http_dates() -> None:
    """Retry-After may be delta-seconds or an HTTP date; garbage is ignored."""
    from datetime import UTC, datetime

    now = datetime(2025, 1, 2, 10, 0, 0, tzinfo=UTC)
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("Thu, 02 Jan 2025 10:00:30 GMT", now) == 30.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_route_of_hides_ids() -> None:
    """Log routes replace ids and addresses with {id}."""
    assert route_of("/users/alice@contoso.com/events/AAMk=/cancel") == "/users/{id}/events/{id}/cancel"
    assert route_of("/places/microsoft.graph.room") == "/places/microsoft.graph.room"


def test_session_trusts_local_ca_only_in_local_mode() -> None:
    """LOCAL_CA_BUNDLE is used only with LOCAL_MODE; otherwise the default CA store."""
    from dataclasses import replace

    assert build_session(settings()).verify is True
    local = replace(settings(), local_mode=True, local_ca_bundle="/tmp/ca.pem")
    assert build_session(local).verify == "/tmp/ca.pem"


def test_batch_answered_424_as_a_whole_fails_each_part_without_retrying(
    mock: responses.RequestsMock, client: GraphClient
) -> None:
    """An outer 424 without parts gives every part a GraphRequestRejected(424); the batch is not resent."""
    mock.add(responses.POST, f"{BASE}/$batch", status=424, json=graph_error("FailedDependency"))
    outcomes = client.batch(WHO, [BatchRequest("a", "GET", "/users/u/events/1"), BatchRequest("b", "GET", "/me")])
    assert [(o.id, o.status, type(o.error)) for o in outcomes] == [
        ("a", 424, GraphRequestRejected), ("b", 424, GraphRequestRejected)]
    assert len(mock.calls) == 1


def test_batch_answered_424_with_parts_reads_each_part(mock: responses.RequestsMock, client: GraphClient) -> None:
    """An outer 424 that still carries ``responses`` is read part by part: the good part keeps its body."""
    mock.add(responses.POST, f"{BASE}/$batch", status=424, json={"responses": [
        {"id": "a", "status": 200, "body": {"id": "ev-1"}},
        {"id": "b", "status": 424, "body": graph_error("FailedDependency")},
    ]})
    a, b = client.batch(WHO, [BatchRequest("a", "GET", "/users/u/events/1"),
                              BatchRequest("b", "GET", "/users/u/events/2")])
    assert a.ok and a.body == {"id": "ev-1"}
    assert isinstance(b.error, GraphRequestRejected) and b.status == 424


@pytest.mark.parametrize(
    ("status", "code", "path", "expected"),
    [
        (403, "ExtensionError", "/users/u/calendar", OutsideAppScope),
        (404, "extensionError", "/users/u/events/e", MailboxUnavailable),
        (400, "ExtensionError", "/subscriptions", GraphRequestRejected),
        (400, "ExtensionError", "/users/u/events", GraphRequestRejected),
        (404, "mailboxNotEnabledForRESTAPI", "/users/u/calendar", MailboxUnavailable),
        (404, "errorInvalidUser", "/users/u/calendar", UserNotFound),
    ],
)
def test_extension_error_and_codes_are_matched_case_insensitively(
    status: int, code: str, path: str, expected: type[Exception]
) -> None:
    """errors.md spells extensionError, Graph sends ExtensionError: both classify alike; a 400 stays a rejection
    (the subscription-lifetime refusal must reach the service's fallback as GraphRequestRejected)."""
    assert type(error_from_graph(status, graph_error(code), path)) is expected


@pytest.mark.parametrize(
    ("message", "allowed"),
    [
        ("Subscription expiration can only be 4230 minutes in the future.", 4230),
        ("subscription expiration can only be 10080 minutes in the future", 10080),
        ("The mailbox is located on premises.", None),
        ("", None),
    ],
)
def test_the_documented_lifetime_refusal_names_its_minutes_in_details(message: str, allowed: int | None) -> None:
    """Only Graph's documented "Subscription expiration can only be N minutes" text gives details.max_lifetime_minutes
    (the number, never the message, is kept): what the subscription service treats as a refused lifetime."""
    payload = {"error": {"code": "ExtensionError", "message": message}}
    error = error_from_graph(400, payload, "/subscriptions")
    assert isinstance(error, GraphRequestRejected)
    assert error.details.get("max_lifetime_minutes") == allowed
    assert "message" not in error.details and error.message != message
