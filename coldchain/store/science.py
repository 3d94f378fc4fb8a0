"""The series queries of the excursion science (services/science.py): segments and windows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from coldchain.store.readings import _sql

# Beyond any reading time: stands for "no end" in SQL.
_NO_END = 2**62


@dataclass(frozen=True, slots=True)
class SegmentRequest:
    """One logger's new readings [span_from, span_until], inside the judged window."""

    logger_id: str
    span_from_us: int
    span_until_us: int
    window_from_us: int
    window_until_us: int | None


# From the last reading before the span to the first after it (or the span's own ends), each
# bound found by walking the primary key from the span, then one range scan of it.
_SEGMENT = """
SELECT time_us, value FROM readings
 WHERE logger_id = ? AND name = 'temp'
   AND time_us >= COALESCE((SELECT max(time_us) FROM readings WHERE logger_id = ?
                            AND name = 'temp' AND time_us < ? AND time_us >= ?), ?)
   AND time_us <= COALESCE((SELECT min(time_us) FROM readings WHERE logger_id = ?
                            AND name = 'temp' AND time_us > ? AND time_us <= ?), ?)
 ORDER BY time_us
"""

# The segments of many loggers in one round trip on PostgreSQL, as fetch_slices does.
_SEGMENTS_POSTGRESQL = """
WITH req AS (
    SELECT * FROM unnest(%s::int4[], %s::text[], %s::int8[], %s::int8[], %s::int8[],
                         %s::int8[]) AS r(k, logger_id, span_from, span_until, win_from, win_until)
), bounds AS MATERIALIZED (
    SELECT r.k, r.logger_id,
        COALESCE((SELECT x.time_us FROM readings x
          WHERE x.logger_id = r.logger_id AND x.name = 'temp'
            AND x.time_us < r.span_from AND x.time_us >= r.win_from
          ORDER BY x.time_us DESC LIMIT 1), r.span_from) AS t0,
        COALESCE((SELECT x.time_us FROM readings x
          WHERE x.logger_id = r.logger_id AND x.name = 'temp'
            AND x.time_us > r.span_until AND x.time_us <= r.win_until
          ORDER BY x.time_us LIMIT 1), r.span_until) AS t1
    FROM req r
)
SELECT b.k, s.time_us, s.value
FROM bounds b
CROSS JOIN LATERAL (
    SELECT x.time_us, x.value FROM readings x
     WHERE x.logger_id = b.logger_id AND x.name = 'temp'
       AND x.time_us >= b.t0 AND x.time_us <= b.t1
     ORDER BY x.time_us
) s
ORDER BY b.k, s.time_us
"""


def fetch_segments(
    conn: Connection, requests: Sequence[SegmentRequest]
) -> list[list[tuple[int, float]]]:
    """Read each request's segment: the readings from the one before its span to the one after."""
    if not requests:
        return []
    if conn.dialect.name == "postgresql":
        found: list[list[tuple[int, float]]] = [[] for _ in requests]
        rows = conn.exec_driver_sql(
            _SEGMENTS_POSTGRESQL,
            (
                list(range(len(requests))),
                [r.logger_id for r in requests],
                [r.span_from_us for r in requests],
                [r.span_until_us for r in requests],
                [r.window_from_us for r in requests],
                [_NO_END if r.window_until_us is None else r.window_until_us for r in requests],
            ),
        )
        for k, time_us, value in rows:
            found[k].append((time_us, value))
        return found
    statement = _sql(conn, _SEGMENT)
    return [
        [
            (int(t), float(v))
            for t, v in conn.exec_driver_sql(
                statement,
                (
                    r.logger_id,
                    r.logger_id,
                    r.span_from_us,
                    r.window_from_us,
                    r.span_from_us,
                    r.logger_id,
                    r.span_until_us,
                    _NO_END if r.window_until_us is None else r.window_until_us,
                    r.span_until_us,
                ),
            )
        ]
        for r in requests
    ]


def window_readings(
    conn: Connection, logger_id: str, from_us: int, until_us: int | None
) -> list[tuple[int, float]]:
    """Return a logger's temperatures in [from_us, until_us] (None: no end), sorted by time."""
    rows = conn.exec_driver_sql(
        _sql(
            conn,
            "SELECT time_us, value FROM readings WHERE logger_id = ? AND name = 'temp' "
            "AND time_us >= ? AND time_us <= ? ORDER BY time_us",
        ),
        (logger_id, from_us, _NO_END if until_us is None else until_us),
    )
    return [(int(t), float(v)) for t, v in rows]
