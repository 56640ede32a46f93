"""Key Vault adapter specifics: challenge authentication, the cache, soft delete, errors, name encoding."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
import responses
from hypothesis import given
from hypothesis import strategies as st

from core.adapters.keyvault import KeyVaultSecretStore, encode_secret_name
from core.domain.errors import SecretStoreUnavailable
from core.settings import Settings
from tests.contract.fake_vault import FakeCredential, FakeKeyVault

KV_RULE = re.compile(r"[A-Za-z][0-9A-Za-z-]{0,126}")
OUR_NAME = "user-token-72f988bf-86f1-41af-91ab-2d7cd011db47-00000000-0000-4000-8000-000000000001"


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def vault() -> Iterator[FakeKeyVault]:
    """A fresh fake vault on its own host (the SDK caches challenges per host)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield FakeKeyVault().install(mock)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def credential() -> FakeCredential:
    return FakeCredential()


@pytest.fixture
def store(vault: FakeKeyVault, credential: FakeCredential, clock: ManualClock) -> KeyVaultSecretStore:
    """The adapter with its default 5-minute cache, a hand-driven clock and no real sleeping."""
    return KeyVaultSecretStore(vault.url, credential, clock=clock, sleep=lambda _s: None, retry_total=0)


def test_first_call_answers_the_vault_challenge_with_a_token_for_its_tenant(
    store: KeyVaultSecretStore, vault: FakeKeyVault, credential: FakeCredential
) -> None:
    """The first request goes unauthenticated, gets 401 + WWW-Authenticate, and is retried with a bearer token."""
    vault.secrets[OUR_NAME] = (OUR_NAME, "refresh")
    assert store.get(OUR_NAME) == "refresh"
    assert [ok for _method, _path, ok in vault.log] == [False, True]
    assert credential.requests == [(("https://vault.azure.net/.default",), vault.tenant_id)]


def test_second_get_is_served_from_the_cache(store: KeyVaultSecretStore, vault: FakeKeyVault) -> None:
    """Within the TTL a repeated get makes no HTTP call at all."""
    vault.secrets[OUR_NAME] = (OUR_NAME, "refresh")
    store.get(OUR_NAME)
    calls = len(vault.log)
    assert store.get(OUR_NAME) == "refresh"
    assert len(vault.log) == calls


def test_missing_secrets_are_cached_too(store: KeyVaultSecretStore, vault: FakeKeyVault) -> None:
    """A 404 is returned as None and remembered, so asking again costs no call."""
    assert store.get("not-there") is None
    calls = len(vault.log)
    assert store.get("not-there") is None
    assert len(vault.log) == calls


def test_cache_entries_expire_after_the_ttl(
    store: KeyVaultSecretStore, vault: FakeKeyVault, clock: ManualClock
) -> None:
    """After 5 minutes the next get asks the vault again and sees a value changed elsewhere."""
    vault.secrets[OUR_NAME] = (OUR_NAME, "old")
    store.get(OUR_NAME)
    vault.secrets[OUR_NAME] = (OUR_NAME, "rotated-by-another-instance")
    clock.now += 299
    assert store.get(OUR_NAME) == "old"
    clock.now += 2
    assert store.get(OUR_NAME) == "rotated-by-another-instance"


def test_set_and_delete_update_the_cache(store: KeyVaultSecretStore, vault: FakeKeyVault) -> None:
    """After set the new value is served without a read; after delete None is, without a read."""
    store.get(OUR_NAME)
    store.set(OUR_NAME, "fresh")
    reads_before = [c for c in vault.authorised_calls if c[0] == "GET"]
    assert store.get(OUR_NAME) == "fresh"
    store.delete(OUR_NAME)
    assert store.get(OUR_NAME) is None
    assert [c for c in vault.authorised_calls if c[0] == "GET"] == reads_before


def test_setting_a_soft_deleted_name_recovers_it_then_sets(store: KeyVaultSecretStore, vault: FakeKeyVault) -> None:
    """409 ObjectIsDeletedButRecoverable leads to recover, then the set is retried and wins."""
    vault.deleted[OUR_NAME] = (OUR_NAME, "old")
    vault.being_recovered_answers = 2  # recovery takes a moment: two more 409s before the set lands
    store.set(OUR_NAME, "new")
    assert vault.secrets[OUR_NAME] == (OUR_NAME, "new")
    assert OUR_NAME not in vault.deleted
    assert vault.authorised_calls == [
        ("PUT", f"/secrets/{OUR_NAME}"),
        ("POST", f"/deletedsecrets/{OUR_NAME}/recover"),
        ("PUT", f"/secrets/{OUR_NAME}"),
        ("PUT", f"/secrets/{OUR_NAME}"),
        ("PUT", f"/secrets/{OUR_NAME}"),
    ]


def test_set_gives_up_with_unavailable_when_the_conflict_never_clears(
    store: KeyVaultSecretStore, vault: FakeKeyVault
) -> None:
    """A name stuck in a conflicting state ends in SecretStoreUnavailable after bounded retries."""
    vault.being_recovered_answers = 100
    with pytest.raises(SecretStoreUnavailable):
        store.set(OUR_NAME, "new")
    assert 1 < len([c for c in vault.authorised_calls if c[0] == "PUT"]) < 10


def test_delete_does_not_wait_for_the_deletion_to_finish(store: KeyVaultSecretStore, vault: FakeKeyVault) -> None:
    """delete sends one DELETE and does not poll the deleted-secrets collection."""
    vault.secrets[OUR_NAME] = (OUR_NAME, "v")
    store.delete(OUR_NAME)
    assert vault.authorised_calls == [("DELETE", f"/secrets/{OUR_NAME}")]
    assert OUR_NAME in vault.deleted


def test_oversized_value_is_refused_before_any_call(store: KeyVaultSecretStore, vault: FakeKeyVault) -> None:
    """A value over 25 KiB raises ValueError without contacting the vault."""
    with pytest.raises(ValueError):
        store.set(OUR_NAME, "x" * (25 * 1024 + 1))
    assert vault.log == []


@pytest.mark.parametrize("status", [500, 403])
def test_vault_errors_become_secret_store_unavailable(
    store: KeyVaultSecretStore, vault: FakeKeyVault, status: int
) -> None:
    """Server errors and refused access surface as SecretStoreUnavailable, chained to the Azure error."""
    calls: list[Callable[[], object]] = [
        lambda: store.get("a-name"), lambda: store.set("a-name", "v"), lambda: store.delete("a-name")
    ]
    for call in calls:
        vault.fail_with = [status]
        with pytest.raises(SecretStoreUnavailable) as caught:
            call()
        assert caught.value.__cause__ is not None


def test_unreachable_vault_is_secret_store_unavailable(credential: FakeCredential) -> None:
    """A vault that does not answer (no route at all) gives SecretStoreUnavailable from get and ping."""
    with responses.RequestsMock():  # nothing registered: every request fails to connect
        store = KeyVaultSecretStore("https://kv-nowhere.vault.azure.net", credential, retry_total=0)
        with pytest.raises(SecretStoreUnavailable):
            store.get("a-name")
        with pytest.raises(SecretStoreUnavailable):
            store.ping()


def test_ping_counts_a_404_as_healthy(store: KeyVaultSecretStore, vault: FakeKeyVault) -> None:
    """ping reads a probe name: the vault answering 404 proves it is reachable and accepts our token."""
    store.ping()
    assert vault.authorised_calls == [("GET", "/secrets/health-probe/")]


def test_from_settings_requires_a_vault_uri() -> None:
    """Building the adapter without KEY_VAULT_URI (possible only in local mode) is a configuration error."""
    settings = Settings.from_env(
        {
            "LOCAL_MODE": "true",
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
            "ENTRA_CLIENT_ID": "11111111-1111-4111-8111-111111111111",
            "ENTRA_CREDENTIAL": "secret",
            "PUBLIC_BASE_URL": "https://app.example.com",
            "APP_URL": "https://spa.example.com",
        }
    )
    with pytest.raises(ValueError, match="KEY_VAULT_URI"):
        KeyVaultSecretStore.from_settings(settings)


# --- name encoding ---


def test_our_own_names_are_unchanged() -> None:
    """Names that are already valid and lower-case (user-token-<tid>-<oid>) pass through, readable."""
    for name in (OUR_NAME, "app-credential", "webhook-signing-key", "a"):
        assert encode_secret_name(name) == name


@given(st.text(max_size=300))
def test_encoded_names_follow_key_vault_rules(name: str) -> None:
    """Any string encodes to 1-127 letters, digits and dashes starting with a letter, the same every time."""
    encoded = encode_secret_name(name)
    assert KV_RULE.fullmatch(encoded)
    assert encode_secret_name(name) == encoded


@given(st.lists(st.text(max_size=200), min_size=2, max_size=30, unique=True))
def test_encoding_is_injective_even_for_a_case_insensitive_vault(names: list[str]) -> None:
    """Distinct names never meet, even after Key Vault's case folding."""
    encoded = {encode_secret_name(n).lower() for n in names}
    assert len(encoded) == len(names)


def test_case_variants_and_separators_get_distinct_readable_names() -> None:
    """Upper case and invalid characters are hashed apart while the readable part stays recognisable."""
    variants = ["App-Credential", "app_credential", "app.credential", "app credential", "app/credential"]
    encoded = [encode_secret_name(v) for v in variants]
    assert len({e.lower() for e in encoded} | {"app-credential"}) == len(variants) + 1
    assert all(e.startswith("app-credential-") for e in encoded)
