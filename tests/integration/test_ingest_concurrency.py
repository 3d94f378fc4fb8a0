"""Two workers storing readings of the same logger at once: excursions stay correct."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from coldchain.config import Settings
from coldchain.domain.senml import PackLimits
from coldchain.services import ingest
from coldchain.services.timefmt import now_us
from coldchain.store.models import Excursion
from tests.conftest import World, make_coi

BN = "urn:dev:logger:L-1:"


def pack(t0: int, values: list[float]) -> ingest.Incoming:
    records: list[dict[str, Any]] = [
        {"bn": BN, "n": "temp", "u": "Cel", "t": t0 + i, "v": v} for i, v in enumerate(values)
    ]
    return ingest.Incoming(
        "coldchain/v1/loggers/L-1/readings", json.dumps(records).encode(), now_us()
    )


def test_halves_of_one_excursion_stored_at_once_make_one_excursion(
    client: FlaskClient,
    world: World,
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    created = client.post(
        "/api/v1/shipments",
        json={
            "coi": make_coi(9),
            "profile": "LN2_VAPOR",
            "origin_site": "MFG-1",
            "destination_site": "TC-1",
            "loggers": ["L-1"],
            "patient": {"mrn": "1"},
            "monitoring_from": "2020-01-01T00:00:00Z",
        },
        headers=world.auth("coord"),
    )
    assert created.status_code == 201
    start = round(time.time()) - 600
    rounds = 12
    for r in range(rounds):
        t0 = start + 40 * r
        # Each half alone is an excursion; together they are one, from t0+5 to t0+15.
        halves = [pack(t0, [-190] * 5 + [-100] * 5), pack(t0 + 10, [-100] * 5 + [-190] * 5)]
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def store(
            message: ingest.Incoming,
            barrier: threading.Barrier = barrier,
            errors: list[BaseException] = errors,
        ) -> None:
            try:
                barrier.wait()
                ingest.store_batch(
                    sessions=sessions,
                    messages=[message],
                    profiles=settings.profiles,
                    limits=PackLimits(),
                    known=ingest.KnownLoggers(),
                    now_us=now_us(),
                )
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=store, args=(half,)) for half in halves]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
    with sessions() as session:
        found = session.execute(
            select(Excursion.kind, Excursion.started_us, Excursion.ended_us)
            .where(Excursion.resolution.is_(None))
            .order_by(Excursion.started_us)
        ).all()
    assert found == [
        ("HIGH", (start + 40 * r + 5) * 1_000_000, (start + 40 * r + 15) * 1_000_000)
        for r in range(rounds)
    ]
