"""A chart's min/max per time bucket, read from the store, equals the same counted by hand."""

from __future__ import annotations

import random
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from coldchain.services.timefmt import rfc3339
from coldchain.store.models import Reading
from coldchain.store.readings import chart_buckets
from tests.api.test_custody_api import create
from tests.conftest import World
from tests.web.test_web_roles import sign_in

S = 1_000_000
T0 = 1_700_000_000 * S


def store(sessions: sessionmaker[Session], rows: list[tuple[str, str, int, float]]) -> None:
    with sessions.begin() as session:
        session.execute(
            insert(Reading),
            [
                {"logger_id": lg, "name": n, "time_us": t, "value": v, "received_us": t}
                for lg, n, t, v in rows
            ],
        )


def by_hand(
    readings: list[tuple[int, float]], start: int, end: int, bucket: int
) -> list[tuple[int, int, float, float]]:
    buckets: dict[int, list[Any]] = {}
    for t, v in sorted(readings):
        if start <= t <= end:
            i = (t - start) // bucket
            b = buckets.setdefault(i, [t, v, v])
            b[1], b[2] = min(b[1], v), max(b[2], v)
    return [(i, *buckets[i]) for i in sorted(buckets)]


@pytest.mark.parametrize("seed", range(6))
def test_buckets_equal_min_and_max_counted_by_hand(
    sessions: sessionmaker[Session], seed: int
) -> None:
    rng = random.Random(seed)

    def series(n: int) -> list[tuple[int, float]]:
        times = {T0 + rng.randint(-500, 20_000) * S for _ in range(n)}
        return sorted((t, round(rng.uniform(-196, -120), 2)) for t in times)

    first, second, other = series(800), series(300), series(100)
    store(sessions, [("L-1", "temp", t, v) for t, v in first])
    store(sessions, [("L-2", "temp", t, v) for t, v in second])
    # Another logger and another measurement are never drawn.
    store(sessions, [("L-3", "temp", t, 99.0) for t, _ in other])
    store(sessions, [("L-1", "batt", t, 50.0) for t, _ in first[::7]])
    start = T0 + rng.randint(0, 2000) * S
    end = start + rng.randint(1000, 18_000) * S
    bucket = rng.choice([1, 7, 60, 333, 5000]) * S
    with sessions() as session:
        one = chart_buckets(session.connection(), ["L-1"], start, end, bucket)
        both = chart_buckets(session.connection(), ["L-1", "L-2"], start, end, bucket)
    assert one == by_hand(first, start, end, bucket)
    assert both == by_hand(first + second, start, end, bucket)


def test_a_shipments_chart_keeps_a_spike_merges_its_loggers_and_stays_in_its_window(
    client: FlaskClient, world: World, sessions: sessionmaker[Session]
) -> None:
    start = T0
    shipment = create(client, world, loggers=["L-1", "L-2"], monitoring_from=rfc3339(start))
    rows = [("L-1", "temp", start + i * 10 * S, -190.0) for i in range(20_000)]
    rows += [("L-2", "temp", start + i * 10 * S + 5 * S, -185.0) for i in range(20_000)]
    rows[12_345] = ("L-1", "temp", rows[12_345][2], -140.0)  # one warm reading among 40,000
    rows += [("L-1", "temp", start - 60 * S, 20.0)]  # before monitoring: not drawn
    store(sessions, rows)
    sign_in(client, "coord")
    chart = client.get(f"/shipments/{shipment['id']}/chart.json").get_json()
    assert 1 < len(chart["t"]) <= 1501
    assert chart["t"] == sorted(chart["t"])
    assert max(chart["max"]) == -140.0  # the spike survives downsampling
    assert min(chart["min"]) == -190.0 and max(chart["min"]) == -190.0
    assert chart["t"][0] == start / S  # the reading before monitoring_from is not drawn
    spiked = chart["max"].index(-140.0)
    assert chart["t"][spiked] <= rows[12_345][2] / S
