"""Entra ID (the v2 endpoint) as the service sees it: discovery, keys, tokens, consent, sign-in.

Tokens are RS256 JWTs signed with a key generated at start-up and published at
``/common/discovery/v2.0/keys`` and ``/{tenant}/discovery/v2.0/keys``. Error bodies
use Entra's shape (``error``, ``error_description`` with the AADSTS code,
``error_codes``, ``timestamp``, ``trace_id``, ``correlation_id``) and the AADSTS codes
the service must branch on (700016, 65004, 65001, 90094, 90002, 50173, 700082, ...).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import uuid
from datetime import timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from local.simulator.state import (
    GRAPH_APP_ID,
    PRODUCT_SERVER_CLIENT_ID,
    SPA_CLIENT_ID,
    AuthCode,
    Mailbox,
    RefreshToken,
    SimState,
    Tenant,
)
from local.simulator.timeutil import now_utc
from local.simulator.web import Request, Response, add_query, json_response, redirect

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
APP_ROLES = ["Calendars.ReadWrite", "User.Read.All", "MailboxSettings.Read", "Place.Read.All"]
DELEGATED_SCOPES = ["Calendars.ReadWrite", "MailboxSettings.Read", "User.Read"]
_OIDC_SCOPES = {"openid", "profile", "offline_access", "email"}
_TOKEN_LIFETIME = 3600
# error_description texts of the consent page's refusals (reference-error-codes.md).
_CONSENT_TEXT = {
    65004: "The resource owner or authorization server denied the request.",
    65001: "The user or administrator has not consented to use the application.",
    90094: "Admin consent is required for the permissions requested by this application.",
    90095: "Admin consent is required for the permissions requested by this application. "
    "An admin consent request may be sent to the admin.",
    50020: "User account from identity provider does not exist in tenant and cannot access the application.",
    90072: "User account from identity provider does not exist in tenant and cannot access the application.",
    90130: "Application is not supported over the /common or /consumers endpoints.",
    700016: "Application was not found in the directory.",
    7000112: "Application is disabled.",
}


class Keys:
    """The signing key pair and its JWKS."""

    def __init__(self, private_pem: str | None = None, kid: str | None = None) -> None:
        if private_pem is None:
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            loaded = serialization.load_pem_private_key(private_pem.encode(), password=None)
            if not isinstance(loaded, rsa.RSAPrivateKey):
                raise ValueError("the saved signing key is not an RSA key")
            self.private = loaded
        self.kid = kid or secrets.token_urlsafe(16)
        jwk = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256", "x5t": self.kid})
        self.jwk = jwk

    def private_pem(self) -> str:
        """The signing key, for the simulator's own state file (local only)."""
        return self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.private, algorithm="RS256", headers={"kid": self.kid, "typ": "JWT"})

    def verify(self, token: str, *, audience: list[str] | None = None) -> dict[str, Any]:
        """Check signature and expiry (and audience if given); raise ``jwt.InvalidTokenError``."""
        header = jwt.get_unverified_header(token)
        if header.get("kid") != self.kid:
            raise jwt.InvalidTokenError("unknown kid")
        claims: dict[str, Any] = jwt.decode(
            token,
            self.private.public_key(),
            algorithms=["RS256"],
            audience=audience,
            options={"verify_aud": audience is not None},
            leeway=0,
        )
        return claims


class Entra:
    """Handlers for the Entra endpoints. ``dispatch`` returns None for paths it does not own."""

    def __init__(self, state: SimState, keys: Keys) -> None:
        self.state = state
        self.keys = keys

    # -- helpers -----------------------------------------------------------------------
    @property
    def base(self) -> str:
        return self.state.base_url

    def issuer(self, tid: str) -> str:
        return f"{self.base}/{tid}/v2.0"

    def graph_audiences(self) -> list[str]:
        return [self.base, "https://graph.microsoft.com", GRAPH_APP_ID]

    def _error(self, status: int, error: str, code: int, text: str) -> Response:
        trace = str(uuid.uuid4())
        return json_response(
            status,
            {
                "error": error,
                "error_description": f"AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {trace} "
                f"Timestamp: {now_utc():%Y-%m-%d %H:%M:%SZ}",
                "error_codes": [code],
                "timestamp": f"{now_utc():%Y-%m-%d %H:%M:%SZ}",
                "trace_id": trace,
                "correlation_id": trace,
                "error_uri": f"{self.base}/error?code={code}",
            },
            {"Cache-Control": "no-store"},
        )

    def _unknown_tenant(self, ref: str) -> Response:
        return self._error(
            400,
            "invalid_request",
            90002,
            f"Tenant '{ref}' not found. Check to make sure you have the correct tenant ID and are "
            "signing into the correct cloud.",
        )

    def _resolve(self, ref: str) -> Tenant | None:
        return self.state.tenant(ref)

    # -- routing -----------------------------------------------------------------------
    def dispatch(self, req: Request) -> tuple[Response, str | None] | None:
        """Route an Entra request; returns (response, tenant id for the log) or None."""
        seg = req.segments
        if len(seg) < 2:
            return None
        tref = seg[0]
        rest = "/".join(seg[1:])
        if rest == "discovery/instance" and req.method == "GET":
            return self._instance_discovery(req), None
        if rest in ("discovery/v2.0/keys", "discovery/keys") and req.method == "GET":
            return json_response(200, {"keys": [self.keys.jwk]}), None
        tenant = self._resolve(tref)
        tid = tenant.id if tenant else None
        if rest == "v2.0/.well-known/openid-configuration" and req.method == "GET":
            if tenant is None and tref not in ("common", "organizations"):
                return self._unknown_tenant(tref), None
            return json_response(200, self._openid_config(tid or "{tenantid}", tref)), tid
        if rest == "oauth2/v2.0/token" and req.method == "POST":
            if self.state.faults.in_outage():
                return self._error(
                    503, "temporarily_unavailable", 90033, "A transient error has occurred. Please try again."
                ), tid
            return self._token(req, tref, tenant), tid
        if rest == "v2.0/adminconsent" and req.method == "GET":
            return self._admin_consent(req, tref, tenant), tid
        if rest == "oauth2/v2.0/authorize" and req.method == "GET":
            return self._authorize(req, tref, tenant), tid
        if rest == "oauth2/v2.0/logout":
            target = req.query.get("post_logout_redirect_uri")
            return (redirect(target) if target else Response(200, {"Content-Type": "text/plain"}, b"signed out")), tid
        return None

    def _openid_config(self, tid: str, tref: str) -> dict[str, Any]:
        base_t = f"{self.base}/{tref}"
        return {
            "token_endpoint": f"{base_t}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base_t}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": self.issuer(tid),
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{self.base}/oidc/userinfo",
            "authorization_endpoint": f"{base_t}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base_t}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base_t}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "acr",
                "nonce",
                "preferred_username",
                "name",
                "tid",
                "ver",
                "at_hash",
                "c_hash",
                "email",
            ],
            "kerberos_endpoint": f"{base_t}/kerberos",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "127.0.0.1",
            "cloud_graph_host_name": "127.0.0.1",
            "msgraph_host": self.base.removeprefix("https://"),
            "rbac_url": self.base,
        }

    def _instance_discovery(self, req: Request) -> Response:
        host = self.base.removeprefix("https://")
        return json_response(
            200,
            {
                "tenant_discovery_endpoint": f"{self.base}/{{tenant}}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
            },
        )

    # -- token endpoint ----------------------------------------------------------------
    def _token(self, req: Request, tref: str, tenant: Tenant | None) -> Response:
        form = req.form()
        grant = form.get("grant_type", "")
        if tenant is None and tref not in ("common", "organizations"):
            return self._unknown_tenant(tref)
        client_id = form.get("client_id", "")
        if not client_id and req.headers.get("authorization", "").lower().startswith("basic "):
            try:
                decoded = base64.b64decode(req.headers["authorization"][6:]).decode()
                client_id, _, secret = decoded.partition(":")
                form.setdefault("client_secret", secret)
            except ValueError:
                pass
        if client_id != self.state.config.client_id:
            domain = tenant.domain if tenant else tref
            return self._error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{domain}'. "
                "This can happen if the application has not been installed by the administrator of "
                "the tenant or consented to by any user in the tenant. You may have sent your "
                "authentication request to the wrong tenant.",
            )
        if grant == "client_credentials":
            return self._client_credentials(form, tref, tenant)
        if grant == "authorization_code":
            return self._auth_code(form, tenant)
        if grant == "refresh_token":
            return self._refresh(form, tenant)
        return self._error(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")

    def _check_client_credential(self, form: dict[str, str], *, required: bool) -> Response | None:
        secret = form.get("client_secret")
        assertion = form.get("client_assertion")
        if assertion is not None:
            if form.get("client_assertion_type") != ASSERTION_TYPE:
                return self._error(
                    400, "invalid_request", 50027, f"Invalid client_assertion_type: expected '{ASSERTION_TYPE}'."
                )
            try:
                jwt.decode(assertion, options={"verify_signature": False})
            except jwt.InvalidTokenError:
                return self._error(401, "invalid_client", 50027, "JWT token is invalid or malformed.")
            return None
        if secret is not None:
            configured = self.state.config.client_secret
            if not secret or (configured is not None and not secrets.compare_digest(secret, configured)):
                return self._error(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is "
                    "the client secret value, not the client secret ID.",
                )
            return None
        if required:
            return self._error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
        return None

    def _client_credentials(self, form: dict[str, str], tref: str, tenant: Tenant | None) -> Response:
        if tenant is None:
            return self._error(
                400, "invalid_request", 90009, f"Tenant '{tref}' cannot be used for app-only tokens: use the tenant id."
            )
        bad = self._check_client_credential(form, required=True)
        if bad is not None:
            return bad
        scope = form.get("scope", "").strip()
        if not scope.endswith("/.default") or " " in scope:
            return self._error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows must "
                "have a scope value with /.default suffixed to the resource identifier (application "
                "ID URI).",
            )
        with self.state.lock:
            granted = tenant.consent_granted
            propagating = self._propagating(tenant)
        if granted and propagating is not None:
            return self._propagation_error(tenant, propagating)
        if not granted:
            return self._error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{self.state.config.client_id}' was not found in the "
                f"directory '{tenant.domain}'. This can happen if the application has not been "
                "installed by the administrator of the tenant or consented to by any user in the "
                "tenant. You may have sent your authentication request to the wrong tenant.",
            )
        resource = scope.removesuffix("/.default")
        token, jti = self.graph_app_token(tenant, resource)
        with self.state.lock:
            self.state.app_token_ids[jti] = tenant.id
        return self._token_response({"access_token": token})

    def _propagating(self, tenant: Tenant) -> int | None:
        """The AADSTS code to answer while a fresh consent is still replicating, else None."""
        delay = self.state.faults.consent_propagation_seconds
        since = tenant.consent_granted_at
        if delay <= 0 or since is None or (now_utc() - since).total_seconds() >= delay:
            return None
        return self.state.faults.consent_propagation_aadsts

    def _propagation_error(self, tenant: Tenant, code: int) -> Response:
        """What Entra answers app-only token requests right after consent, until it replicates."""
        client_id = self.state.config.client_id
        if code == 65001:
            return self._error(
                400,
                "invalid_grant",
                65001,
                f"The user or administrator has not consented to use the application with ID '{client_id}'. "
                "Send an interactive authorization request for this user and resource.",
            )
        return self._error(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory '{tenant.domain}'. "
            "This can happen if the application has not been installed by the administrator of the "
            "tenant or consented to by any user in the tenant. You may have sent your authentication "
            "request to the wrong tenant.",
        )

    def _token_response(self, extra: dict[str, Any]) -> Response:
        body = {"token_type": "Bearer", "expires_in": _TOKEN_LIFETIME - 1, "ext_expires_in": _TOKEN_LIFETIME - 1}
        body.update(extra)
        return json_response(200, body, {"Cache-Control": "no-store", "Pragma": "no-cache"})

    def graph_app_token(self, tenant: Tenant, resource: str) -> tuple[str, str]:
        """An app-only Graph token for the service's app in ``tenant``."""
        now = int(time.time())
        jti = str(uuid.uuid4())
        claims = {
            "aud": resource,
            "iss": self.issuer(tenant.id),
            "iat": now,
            "nbf": now,
            "exp": now + _TOKEN_LIFETIME,
            "appid": self.state.config.client_id,
            "azp": self.state.config.client_id,
            "appidacr": "1",
            "idtyp": "app",
            "oid": tenant.app_sp_id,
            "sub": tenant.app_sp_id,
            "tid": tenant.id,
            "roles": list(APP_ROLES),
            "ver": "2.0",
            "uti": jti,
            "jti": jti,
        }
        return self.keys.sign(claims), jti

    def graph_user_token(self, tenant: Tenant, user: Mailbox, resource: str, scopes: list[str]) -> str:
        now = int(time.time())
        claims = {
            "aud": resource,
            "iss": self.issuer(tenant.id),
            "iat": now,
            "nbf": now,
            "exp": now + _TOKEN_LIFETIME,
            "appid": self.state.config.client_id,
            "azp": self.state.config.client_id,
            "idtyp": "user",
            "oid": user.id,
            "sub": _pairwise(user.id, self.state.config.client_id),
            "tid": tenant.id,
            "upn": user.upn,
            "preferred_username": user.upn,
            "name": user.display_name,
            "scp": " ".join(scopes),
            "ver": "2.0",
            "jti": str(uuid.uuid4()),
        }
        return self.keys.sign(claims)

    def service_token(
        self,
        tenant: Tenant,
        user: Mailbox | None,
        roles: list[str] | None,
        *,
        scp: str | None = None,
        expires_in: int = _TOKEN_LIFETIME,
        audience: str | None = None,
    ) -> str:
        """A v2 access token for calling the SERVICE (aud = its client id)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": audience or self.state.config.client_id,
            "iss": self.issuer(tenant.id),
            "iat": now - 5,
            "nbf": now - 5,
            "exp": now + expires_in,
            "tid": tenant.id,
            "ver": "2.0",
            "uti": secrets.token_urlsafe(16),
            "rh": "0.sim",
            "jti": str(uuid.uuid4()),
        }
        if user is None:
            sp = str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{PRODUCT_SERVER_CLIENT_ID}:{tenant.id}"))
            claims.update(
                {
                    "azp": PRODUCT_SERVER_CLIENT_ID,
                    "azpacr": "1",
                    "idtyp": "app",
                    "oid": sp,
                    "sub": sp,
                    "roles": list(roles or []),
                }
            )
        else:
            claims.update(
                {
                    "azp": SPA_CLIENT_ID,
                    "azpacr": "0",
                    "oid": user.id,
                    "sub": _pairwise(user.id, SPA_CLIENT_ID),
                    "preferred_username": user.upn,
                    "name": user.display_name,
                    "scp": scp or "access_as_user",
                }
            )
            if roles:
                claims["roles"] = list(roles)
        return self.keys.sign(claims)

    # -- consent ------------------------------------------------------------------------
    def _redirect_ok(self, uri: str) -> bool:
        if not uri.startswith(("http://", "https://")):
            return False
        service = self.state.config.service_url
        from local.simulator.notifier import is_allowed_url

        return is_allowed_url(uri) or bool(service and uri.startswith(service))

    def _admin_consent(self, req: Request, tref: str, tenant: Tenant | None) -> Response:
        q = req.query
        redirect_uri = q.get("redirect_uri", "")
        if tref == "common":
            return self._error(400, "invalid_request", 90130, "Application is not supported over the /common endpoint.")
        if not self._redirect_ok(redirect_uri):
            return self._error(
                400,
                "invalid_request",
                50011,
                f"The redirect URI '{redirect_uri}' specified in the request does not match the "
                "redirect URIs configured for the application.",
            )
        if q.get("client_id") != self.state.config.client_id:
            return self._error(
                400, "unauthorized_client", 700016, f"Application with identifier '{q.get('client_id')}' was not found."
            )
        if tenant is None:
            if tref != "organizations":
                return self._unknown_tenant(tref)
            # the admin signs in here; login_hint picks whose tenant, default Contoso
            found = self.state.find_user_anywhere(q.get("login_hint", "")) if q.get("login_hint") else None
            tenant = found[0] if found else next(iter(self.state.tenants.values()))
        state_param = q.get("state", "")
        with self.state.lock:
            grants = tenant.consent_page_grants
            if grants:
                tenant.consent_granted = True
                tenant.consent_granted_at = now_utc()
            error, code = tenant.consent_decline_error, tenant.consent_decline_aadsts
        if not grants:
            # MicrosoftDocs/entra-docs docs/identity-platform/v2-admin-consent.md, "Error response":
            # admin_consent=True plus error, error_description (AADSTS code, trace and correlation
            # ids, timestamp) and state.
            trace = str(uuid.uuid4())
            params = {
                "admin_consent": "True",
                "error": error,
                "error_description": f"AADSTS{code}: {_CONSENT_TEXT.get(code, 'The request was denied.')}\r\n"
                f"Trace ID: {trace}\r\nCorrelation ID: {uuid.uuid4()}\r\n"
                f"Timestamp: {now_utc():%Y-%m-%d %H:%M:%SZ}",
                "state": state_param,
            }
            return redirect(add_query(redirect_uri, params))
        params = {
            "admin_consent": "True",
            "tenant": tenant.id,
            "scope": q.get("scope", f"{self.base}/.default"),
            "state": state_param,
        }
        return redirect(add_query(redirect_uri, params))

    # -- delegated sign-in ---------------------------------------------------------------
    def _authorize(self, req: Request, tref: str, tenant: Tenant | None) -> Response:
        q = req.query
        redirect_uri = q.get("redirect_uri", "")
        if q.get("client_id") != self.state.config.client_id:
            return self._error(
                400, "unauthorized_client", 700016, f"Application with identifier '{q.get('client_id')}' was not found."
            )
        if not self._redirect_ok(redirect_uri):
            return self._error(
                400,
                "invalid_request",
                50011,
                f"The redirect URI '{redirect_uri}' specified in the request does not match the "
                "redirect URIs configured for the application.",
            )
        state_param = q.get("state", "")

        def fail(error: str, text: str) -> Response:
            return redirect(add_query(redirect_uri, {"error": error, "error_description": text, "state": state_param}))

        if tenant is None and tref not in ("common", "organizations"):
            return fail("invalid_request", f"AADSTS90002: Tenant '{tref}' not found.")
        if q.get("response_type") != "code":
            return fail("unsupported_response_type", "AADSTS700054: response_type 'code' is required here.")
        challenge = q.get("code_challenge", "")
        if not challenge or q.get("code_challenge_method") != "S256":
            return fail("invalid_request", "AADSTS9002325: Proof Key for Code Exchange is required (S256).")
        hint = q.get("login_hint", "")
        with self.state.lock:
            found = self._pick_user(tenant, hint)
            if found is None:
                return fail(
                    "login_required", "AADSTS50058: A silent sign-in request was sent but no user is signed in."
                )
            tenant, user = found
            if not user.account_enabled:
                return fail("access_denied", "AADSTS50057: The user account is disabled.")
            if not tenant.user_consent_allowed and not tenant.consent_granted:
                if q.get("prompt") == "none":
                    return fail(
                        "consent_required",
                        f"AADSTS65001: The user or administrator has not consented to use the application "
                        f"with ID '{self.state.config.client_id}'. Send an interactive authorization "
                        "request for this user and resource.",
                    )
                return fail(
                    "access_denied",
                    "AADSTS90094: Admin consent is required for the permissions requested by this "
                    "application. An admin consent request may be sent to the admin.",
                )
            code = secrets.token_urlsafe(32)
            self.state.codes[code] = AuthCode(
                tenant_id=tenant.id,
                user_id=user.id,
                client_id=self.state.config.client_id,
                redirect_uri=redirect_uri,
                code_challenge=challenge,
                scopes=tuple(q.get("scope", "").split()),
                nonce=q.get("nonce"),
                expires=now_utc() + timedelta(minutes=10),
            )
        return redirect(
            add_query(redirect_uri, {"code": code, "state": state_param, "session_state": str(uuid.uuid4())})
        )

    def _pick_user(self, tenant: Tenant | None, hint: str) -> tuple[Tenant, Mailbox] | None:
        if hint:
            if tenant is not None:
                mb = tenant.find(hint)
                return (tenant, mb) if mb is not None and not mb.is_room else None
            found = self.state.find_user_anywhere(hint)
            return found if found is not None and not found[1].is_room else None
        if tenant is None:
            return None
        admin = tenant.find(f"admin@{tenant.domain}")
        return (tenant, admin) if admin is not None else None

    def _auth_code(self, form: dict[str, str], tenant: Tenant | None) -> Response:
        bad = self._check_client_credential(form, required=False)
        if bad is not None:
            return bad
        code = form.get("code", "")
        with self.state.lock:
            entry = self.state.codes.get(code)
            if entry is None:
                return self._error(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
            if entry.used:
                return self._error(
                    400,
                    "invalid_grant",
                    54005,
                    "OAuth2 Authorization code was already redeemed, "
                    "please retry with a new valid code or use an existing refresh token.",
                )
            if entry.expires < now_utc():
                return self._error(
                    400,
                    "invalid_grant",
                    70008,
                    "The provided authorization code or refresh token "
                    "has expired due to inactivity. Send a new interactive authorization request.",
                )
            if tenant is not None and tenant.id != entry.tenant_id:
                return self._error(400, "invalid_grant", 50148, "The code was issued for another tenant.")
            if form.get("redirect_uri") != entry.redirect_uri:
                return self._error(
                    400,
                    "invalid_grant",
                    500112,
                    "The reply address does not match the reply address provided when requesting "
                    "the authorization code.",
                )
            verifier = form.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
            if not verifier or not secrets.compare_digest(digest, entry.code_challenge):
                return self._error(
                    400,
                    "invalid_grant",
                    501481,
                    "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
                )
            entry.used = True
            scopes = entry.scopes or tuple(form.get("scope", "").split())
            return self._user_tokens(
                entry.tenant_id, entry.user_id, scopes, nonce=entry.nonce, client_info=form.get("client_info") == "1"
            )

    def _refresh(self, form: dict[str, str], tenant: Tenant | None) -> Response:
        bad = self._check_client_credential(form, required=False)
        if bad is not None:
            return bad
        with self.state.lock:
            entry = self.state.refresh_tokens.get(form.get("refresh_token", ""))
            if entry is None or (tenant is not None and tenant.id != entry.tenant_id):
                return self._error(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
            if not entry.valid:
                if entry.revoked_reason == "inactivity":
                    return self._error(
                        400,
                        "invalid_grant",
                        700082,
                        "The refresh token has expired due to inactivity. The token was issued on "
                        "a date and was inactive for 90.00:00:00.",
                    )
                if entry.revoked_reason == "revoked":
                    return self._error(
                        400,
                        "invalid_grant",
                        50173,
                        "The provided grant has expired due to it being revoked, a fresh auth token "
                        "is needed. The user might have changed or reset their password.",
                    )
                return self._error(400, "invalid_grant", 70000, "Provided grant is invalid or malformed.")
            entry.valid = False
            entry.revoked_reason = "rotated"
            requested = tuple(form.get("scope", "").split()) or entry.scopes
            return self._user_tokens(
                entry.tenant_id,
                entry.user_id,
                requested or entry.scopes,
                nonce=None,
                client_info=form.get("client_info") == "1",
            )

    def _user_tokens(
        self, tid: str, user_id: str, scopes: tuple[str, ...], *, nonce: str | None, client_info: bool
    ) -> Response:
        tenant = self.state.tenants[tid]
        user = tenant.mailboxes[user_id]
        resource, names = _split_scopes(scopes, self.base)
        body: dict[str, Any] = {
            "scope": " ".join(f"{resource}/{n}" for n in names) or " ".join(scopes),
            "access_token": self.graph_user_token(tenant, user, resource, names or DELEGATED_SCOPES),
        }
        if "offline_access" in scopes:
            rt = secrets.token_urlsafe(48)
            self.state.refresh_tokens[rt] = RefreshToken(tid, user_id, self.state.config.client_id, tuple(scopes))
            body["refresh_token"] = rt
        if "openid" in scopes or "profile" in scopes:
            now = int(time.time())
            id_claims: dict[str, Any] = {
                "aud": self.state.config.client_id,
                "iss": self.issuer(tid),
                "iat": now,
                "nbf": now,
                "exp": now + _TOKEN_LIFETIME,
                "name": user.display_name,
                "oid": user.id,
                "preferred_username": user.upn,
                "sub": _pairwise(user.id, self.state.config.client_id),
                "tid": tid,
                "ver": "2.0",
            }
            if nonce:
                id_claims["nonce"] = nonce
            body["id_token"] = self.keys.sign(id_claims)
        if client_info:
            raw = json.dumps({"uid": user.id, "utid": tid}).encode()
            body["client_info"] = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return self._token_response(body)


def _split_scopes(scopes: tuple[str, ...], default_resource: str) -> tuple[str, list[str]]:
    """('https://host/Calendars.ReadWrite', 'offline_access') -> ('https://host', ['Calendars.ReadWrite'])."""
    resource = default_resource
    names: list[str] = []
    for scope in scopes:
        if scope in _OIDC_SCOPES:
            continue
        if "://" in scope:
            res, _, name = scope.rpartition("/")
            resource = res
            if name and name != ".default":
                names.append(name)
            elif name == ".default":
                names.extend(DELEGATED_SCOPES)
        else:
            names.append(scope)
    return resource, names


def _pairwise(oid: str, client_id: str) -> str:
    digest = hashlib.sha256(f"{oid}:{client_id}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:43]
