"""Reading the slices of many loggers at once gives what a per-logger source reads."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from coldchain.domain import excursions as exc
from coldchain.domain.profiles import Profile
from coldchain.store.models import Reading
from coldchain.store.readings import SliceRequest, fetch_slices
from tests.unit.excursion_support import ListSource

LN2 = Profile("LN2_VAPOR", min_c=None, max_c=-150.0, grace_s=0, signal_loss_s=900)
FRIDGE = Profile("REFRIGERATED", min_c=2.0, max_c=8.0, grace_s=900, signal_loss_s=900)
S = 1_000_000
T0 = 1_700_000_000 * S


def _series(rng: random.Random, profile: Profile, n: int) -> list[tuple[int, float]]:
    """A logger's readings: uneven steps, in and out of range, some on the limits."""
    middle = -190.0 if profile.max_c == -150.0 else 5.0
    out = -120.0 if profile.max_c == -150.0 else rng.choice([0.5, 11.0])
    limit = profile.max_c if profile.max_c is not None else 0.0
    t, rows = T0, []
    for _ in range(n):
        t += rng.choice([1, 10, 60, 60, 60, 2000]) * S
        rows.append((t, rng.choice([middle, middle, middle, out, limit])))
    return rows


@pytest.mark.parametrize("seed", range(6))
def test_batched_slices_equal_what_a_reading_source_reads(
    sessions: sessionmaker[Session], seed: int
) -> None:
    rng = random.Random(seed)
    loggers = {f"L-{n}": LN2 if n % 2 else FRIDGE for n in range(1, 6)}
    series = {logger_id: _series(rng, p, rng.randint(0, 60)) for logger_id, p in loggers.items()}
    rows = [
        {"logger_id": lid, "name": "temp", "time_us": t, "value": v, "received_us": t}
        for lid, readings in series.items()
        for t, v in readings
    ]
    # Another measurement at the same times must never be read as a temperature.
    rows += [{**row, "name": "batt", "value": 50.0} for row in rows[::3]]
    with sessions.begin() as session:
        if rows:
            session.execute(insert(Reading), rows)
    requests = []
    for _ in range(25):
        logger_id = rng.choice(list(loggers))
        window_from = T0 + rng.randint(0, 40_000) * S
        window_until = rng.choice([None, window_from + rng.randint(0, 80_000) * S])
        # Touched spans start and end at stored readings, as the worker's do; some do not.
        times = [t for t, _ in series[logger_id]] or [T0]
        a, b = sorted(
            rng.choice(times) if rng.random() < 0.8 else T0 + rng.randint(0, 120_000) * S
            for _ in range(2)
        )
        query = exc.slice_query(
            window_from_us=window_from,
            window_until_us=window_until,
            touched_from_us=a,
            touched_until_us=b,
        )
        requests.append(SliceRequest(logger_id, loggers[logger_id], query))
    with sessions() as session:
        answers = fetch_slices(session.connection(), requests)
    assert len(answers) == len(requests)
    for request, answer in zip(requests, answers, strict=True):
        source = ListSource(request.profile, series[request.logger_id])
        assert answer == exc.read_slice(source, request.query), request


def test_no_request_reads_nothing(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        assert fetch_slices(session.connection(), []) == []
