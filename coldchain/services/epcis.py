"""GS1 EPCIS 2.0 export of a shipment, or of every leg of a COI, within the caller's scope."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from coldchain.domain import epcis
from coldchain.services.accounts import Principal
from coldchain.services.shipments import WITHDRAWN, visible, visible_legs
from coldchain.services.timefmt import from_us, to_us
from coldchain.store.models import (
    AuditEvent,
    Excursion,
    Handoff,
    Reading,
    Receipt,
    Shipment,
    ShipmentLogger,
    Site,
    utcnow,
)


def shipment_epcis(
    *, sessions: sessionmaker[Session], shipment_id: int, principal: Principal, base_uri: str
) -> dict[str, Any]:
    """Return the EPCIS document of one shipment the caller may see (else NotFoundError)."""
    with sessions() as session:
        facts = leg_facts(session, visible(session, shipment_id, principal))
    return epcis.epcis_document([facts], base_uri=base_uri, created=utcnow())


def coi_epcis(
    *, sessions: sessionmaker[Session], coi: str, principal: Principal, base_uri: str
) -> dict[str, Any]:
    """Return one EPCIS document of every leg of a COI the caller may see, oldest first."""
    with sessions() as session:
        _canonical, legs = visible_legs(session, coi, principal)
        facts = [leg_facts(session, leg) for leg in legs]
    return epcis.epcis_document(facts, base_uri=base_uri, created=utcnow())


def leg_facts(session: Session, shipment: Shipment) -> epcis.LegFacts:
    """Read what the export says about one shipment: custody, receipts, temperatures."""
    handoffs = list(
        session.scalars(
            select(Handoff).where(Handoff.shipment_id == shipment.id).order_by(Handoff.seq)
        )
    )
    parties = {h.from_party for h in handoffs} | {h.to_party for h in handoffs}
    sites = set(session.scalars(select(Site.id).where(Site.id.in_(parties)))) if parties else set()
    receipts = list(
        session.scalars(
            select(Receipt).where(Receipt.shipment_id == shipment.id).order_by(Receipt.id)
        )
    )
    excursions = session.scalars(
        select(Excursion)
        .where(Excursion.shipment_id == shipment.id)
        .order_by(Excursion.started_us, Excursion.id)
    )
    cancelled = session.scalar(
        select(func.min(AuditEvent.at)).where(
            AuditEvent.entity == "shipment",
            AuditEvent.entity_id == str(shipment.id),
            AuditEvent.action == "shipment.cancel",
        )
    )
    return epcis.LegFacts(
        shipment_id=shipment.id,
        coi=shipment.coi,
        leg=shipment.leg,
        profile=shipment.profile,
        origin_site=shipment.origin_site_id,
        created_at=shipment.created_at,
        handoffs=tuple(
            epcis.HandoffFact(
                at=h.at,
                from_party=h.from_party,
                to_party=h.to_party,
                from_site=h.from_party in sites,
                to_site=h.to_party in sites,
            )
            for h in handoffs
        ),
        receipts=tuple(
            epcis.ReceiptFact(
                at=r.at,
                site_id=r.site_id,
                decision=r.decision,
                summaries=temperature_summaries(session, shipment, until=r.at),
            )
            for r in receipts
        ),
        excursions=tuple(
            epcis.ExcursionFact(
                kind=e.kind,
                logger_id=e.logger_id,
                started=from_us(e.started_us),
                ended=None if e.ended_us is None else from_us(e.ended_us),
                peak_c=e.peak_c,
            )
            for e in excursions
            # Late readings showed these were no excursion: nothing to report.
            if e.resolution not in WITHDRAWN
        ),
        open_summaries=() if receipts else temperature_summaries(session, shipment, until=None),
        cancelled_at=cancelled,
    )


def temperature_summaries(
    session: Session, shipment: Shipment, *, until: datetime | None
) -> tuple[epcis.TemperatureSummary, ...]:
    """Each logger's min, max and mean temperature in the monitoring window up to a time."""
    end = shipment.monitoring_until
    if until is not None and (end is None or until < end):
        end = until
    query = (
        select(
            Reading.logger_id,
            func.min(Reading.time_us),
            func.max(Reading.time_us),
            func.min(Reading.value),
            func.max(Reading.value),
            func.avg(Reading.value),
        )
        .where(
            Reading.logger_id.in_(
                select(ShipmentLogger.logger_id).where(ShipmentLogger.shipment_id == shipment.id)
            ),
            Reading.name == "temp",
            Reading.time_us >= to_us(shipment.monitoring_from),
        )
        .group_by(Reading.logger_id)
        .order_by(Reading.logger_id)
    )
    if end is not None:
        query = query.where(Reading.time_us <= to_us(end))
    return tuple(
        epcis.TemperatureSummary(
            logger_id=logger_id,
            first=from_us(first),
            last=from_us(last),
            min_c=float(low),
            max_c=float(high),
            mean_c=float(mean),
        )
        for logger_id, first, last, low, high, mean in session.execute(query)
    )
