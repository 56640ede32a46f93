"""Slot re-check: free/busy of exactly the session's times, and the organizer's slot claims (ETag rows)."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

import pytest

from core.domain.calendar import FreeBusyStatus, GraphIdentity
from core.domain.errors import SlotTaken
from core.names import Tables
from core.services.slot_guard import GRACE, SlotClaims, busy_addresses
from core.services.stores.sessions import SessionRepository
from core.services.stores.slot_claims import claim_days
from tests.unit.test_booking_support import ALICE, ALICE_ID, BOB, END, ROOM, START, TENANT, World

WHO = GraphIdentity(TENANT)


def test_busy_addresses_reads_everyone_in_one_getschedule() -> None:
    """Organizer, partner and room are checked by one call; only overlapping blocking items count."""
    w = World()
    w.graph.add_busy(TENANT, BOB, START + timedelta(minutes=30), END + timedelta(hours=1))
    w.graph.add_busy(TENANT, ALICE, END, END + timedelta(hours=1))  # touches, does not overlap
    w.graph.add_busy(TENANT, ROOM, START, END, FreeBusyStatus.FREE)  # shown as free: no clash
    w.graph.reset_calls()
    assert busy_addresses(w.graph, WHO, ALICE_ID, [ALICE, BOB, ROOM], start=START, end=END) == [BOB]
    assert w.graph.call_count("get_schedule") == 1


def test_tentative_and_out_of_office_block_like_the_slot_engine() -> None:
    """A tentative or out-of-office item is a clash, as it is for free-slot search."""
    w = World()
    w.graph.add_busy(TENANT, ALICE, START, END, FreeBusyStatus.TENTATIVE)
    w.graph.add_busy(TENANT, BOB, START, END, FreeBusyStatus.OOF)
    assert busy_addresses(w.graph, WHO, ALICE_ID, [ALICE, BOB], start=START, end=END) == [ALICE, BOB]


def test_a_moved_session_ignores_one_item_at_its_own_old_times() -> None:
    """Moving by 15 minutes clashes only with the session's own event, which is ignored; a second one is not."""
    w = World()
    w.graph.add_busy(TENANT, ALICE, START, END)  # the session's own event
    later = (START + timedelta(minutes=15), END + timedelta(minutes=15))
    assert busy_addresses(w.graph, WHO, ALICE_ID, [ALICE], start=later[0], end=later[1], ignore=(START, END)) == []
    w.graph.add_busy(TENANT, ALICE, START, END)  # another meeting at exactly the same times
    assert busy_addresses(w.graph, WHO, ALICE_ID, [ALICE], start=later[0], end=later[1],
                          ignore=(START, END)) == [ALICE]


def test_an_address_graph_cannot_read_does_not_count_as_busy() -> None:
    """A per-address getSchedule error is left to the write to decide."""
    w = World()
    assert busy_addresses(w.graph, WHO, ALICE_ID, [ALICE, "nobody@contoso.test"], start=START, end=END) == []


def _claims(w: World) -> SlotClaims:
    return SlotClaims(w.tables, w.clock)


def test_an_overlapping_claim_of_another_pending_booking_is_refused() -> None:
    """The second booking of the organizer's overlapping time is refused; a later, adjacent one is not."""
    w = World()
    sid = w.book()
    claims = _claims(w)
    with pytest.raises(SlotTaken):
        claims.claim(TENANT, ALICE_ID, "other", START + timedelta(minutes=30), END + timedelta(minutes=30))
    claims.claim(TENANT, ALICE_ID, "next", END, END + timedelta(minutes=30))
    claims.claim(TENANT, ALICE_ID, sid, START, END)  # a session's own claim never clashes with itself


def test_allow_conflicts_records_the_claim_without_refusing() -> None:
    """With allowConflicts the claim is written despite the overlap (others still see it)."""
    w = World()
    sid = w.book()
    _claims(w).claim(TENANT, ALICE_ID, "double", START, END, allow_conflicts=True)
    [row] = w.tables.all(Tables.SLOT_CLAIMS)
    assert sid in str(row.data["claims"]) and "double" in str(row.data["claims"])


def test_claims_of_cancelled_failed_or_moved_sessions_lapse() -> None:
    """A claim stops counting once its session is being cancelled, has failed, or moved elsewhere."""
    w = World()
    repo = SessionRepository(w.tables)
    claims = _claims(w)
    for change in ("cancel", "fail", "move"):
        sid = w.book()  # books only because the previous iteration's session let the slot go
        read = repo.require(TENANT, sid)
        if change == "cancel":
            repo.save(read.value.request_cancel(w.clock.now()), read.etag, previous=read.value)
        elif change == "fail":
            repo.save(read.value.mark_failed("x", w.clock.now()), read.etag, previous=read.value)
        else:
            moved = replace(read.value, start=START + timedelta(hours=3), end=END + timedelta(hours=3))
            repo.save(moved, read.etag, previous=read.value)
        claims.claim(TENANT, ALICE_ID, f"after-{change}", START, END)
        claims.release(TENANT, ALICE_ID, f"after-{change}", START, END)


def test_a_claim_without_its_session_holds_only_for_the_grace_period() -> None:
    """A request still in flight keeps its hold; one that died lets the slot go after a minute."""
    w = World()
    claims = _claims(w)
    claims.claim(TENANT, ALICE_ID, "in-flight", START, END)
    with pytest.raises(SlotTaken):
        claims.claim(TENANT, ALICE_ID, "second", START, END)
    w.clock.advance(seconds=GRACE.total_seconds() + 1)
    claims.claim(TENANT, ALICE_ID, "second", START, END)


def test_a_session_over_midnight_claims_both_days_and_a_clash_on_day_two_releases_day_one() -> None:
    """Every overlap shares a day row; a refusal on the second day leaves no claim on the first."""
    w = World()
    late = START.replace(hour=23, minute=30)
    assert len(claim_days(late, late + timedelta(hours=1))) == 2
    claims = _claims(w)
    claims.claim(TENANT, ALICE_ID, "early-next-day", late + timedelta(minutes=45), late + timedelta(hours=2))
    with pytest.raises(SlotTaken):
        claims.claim(TENANT, ALICE_ID, "over-midnight", late, late + timedelta(hours=1))
    assert all("over-midnight" not in str(r.data["claims"]) for r in w.tables.all(Tables.SLOT_CLAIMS))


def test_racing_claims_for_one_slot_let_exactly_one_through() -> None:
    """Eight threads claim the same organizer's slot for eight sessions: one wins (ETag-serialised rows)."""
    w = World()
    won: list[str] = []
    barrier = threading.Barrier(8)

    def one(n: int) -> None:
        barrier.wait()
        try:
            SlotClaims(w.tables, w.clock).claim(TENANT, ALICE_ID, f"s{n}", START, END)
            won.append(f"s{n}")
        except SlotTaken:
            pass

    threads = [threading.Thread(target=one, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1


def test_purge_deletes_the_rows_of_past_days_only() -> None:
    """The clean-up removes rows of days before today and keeps today's and later ones."""
    w = World()
    claims = _claims(w)
    claims.claim(TENANT, ALICE_ID, "s1", START, END)
    claims.claim(TENANT, ALICE_ID, "s2", START + timedelta(days=2), END + timedelta(days=2))
    w.clock.set(START + timedelta(days=1))
    assert claims.purge_past(TENANT) == 1
    kept = [r.row_key[:10] for r in w.tables.all(Tables.SLOT_CLAIMS)]
    assert kept == [(START + timedelta(days=2)).date().isoformat()]
