"""A shipment's timeline: creation, excursions (by reading time), handoffs, receipts, signatures."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from coldchain.services.accounts import Principal
from coldchain.services.custody import custody_view, excursion_detail
from coldchain.services.shipments import visible
from coldchain.services.timefmt import rfc3339
from coldchain.store.models import AuditEvent, Excursion, User


def shipment_history(
    *, sessions: sessionmaker[Session], shipment_id: int, principal: Principal
) -> list[dict[str, Any]]:
    """Every step of a shipment's journey in time order.

    Excursions are placed at the reading times that started and ended them (not when the
    server learnt of them: a backfill can reveal an excursion hours later); handoffs,
    receipts and dispositions carry their signatures.
    """
    with sessions() as session:
        shipment = visible(session, shipment_id, principal)
        creator = session.get(User, shipment.created_by) if shipment.created_by else None
        items: list[dict[str, Any]] = [
            {
                "at": rfc3339(shipment.created_at),
                "type": "created",
                "actor": creator.username if creator else None,
                "coi": shipment.coi,
                "origin_site": shipment.origin_site_id,
                "destination_site": shipment.destination_site_id,
                "seal_id": shipment.seal_id,
            }
        ]
        chain = custody_view(session, shipment)
        items += [{"type": "handoff", **link} for link in chain["custody"]]
        items += [{"type": "receipt", **receipt} for receipt in chain["receipts"]]
        for row in session.scalars(
            select(Excursion).where(Excursion.shipment_id == shipment.id).order_by(Excursion.id)
        ):
            items += _excursion_steps(session, row)
        items += _cancellations(session, shipment.id)
    # Stable: steps at the same instant keep the order they were added in.
    return sorted(items, key=lambda item: item["at"] or "")


def _excursion_steps(session: Session, row: Excursion) -> list[dict[str, Any]]:
    detail = excursion_detail(session, row)
    common = {"excursion_id": row.id, "logger_id": row.logger_id, "kind": row.kind}
    steps = [{"at": detail["started_at"], "type": "excursion.started", **common}]
    if detail["ended_at"] is not None:
        steps.append(
            {
                "at": detail["ended_at"],
                "type": "excursion.ended",
                **common,
                "peak_c": detail["peak_c"],
                "duration_s": detail["duration_s"],
                "resolution": detail["resolution"],
            }
        )
    steps += [
        {"type": "excursion.disposition", **common, **disposition}
        for disposition in detail["dispositions"]
    ]
    return steps


def _cancellations(session: Session, shipment_id: int) -> list[dict[str, Any]]:
    events = session.scalars(
        select(AuditEvent)
        .where(
            AuditEvent.entity == "shipment",
            AuditEvent.entity_id == str(shipment_id),
            AuditEvent.action == "shipment.cancel",
        )
        .order_by(AuditEvent.seq)
    )
    return [
        {
            "at": rfc3339(e.at),
            "type": "cancelled",
            "actor": e.actor,
            "reason": e.reason,
            "audit_seq": e.seq,
            "changes": json.loads(e.new_values or "{}"),
        }
        for e in events
    ]
