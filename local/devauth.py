"""Local-only helpers that let the web console sign in against the Microsoft 365 simulator.

A page on http://127.0.0.1:7071 cannot call the simulator itself (another origin, and a
certificate from the local CA the browser does not trust), so the local host mounts these
paths next to the static files and forwards them server-side, trusting the local CA:

``GET /config.json``      the console's runtime config for local mode (served, not written,
                          so ``make run`` and the browser tests never race on web/dist)
``GET /_dev/users``       the simulator's tenants and users, for the console's user picker
``POST /_dev/token``      ``{user, roles?}`` -> ``{access_token}`` minted by the simulator for
                          calling this API as that user (``roles`` only ``Integration.Admin``)
``GET /_dev/sim/<path>``  the simulator's admin-consent and authorize pages (they answer at
                          once with a 302 back to the API's callback), so the consent round
                          trip works in a browser that does not trust the local CA

Mounted by ``local/run.py`` and the browser tests only; never imported by deployed code.
Tokens pass through in memory and are never logged.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from local.host.web import Response

log = logging.getLogger("local.devauth")

ADMIN_ROLE = "Integration.Admin"
ALLOWED_ROLES = frozenset({ADMIN_ROLE})
_SIM_PAGES = re.compile(r"^/_dev/sim(/[A-Za-z0-9.\-]{1,64}/(?:v2\.0/adminconsent|oauth2/v2\.0/authorize))$")
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def _json(status: int, value: Any) -> Response:
    body = json.dumps(value, separators=(",", ":")).encode()
    headers = [("Content-Type", "application/json; charset=utf-8"), *_NO_STORE.items()]
    return Response(status, headers, body)


class DevAuth:
    """The mounted handler: answers its own paths and returns None for every other one."""

    def __init__(
        self,
        *,
        simulator_url: str,
        ca_path: Path,
        client_id: str,
        api_base_url: str = "/api",
        session: requests.Session | None = None,
    ) -> None:
        self.simulator_url = simulator_url.rstrip("/")
        self.client_id = client_id
        self.api_base_url = api_base_url
        self.http = session or requests.Session()
        self.http.trust_env = False  # REQUESTS_CA_BUNDLE must not override the local CA
        self.http.verify = str(ca_path)

    def runtime_config(self, origin: str) -> dict[str, str]:
        """What web/dist/config.json holds when deployed, for local mode."""
        return {
            "apiBaseUrl": self.api_base_url,
            "mode": "local",
            "clientId": self.client_id,
            "authority": self.simulator_url,
            "apiScope": f"api://{self.client_id}/access_as_user",
            "redirectUri": f"{origin}/",
            "simulatorUrl": self.simulator_url,
        }

    def __call__(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Response | None:
        path = urlsplit(target).path
        if path != "/config.json" and not path.startswith("/_dev/"):
            return None
        host = headers.get("host", "")
        if host.rsplit(":", 1)[0] not in _LOCAL_HOSTS:
            # A page on another name resolving here (DNS rebinding) gets nothing from these helpers.
            return _json(403, {"error": {"code": "forbidden", "message": "Local helpers answer loopback names only."}})
        try:
            if path == "/config.json" and method in ("GET", "HEAD"):
                return _json(200, self.runtime_config(f"http://{host}"))
            if path == "/_dev/users" and method == "GET":
                return self._users()
            if path == "/_dev/token" and method == "POST":
                return self._token(headers, body)
            if method == "GET" and _SIM_PAGES.match(path):
                return self._sim_page(target, host)
        except requests.RequestException as exc:
            log.warning("the simulator did not answer a local sign-in helper (%s)", type(exc).__name__)
            return _json(503, {"error": {"code": "simulator_unavailable",
                                         "message": "The Microsoft 365 simulator is not reachable. Is make run up?"}})
        return _json(404, {"error": {"code": "not_found", "message": "No local helper at this path."}})

    def _users(self) -> Response:
        answer = self.http.get(f"{self.simulator_url}/_sandbox/tenants", timeout=15)
        answer.raise_for_status()
        tenants = [
            {
                "id": t["id"],
                "domain": t.get("domain", ""),
                "users": [
                    {
                        "id": u["id"],
                        "userPrincipalName": u.get("userPrincipalName", ""),
                        "displayName": u.get("displayName") or u.get("userPrincipalName", ""),
                        "kind": u.get("kind", "normal"),
                    }
                    for u in t.get("users", [])
                ],
            }
            for t in answer.json()
        ]
        return _json(200, tenants)

    def _token(self, headers: Mapping[str, str], body: bytes) -> Response:
        # application/json forces a CORS preflight, which no other origin passes here.
        if not headers.get("content-type", "").lower().startswith("application/json"):
            return _json(415, {"error": {"code": "unsupported_media_type", "message": "Send application/json."}})
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return _json(400, {"error": {"code": "bad_request", "message": "The body is not JSON."}})
        user = request.get("user") if isinstance(request, dict) else None
        roles = request.get("roles", []) if isinstance(request, dict) else None
        if not isinstance(user, str) or not user or not isinstance(roles, list):
            return _json(422, {"error": {"code": "validation_failed", "message": "Give a user and a list of roles."}})
        if any(r not in ALLOWED_ROLES for r in roles):
            return _json(422, {"error": {"code": "validation_failed", "message": f"Only {ADMIN_ROLE} may be asked."}})
        answer = self.http.post(f"{self.simulator_url}/_sandbox/token", json={"user": user, "roles": roles}, timeout=15)
        if answer.status_code >= 400:
            return _json(422, {"error": {"code": "unknown_user", "message": "The simulator has no such user."}})
        return _json(200, {"access_token": answer.json()["access_token"]})

    def _sim_page(self, target: str, host: str) -> Response:
        split = urlsplit(target)
        sim_path = split.path[len("/_dev/sim") :]
        url = f"{self.simulator_url}{sim_path}" + (f"?{split.query}" if split.query else "")
        answer = self.http.get(url, allow_redirects=False, timeout=15)
        location = answer.headers.get("Location", "")
        if answer.status_code in (301, 302, 303, 307) and urlsplit(location).hostname in ("127.0.0.1", "localhost"):
            return Response(302, [("Location", location), *_NO_STORE.items()], b"")
        return _json(answer.status_code if answer.status_code >= 400 else 502, _error_of(answer))


def _error_of(answer: requests.Response) -> dict[str, Any]:
    try:
        found = answer.json()
    except ValueError:
        found = {}
    message = found.get("error_description") if isinstance(found, dict) else None
    return {"error": {"code": "sign_in_failed", "message": message or "The simulator refused the sign-in page."}}


def attach(host: Any, auth: DevAuth) -> None:
    """Mount ``auth`` on a running local Host (its HTTP front is internal to local/host)."""
    host._front.mount(auth)
