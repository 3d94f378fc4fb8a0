"""Read what the scorecards of sites and couriers need, and attribute it through custody."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from coldchain.domain import scorecards as rules
from coldchain.domain.errors import PermissionDeniedError
from coldchain.domain.roles import Role
from coldchain.services.accounts import Principal
from coldchain.services.shipments import WITHDRAWN
from coldchain.services.timefmt import now_us as wall_clock_us
from coldchain.services.timefmt import to_us
from coldchain.store.models import (
    Excursion,
    Handoff,
    Receipt,
    Shipment,
    ShipmentLogger,
    Site,
    User,
)

# Scorecards compare sites and couriers with each other: a clinic or a courier would see
# its competitors' and partners' quality records, so only central roles read them.
READERS = frozenset({Role.ADMIN, Role.COORDINATOR, Role.QA, Role.AUDITOR})
SITE, COURIER = "site", "courier"


@dataclass(frozen=True)
class Party:
    """A party a scorecard is about: a site, or a courier named in a handoff."""

    party: str
    party_type: str  # site | courier
    site_kind: str | None
    name: str


@dataclass(frozen=True)
class ScorecardFacts:
    """Every party of the span and each party's share of each shipment it handled."""

    parties: list[Party]
    shares: list[rules.PartyShare]
    now_us: int


def scorecard_facts(
    *,
    sessions: sessionmaker[Session],
    principal: Principal,
    since: datetime | None,
    until: datetime | None,
    now_us: int | None = None,
) -> ScorecardFacts:
    """Read the shipments created in `[since, until)` and attribute them to their parties."""
    if principal.role not in READERS:
        raise PermissionDeniedError(f"role {principal.role} may not read scorecards")
    now = wall_clock_us() if now_us is None else now_us
    chosen = select(Shipment.id)
    if since is not None:
        chosen = chosen.where(Shipment.created_at >= since)
    if until is not None:
        chosen = chosen.where(Shipment.created_at < until)
    with sessions() as session:
        histories = _histories(session, chosen, now)
        shares = [share for h in histories for share in rules.party_shares(h, now_us=now)]
        sites = session.scalars(select(Site).order_by(Site.id)).all()
        site_ids = {site.id for site in sites}
        courier_ids = sorted({s.party for s in shares} - site_ids)
        names = {
            username: full_name
            for username, full_name in session.execute(
                select(User.username, User.full_name).where(User.username.in_(courier_ids))
            )
        }
    parties = [Party(site.id, SITE, site.kind, site.name) for site in sites]
    parties += [Party(c, COURIER, None, names.get(c, c)) for c in courier_ids]
    return ScorecardFacts(parties=parties, shares=shares, now_us=now)


def _histories(session: Session, chosen: Select[Any], now: int) -> list[rules.ShipmentHistory]:
    """Load the chosen shipments with their handoffs, receipts, excursions and logger counts."""
    ids = chosen.scalar_subquery()
    links: dict[int, list[rules.Link]] = defaultdict(list)
    for h in session.scalars(select(Handoff).where(Handoff.shipment_id.in_(ids))):
        links[h.shipment_id].append(
            rules.Link(
                h.seq, h.from_party, h.to_party, to_us(h.at), h.seal_changed_from is not None
            )
        )
    receipts: dict[int, list[rules.ReceiptDecision]] = defaultdict(list)
    for r in session.scalars(select(Receipt).where(Receipt.shipment_id.in_(ids))):
        receipts[r.shipment_id].append(rules.ReceiptDecision(r.decision, r.site_id, to_us(r.at)))
    excursions: dict[int, list[rules.Interval]] = defaultdict(list)
    for e in session.scalars(
        select(Excursion).where(
            Excursion.shipment_id.in_(ids),
            or_(Excursion.resolution.is_(None), Excursion.resolution.not_in(WITHDRAWN)),
        )
    ):
        excursions[e.shipment_id].append(rules.Interval(e.kind, e.started_us, _end_us(e, now)))
    loggers = {
        shipment_id: int(count)
        for shipment_id, count in session.execute(
            select(ShipmentLogger.shipment_id, func.count())
            .where(ShipmentLogger.shipment_id.in_(ids))
            .group_by(ShipmentLogger.shipment_id)
        )
    }
    shipments = session.execute(
        select(
            Shipment.id,
            Shipment.origin_site_id,
            Shipment.monitoring_from,
            Shipment.monitoring_until,
        )
        .where(Shipment.id.in_(ids))
        .order_by(Shipment.id)
    )
    return [
        rules.ShipmentHistory(
            shipment_id=shipment_id,
            origin_site=origin,
            monitoring_from_us=to_us(watch_from),
            monitoring_until_us=None if watch_until is None else to_us(watch_until),
            logger_count=int(loggers.get(shipment_id, 0)),
            links=links[shipment_id],
            excursions=excursions[shipment_id],
            receipts=receipts[shipment_id],
        )
        for shipment_id, origin, watch_from, watch_until in shipments
    ]


def _end_us(excursion: Excursion, now: int) -> int:
    """An excursion's end: closed, where it ended; open, its latest reading (a loss: now)."""
    if excursion.ended_us is not None:
        return excursion.ended_us
    if excursion.kind == rules.SIGNAL_LOSS:
        return max(now, excursion.started_us)
    return excursion.started_us + round(excursion.duration_s * rules.US_PER_S)
