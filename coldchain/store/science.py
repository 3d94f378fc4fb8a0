"""The series queries of the excursion science (services/science.py): segments and windows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    # The span's readings as the caller holds them (time -> value): when the database has
    # no others in the span, they are not read back, only the neighbours on either side.
    known: Mapping[int, float] | None = None


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


# Per request: the reading before the span, the one after it, and how many are in it.
_NEIGHBOURS_POSTGRESQL = """
WITH req AS (
    SELECT * FROM unnest(%s::int4[], %s::text[], %s::int8[], %s::int8[], %s::int8[],
                         %s::int8[]) AS r(k, logger_id, span_from, span_until, win_from, win_until)
)
SELECT r.k, p.time_us, p.value, n.time_us, n.value,
    (SELECT count(*) FROM readings x
      WHERE x.logger_id = r.logger_id AND x.name = 'temp'
        AND x.time_us >= r.span_from AND x.time_us <= r.span_until)
FROM req r
LEFT JOIN LATERAL (
    SELECT x.time_us, x.value FROM readings x
     WHERE x.logger_id = r.logger_id AND x.name = 'temp'
       AND x.time_us < r.span_from AND x.time_us >= r.win_from
     ORDER BY x.time_us DESC LIMIT 1
) p ON true
LEFT JOIN LATERAL (
    SELECT x.time_us, x.value FROM readings x
     WHERE x.logger_id = r.logger_id AND x.name = 'temp'
       AND x.time_us > r.span_until AND x.time_us <= r.win_until
     ORDER BY x.time_us LIMIT 1
) n ON true
"""

_PREVIOUS = (
    "SELECT time_us, value FROM readings WHERE logger_id = ? AND name = 'temp'"
    " AND time_us < ? AND time_us >= ? ORDER BY time_us DESC LIMIT 1"
)
_NEXT = (
    "SELECT time_us, value FROM readings WHERE logger_id = ? AND name = 'temp'"
    " AND time_us > ? AND time_us <= ? ORDER BY time_us LIMIT 1"
)
_COUNT = (
    "SELECT count(*) FROM readings WHERE logger_id = ? AND name = 'temp'"
    " AND time_us >= ? AND time_us <= ?"
)


def fetch_segments(
    conn: Connection, requests: Sequence[SegmentRequest]
) -> list[list[tuple[int, float]]]:
    """Read each request's segment: the readings from the one before its span to the one after.

    A request whose `known` readings are all the span holds gets them from memory, with
    its two neighbours from the database; the others are read whole.
    """
    found: list[list[tuple[int, float]] | None] = (
        [_from_known(conn, r) if r.known is not None else None for r in requests]
        if conn.dialect.name != "postgresql"
        else _from_known_postgresql(conn, requests)
    )
    rest = [i for i, segment in enumerate(found) if segment is None]
    for i, segment in zip(rest, _read_segments(conn, [requests[i] for i in rest]), strict=True):
        found[i] = segment
    return [segment or [] for segment in found]


def _assemble(
    known: Mapping[int, float],
    before: tuple[int, float] | None,
    after: tuple[int, float] | None,
) -> list[tuple[int, float]]:
    segment = [] if before is None else [before]
    segment.extend(sorted(known.items()))
    if after is not None:
        segment.append(after)
    return segment


def _from_known(conn: Connection, r: SegmentRequest) -> list[tuple[int, float]] | None:
    assert r.known is not None
    until = _NO_END if r.window_until_us is None else r.window_until_us
    count = conn.exec_driver_sql(
        _sql(conn, _COUNT), (r.logger_id, r.span_from_us, r.span_until_us)
    ).scalar_one()
    if count != len(r.known):
        return None
    before = conn.exec_driver_sql(
        _sql(conn, _PREVIOUS), (r.logger_id, r.span_from_us, r.window_from_us)
    ).first()
    after = conn.exec_driver_sql(_sql(conn, _NEXT), (r.logger_id, r.span_until_us, until)).first()
    return _assemble(
        r.known,
        None if before is None else (int(before[0]), float(before[1])),
        None if after is None else (int(after[0]), float(after[1])),
    )


def _from_known_postgresql(
    conn: Connection, requests: Sequence[SegmentRequest]
) -> list[list[tuple[int, float]] | None]:
    found: list[list[tuple[int, float]] | None] = [None] * len(requests)
    asked = [i for i, r in enumerate(requests) if r.known is not None]
    if not asked:
        return found
    rows = conn.exec_driver_sql(
        _NEIGHBOURS_POSTGRESQL,
        (
            asked,
            [requests[i].logger_id for i in asked],
            [requests[i].span_from_us for i in asked],
            [requests[i].span_until_us for i in asked],
            [requests[i].window_from_us for i in asked],
            [
                _NO_END if requests[i].window_until_us is None else requests[i].window_until_us
                for i in asked
            ],
        ),
    )
    for k, t0, v0, t1, v1, count in rows:
        known = requests[k].known
        assert known is not None
        if count == len(known):
            found[k] = _assemble(
                known,
                None if t0 is None else (int(t0), float(v0)),
                None if t1 is None else (int(t1), float(v1)),
            )
    return found


def _read_segments(
    conn: Connection, requests: Sequence[SegmentRequest]
) -> list[list[tuple[int, float]]]:
    """Read each request's segment whole from the database."""
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
