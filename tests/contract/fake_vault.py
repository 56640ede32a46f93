"""A Key Vault secrets endpoint on ``responses``: enough of the REST API for the adapter.

It behaves like the service where the adapter depends on it: the challenge
authentication (an unauthenticated request gets 401 with ``WWW-Authenticate``, the
SDK then asks the credential for a token and retries), case-insensitive names checked
against Key Vault's rules, soft delete (a deleted name answers 409
``ObjectIsDeletedButRecoverable`` until recovered) and Key Vault's error envelope.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import responses
from azure.core.credentials import AccessToken
from requests import PreparedRequest

TOKEN = "fake-vault-token"  # a made-up bearer token the fake vault accepts
NAME_RULE = re.compile(r"[0-9A-Za-z-]{1,127}")


class FakeCredential:
    """A TokenCredential that hands out one fixed token and records what it was asked for."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.requests: list[tuple[tuple[str, ...], str | None]] = []

    def get_token(
        self, *scopes: str, claims: str | None = None, tenant_id: str | None = None, **kwargs: Any
    ) -> AccessToken:
        self.requests.append((scopes, tenant_id))
        return AccessToken(self.token, int(time.time()) + 3600)


@dataclass
class FakeKeyVault:
    """State of one fake vault; ``install`` routes its URL on a RequestsMock."""

    tenant_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    url: str = field(default_factory=lambda: f"https://kv-{uuid.uuid4().hex[:12]}.vault.azure.net")
    token: str = TOKEN
    secrets: dict[str, tuple[str, str]] = field(default_factory=dict)  # lower name -> (name, value)
    deleted: dict[str, tuple[str, str]] = field(default_factory=dict)
    being_recovered_answers: int = 0  # PUTs answered 409 ObjectIsBeingRecovered after a recover
    fail_with: list[int] = field(default_factory=list)  # statuses to answer next, whatever the request
    log: list[tuple[str, str, bool]] = field(default_factory=list)  # (method, path, authorised)

    def install(self, mock: responses.RequestsMock) -> FakeKeyVault:
        pattern = re.compile(re.escape(self.url) + r"/.*")
        for method in ("GET", "PUT", "DELETE", "POST", "PATCH"):
            mock.add_callback(method, pattern, callback=self._handle, content_type="application/json")
        return self

    @property
    def authorised_calls(self) -> list[tuple[str, str]]:
        return [(method, path) for method, path, ok in self.log if ok]

    def challenge_header(self) -> str:
        return (
            f'Bearer authorization="https://login.microsoftonline.com/{self.tenant_id}", '
            'resource="https://vault.azure.net"'
        )

    # --- request handling ---

    def _handle(self, request: PreparedRequest) -> tuple[int, dict[str, str], str]:
        path = urlparse(request.url or "").path
        authorised = request.headers.get("Authorization") == f"Bearer {self.token}"
        self.log.append((request.method or "", path, authorised))
        if not authorised:
            body = {"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}}
            return 401, {"WWW-Authenticate": self.challenge_header()}, json.dumps(body)
        if self.fail_with:
            status = self.fail_with.pop(0)
            return status, _HEADERS, _error("InternalServerError" if status >= 500 else "Forbidden", "failure")
        parts = [p for p in path.split("/") if p]
        if len(parts) < 2:
            return 400, _HEADERS, _error("BadParameter", "unsupported path")
        collection, name = parts[0], parts[1]
        if not NAME_RULE.fullmatch(name) or not name[0].isalpha():
            return 400, _HEADERS, _error("BadParameter", "The request URI contains an invalid name")
        key = name.lower()
        method = request.method
        if collection == "secrets" and method == "GET":
            if key not in self.secrets:
                return 404, _HEADERS, _NOT_FOUND
            stored_name, value = self.secrets[key]
            return 200, _HEADERS, json.dumps(self._bundle(stored_name, value))
        if collection == "secrets" and method == "PUT":
            if key in self.deleted:
                return 409, _HEADERS, _error(
                    "Conflict",
                    "Secret is currently in a deleted but recoverable state, and its name cannot be reused.",
                    inner="ObjectIsDeletedButRecoverable",
                )
            if self.being_recovered_answers > 0:
                self.being_recovered_answers -= 1
                return 409, _HEADERS, _error(
                    "Conflict", "Secret is currently being recovered; retry later.", inner="ObjectIsBeingRecovered"
                )
            value = json.loads(request.body or b"{}")["value"]
            previous = self.secrets.get(key)
            self.secrets[key] = (previous[0] if previous else name, value)
            return 200, _HEADERS, json.dumps(self._bundle(self.secrets[key][0], value))
        if collection == "secrets" and method == "DELETE":
            if key not in self.secrets:
                return 404, _HEADERS, _NOT_FOUND
            self.deleted[key] = self.secrets.pop(key)
            stored_name = self.deleted[key][0]
            bundle = self._bundle(stored_name, None)
            bundle.update(
                recoveryId=f"{self.url}/deletedsecrets/{stored_name}",
                deletedDate=int(time.time()),
                scheduledPurgeDate=int(time.time()) + 90 * 86400,
            )
            return 200, _HEADERS, json.dumps(bundle)
        if collection == "deletedsecrets" and method == "POST" and parts[2:] == ["recover"]:
            if key not in self.deleted:
                return 404, _HEADERS, _error("SecretNotFound", "Deleted secret not found.")
            self.secrets[key] = self.deleted.pop(key)
            return 200, _HEADERS, json.dumps(self._bundle(self.secrets[key][0], None))
        if collection == "deletedsecrets" and method == "GET":
            if key not in self.deleted:
                return 404, _HEADERS, _error("SecretNotFound", "Deleted secret not found.")
            return 200, _HEADERS, json.dumps(self._bundle(self.deleted[key][0], None))
        return 405, _HEADERS, _error("BadParameter", "unsupported operation")

    def _bundle(self, name: str, value: str | None) -> dict[str, Any]:
        now = int(time.time())
        bundle: dict[str, Any] = {
            "id": f"{self.url}/secrets/{name}/{uuid.uuid4().hex}",
            "attributes": {"enabled": True, "created": now, "updated": now, "recoveryLevel": "Recoverable+Purgeable"},
        }
        if value is not None:
            bundle["value"] = value
        return bundle


_HEADERS: dict[str, str] = {}  # the content type is set when the routes are added


def _error(code: str, message: str, *, inner: str | None = None) -> str:
    error: dict[str, Any] = {"code": code, "message": message}
    if inner:
        error["innererror"] = {"code": inner}
    return json.dumps({"error": error})


_NOT_FOUND = _error("SecretNotFound", "A secret with this name was not found in this key vault.")
