"""Bearer validation: every kind of wrong token is refused with 401 and a Bearer challenge."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from core.adapters.jwt_validator import UNKNOWN_KID_REFRESH_SECONDS, JwtValidator
from core.domain.errors import DependencyError, InvalidToken
from core.settings import SettingsError
from tests.functions.conftest import (
    CLIENT_ID,
    KID,
    TENANT_A,
    TENANT_STRANGER,
    Env,
    KeySource,
    TokenFactory,
    admitted,
    bearer,
    claims_for,
    jwk_of,
    make_settings,
)

ROUTE = "/api/me/connection"  # a USER route (GET, no input)


def _unsigned(claims: dict[str, Any], header: dict[str, Any]) -> str:
    """A token with an arbitrary header and no signature (alg: none and friends)."""
    return jwt.api_jws.base64url_encode(jwt.utils.force_bytes(jwt.api_jws.json.dumps(header))).decode() + "." + \
        jwt.api_jws.base64url_encode(jwt.utils.force_bytes(jwt.api_jws.json.dumps(claims))).decode() + "."


def _assert_401(env: Env, token: str | None, code: str = "invalid_token") -> None:
    headers = bearer(token) if token is not None else {}
    r = env.client.get(ROUTE, headers=headers)
    assert r.status == 401
    assert r.json()["error"]["code"] == code
    assert (r.header("WWW-Authenticate") or "").startswith("Bearer")


def test_valid_user_token_gets_past_authentication(env: Env, mint: TokenFactory) -> None:
    """A correct token of an onboarded tenant gets past authentication and authorization."""
    assert admitted(env.client.get(ROUTE, headers=bearer(mint())))


def test_missing_token_is_401_with_bare_challenge(env: Env) -> None:
    """No Authorization header: 401 and ``WWW-Authenticate: Bearer`` without an error code (RFC 6750)."""
    r = env.client.get(ROUTE)
    assert r.status == 401
    assert r.header("WWW-Authenticate") == "Bearer"
    assert r.json()["error"]["code"] == "unauthenticated"


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "token abc"])
def test_non_bearer_authorization_is_401(env: Env, header: str) -> None:
    """Other schemes or an empty bearer value are refused as invalid tokens."""
    r = env.client.get(ROUTE, headers={"Authorization": header})
    assert r.status == 401
    assert r.header("WWW-Authenticate") == 'Bearer error="invalid_token"'


def test_forged_signature_is_refused(env: Env, mint: TokenFactory, other_key: rsa.RSAPrivateKey) -> None:
    """A token signed by a key that is not in the JWKS (but claiming its kid) is 401."""
    _assert_401(env, mint(key=other_key))


def test_tampered_payload_is_refused(env: Env, mint: TokenFactory) -> None:
    """Changing the claims of a genuine token (here: the tenant) breaks its signature."""
    header, _, signature = mint().split(".")
    forged_claims = claims_for(tid=TENANT_STRANGER)
    payload = jwt.api_jws.base64url_encode(jwt.utils.force_bytes(jwt.api_jws.json.dumps(forged_claims))).decode()
    _assert_401(env, f"{header}.{payload}.{signature}")


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused(env: Env, alg: str) -> None:
    """Unsigned tokens (alg: none in any spelling) are refused."""
    _assert_401(env, _unsigned(claims_for(), {"alg": alg, "typ": "JWT", "kid": KID}))


def test_hs256_with_a_guessed_key_is_refused(env: Env, mint: TokenFactory) -> None:
    """An HMAC token signed with a guessed secret is refused: only RS256 is accepted."""
    _assert_401(env, mint(key="secret-guess-0123456789-0123456789", algorithm="HS256"))


def test_algorithm_confusion_with_the_public_key_is_refused(
    env: Env, signing_key: rsa.RSAPrivateKey
) -> None:
    """HS256 keyed with the JWKS public key (the classic RS/HS confusion attack) is refused."""
    pem = signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": KID}
    signing_input = _unsigned(claims_for(), header)[:-1]
    sig = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    token = signing_input + "." + jwt.api_jws.base64url_encode(sig).decode()
    _assert_401(env, token)


@pytest.mark.parametrize("alg", ["RS384", "RS512", "PS256"])
def test_other_rsa_algorithms_are_refused(env: Env, mint: TokenFactory, alg: str) -> None:
    """Even other RSA algorithms with the right key are refused: RS256 only."""
    _assert_401(env, mint(algorithm=alg))


def test_expired_token_is_refused(env: Env, mint: TokenFactory) -> None:
    """A token past exp (beyond the 60 s leeway) is 401 token_expired."""
    now = int(time.time())
    _assert_401(env, mint(exp=now - 120, iat=now - 4000, nbf=now - 4000), code="token_expired")


def test_token_within_leeway_is_accepted(env: Env, mint: TokenFactory) -> None:
    """Clock skew under the leeway does not lock users out."""
    now = int(time.time())
    assert admitted(env.client.get(ROUTE, headers=bearer(mint(exp=now - 20, iat=now - 3600, nbf=now - 3600))))


def test_not_yet_valid_token_is_refused(env: Env, mint: TokenFactory) -> None:
    """A token whose nbf is well in the future is 401."""
    now = int(time.time())
    _assert_401(env, mint(nbf=now + 600, iat=now))


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat", "iss", "aud", "tid", "oid"])
def test_token_missing_a_required_claim_is_refused(env: Env, mint: TokenFactory, claim: str) -> None:
    """exp, nbf, iat, iss, aud, tid and oid are all required."""
    _assert_401(env, mint(**{claim: None}))


@pytest.mark.parametrize("aud", ["00000003-0000-0000-c000-000000000000", f"api://{CLIENT_ID}", "", "someone-else"])
def test_wrong_audience_is_refused(env: Env, mint: TokenFactory, aud: str) -> None:
    """Tokens for another resource (e.g. Microsoft Graph), or the App ID URI form, are refused."""
    _assert_401(env, mint(aud=aud))


def test_issuer_not_matching_tid_is_refused(env: Env, mint: TokenFactory) -> None:
    """iss must be built from the token's own tid: another tenant's issuer is refused."""
    _assert_401(env, mint(iss=f"https://login.microsoftonline.com/{TENANT_STRANGER}/v2.0"))


@pytest.mark.parametrize(
    "iss",
    [
        f"https://login.microsoftonline.com/{TENANT_A}/v2.0/",
        f"https://sts.windows.net/{TENANT_A}/",
        f"https://login.microsoftonline.com/{TENANT_A.upper()}/v2.0",
        f"https://127.0.0.1:7443/{TENANT_A}/v2.0",
        "https://login.microsoftonline.com/common/v2.0",
    ],
)
def test_issuer_must_match_exactly(env: Env, mint: TokenFactory, iss: str) -> None:
    """A trailing slash, the v1 issuer, a different case, the simulator or 'common' are all refused."""
    _assert_401(env, mint(iss=iss))


def test_v1_token_is_refused(env: Env, mint: TokenFactory) -> None:
    """Only v2.0 access tokens are accepted."""
    _assert_401(env, mint(ver="1.0"))


@pytest.mark.parametrize("tid", ["not-a-guid", "common", "../etc", TENANT_A + "x"])
def test_tid_must_be_a_guid(env: Env, mint: TokenFactory, tid: str) -> None:
    """A tenant id that is not a GUID is refused even when iss is built from it."""
    _assert_401(env, mint(tid=tid, iss=f"https://login.microsoftonline.com/{tid}/v2.0"))


def test_garbage_tokens_are_refused(env: Env) -> None:
    """Random strings, JSON and oversized values are 401, never 500."""
    for token in ("abc", "a.b.c", "a.b", "eyJhbGciOiJSUzI1NiJ9.e30.", "x" * 20_000, "..."):
        _assert_401(env, token)


def test_delegated_token_without_the_api_scope_is_403(env: Env, mint: TokenFactory) -> None:
    """A valid user token lacking access_as_user is 403 insufficient_scope with the RFC 6750 challenge."""
    r = env.client.get(ROUTE, headers=bearer(mint(scp="User.Read Calendars.Read")))
    assert r.status == 403
    assert r.json()["error"]["code"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in (r.header("WWW-Authenticate") or "")


def test_app_only_token_cannot_call_user_routes(env: Env, mint: TokenFactory) -> None:
    """An app-only token (no scp) is 403 on routes made for signed-in users."""
    r = env.client.get(ROUTE, headers=bearer(mint(app=True, roles=["Pairings.ReadWrite.All"])))
    assert r.status == 403
    assert r.json()["error"]["code"] == "user_token_required"


def test_unknown_kid_refreshes_the_keys_once(env: Env, mint: TokenFactory, jwks: KeySource) -> None:
    """A rotated key is picked up by one JWKS refresh, not one per request."""
    clock = [1000.0]
    validator = JwtValidator(env.settings, jwks, monotonic=lambda: clock[0])
    env.container.validator = validator
    rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert admitted(env.client.get(ROUTE, headers=bearer(mint())))
    assert jwks.fetches == 1
    jwks.keys.append(jwk_of(rotated, "rotated"))
    token = mint(key=rotated, headers={"kid": "rotated"})
    # Too soon after the last fetch: no refresh, the unknown kid is refused.
    assert env.client.get(ROUTE, headers=bearer(token)).status == 401
    assert jwks.fetches == 1
    clock[0] += UNKNOWN_KID_REFRESH_SECONDS
    assert admitted(env.client.get(ROUTE, headers=bearer(token)))
    assert jwks.fetches == 2
    # Junk kids do not trigger a fetch per request.
    for i in range(5):
        junk = mint(key=rotated, headers={"kid": f"junk-{i}"})
        assert env.client.get(ROUTE, headers=bearer(junk)).status == 401
    assert jwks.fetches == 2


def test_unreachable_jwks_is_503_not_401(env: Env, mint: TokenFactory) -> None:
    """When no keys can be loaded at all the answer is 503 with Retry-After (not a misleading 401)."""

    def broken() -> dict[str, Any]:
        raise DependencyError("down", code="token_keys_unavailable", retry_after=10)

    env.container.validator = JwtValidator(env.settings, broken)
    r = env.client.get(ROUTE, headers=bearer(mint()))
    assert r.status == 503
    assert r.header("Retry-After") == "10"


def test_jwks_with_only_unusable_keys_is_refused(signing_key: rsa.RSAPrivateKey) -> None:
    """Symmetric or encryption keys in a JWKS are never used to verify tokens."""
    settings = make_settings()
    enc_key = {**jwk_of(signing_key, KID), "use": "enc"}
    source = KeySource([{"kty": "oct", "kid": KID, "k": "c2VjcmV0", "use": "sig"}, enc_key])
    token = jwt.encode(claims_for(), signing_key, algorithm="RS256", headers={"kid": KID})
    with pytest.raises(DependencyError):
        JwtValidator(settings, source).validate(token)


def test_simulator_issuer_is_trusted_only_in_local_mode(signing_key: rsa.RSAPrivateKey) -> None:
    """A loopback authority needs LOCAL_MODE=true; with it, the simulator's tokens validate."""
    with pytest.raises(SettingsError):
        JwtValidator(make_settings(AUTHORITY_HOST="https://127.0.0.1:7443"), KeySource([]))
    local = make_settings(AUTHORITY_HOST="https://127.0.0.1:7443", LOCAL_MODE="true")
    validator = JwtValidator(local, KeySource([jwk_of(signing_key, KID)]))
    claims = claims_for(iss=f"https://127.0.0.1:7443/{TENANT_A}/v2.0")
    token = jwt.encode(claims, signing_key, algorithm="RS256", headers={"kid": KID})
    assert validator.validate(token).tenant_id == TENANT_A
    # ...and a production-shaped token is not valid against the simulator authority.
    prod = jwt.encode(claims_for(), signing_key, algorithm="RS256", headers={"kid": KID})
    with pytest.raises(InvalidToken):
        validator.validate(prod)


def test_loopback_authority_without_local_mode_answers_503(env: Env, mint: TokenFactory) -> None:
    """A deployment pointed at a loopback authority without LOCAL_MODE refuses service (misconfigured)."""
    env.container.validator = None
    env.container.settings = make_settings(AUTHORITY_HOST="https://127.0.0.1:7443")
    r = env.client.get(ROUTE, headers=bearer(mint(iss=f"https://127.0.0.1:7443/{TENANT_A}/v2.0")))
    assert r.status == 503
    assert r.json()["error"]["code"] == "misconfigured"


def test_claims_are_exposed_with_lowercase_ids(env: Env, mint: TokenFactory) -> None:
    """Upper-case GUIDs in tid/oid are normalised, so (tid, oid) keys are stable."""
    upper_oid = "A0000000-0000-4000-8000-0000000000FF"
    claims = JwtValidator(env.settings, env.jwks).validate(mint(oid=upper_oid))
    assert claims.object_id == upper_oid.lower()
    assert claims.tenant_id == TENANT_A
    assert claims.scopes == frozenset({"access_as_user"})
    assert not claims.is_app


# --- app-only tokens, hardened (issue 17 finding 5) ------------------------------------------------

PAIRING = {"mentor": "a0000000-0000-4000-8000-000000000001", "mentee": "a0000000-0000-4000-8000-000000000002",
           "active": True}


def _put_pairing(env: Env, token: str) -> Any:
    return env.client.put("/api/pairings/p-1", headers=bearer(token), json=PAIRING)


def test_an_id_token_with_neither_scp_nor_idtyp_is_refused(env: Env, mint: TokenFactory) -> None:
    """A token without scp and without idtyp=app (an ID token's shape) is 401, never taken for an app token.

    Before the fix it passed as app-only, and with a roles claim it could write pairings."""
    id_token = mint(scp=None, roles=["Pairings.ReadWrite.All"], azp=None)
    r = _put_pairing(env, id_token)
    assert r.status == 401 and r.json()["error"]["code"] == "invalid_token"
    _assert_401(env, mint(scp=None))


def test_idtyp_user_without_scp_is_refused(env: Env, mint: TokenFactory) -> None:
    """idtyp=user with no delegated scopes is not a usable access token."""
    _assert_401(env, mint(scp=None, idtyp="user"))


def test_an_app_token_carrying_scopes_is_refused(env: Env, mint: TokenFactory) -> None:
    """idtyp=app together with scp is contradictory: 401."""
    from tests.functions.conftest import PRODUCT_SERVER

    r = _put_pairing(env, mint(scp="access_as_user", idtyp="app", azp=PRODUCT_SERVER,
                               roles=["Pairings.ReadWrite.All"]))
    assert r.status == 401 and r.json()["error"]["code"] == "invalid_token"


def test_app_tokens_are_accepted_only_from_allow_listed_clients(env: Env, mint: TokenFactory) -> None:
    """An app token of a client not in PRODUCT_SERVER_CLIENT_IDS (or with no azp) is 403 app_not_allowed."""
    for azp in ("99999999-0000-4000-8000-000000000099", None):
        r = _put_pairing(env, mint(app=True, roles=["Pairings.ReadWrite.All"], azp=azp))
        assert r.status == 403 and r.json()["error"]["code"] == "app_not_allowed", azp
    env.container.settings = make_settings(PRODUCT_SERVER_CLIENT_IDS="")
    r = _put_pairing(env, mint(app=True, roles=["Pairings.ReadWrite.All"]))
    assert r.status == 403 and r.json()["error"]["code"] == "app_not_allowed"


def test_v1_appid_names_the_client_when_azp_is_absent(env: Env, mint: TokenFactory) -> None:
    """The client id is read from azp, or from appid in tokens of v1 shape."""
    from tests.functions.conftest import PRODUCT_SERVER

    claims = JwtValidator(env.settings, env.jwks).validate(mint(app=True, azp=None, appid=PRODUCT_SERVER.upper()))
    assert claims.is_app and claims.app_id == PRODUCT_SERVER
