"""Any-of rules: which room and which host a booking chooses, and why (core/domain/assignment.py)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from core.domain.assignment import (
    LOAD_WINDOW,
    HostCandidate,
    Load,
    RoomChoice,
    RoomOption,
    load_at,
    pick_host,
    pick_room,
    rank_hosts,
    rank_rooms,
)

AT = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
ROOMS = [RoomOption("big@x.test", 12), RoomOption("small@x.test", 4), RoomOption("mid@x.test", 6),
         RoomOption("nocap@x.test", None)]
HOSTS = [HostCandidate("h1", "h1@x.test"), HostCandidate("h2", "h2@x.test"), HostCandidate("h3", "h3@x.test")]


def test_first_takes_the_first_free_room_in_the_order_given() -> None:
    """roomChoice first: the caller's order decides; a busy room is skipped."""
    chosen = pick_room(ROOMS, RoomChoice.FIRST, None, {"small@x.test", "mid@x.test"})
    assert chosen is not None and chosen.address == "small@x.test"
    assert "first free room" in chosen.reason


def test_best_fit_takes_the_smallest_free_room_that_seats_the_party() -> None:
    """bestFit: the smallest known capacity that fits wins, whatever the order given."""
    chosen = pick_room(ROOMS, RoomChoice.BEST_FIT, 5, {"big@x.test", "mid@x.test", "small@x.test"})
    assert chosen is not None and chosen.address == "mid@x.test"
    assert "(6 seats)" in chosen.reason and "seats 5" in chosen.reason


def test_rooms_too_small_are_never_chosen_and_unknown_capacities_come_last_in_best_fit() -> None:
    """A room with a known capacity below the party is out in both modes; unknown capacity ranks after known."""
    assert [r.address for r in rank_rooms(ROOMS, RoomChoice.FIRST, 8)] == ["big@x.test", "nocap@x.test"]
    assert [r.address for r in rank_rooms(ROOMS, RoomChoice.BEST_FIT, 5)] == ["mid@x.test", "big@x.test",
                                                                               "nocap@x.test"]
    assert pick_room(ROOMS, RoomChoice.BEST_FIT, 20, None) is not None  # the room without a capacity may fit
    assert pick_room(ROOMS[:3], RoomChoice.BEST_FIT, 20, None) is None


def test_without_free_busy_the_best_ranked_room_is_chosen_and_the_reason_says_so() -> None:
    """free=None (allowConflicts, or Graph could not tell): the first ranked room, checked again later."""
    chosen = pick_room(ROOMS, RoomChoice.BEST_FIT, 2, None)
    assert chosen is not None and chosen.address == "small@x.test" and "not read" in chosen.reason


def test_the_least_loaded_free_host_is_chosen() -> None:
    """The free candidate with the fewest sessions around the slot wins; a busy one is never chosen."""
    loads = {"h1": Load(3), "h2": Load(1), "h3": Load(0)}
    chosen = pick_host(HOSTS, loads, AT, {"h1@x.test", "h2@x.test"})
    assert chosen is not None and chosen.user_id == "h2"
    assert "(1; the other free candidates 3)" in chosen.reason


def test_ties_go_to_the_host_booked_least_recently() -> None:
    """Equal loads: the candidate whose newest booking is oldest goes next (round robin)."""
    loads = {"h1": Load(1, AT - timedelta(hours=1)), "h2": Load(1, AT - timedelta(days=3)),
             "h3": Load(1, AT - timedelta(minutes=5))}
    chosen = pick_host(HOSTS, loads, AT, None)
    assert chosen is not None and chosen.user_id == "h2" and "booked least recently" in chosen.reason


def test_never_booked_ties_are_broken_by_a_deterministic_hash_of_the_slot() -> None:
    """Without history the same slot always gives the same host; different slots spread over the pool."""
    first = [pick_host(HOSTS, {}, AT + timedelta(hours=n), None) for n in range(300)]
    again = [pick_host(HOSTS, {}, AT + timedelta(hours=n), None) for n in range(300)]
    assert [c.user_id for c in first if c] == [c.user_id for c in again if c]
    counts = Counter(c.user_id for c in first if c)
    assert set(counts) == {"h1", "h2", "h3"} and min(counts.values()) > 60  # no candidate wins every tie
    assert first[0] is not None and "hash of the slot" in first[0].reason


def test_no_free_host_means_no_choice() -> None:
    """When every candidate is busy the rules choose nobody (the caller answers slot_taken)."""
    assert pick_host(HOSTS, {}, AT, set()) is None
    assert pick_room(ROOMS, RoomChoice.FIRST, None, set()) is None


def test_load_counts_sessions_within_the_window_on_both_sides_of_the_slot() -> None:
    """Sessions starting within 14 days before or after the slot count; older or later ones do not."""
    created = AT - timedelta(days=20)
    history = [(AT - LOAD_WINDOW - timedelta(minutes=1), created), (AT - LOAD_WINDOW, created),
               (AT + LOAD_WINDOW - timedelta(minutes=1), AT), (AT + LOAD_WINDOW, AT + timedelta(days=1))]
    load = load_at(history, AT)
    assert load.count == 2 and load.last_booked == AT


@given(st.lists(st.integers(min_value=0, max_value=5), min_size=3, max_size=3),
       st.integers(min_value=0, max_value=10_000))
def test_round_robin_by_load_keeps_hosts_within_one_of_each_other(initial: list[int], seed: int) -> None:
    """Booking one session at a time with the least-loaded host evens the counts out and keeps them even."""
    counts = dict(zip(["h1", "h2", "h3"], initial, strict=True))
    for n in range(30 + max(initial) * 3):
        at = AT + timedelta(minutes=30 * (n + seed))
        [chosen, *_] = rank_hosts(HOSTS, {k: Load(v) for k, v in counts.items()}, at)
        counts[chosen.user_id] += 1
    assert max(counts.values()) - min(counts.values()) <= 1
