"""Scorecards of sites and couriers: who held a shipment when, and what happened meanwhile.

The custody chain says who held a shipment at every moment of its monitoring window: the
origin site from the window's start to the first handoff, then each handoff's `to_party`
until the next handoff, the last one until the window ends (receipt or cancellation) or,
while it is still watched, until now (or the end of an excursion timed ahead of now).
Everything a scorecard counts is attributed through that chain; the README's "Scorecards"
section states each rule in words.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

HIGH, LOW, SIGNAL_LOSS = "HIGH", "LOW", "SIGNAL_LOSS"
KINDS = (HIGH, LOW, SIGNAL_LOSS)
REJECT, QUARANTINE = "reject", "quarantine"
US_PER_S = 1_000_000


@dataclass(frozen=True)
class Link:
    """One handoff as a scorecard sees it."""

    seq: int
    from_party: str
    to_party: str
    at_us: int
    seal_changed: bool = False


@dataclass(frozen=True)
class Interval:
    """An excursion's time span, `[start_us, end_us)`."""

    kind: str
    start_us: int
    end_us: int


@dataclass(frozen=True)
class ReceiptDecision:
    """A receipt: the decision and the site that made it."""

    decision: str
    site_id: str
    at_us: int


@dataclass(frozen=True)
class ShipmentHistory:
    """What the scorecards need of one shipment."""

    shipment_id: int
    origin_site: str
    monitoring_from_us: int
    monitoring_until_us: int | None
    logger_count: int
    links: Sequence[Link] = ()
    excursions: Sequence[Interval] = ()
    receipts: Sequence[ReceiptDecision] = ()


@dataclass(frozen=True)
class Span:
    """A party's custody of a shipment, `[start_us, end_us)` within its monitoring window."""

    party: str
    start_us: int
    end_us: int


@dataclass
class PartyShare:
    """One party's part in one shipment: the figures a scorecard adds up."""

    shipment_id: int
    party: str
    excursions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    out_of_range_us: int = 0
    signal_lost_us: int = 0
    custody_us: int = 0
    monitored_logger_us: int = 0
    seal_changes: int = 0
    custody_gaps: int = 0
    rejections_received: int = 0
    quarantines_received: int = 0
    rejections_shipped: int = 0
    quarantines_shipped: int = 0
    door_to_door_us: int | None = None


def custody_spans(history: ShipmentHistory, *, now_us: int) -> list[Span]:
    """Return who held the shipment when, in chain order, clipped to its monitoring window."""
    watch_from = history.monitoring_from_us
    watch_until = history.monitoring_until_us
    if watch_until is None:
        # Still watched: until now, or until the latest excursion's end when a logger's clock
        # runs ahead of ours (the contract accepts readings up to max_clock_skew_s ahead).
        watch_until = max([now_us, *(e.end_us for e in history.excursions)])
    watch_until = max(watch_until, watch_from)
    links = sorted(history.links, key=lambda link: link.seq)
    holders = [(history.origin_site, watch_from)] + [(k.to_party, k.at_us) for k in links]
    spans = []
    for index, (party, start_us) in enumerate(holders):
        end_us = holders[index + 1][1] if index + 1 < len(holders) else watch_until
        start_us = min(max(start_us, watch_from), watch_until)
        end_us = min(max(end_us, start_us), watch_until)
        spans.append(Span(party, start_us, end_us))
    return spans


def custodian_at(spans: Sequence[Span], at_us: int) -> str:
    """Return the party holding the shipment at a moment (the origin before the window)."""
    holder = spans[0].party
    for span in spans:
        if span.start_us <= at_us:
            holder = span.party
    return holder


def overlap_us(spans: Iterable[Span], start_us: int, end_us: int) -> dict[str, int]:
    """Return how much of `[start_us, end_us)` each party held the shipment, in microseconds."""
    shares: dict[str, int] = {}
    for span in spans:
        common = min(end_us, span.end_us) - max(start_us, span.start_us)
        if common > 0:
            shares[span.party] = shares.get(span.party, 0) + common
    return shares


def custody_gaps(origin_site: str, links: Sequence[Link]) -> list[str]:
    """Return the party blamed for each break in the chain, in chain order.

    A break is a handoff not from the party holding the shipment (the origin before the
    first handoff), or one recorded earlier than the handoff before it. The party blamed is
    the holder the chain says should have handed over: custody is unaccounted for from it.
    coldchain refuses both when a handoff is recorded, so its own chains have none; data
    imported or altered outside it may.
    """
    blamed = []
    holder, previous_us = origin_site, None
    for link in sorted(links, key=lambda k: k.seq):
        if link.from_party != holder or (previous_us is not None and link.at_us < previous_us):
            blamed.append(holder)
        holder, previous_us = link.to_party, link.at_us
    return blamed


def door_to_door_us(history: ShipmentHistory) -> int | None:
    """Return the time from the first handoff to the first receipt decision, if both exist."""
    if not history.links or not history.receipts:
        return None
    first_link = min(history.links, key=lambda link: link.seq)
    first_receipt = min(receipt.at_us for receipt in history.receipts)
    return max(first_receipt - first_link.at_us, 0)


def party_shares(history: ShipmentHistory, *, now_us: int) -> list[PartyShare]:
    """Attribute a shipment's excursions, custody time, seals and receipts to its parties."""
    spans = custody_spans(history, now_us=now_us)
    shares: dict[str, PartyShare] = {}
    for span in spans:
        share = shares.setdefault(span.party, PartyShare(history.shipment_id, span.party))
        share.custody_us += span.end_us - span.start_us
        share.monitored_logger_us += (span.end_us - span.start_us) * history.logger_count
    for excursion in history.excursions:
        starter = shares[custodian_at(spans, excursion.start_us)]
        starter.excursions[excursion.kind] = starter.excursions.get(excursion.kind, 0) + 1
        held = overlap_us(spans, excursion.start_us, excursion.end_us)
        for party, length_us in held.items():
            if excursion.kind == SIGNAL_LOSS:
                shares[party].signal_lost_us += length_us
            else:
                shares[party].out_of_range_us += length_us
    for link in history.links:
        if link.seal_changed and link.from_party in shares:
            shares[link.from_party].seal_changes += 1
    for party in custody_gaps(history.origin_site, history.links):
        if party in shares:
            shares[party].custody_gaps += 1
    decisions = {receipt.decision for receipt in history.receipts}
    receivers = {receipt.site_id for receipt in history.receipts}
    for party, share in shares.items():
        received = party in receivers
        if REJECT in decisions:
            share.rejections_received += received
            share.rejections_shipped += not received
        if QUARANTINE in decisions:
            share.quarantines_received += received
            share.quarantines_shipped += not received
    door_to_door = door_to_door_us(history)
    for share in shares.values():
        share.door_to_door_us = door_to_door
    return list(shares.values())


def per_hundred(count: int, shipments: int) -> float | None:
    """Return a count per 100 shipments, or None when there were no shipments."""
    return None if shipments == 0 else 100 * count / shipments


def fraction(part: float, whole: float) -> float | None:
    """Return part / whole, or None when the whole is nothing."""
    return None if whole <= 0 else part / whole
