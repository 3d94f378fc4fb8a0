"""Read models of the web pages: the coordinator's board and a shipment's chart."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from coldchain.domain.lifecycle import FINISHED
from coldchain.domain.profiles import Profile
from coldchain.services.accounts import Principal
from coldchain.services.shipments import visible, visible_shipments
from coldchain.services.timefmt import now_us, rfc3339, to_us
from coldchain.store.models import Excursion, Logger, Reading, Shipment, ShipmentLogger
from coldchain.store.readings import chart_buckets


def board(*, sessions: sessionmaker[Session], principal: Principal) -> list[dict[str, Any]]:
    """Every active shipment the caller may see, with what a coordinator watches."""
    now = now_us()
    query = (
        visible_shipments(principal)
        .where(Shipment.status.not_in([str(s) for s in FINISHED]))
        .order_by(Shipment.id.desc())
    )
    rows = []
    with sessions() as session:
        for shipment in session.scalars(query):
            loggers = [link.logger_id for link in shipment.loggers]
            latest = _latest(session, loggers, "temp", to_us(shipment.monitoring_from))
            battery = _latest(session, loggers, "batt", None)
            open_excursions = session.scalar(
                select(func.count())
                .select_from(Excursion)
                .where(Excursion.shipment_id == shipment.id, Excursion.status == "OPEN")
            )
            presence = [
                {"id": row.id, "online": row.online, "since": rfc3339(row.status_at)}
                for row in session.scalars(select(Logger).where(Logger.id.in_(loggers)))
            ]
            rows.append(
                {
                    "id": shipment.id,
                    "coi": shipment.coi,
                    "status": shipment.status,
                    "holder": shipment.holder,
                    "profile": shipment.profile,
                    "origin_site": shipment.origin_site_id,
                    "destination_site": shipment.destination_site_id,
                    "loggers": presence,
                    "last_temp_c": None if latest is None else latest.value,
                    "last_reading_at": None if latest is None else rfc3339(latest.time_us),
                    "last_reading_age_s": None
                    if latest is None
                    else round((now - latest.time_us) / 1e6),
                    "battery_pct": None if battery is None else battery.value,
                    "open_excursions": open_excursions or 0,
                }
            )
    return rows


def _latest(
    session: Session, loggers: list[str], name: str, since_us: int | None
) -> Reading | None:
    query = select(Reading).where(Reading.logger_id.in_(loggers), Reading.name == name)
    if since_us is not None:
        query = query.where(Reading.time_us >= since_us)
    return session.scalars(query.order_by(Reading.time_us.desc()).limit(1)).first()


def chart(
    *,
    sessions: sessionmaker[Session],
    shipment_id: int,
    principal: Principal,
    profiles: Mapping[str, Profile],
    max_points: int = 1500,
) -> dict[str, Any]:
    """The journey's temperatures for a chart: min and max per time bucket, so that a spike
    survives downsampling; with the profile's limits, the excursions and the handoffs."""
    from coldchain.services.custody import custody_view

    with sessions() as session:
        shipment = visible(session, shipment_id, principal)
        start = to_us(shipment.monitoring_from)
        end = to_us(shipment.monitoring_until) if shipment.monitoring_until else now_us()
        loggers = session.scalars(
            select(ShipmentLogger.logger_id).where(ShipmentLogger.shipment_id == shipment.id)
        ).all()
        bucket_us = max(1, (end - start) // max_points)
        rows = [
            (first_us, low, high)
            for _i, first_us, low, high in chart_buckets(
                session.connection(), loggers, start, end, bucket_us
            )
        ]
        excursions = session.scalars(
            select(Excursion).where(Excursion.shipment_id == shipment.id).order_by(Excursion.id)
        ).all()
        steps = custody_view(session, shipment)["custody"]
        profile = profiles.get(shipment.profile)
        return {
            "t": [row[0] / 1e6 for row in rows],
            "min": [row[1] for row in rows],
            "max": [row[2] for row in rows],
            "limits": {
                "min_c": None if profile is None else profile.min_c,
                "max_c": None if profile is None else profile.max_c,
            },
            "excursions": [
                {
                    "kind": e.kind,
                    "from": e.started_us / 1e6,
                    "to": (e.ended_us / 1e6) if e.ended_us is not None else end / 1e6,
                    "open": e.ended_us is None,
                }
                for e in excursions
                if e.resolution != "retracted"
            ],
            "handoffs": [{"at": step["at"], "to": step["to_party"]} for step in steps],
        }
