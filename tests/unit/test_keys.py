"""Table key encoding accepts any string and round-trips it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.domain.keys import MAX_KEY_CHARS, decode_key, encode_key, is_hashed

FORBIDDEN = set("/\\#?")


@given(st.text(max_size=300))
def test_encoded_keys_are_valid_and_round_trip(raw: str) -> None:
    """Any text encodes to a key without / \\ # ? or control characters and decodes back."""
    key = encode_key(raw)
    assert not (set(key) & FORBIDDEN)
    assert all(ord(c) >= 0x20 and not (0x7F <= ord(c) <= 0x9F) for c in key)
    assert len(key) <= MAX_KEY_CHARS
    if not is_hashed(key):
        assert decode_key(key) == raw


def test_ordinary_keys_are_unchanged_so_range_queries_keep_working() -> None:
    """Emails, GUIDs and ISO timestamps are stored as they are."""
    for raw in ("alice@contoso.test", "11111111-1111-4111-8111-111111111111", "2026-11-21T09:00:00Z"):
        assert encode_key(raw) == raw


def test_graph_ids_with_slashes_are_escaped() -> None:
    """A Graph id containing '/' and '+' becomes a valid key."""
    raw = "AAMkAGI2T/+Hs=" * 3
    key = encode_key(raw)
    assert "/" not in key and decode_key(key) == raw


def test_overlong_keys_are_hashed_deterministically() -> None:
    """Keys too long for Table Storage become a stable hash."""
    raw = "x/" * 600
    assert is_hashed(encode_key(raw))
    assert encode_key(raw) == encode_key(raw)
    assert encode_key(raw) != encode_key(raw + "y")
