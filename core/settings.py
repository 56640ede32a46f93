"""One typed view of the app settings, read once at start-up.

Every name here is an app setting that ``infra/`` sets (tests/infra checks both
directions). ``Settings.from_env`` reports *every* missing or invalid value in one
``SettingsError`` naming the variable and what it expects, so a misconfigured
deployment fails at start-up, not as a KeyError deep inside a request.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeVar
from urllib.parse import urlparse

T = TypeVar("T")

CredentialKind = Literal["federated_identity", "secret", "certificate"]
_CREDENTIAL_KINDS: tuple[CredentialKind, ...] = ("federated_identity", "secret", "certificate")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_NCRONTAB_FIELDS = 6

# Every app setting the code reads, with a one-line meaning. tests/infra compares this
# table with the Bicep app settings so neither side drifts.
SETTING_NAMES: dict[str, str] = {
    "AzureWebJobsStorage": "storage connection string (local runs) - or the identity-based __* settings",
    "AzureWebJobsStorage__tableServiceUri": "Table endpoint for identity-based storage",
    "AzureWebJobsStorage__queueServiceUri": "Queue endpoint for identity-based storage",
    "AzureWebJobsStorage__blobServiceUri": "Blob endpoint for identity-based storage (host only)",
    "AzureWebJobsStorage__credential": "'managedidentity' for identity-based storage",
    "AzureWebJobsStorage__clientId": "client id of the user-assigned identity for storage",
    "AZURE_CLIENT_ID": "client id of the user-assigned managed identity (Key Vault, email, federated credential)",
    "KEY_VAULT_URI": "https://<vault>.vault.azure.net/ ; required unless LOCAL_MODE=true (then local file secrets)",
    "LOCAL_SECRETS_DIR": "folder of the local file secret store (local runs only)",
    "ENTRA_CLIENT_ID": "application (client) id of the multi-tenant app registration",
    "ENTRA_CREDENTIAL": "federated_identity | secret | certificate",
    "API_AUDIENCE": "accepted 'aud' of API tokens; defaults to ENTRA_CLIENT_ID",
    "API_SCOPE": "delegated scope API tokens must carry (default access_as_user)",
    "AUTHORITY_HOST": "Entra authority host, default https://login.microsoftonline.com",
    "GRAPH_BASE_URL": "Microsoft Graph base URL, default https://graph.microsoft.com/v1.0",
    "PUBLIC_BASE_URL": "public https URL of this function app (webhooks, redirect URIs)",
    "APP_URL": "URL of the SPA that consent and sign-in callbacks redirect to",
    "CORS_ALLOWED_ORIGINS": "comma-separated SPA origins",
    "ALLOWED_TENANTS": "comma-separated tenant ids allowed to onboard, or * for any",
    "LOCAL_MODE": "true only on a developer machine: trusts the simulator's issuer and CA",
    "LOCAL_CA_BUNDLE": "PEM file of the local simulator CA (honoured only with LOCAL_MODE)",
    "LOCAL_OUTBOX_DIR": "folder where the local mailer writes owner alerts",
    "ALERT_SENDER_ADDRESS": "sender address of owner alerts (Azure Communication Services)",
    "ACS_ENDPOINT": "Azure Communication Services endpoint for owner alerts; required unless LOCAL_MODE=true",
    "ACCESS_TEST_SCHEDULE": "NCRONTAB of the access-test rerun timer",
    "RENEWAL_SCHEDULE": "NCRONTAB of the subscription renewal timer",
    "RECONCILE_SCHEDULE": "NCRONTAB of the reconciliation timer",
    "RECONCILE_NEAR_SCHEDULE": "NCRONTAB of the re-read of sessions starting within 24 h (freshness bound)",
    "PRODUCT_SERVER_CLIENT_IDS": "comma-separated client ids (azp) whose app-only tokens are accepted; empty: none",
    "WEBHOOK_URL_CODE": "function key appended as ?code= to webhook URLs given to Graph (deployed)",
    "LOG_LEVEL": "DEBUG | INFO | WARNING | ERROR",
}


class SettingsError(Exception):
    """Raised at start-up with every problem found, one line per variable."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "Invalid app settings:\n" + "\n".join(f"  - {p}" for p in problems)
        )


@dataclass(frozen=True, slots=True)
class StorageSettings:
    """Either a connection string (Azurite, local) or identity-based endpoints (deployed)."""

    connection_string: str | None
    table_uri: str | None
    queue_uri: str | None
    client_id: str | None


@dataclass(frozen=True, slots=True)
class Settings:
    storage: StorageSettings
    entra_client_id: str
    entra_credential: CredentialKind
    api_audience: str
    api_scope: str
    authority_host: str
    graph_base_url: str
    public_base_url: str
    app_url: str
    managed_identity_client_id: str | None = None
    key_vault_uri: str | None = None
    local_secrets_dir: str = ".local/secrets"
    cors_allowed_origins: tuple[str, ...] = ()
    allowed_tenants: tuple[str, ...] | None = None  # None: any tenant may onboard
    local_mode: bool = False
    local_ca_bundle: str | None = None
    local_outbox_dir: str = ".local/outbox"
    alert_sender_address: str | None = None
    acs_endpoint: str | None = None
    access_test_schedule: str = "0 0 3 * * *"
    renewal_schedule: str = "0 */30 * * * *"
    reconcile_schedule: str = "0 15 */2 * * *"
    reconcile_near_schedule: str = "0 */15 * * * *"
    product_server_client_ids: frozenset[str] = frozenset()  # empty: no app-only token is accepted
    webhook_url_code: str | None = field(default=None, repr=False)
    log_level: str = "INFO"

    @property
    def graph_scope(self) -> str:
        """The app-only scope for the configured Graph cloud (``https://host/.default``)."""
        parsed = urlparse(self.graph_base_url)
        return f"{parsed.scheme}://{parsed.netloc}/.default"

    @property
    def jwks_url(self) -> str:
        return f"{self.authority_host}/common/discovery/v2.0/keys"

    def tenant_may_onboard(self, tenant_id: str) -> bool:
        return self.allowed_tenants is None or tenant_id.lower() in self.allowed_tenants

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every setting; raise ``SettingsError`` listing all problems."""
        source: Mapping[str, str] = os.environ if env is None else env
        reader = _Reader(source)

        conn = reader.optional("AzureWebJobsStorage")
        table_uri = reader.optional("AzureWebJobsStorage__tableServiceUri", _https_url)
        queue_uri = reader.optional("AzureWebJobsStorage__queueServiceUri", _https_url)
        storage_client = reader.optional("AzureWebJobsStorage__clientId", _guid)
        if conn is None and (table_uri is None or queue_uri is None):
            reader.problem(
                "AzureWebJobsStorage",
                "a storage connection string, or AzureWebJobsStorage__tableServiceUri and "
                "AzureWebJobsStorage__queueServiceUri for identity-based storage",
            )
        local_mode = reader.optional("LOCAL_MODE", _bool) or False
        entra_client_id = reader.required("ENTRA_CLIENT_ID", _guid)
        credential = reader.optional("ENTRA_CREDENTIAL", _one_of(_CREDENTIAL_KINDS)) or "federated_identity"
        mi_client = reader.optional("AZURE_CLIENT_ID", _guid)
        if credential == "federated_identity" and mi_client is None and not local_mode:
            reader.problem(
                "AZURE_CLIENT_ID",
                "the client id (GUID) of the user-assigned identity used as the federated credential "
                "(ENTRA_CREDENTIAL=federated_identity)",
            )
        url_check = _http_url if local_mode else _https_url
        settings = cls(
            storage=StorageSettings(conn, table_uri, queue_uri, storage_client),
            entra_client_id=entra_client_id or "",
            entra_credential=credential,
            api_audience=reader.optional("API_AUDIENCE") or (entra_client_id or ""),
            api_scope=reader.optional("API_SCOPE") or "access_as_user",
            authority_host=(reader.optional("AUTHORITY_HOST", _https_url) or "https://login.microsoftonline.com").rstrip("/"),
            graph_base_url=(reader.optional("GRAPH_BASE_URL", _https_url) or "https://graph.microsoft.com/v1.0").rstrip("/"),
            public_base_url=(reader.required("PUBLIC_BASE_URL", url_check) or "").rstrip("/"),
            app_url=(reader.required("APP_URL", url_check) or "").rstrip("/"),
            managed_identity_client_id=mi_client,
            key_vault_uri=reader.optional("KEY_VAULT_URI", _https_url),
            local_secrets_dir=reader.optional("LOCAL_SECRETS_DIR") or ".local/secrets",
            cors_allowed_origins=reader.optional("CORS_ALLOWED_ORIGINS", _origins) or (),
            allowed_tenants=reader.optional("ALLOWED_TENANTS", _tenant_list),
            local_mode=local_mode,
            local_ca_bundle=reader.optional("LOCAL_CA_BUNDLE"),
            local_outbox_dir=reader.optional("LOCAL_OUTBOX_DIR") or ".local/outbox",
            alert_sender_address=reader.optional("ALERT_SENDER_ADDRESS", _email),
            acs_endpoint=reader.optional("ACS_ENDPOINT", _https_url),
            access_test_schedule=reader.optional("ACCESS_TEST_SCHEDULE", _ncrontab) or "0 0 3 * * *",
            renewal_schedule=reader.optional("RENEWAL_SCHEDULE", _ncrontab) or "0 */30 * * * *",
            reconcile_schedule=reader.optional("RECONCILE_SCHEDULE", _ncrontab) or "0 15 */2 * * *",
            reconcile_near_schedule=reader.optional("RECONCILE_NEAR_SCHEDULE", _ncrontab) or "0 */15 * * * *",
            product_server_client_ids=reader.optional("PRODUCT_SERVER_CLIENT_IDS", _guid_set) or frozenset(),
            webhook_url_code=_unresolved_reference_is_unset(reader.optional("WEBHOOK_URL_CODE")),
            log_level=reader.optional("LOG_LEVEL", _one_of(("DEBUG", "INFO", "WARNING", "ERROR"))) or "INFO",
        )
        if settings.local_ca_bundle and not local_mode:
            reader.problem("LOCAL_CA_BUNDLE", "to be unset unless LOCAL_MODE=true (local trust is never on by default)")
        for name, expected in deployed_adapter_problems(settings):
            reader.problem(name, expected)
        if reader.problems:
            raise SettingsError(reader.problems)
        return settings


def deployed_adapter_problems(settings: Settings) -> list[tuple[str, str]]:
    """What a deployment (``LOCAL_MODE`` not true) lacks to use its real secret store and mailer. Without
    these the app would quietly keep credentials in local files and mail owner alerts to a folder."""
    if settings.local_mode:
        return []
    problems = []
    if not settings.key_vault_uri:
        problems.append(("KEY_VAULT_URI", "the https:// URI of the Key Vault holding credentials (required unless "
                                          "LOCAL_MODE=true: the local file secret store is for developer machines)"))
    if not settings.acs_endpoint:
        problems.append(("ACS_ENDPOINT", "the https:// endpoint of Azure Communication Services for owner alerts "
                                         "(required unless LOCAL_MODE=true: the local outbox mailer writes files)"))
    if settings.acs_endpoint and not settings.alert_sender_address:
        problems.append(("ALERT_SENDER_ADDRESS", "the sender address of owner alerts (with ACS_ENDPOINT)"))
    return problems


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def problem(self, name: str, expected: str) -> None:
        self.problems.append(f"{name}: expected {expected}")

    def required(self, name: str, parse: Callable[[str], T] | None = None) -> T | None:
        raw = self.env.get(name, "").strip()
        if not raw:
            self.problem(name, _describe(parse) + " (missing)")
            return None
        return self._parse(name, raw, parse)

    def optional(self, name: str, parse: Callable[[str], T] | None = None) -> T | None:
        raw = self.env.get(name, "").strip()
        if not raw:
            return None
        return self._parse(name, raw, parse)

    def _parse(self, name: str, raw: str, parse: Callable[[str], T] | None) -> T | None:
        if parse is None:
            return raw  # type: ignore[return-value]
        try:
            return parse(raw)
        except ValueError as exc:
            self.problem(name, f"{_describe(parse)}, got {_redact(name, raw)!r} ({exc})")
            return None


def _unresolved_reference_is_unset(value: str | None) -> str | None:
    """App Service leaves ``@Microsoft.KeyVault(...)`` in place when it cannot resolve a Key Vault
    reference (e.g. right after deployment, before the secret exists): never use that as a key."""
    if value is not None and value.startswith("@Microsoft.KeyVault("):
        return None
    return value


def _redact(name: str, raw: str) -> str:
    return "***" if any(s in name for s in ("CODE", "SECRET", "Storage")) else raw[:80]


def _describe(parse: Callable[..., object] | None) -> str:
    doc = getattr(parse, "expected", None)
    return str(doc) if doc else "a value"


def _expect(text: str) -> Callable[[Callable[[str], T]], Callable[[str], T]]:
    def deco(fn: Callable[[str], T]) -> Callable[[str], T]:
        fn.expected = text  # type: ignore[attr-defined]
        return fn

    return deco


@_expect("a GUID like 00000000-0000-0000-0000-000000000000")
def _guid(raw: str) -> str:
    if not _GUID.match(raw):
        raise ValueError("not a GUID")
    return raw.lower()


@_expect("an https:// URL")
def _https_url(raw: str) -> str:
    parsed = urlparse(raw)
    if parsed.scheme != "https" or not parsed.netloc:
        raise ValueError("not an https URL")
    return raw


@_expect("an http(s):// URL")
def _http_url(raw: str) -> str:
    parsed = urlparse(raw)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError("not a URL")
    return raw


@_expect("true or false")
def _bool(raw: str) -> bool:
    low = raw.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError("not a boolean")


@_expect("an email address")
def _email(raw: str) -> str:
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", raw):
        raise ValueError("not an email address")
    return raw


@_expect("comma-separated origins like https://app.example.com")
def _origins(raw: str) -> tuple[str, ...]:
    out = []
    for item in (p.strip().rstrip("/") for p in raw.split(",")):
        if not item:
            continue
        parsed = urlparse(item)
        if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.path:
            raise ValueError(f"{item!r} is not an origin")
        out.append(item)
    return tuple(out)


@_expect("* or comma-separated tenant GUIDs")
def _tenant_list(raw: str) -> tuple[str, ...] | None:
    if raw.strip() == "*":
        return None
    return tuple(_guid(p.strip()) for p in raw.split(",") if p.strip())


@_expect("comma-separated client id GUIDs (empty: none)")
def _guid_set(raw: str) -> frozenset[str]:
    return frozenset(_guid(p.strip()) for p in raw.split(",") if p.strip())


@_expect("a six-field NCRONTAB expression like '0 */5 * * * *'")
def _ncrontab(raw: str) -> str:
    if len(raw.split()) != _NCRONTAB_FIELDS:
        raise ValueError("needs six fields, seconds first")
    return raw


def _one_of(choices: tuple[T, ...]) -> Callable[[str], T]:
    @_expect("one of " + ", ".join(map(str, choices)))
    def parse(raw: str) -> T:
        for choice in choices:
            if raw == choice:
                return choice
        raise ValueError("unknown value")

    return parse
