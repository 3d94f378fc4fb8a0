"""Seeding a benchmark database through the services: loggers, shipments, their cancelling.

Loggers are registered, and shipments created and cancelled, by the services' own code (each
step audited), acting as the coordinator seeded in the template database (bench/servers.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime

from bench.servers import World, settings_for
from coldchain.domain.identity import mod37_2_check_character
from coldchain.services import accounts, custody, shipments
from coldchain.services.accounts import Principal
from coldchain.store.engine import make_engine, make_sessions

_serials = itertools.count(1)


def make_coi() -> str:
    """A valid COI not used before in this run."""
    din = f"B1234{26}{next(_serials):06d}"
    return din + mod37_2_check_character(din)


def coordinator(url: str, world: World) -> Principal:
    engine = make_engine(url)
    try:
        principal = accounts.principal_for_token(
            sessions=make_sessions(engine), token=world.coordinator_token
        )
    finally:
        engine.dispose()
    assert principal is not None
    return principal


def register_loggers(url: str, logger_ids: Sequence[str]) -> None:
    """Register loggers through the service (each audited)."""
    engine = make_engine(url)
    sessions = make_sessions(engine)
    try:
        for logger_id in logger_ids:
            accounts.add_logger(sessions=sessions, logger_id=logger_id)
    finally:
        engine.dispose()


def create_shipments(
    url: str, world: World, groups: Sequence[Sequence[str]], monitoring_from: datetime
) -> list[int]:
    """Create one LN2_VAPOR shipment per group of loggers through the service; return ids.

    The service re-evaluates the readings already in the window: that is how bulk-loaded
    readings get their excursions, by the code the worker runs.
    """
    settings = settings_for(url)
    creator = coordinator(url, world)
    engine = make_engine(url)
    sessions = make_sessions(engine)
    ids = []
    try:
        for n, group in enumerate(groups):
            created = shipments.create_shipment(
                sessions=sessions,
                creator=creator,
                profiles=settings.profiles,
                secret_key=settings.secret_key,
                request=shipments.NewShipment(
                    coi=make_coi(),
                    profile="LN2_VAPOR",
                    origin_site="MFG",
                    destination_site="TC",
                    loggers=list(group),
                    patient={"id": f"bench-{n}"},
                    monitoring_from=monitoring_from,
                ),
            )
            ids.append(int(created["id"]))
    finally:
        engine.dispose()
    return ids


def cancel_shipments(url: str, world: World, shipment_ids: Sequence[int]) -> None:
    """Cancel shipments through the service: their loggers stop being monitored."""
    creator = coordinator(url, world)
    engine = make_engine(url)
    sessions = make_sessions(engine)
    try:
        for shipment_id in shipment_ids:
            detail = shipments.get_shipment(
                sessions=sessions, shipment_id=shipment_id, principal=creator
            )
            custody.cancel_shipment(
                sessions=sessions,
                shipment_id=shipment_id,
                principal=creator,
                version=int(detail["version"]),
                reason="benchmark shipment: monitoring ends here",
            )
    finally:
        engine.dispose()
