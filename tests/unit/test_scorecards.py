"""The scorecard rules: custody spans, attribution of excursions, seals, gaps and receipts."""

from __future__ import annotations

import pytest

from coldchain.domain.scorecards import (
    Interval,
    Link,
    ReceiptDecision,
    ShipmentHistory,
    Span,
    custodian_at,
    custody_gaps,
    custody_spans,
    fraction,
    overlap_us,
    party_shares,
    per_hundred,
)
from coldchain.reports.scorecards import COLUMNS, scorecard_frame, scorecard_rows
from coldchain.services.scorecards import Party, ScorecardFacts

S = 1_000_000  # microseconds in a second


def history(**changes: object) -> ShipmentHistory:
    fields: dict[str, object] = {
        "shipment_id": 1,
        "origin_site": "MFG-1",
        "monitoring_from_us": 0,
        "monitoring_until_us": 1000 * S,
        "logger_count": 1,
        "links": (
            Link(1, "MFG-1", "alice", 100 * S),
            Link(2, "alice", "bob", 400 * S),
            Link(3, "bob", "TC-1", 700 * S),
        ),
    }
    fields.update(changes)
    return ShipmentHistory(**fields)  # type: ignore[arg-type]


def test_custody_runs_from_the_origin_through_each_handoff_to_the_end_of_monitoring() -> None:
    assert custody_spans(history(), now_us=5000 * S) == [
        Span("MFG-1", 0, 100 * S),
        Span("alice", 100 * S, 400 * S),
        Span("bob", 400 * S, 700 * S),
        Span("TC-1", 700 * S, 1000 * S),
    ]


def test_the_last_holder_of_a_shipment_still_watched_holds_it_until_now() -> None:
    spans = custody_spans(history(monitoring_until_us=None), now_us=900 * S)
    assert spans[-1] == Span("TC-1", 700 * S, 900 * S)


def test_a_shipment_never_handed_over_is_the_origins_alone() -> None:
    assert custody_spans(history(links=()), now_us=0) == [Span("MFG-1", 0, 1000 * S)]


def test_a_moment_belongs_to_whoever_took_custody_last_before_it() -> None:
    spans = custody_spans(history(), now_us=0)
    assert [custodian_at(spans, t * S) for t in (0, 99, 100, 399, 400, 999)] == [
        "MFG-1",
        "MFG-1",
        "alice",
        "alice",
        "bob",
        "TC-1",
    ]


def test_an_excursion_across_a_handoff_is_split_between_the_two_holders() -> None:
    spans = custody_spans(history(), now_us=0)
    assert overlap_us(spans, 350 * S, 460 * S) == {"alice": 50 * S, "bob": 60 * S}


def test_an_excursion_counts_once_for_the_holder_when_it_started_and_its_time_is_shared() -> None:
    excursions = (
        Interval("HIGH", 350 * S, 460 * S),
        Interval("SIGNAL_LOSS", 10 * S, 130 * S),
        Interval("LOW", 800 * S, 860 * S),
    )
    shares = {s.party: s for s in party_shares(history(excursions=excursions), now_us=0)}
    assert shares["alice"].excursions == {"HIGH": 1, "LOW": 0, "SIGNAL_LOSS": 0}
    assert shares["bob"].excursions == {"HIGH": 0, "LOW": 0, "SIGNAL_LOSS": 0}
    assert (shares["alice"].out_of_range_us, shares["bob"].out_of_range_us) == (50 * S, 60 * S)
    # The loss started at the origin (90 s there) and ran 30 s into alice's custody.
    assert shares["MFG-1"].excursions["SIGNAL_LOSS"] == 1
    assert (shares["MFG-1"].signal_lost_us, shares["alice"].signal_lost_us) == (90 * S, 30 * S)
    assert shares["TC-1"].excursions["LOW"] == 1 and shares["TC-1"].out_of_range_us == 60 * S


def test_monitored_logger_time_is_custody_time_times_the_loggers() -> None:
    shares = {s.party: s for s in party_shares(history(logger_count=2), now_us=0)}
    assert shares["alice"].custody_us == 300 * S
    assert shares["alice"].monitored_logger_us == 600 * S


def test_a_seal_change_is_charged_to_the_party_that_handed_over_the_new_seal() -> None:
    links = (
        Link(1, "MFG-1", "alice", 100 * S),
        Link(2, "alice", "bob", 400 * S, seal_changed=True),
    )
    shares = {s.party: s for s in party_shares(history(links=links), now_us=0)}
    assert {p: s.seal_changes for p, s in shares.items()} == {"MFG-1": 0, "alice": 1, "bob": 0}


def test_a_chain_break_or_a_handoff_back_in_time_is_a_custody_gap_of_the_expected_holder() -> None:
    links = (
        Link(1, "MFG-1", "alice", 100 * S),
        Link(2, "bob", "carol", 200 * S),  # alice held it: bob cannot hand it over
        Link(3, "carol", "TC-1", 150 * S),  # earlier than the handoff before it
    )
    assert custody_gaps("MFG-1", links) == ["alice", "carol"]
    assert custody_gaps("MFG-1", history().links) == []


def test_a_rejection_counts_for_the_receiving_site_and_for_every_party_that_shipped_it() -> None:
    receipts = (
        ReceiptDecision("quarantine", "TC-1", 800 * S),
        ReceiptDecision("reject", "TC-1", 900 * S),
    )
    shares = {s.party: s for s in party_shares(history(receipts=receipts), now_us=0)}
    received = shares["TC-1"]
    assert (received.rejections_received, received.quarantines_received) == (1, 1)
    assert (received.rejections_shipped, received.quarantines_shipped) == (0, 0)
    for party in ("MFG-1", "alice", "bob"):
        assert (shares[party].rejections_shipped, shares[party].quarantines_shipped) == (1, 1)
        assert shares[party].rejections_received == 0
    # Door to door: first handoff (100 s) to the first receipt decision (800 s).
    assert {s.door_to_door_us for s in shares.values()} == {700 * S}


def test_rates_are_undefined_without_shipments_or_monitored_time() -> None:
    assert per_hundred(1, 3) == pytest.approx(33.333333)
    assert per_hundred(0, 0) is None
    assert fraction(1, 4) == 0.25 and fraction(1, 0) is None


def test_the_frame_adds_up_shares_per_party_and_keeps_parties_with_no_shipments() -> None:
    first = history(
        excursions=(Interval("HIGH", 150 * S, 270 * S),),
        receipts=(ReceiptDecision("accept", "TC-1", 1000 * S),),
    )
    second = history(shipment_id=2, links=(Link(1, "MFG-1", "alice", 100 * S),))
    shares = party_shares(first, now_us=0) + party_shares(second, now_us=0)
    facts = ScorecardFacts(
        parties=[
            Party("MFG-1", "site", "manufacturing", "Manufacturing"),
            Party("TC-2", "site", "treatment", "Clinic 2"),
            Party("alice", "courier", None, "Alice"),
            Party("bob", "courier", None, "Bob"),
        ],
        shares=shares,
        now_us=0,
    )
    rows = {r["party"]: r for r in scorecard_rows(scorecard_frame(facts))}
    assert list(rows) == ["MFG-1", "TC-2", "alice", "bob"]
    assert list(rows["alice"]) == list(COLUMNS)
    alice = rows["alice"]
    assert (alice["shipments"], alice["high_excursions"], alice["high_per_100"]) == (2, 1, 50.0)
    assert alice["minutes_out_of_range"] == 2.0  # 150 s to 270 s
    # Custody: 300 s of the first shipment, 900 s of the second (never handed on).
    assert alice["custody_hours"] == pytest.approx(1200 / 3600)
    assert alice["median_door_to_door_h"] == pytest.approx(900 / 3600)  # the first one only
    assert rows["TC-2"]["shipments"] == 0 and rows["TC-2"]["high_per_100"] is None
    assert rows["TC-2"]["median_door_to_door_h"] is None
    assert type(rows["MFG-1"]["shipments"]) is int
    couriers = scorecard_rows(scorecard_frame(facts, "courier"))
    assert [r["party"] for r in couriers] == ["alice", "bob"]


def test_an_excursion_timed_ahead_of_now_still_belongs_to_the_current_holder() -> None:
    ahead = history(monitoring_until_us=None, excursions=(Interval("HIGH", 720 * S, 840 * S),))
    shares = {s.party: s for s in party_shares(ahead, now_us=750 * S)}
    assert shares["TC-1"].out_of_range_us == 120 * S and shares["TC-1"].custody_us == 140 * S


def test_a_scorecard_with_no_party_is_an_empty_table_with_its_columns() -> None:
    frame = scorecard_frame(ScorecardFacts(parties=[], shares=[], now_us=0))
    assert list(frame.columns) == list(COLUMNS) and scorecard_rows(frame) == []
