"""AES-GCM sealing of queued free text: opaque, bound to its session, one vault read per process."""

from __future__ import annotations

import pytest

from core.adapters.sealer import SEALING_KEY_NAME, AesGcmSealer
from core.domain.errors import UnsealFailed
from tests.support.memory import InMemorySecretStore

TEXT = "Confidential subject: salary talk"


def test_sealed_text_opens_only_with_its_context() -> None:
    """The token hides the text, opens for its own context and fails for any other."""
    sealer = AesGcmSealer(InMemorySecretStore())
    token = sealer.seal(TEXT, "tenant:s1")
    assert TEXT not in token and "salary" not in token
    assert sealer.unseal(token, "tenant:s1") == TEXT
    with pytest.raises(UnsealFailed):
        sealer.unseal(token, "tenant:s2")


def test_same_text_seals_differently_each_time() -> None:
    """A fresh nonce per seal: equal subjects are not recognisable in the queue."""
    sealer = AesGcmSealer(InMemorySecretStore())
    assert sealer.seal(TEXT, "c") != sealer.seal(TEXT, "c")


@pytest.mark.parametrize("token", ["", "v1.", "v1.!!!", "plain text", "v2.abcd", "v1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"])
def test_garbage_and_tampered_tokens_do_not_open(token: str) -> None:
    """Anything that is not an intact token of this key raises UnsealFailed, never another error."""
    with pytest.raises(UnsealFailed):
        AesGcmSealer(InMemorySecretStore()).unseal(token, "c")


def test_key_is_created_once_and_read_from_the_vault_once_per_process() -> None:
    """The first use creates the key in the secret store; later seals need no vault read; other processes share it."""
    secrets = InMemorySecretStore()
    first = AesGcmSealer(secrets)
    token = first.seal(TEXT, "c")
    assert SEALING_KEY_NAME in secrets.names()
    reads = secrets.reads
    for _ in range(5):
        first.unseal(first.seal(TEXT, "c"), "c")
    assert secrets.reads == reads
    assert AesGcmSealer(secrets).unseal(token, "c") == TEXT


def test_a_rotated_key_makes_old_tokens_unreadable_not_fatal() -> None:
    """After the key changed, old tokens raise UnsealFailed (the worker then uses the subject template)."""
    secrets = InMemorySecretStore()
    token = AesGcmSealer(secrets).seal(TEXT, "c")
    secrets.delete(SEALING_KEY_NAME)
    with pytest.raises(UnsealFailed):
        AesGcmSealer(secrets).unseal(token, "c")
