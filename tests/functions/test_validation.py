"""Input validation: 413 over the body limit, 400 for bad JSON, 422 with field details, never an echo."""

from __future__ import annotations

from typing import Any

import pytest

from core.services.ratelimits import POLICIES
from functions.http import MAX_BODY_BYTES
from tests.functions.conftest import TENANT_A, USER_A, Env, TokenFactory, bearer, validated

SESSION = {
    "pairingId": "p-1",
    "start": "2025-03-04T10:00:00+01:00",
    "end": "2025-03-04T11:00:00+01:00",
    "timeZone": "Europe/Paris",
}
AVAILABILITY = {
    "participants": ["someone@contoso.example"],
    "start": "2025-03-04T08:00:00Z",
    "end": "2025-03-06T18:00:00Z",
    "durationMinutes": 30,
    "timeZone": "Europe/Paris",
}


def _post(env: Env, token: str, path: str, body: Any) -> Any:
    return env.client.post(path, headers=bearer(token), json=body)


def _fields(response: Any) -> list[dict[str, Any]]:
    assert response.status == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    return list(error["details"]["fields"])


def test_valid_body_passes_validation(env: Env, mint: TokenFactory) -> None:
    """A correct booking request gets through auth and validation to the feature."""
    assert validated(_post(env, mint(), "/api/sessions", SESSION))
    assert validated(_post(env, mint(), "/api/availability", AVAILABILITY))


def test_body_over_the_limit_is_413(env: Env, mint: TokenFactory) -> None:
    """Bodies over the route's limit are refused before parsing."""
    r = env.client.post("/api/sessions", headers=bearer(mint()), body=b"{" + b" " * MAX_BODY_BYTES + b"}")
    assert r.status == 413
    assert r.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize("raw", [b"{", b"not json", b"\xff\xfe", b"[1,2", b'{"a":NaN}', b"{" * 5000 + b"}" * 5000])
def test_malformed_json_is_400(env: Env, mint: TokenFactory, raw: bytes) -> None:
    """Bodies that are not JSON are 400 malformed_json."""
    r = env.client.post("/api/sessions", headers=bearer(mint()), body=raw)
    assert r.status == 400
    assert r.json()["error"]["code"] == "malformed_json"


def test_missing_body_is_400(env: Env, mint: TokenFactory) -> None:
    """A required body that is absent is 400 body_required."""
    r = env.client.post("/api/sessions", headers=bearer(mint()))
    assert r.status == 400
    assert r.json()["error"]["code"] == "body_required"


@pytest.mark.parametrize("body", [[], "text", 5, None, True])
def test_body_that_is_not_an_object_is_422(env: Env, mint: TokenFactory, body: Any) -> None:
    """Valid JSON of the wrong shape is 422."""
    r = env.client.post("/api/sessions", headers=bearer(mint()), body=__import__("json").dumps(body))
    assert r.status == 422


def test_unknown_fields_are_refused(env: Env, mint: TokenFactory) -> None:
    """Extra properties are 422 extra_forbidden, naming the field."""
    fields = _fields(_post(env, mint(), "/api/sessions", {**SESSION, "organizer": "someone-else"}))
    expected = {"loc": ["body", "organizer"], "msg": "Extra inputs are not permitted", "type": "extra_forbidden"}
    assert fields == [expected]


def test_snake_case_names_are_refused(env: Env, mint: TokenFactory) -> None:
    """Only the contract's camelCase names are accepted."""
    body = {**SESSION, "time_zone": "Europe/Paris"}
    del body["timeZone"]
    types = {tuple(f["loc"]): f["type"] for f in _fields(_post(env, mint(), "/api/sessions", body))}
    assert types[("body", "time_zone")] == "extra_forbidden"
    assert types[("body", "timeZone")] == "missing"


def test_error_details_never_echo_input_values(env: Env, mint: TokenFactory) -> None:
    """A rejected value is described, never repeated back (it could be a secret or a subject)."""
    secret = "Confidential subject " + "x" * 300
    r = _post(env, mint(), "/api/sessions", {**SESSION, "subject": secret, "room": "<script>alert(1)</script>"})
    assert r.status == 422
    assert "Confidential" not in r.text
    assert "<script>" not in r.text
    locs = {tuple(f["loc"]) for f in _fields(r)}
    assert locs == {("body", "subject"), ("body", "room")}


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"start": "2025-03-04T10:00:00"}, ("body", "start")),  # no offset
        ({"start": "2025-03-04"}, ("body", "start")),
        ({"start": 1741078800}, ("body", "start")),  # a Unix time
        ({"start": "next tuesday"}, ("body", "start")),
        ({"timeZone": "Mars/Olympus"}, ("body", "timeZone")),
        ({"timeZone": "../../etc/passwd"}, ("body", "timeZone")),
        ({"timeZone": "Pacific Standard Time"}, ("body", "timeZone")),  # Windows names are Graph's, not ours
        ({"room": "not-an-email"}, ("body", "room")),
        ({"pairingId": "bad/id"}, ("body", "pairingId")),
        ({"pairingId": "x" * 65}, ("body", "pairingId")),
        ({"subject": "s" * 256}, ("body", "subject")),
        ({"onlineMeeting": "true"}, ("body", "onlineMeeting")),
    ],
)
def test_field_rules(env: Env, mint: TokenFactory, change: dict[str, Any], loc: tuple[str, ...]) -> None:
    """Times need an offset, zones must be IANA, emails and ids must be well-formed, lengths are capped."""
    fields = _fields(_post(env, mint(), "/api/sessions", {**SESSION, **change}))
    assert loc in {tuple(f["loc"]) for f in fields}


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2025-03-04T10:00:00+01:00", "2025-03-04T10:00:00+01:00"),  # empty
        ("2025-03-04T11:00:00+01:00", "2025-03-04T10:00:00+01:00"),  # backwards
        ("2025-03-04T10:00:00+01:00", "2025-03-04T10:04:00+01:00"),  # under 5 minutes
        ("2025-03-04T10:00:00+01:00", "2025-03-04T18:01:00+01:00"),  # over 8 hours
    ],
)
def test_session_length_bounds(env: Env, mint: TokenFactory, start: str, end: str) -> None:
    """A session lasts 5 to 480 minutes and ends after it starts."""
    _fields(_post(env, mint(), "/api/sessions", {**SESSION, "start": start, "end": end}))


def test_session_needs_exactly_one_of_pairing_or_partner(env: Env, mint: TokenFactory) -> None:
    """pairingId and partner are alternatives: both or neither is 422."""
    _fields(_post(env, mint(), "/api/sessions", {**SESSION, "partner": "p@contoso.example"}))
    body = dict(SESSION)
    del body["pairingId"]
    _fields(_post(env, mint(), "/api/sessions", body))
    assert validated(_post(env, mint(), "/api/sessions", {**body, "partner": "p@contoso.example"}))


@pytest.mark.parametrize(
    "change",
    [
        {"end": "2025-05-06T18:00:00Z"},  # 63 days
        {"durationMinutes": 4},
        {"durationMinutes": 481},
        {"durationMinutes": 30.0},
        {"durationMinutes": "30"},
        {"stepMinutes": 4},
        {"stepMinutes": 121},
        {"bufferMinutes": -1},
        {"bufferMinutes": 121},
        {"participants": []},
        {"participants": [f"u{i}@contoso.example" for i in range(20)]},
        {"participants": ["not a user"]},
        {"pairingId": "p-1"},  # both pairingId and participants
        {"end": "2025-03-04T08:10:00Z"},  # shorter than the duration
    ],
)
def test_availability_limits(env: Env, mint: TokenFactory, change: dict[str, Any]) -> None:
    """Window <= 62 days, duration 5..480, step 5..120, buffer 0..120, 1..19 participants."""
    _fields(_post(env, mint(), "/api/availability", {**AVAILABILITY, **change}))


def test_users_may_be_named_by_object_id(env: Env, mint: TokenFactory) -> None:
    """Participants may be Entra object ids as well as emails/UPNs."""
    body = {**AVAILABILITY, "participants": ["0f0f0f0f-1111-4222-8333-444455556666", "x@contoso.example"]}
    assert validated(_post(env, mint(), "/api/availability", body))


def test_integration_body_rules(env: Env, mint: TokenFactory) -> None:
    """Vendor, method and pairing policy are enums; accessTestSampleSize is 1..500."""
    token = mint(roles=["Integration.Admin"])
    ok = {"vendor": "outlook365", "method": "perUser", "ownerEmail": "o@contoso.example", "accessTestSampleSize": 500}
    assert validated(env.client.put("/api/integration", headers=bearer(token), json=ok))
    for change in ({"vendor": "google"}, {"method": "domainwide"}, {"accessTestSampleSize": 0},
                   {"accessTestSampleSize": 501}, {"pairingPolicy": "any"}, {"ownerEmail": "nobody"}):
        _fields(env.client.put("/api/integration", headers=bearer(token), json={**ok, **change}))


def test_query_parameters_are_validated(env: Env, mint: TokenFactory) -> None:
    """?from&to need offsets and a window of at most 62 days; unknown parameters are refused."""
    ok = {"from": "2025-03-01T00:00:00Z", "to": "2025-03-31T00:00:00Z"}
    assert validated(env.client.get("/api/sessions", headers=bearer(mint()), query=ok))
    for bad in ({**ok, "limit": "0"}, {**ok, "to": "2025-05-03T00:00:00Z"},
                {**ok, "from": "2025-03-01"}, {**ok, "sort": "desc"}, {**ok, "from": "1740787200"}):
        fields = _fields(env.client.get("/api/sessions", headers=bearer(mint()), query=bad))
        assert all(f["loc"][0] == "query" for f in fields)


def test_unencoded_plus_in_a_query_offset_is_understood(env: Env, mint: TokenFactory) -> None:
    """?from=...T00:00:00+01:00 sent without %2B arrives as a space; it is read as the offset it was."""
    r = env.client.get("/api/me/events", headers=bearer(mint()),
                       query="from=2025-03-01T00:00:00+01:00&to=2025-03-02T00:00:00%2B01:00")
    assert validated(r)


def test_path_ids_are_validated(env: Env, mint: TokenFactory) -> None:
    """Ids in the path must be 1-64 letters, digits, '-' or '_'."""
    fields = _fields(env.client.get("/api/sessions/" + "x" * 65, headers=bearer(mint())))
    assert fields[0]["loc"] == ["path", "id"]
    assert env.client.get("/api/sessions/a%2Fb", headers=bearer(mint())).status == 422


def test_session_writes_are_rate_limited_per_caller(env: Env, mint: TokenFactory) -> None:
    """After the burst a caller gets 429 with Retry-After; another caller is unaffected."""
    burst = POLICIES["session_writes"].per_caller.burst
    token = mint()
    for _ in range(burst):
        assert validated(_post(env, token, "/api/sessions", SESSION))
    r = _post(env, token, "/api/sessions", SESSION)
    assert r.status == 429
    assert r.json()["error"]["code"] == "rate_limited"
    assert int(r.header("Retry-After") or "0") >= 1
    other = mint(oid="a0000000-0000-4000-8000-000000000009")
    assert validated(_post(env, other, "/api/sessions", SESSION))


ROOMS = {"rooms": ["board@a.example"], "start": "2025-03-03T09:00:00Z", "end": "2025-03-03T13:00:00Z",
         "durationMinutes": 60, "timeZone": "UTC"}


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/api/availability", AVAILABILITY), ("GET", "/api/rooms", None),
    ("POST", "/api/rooms/availability", ROOMS),
    ("GET", "/api/me/events?from=2025-03-03T00:00:00Z&to=2025-03-04T00:00:00Z", None),
    ("GET", "/api/me/calendar-settings", None),
])
def test_graph_reading_routes_are_rate_limited_per_caller(env: Env, mint: TokenFactory, method: str, path: str,
                                                           body: dict[str, object] | None) -> None:
    """Every route that reads Microsoft Graph for the caller draws on the caller's graph_reads budget: once it is
    spent the route answers 429 before any Graph call."""
    from core.services.authz import Caller

    caller = Caller(TENANT_A, USER_A)
    for _ in range(POLICIES["graph_reads"].per_caller.burst):
        env.container.rate_limiter.take("graph_reads", caller)
    r = env.client.request(method, path, headers=bearer(mint()), json=body)
    assert r.status == 429, r.text
    assert r.json()["error"]["code"] == "rate_limited" and int(r.header("Retry-After") or "0") >= 1


def test_far_years_are_422_not_500(env: Env, mint: TokenFactory) -> None:
    """A window at year 1 with a +14:00 offset (which would overflow a UTC conversion) is refused as invalid."""
    query = "from=0001-01-01T00:00:00%2B14:00&to=0001-01-02T00:00:00%2B14:00"
    r = env.client.get(f"/api/sessions?{query}", headers=bearer(mint()))
    assert r.status == 422
    assert r.json()["error"]["code"] == "validation_failed"
