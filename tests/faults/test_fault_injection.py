"""Fault injection on the local stack, small size (the full size: ``python -m tests.faults.run``).

20 bookings and 20 Outlook-side changes while Graph throttles 30 % of requests (429 with
Retry-After), fails 5 % (503), spikes latency and goes down for 10 s, every notification
arrives twice, Azurite is stopped and started and the host process is SIGKILLed twice
with work in flight (see ``tests/faults/scenario.py`` for the timeline). Then two
bookings Outlook refuses for good (organizers outside the app's scope) must fail visibly.
The product's webhook receiver flaps (30 % 5xx) and is down once for 15 s meanwhile.
Two weekly series (4 weeks each) are booked with the first sessions (the host kill meets their
writes in flight) and each gets a decline and a move of one occurrence in Outlook.
"""

from __future__ import annotations

import pytest

from tests.faults.scenario import FaultPlan, Report, run_scenario

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """One small run for the whole module (it takes a few minutes)."""
    work = tmp_path_factory.mktemp("faults")
    try:
        result = run_scenario(FaultPlan(), progress=print, work=work)
    except RuntimeError as exc:
        if "Azurite" in str(exc):
            pytest.skip(f"Azurite not available: {exc}")
        raise
    print("\n".join(result.lines()))
    return result


def test_every_session_ends_in_its_expected_state(report: Report) -> None:
    """Every booking is booked and every Outlook move, cancel and answer shows on its session: nothing lost."""
    assert report.lost == []
    assert report.settled_booked == report.bookings


def test_no_event_is_duplicated(report: Report) -> None:
    """One event per session (one master per series) in the organizer's calendar and one copy in the partner's,
    despite retries and kills."""
    assert report.duplicates == 0


def test_series_keep_every_occurrence_change(report: Report) -> None:
    """Both series booked through the kill, each occurrence where Outlook has it, the decline and the move kept."""
    assert report.series == 2 and report.series_occurrences == 8
    assert not [x for x in report.lost if x.startswith("series ")]


def test_faults_really_happened(report: Report) -> None:
    """The run met throttling, server errors, two host kills and an Azurite restart (so the above means something)."""
    assert report.graph_status.get(429, 0) > 0 and report.graph_status.get(503, 0) > 0
    assert report.host_kills == 2 and report.azurite_restarts == 1


def test_failures_are_visible_as_failed_sessions_and_one_alert_per_kind(report: Report) -> None:
    """Bookings Outlook refused end failed, and the owner got exactly one alert of each kind."""
    assert report.doomed_failed == report.doomed_expected
    assert report.alerts.get("11111111-1111-4111-8111-111111111111:session_failed") == 1
    assert all(count == 1 for count in report.alerts.values()), report.alerts


def test_host_logs_hold_no_subject_and_no_token(report: Report) -> None:
    """The host process never logged a session subject or a token, even while failing."""
    assert report.log_leaks == 0


def test_the_product_hears_every_event_in_order_despite_a_flapping_receiver(report: Report) -> None:
    """Every session event reached the flapping receiver (0 lost), in version order per session, duplicates
    only as the same webhook-id, each session's newest event showing its final state; it really flapped."""
    product = report.product
    assert product.produced > 0 and product.lost == []
    assert product.foreign_duplicates == 0 and product.order_violations == [] and product.stale == []
    assert product.bad_signatures == 0
    assert product.flapped > 0 and product.outages == 1
