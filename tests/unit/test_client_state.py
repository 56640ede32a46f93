"""clientState: an HMAC of tenant and mailbox, checkable from the notification alone, key read once."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.services.client_state import (
    MAX_CLIENT_STATE_CHARS,
    SECRET_NAME,
    ClientStateKeyCache,
    ClientStateSigner,
)
from tests.support.memory import InMemorySecretStore

TENANT = "aaaaaaaa-0000-4000-8000-00000000000a"
OTHER_TENANT = "bbbbbbbb-0000-4000-8000-00000000000b"
USER = "10000000-0000-4000-8000-0000000a11ce"
OTHER_USER = "10000000-0000-4000-8000-000000000b0b"
SIGNER = ClientStateSigner(b"k" * 32)


def test_signed_value_verifies_for_its_tenant_and_mailbox_only() -> None:
    """The value checks out for (tenant, mailbox) it was made for, and for no other tenant or mailbox."""
    value = SIGNER.sign(TENANT, USER)
    assert SIGNER.verify(value, TENANT, USER)
    assert SIGNER.verify(value, TENANT.upper(), USER.upper())  # Graph's casing of ids does not matter
    assert not SIGNER.verify(value, OTHER_TENANT, USER)
    assert not SIGNER.verify(value, TENANT, OTHER_USER)
    assert SIGNER.mailbox_of(value, TENANT) == USER
    assert SIGNER.mailbox_of(value, OTHER_TENANT) is None


def test_value_fits_graphs_limit_and_holds_no_key_material() -> None:
    """A clientState for a GUID mailbox is at most 128 characters and does not contain the key."""
    value = SIGNER.sign(TENANT, USER)
    assert len(value) <= MAX_CLIENT_STATE_CHARS
    assert "kkkk" not in value


def test_another_key_or_a_tampered_value_is_refused() -> None:
    """A value signed with another key, or with any character changed, does not verify."""
    value = SIGNER.sign(TENANT, USER)
    assert not ClientStateSigner(b"x" * 32).verify(value, TENANT, USER)
    flipped = value[:-1] + ("A" if value[-1] != "A" else "B")
    assert not SIGNER.verify(flipped, TENANT, USER)
    swapped = value.replace(USER, OTHER_USER)
    assert not SIGNER.verify(swapped, TENANT, OTHER_USER)


@given(st.text(max_size=200))
def test_arbitrary_input_never_verifies_or_crashes(value: str) -> None:
    """Whatever a caller sends as clientState is refused without an exception."""
    assert SIGNER.mailbox_of(value, TENANT) is None
    assert not SIGNER.verify(value, TENANT, USER)


def test_missing_values_are_refused() -> None:
    """No clientState or no tenant id is simply not ours."""
    assert not SIGNER.verify(None, TENANT, USER)
    assert not SIGNER.verify(SIGNER.sign(TENANT, USER), None, USER)
    assert not SIGNER.verify(SIGNER.sign(TENANT, USER), TENANT, None)


def test_key_is_read_once_then_served_from_memory() -> None:
    """After the first read, no call reaches the secret store again."""
    store = InMemorySecretStore({SECRET_NAME: "a-key-of-sufficient-length-0123456789"})
    cache = ClientStateKeyCache(store)
    first = cache.signer()
    for _ in range(100):
        assert cache.signer() is first
    assert store.reads == 1
    assert cache.cached is first


def test_key_is_created_at_first_subscription_and_shared_afterwards() -> None:
    """Subscription creation makes the key when none exists; a later process reads the same key."""
    store = InMemorySecretStore()
    creator = ClientStateKeyCache(store)
    value = creator.require().sign(TENANT, USER)
    assert SECRET_NAME in store.names()
    reader = ClientStateKeyCache(store).signer()
    assert reader is not None and reader.verify(value, TENANT, USER)


def test_absent_key_is_not_created_by_the_webhook_and_not_reread_in_a_burst() -> None:
    """Without a key the webhook path gets None, never creates one, and asks the store again only after a pause."""
    clock = [0.0]
    store = InMemorySecretStore()
    cache = ClientStateKeyCache(store, monotonic=lambda: clock[0])
    for _ in range(50):
        assert cache.signer() is None
    assert store.reads == 1
    assert store.names() == []
    clock[0] += 31
    store.set(SECRET_NAME, "created-by-another-process-0123456789")
    assert cache.signer() is not None
    assert store.reads == 2


# --- binding and rotation ------------------------------------------------------------------------


def test_value_carries_the_subscriptions_nonce_under_the_mac() -> None:
    """The nonce is read back with the mailbox; changing it (another subscription's) breaks the MAC."""
    value = SIGNER.sign(TENANT, USER, "nonce-of-sub-one")
    checked = SIGNER.check(value, TENANT)
    assert checked.ok and (checked.user_id, checked.nonce) == (USER, "nonce-of-sub-one")
    assert not SIGNER.check(value.replace("nonce-of-sub-one", "nonce-of-sub-two"), TENANT).ok


def test_rotation_signs_with_a_new_key_and_still_accepts_the_previous_one_only() -> None:
    """After a rotation new values use the new key id and old values verify; after a second the oldest key is gone
    (its values name a key id the ring no longer has)."""
    store = InMemorySecretStore()
    cache = ClientStateKeyCache(store)
    first = cache.require().sign(TENANT, USER)
    assert cache.rotate() == "2"
    second = cache.require().sign(TENANT, USER)
    assert second.split("~")[1] == "2"
    other_process = ClientStateKeyCache(store).signer()
    assert other_process is not None
    assert other_process.check(first, TENANT).ok and other_process.check(second, TENANT).ok
    assert cache.rotate() == "3"
    signer = ClientStateKeyCache(store).signer()
    assert signer is not None
    assert signer.check(first, TENANT).unknown_key and signer.check(second, TENANT).ok


def test_a_bare_key_from_before_rings_is_key_one_and_its_version_1_values_still_verify() -> None:
    """Values of subscriptions made before binding (version 1, no nonce) verify under the old bare key."""
    import base64
    import hashlib
    import hmac

    raw = "a-key-of-sufficient-length-0123456789"
    mac = base64.urlsafe_b64encode(hmac.digest(raw.encode(), f"1|{TENANT}|{USER}".encode(), hashlib.sha256))
    legacy = f"1~{USER}~{mac.rstrip(b'=').decode()}"
    signer = ClientStateKeyCache(InMemorySecretStore({SECRET_NAME: raw})).signer()
    assert signer is not None
    checked = signer.check(legacy, TENANT)
    assert checked.ok and checked.user_id == USER and checked.nonce == ""


def test_stale_rings_and_unknown_key_ids_reload_in_the_background_never_inline() -> None:
    """The webhook's signer() never waits on the store: a stale ring or a new key id starts one background reload
    (at most one per 30 s), run here by hand."""
    clock = [0.0]
    jobs: list[object] = []
    store = InMemorySecretStore({SECRET_NAME: "a-key-of-sufficient-length-0123456789"})
    cache = ClientStateKeyCache(store, monotonic=lambda: clock[0], background=jobs.append)
    assert cache.signer() is not None and store.reads == 1
    assert cache.reload_soon() is True and cache.reload_soon() is False
    assert store.reads == 1 and len(jobs) == 1
    jobs.pop()()  # type: ignore[operator]
    assert store.reads == 2
    clock[0] += 601
    cache.signer()
    assert store.reads == 2 and len(jobs) == 1
