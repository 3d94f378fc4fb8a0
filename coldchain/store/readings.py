"""Readings: idempotent bulk insert and the series queries that excursion detection needs.

The hot paths here use driver-level SQL (`exec_driver_sql` with tuples): SQLAlchemy's
per-row parameter processing costs about 12 microseconds a row, several times the cost of
the insert itself, and the worker must store 100,000 readings a second.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection

from coldchain.domain.excursions import Slice, SliceQuery, read_slice
from coldchain.domain.profiles import Profile
from coldchain.domain.senml import Reading


class ConcurrentInsertError(Exception):
    """Another writer stored some of the same readings meanwhile: retry the batch."""


@dataclass
class InsertOutcome:
    """What became of each reading handed to `insert_readings`, by its index there."""

    stored: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    # (index of the refused reading, the value that stands)
    conflicts: list[tuple[int, float]] = field(default_factory=list)


def _sql(conn: Connection, statement: str) -> str:
    """Write a statement with `?` placeholders in the driver's own parameter style."""
    return statement if conn.dialect.paramstyle == "qmark" else statement.replace("?", "%s")


def _existing(
    conn: Connection, logger_id: str, name: str, times: Sequence[int]
) -> dict[int, float]:
    rows = conn.exec_driver_sql(
        _sql(
            conn,
            "SELECT time_us, value FROM readings WHERE logger_id = ? AND name = ? "
            "AND time_us BETWEEN ? AND ?",
        ),
        (logger_id, name, min(times), max(times)),
    )
    return dict(rows.fetchall())


def insert_readings(
    conn: Connection, batch: Sequence[Reading], received_us: Sequence[int]
) -> InsertOutcome:
    """Store new readings once; classify the rest as duplicates or conflicts (first stands).

    `batch` is in arrival order; `received_us[i]` is the arrival time of `batch[i]`.
    """
    outcome = InsertOutcome()
    first: dict[tuple[str, str, int], int] = {}
    for index, reading in enumerate(batch):
        key = (reading.logger_id, reading.name, reading.time_us)
        seen = first.setdefault(key, index)
        if seen != index:
            if batch[seen].value == reading.value:
                outcome.duplicates.append(index)
            else:
                outcome.conflicts.append((index, batch[seen].value))
    if not first:
        return outcome
    if conn.dialect.name == "postgresql":
        _insert_postgresql(conn, batch, received_us, list(first.values()), outcome)
        return outcome
    by_series: dict[tuple[str, str], list[int]] = defaultdict(list)
    for (logger_id, name, _time_us), index in first.items():
        by_series[(logger_id, name)].append(index)
    rows: list[tuple[str, str, int, float, int]] = []
    for (logger_id, name), indexes in by_series.items():
        times = [batch[i].time_us for i in indexes]
        stored = _existing(conn, logger_id, name, times)
        for index in indexes:
            reading = batch[index]
            value = stored.get(reading.time_us)
            if value is None:
                outcome.stored.append(index)
                rows.append((logger_id, name, reading.time_us, reading.value, received_us[index]))
            elif value == reading.value:
                outcome.duplicates.append(index)
            else:
                outcome.conflicts.append((index, value))
    if rows:
        result = conn.exec_driver_sql(
            _sql(
                conn,
                "INSERT INTO readings (logger_id, name, time_us, value, received_us) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            ),
            rows,
        )
        if result.rowcount not in (-1, len(rows)):
            raise ConcurrentInsertError(
                f"{len(rows) - result.rowcount} readings appeared meanwhile"
            )
    return outcome


# The batch's readings are copied into this per-connection table, then inserted with one
# INSERT ... SELECT: COPY is the fastest way into PostgreSQL, and ON CONFLICT needs an INSERT.
_STAGING = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS readings_staging (idx integer, logger_id text, "
    "name text, time_us bigint, value float8, received_us bigint) ON COMMIT DELETE ROWS"
)


def _insert_postgresql(
    conn: Connection,
    batch: Sequence[Reading],
    received_us: Sequence[int],
    indexes: list[int],
    outcome: InsertOutcome,
) -> None:
    """COPY the batch in, insert what is new in one statement, then classify the rest.

    Only when some readings were already stored (rare: a resent message) does a second
    query tell duplicates from conflicts: the rows this transaction did not write (their
    `xmin` is another transaction's) are the ones that were there before. The caller holds
    the per-logger locks (`lock_loggers`), so nothing else can appear in between.
    """
    # Every time, not once per connection: a rolled-back first batch takes the table with it.
    conn.exec_driver_sql(_STAGING)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(
        "COPY readings_staging (idx, logger_id, name, time_us, value, received_us) "
        "FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["int4", "text", "text", "int8", "float8", "int8"])
        for index in indexes:
            reading = batch[index]
            copy.write_row(
                (index, reading.logger_id, reading.name, reading.time_us, reading.value,
                 received_us[index])
            )  # fmt: skip
    inserted = conn.exec_driver_sql(
        "INSERT INTO readings (logger_id, name, time_us, value, received_us) "
        "SELECT logger_id, name, time_us, value, received_us FROM readings_staging "
        "ON CONFLICT DO NOTHING"
    ).rowcount
    if inserted == len(indexes):
        outcome.stored.extend(indexes)
        return
    before: dict[int, float] = dict(
        conn.exec_driver_sql(
            "SELECT s.idx, r.value FROM readings_staging s JOIN readings r "
            "ON r.logger_id = s.logger_id AND r.name = s.name AND r.time_us = s.time_us "
            "WHERE r.xmin <> pg_current_xact_id()::xid"
        ).fetchall()
    )
    if len(before) != len(indexes) - inserted:
        raise ConcurrentInsertError(f"{len(indexes) - inserted - len(before)} readings unseen")
    for index in indexes:
        value = before.get(index)
        if value is None:
            outcome.stored.append(index)
        elif value == batch[index].value:
            outcome.duplicates.append(index)
        else:
            outcome.conflicts.append((index, value))


def lock_loggers(conn: Connection, logger_ids: Iterable[str]) -> None:
    """Serialise writers per logger until the end of the transaction (PostgreSQL).

    Two workers holding readings of the same logger would otherwise each re-evaluate its
    excursions without seeing the other's uncommitted readings, and could both open the same
    excursion. Locks are taken in one order (sorted keys), so two batches cannot deadlock.
    On SQLite the database's single write lock already serialises whole write transactions.
    """
    if conn.dialect.name != "postgresql":
        return
    keys = sorted({logger_lock_key(logger_id) for logger_id in logger_ids})
    if keys:
        conn.exec_driver_sql(
            "SELECT count(pg_advisory_xact_lock(k)) FROM "
            "(SELECT unnest(%s::bigint[]) AS k ORDER BY 1) AS ordered",
            (keys,),
        )


def try_lock(conn: Connection, name: str) -> bool:
    """Take a named lock until the end of the transaction if it is free (PostgreSQL).

    Return False when another transaction holds it. On SQLite there is one writer at a
    time anyway, so the lock is always granted.
    """
    if conn.dialect.name != "postgresql":
        return True
    row = conn.exec_driver_sql(
        "SELECT pg_try_advisory_xact_lock(%s)", (lock_key(f"coldchain:{name}"),)
    ).first()
    return bool(row and row[0])


def logger_lock_key(logger_id: str) -> int:
    """A stable signed 64-bit advisory-lock key for a logger."""
    return lock_key(f"coldchain:logger:{logger_id}")


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a name."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class SqlReadingSource:
    """One logger's temperature series, for `excursions.reevaluate`."""

    def __init__(self, conn: Connection, logger_id: str, profile: Profile):
        self._conn = conn
        self._logger_id = logger_id
        limits = []
        self._limits: tuple[float, ...] = ()
        if profile.max_c is not None:
            limits.append("value <= ?")
            self._limits += (profile.max_c,)
        if profile.min_c is not None:
            limits.append("value >= ?")
            self._limits += (profile.min_c,)
        self._in_range = "".join(f" AND {clause}" for clause in limits)

    def _scalar(self, where: str, order: str, params: tuple[object, ...]) -> int | None:
        row = self._conn.exec_driver_sql(
            _sql(
                self._conn,
                "SELECT time_us FROM readings WHERE logger_id = ? AND name = 'temp'"
                f"{where} ORDER BY time_us {order} LIMIT 1",
            ),
            (self._logger_id, *params),
        ).first()
        return None if row is None else int(row[0])

    def last_in_range_before(self, before_us: int, *, not_before_us: int | None) -> int | None:
        """Return the time of the latest in-range reading before `before_us`."""
        where, params = self._in_range + " AND time_us < ?", (*self._limits, before_us)
        if not_before_us is not None:
            where, params = where + " AND time_us >= ?", (*params, not_before_us)
        return self._scalar(where, "DESC", params)

    def first_in_range_after(self, after_us: int, *, not_after_us: int | None) -> int | None:
        """Return the time of the earliest in-range reading after `after_us`."""
        where, params = self._in_range + " AND time_us > ?", (*self._limits, after_us)
        if not_after_us is not None:
            where, params = where + " AND time_us <= ?", (*params, not_after_us)
        return self._scalar(where, "ASC", params)

    def readings_between(self, from_us: int, until_us: int | None) -> list[tuple[int, float]]:
        """Return the readings in [from_us, until_us], sorted by time."""
        where, params = " AND time_us >= ?", (from_us,)  # type: tuple[str, tuple[int, ...]]
        if until_us is not None:
            where, params = where + " AND time_us <= ?", (from_us, until_us)
        rows = self._conn.exec_driver_sql(
            _sql(
                self._conn,
                "SELECT time_us, value FROM readings WHERE logger_id = ? AND "
                f"name = 'temp'{where} ORDER BY time_us",
            ),
            (self._logger_id, *params),
        )
        return rows.fetchall()  # type: ignore[return-value]

    def latest_time(self, *, not_before_us: int, not_after_us: int | None) -> int | None:
        """Return the time of the latest reading inside the window."""
        where, params = " AND time_us >= ?", (not_before_us,)  # type: tuple[str, tuple[int, ...]]
        if not_after_us is not None:
            where, params = where + " AND time_us <= ?", (not_before_us, not_after_us)
        return self._scalar(where, "DESC", params)

    def first_time_after(self, after_us: int) -> int | None:
        """Return the time of the earliest reading after `after_us` (in range or not)."""
        return self._scalar(" AND time_us > ?", "ASC", (after_us,))


@dataclass(frozen=True)
class SliceRequest:
    """One logger's slice to read for a re-evaluation, with its profile's limits."""

    logger_id: str
    profile: Profile
    query: SliceQuery


# A year past the largest time any logger may send is still far below this.
_NO_END = 2**62

# The slices of many loggers in one round trip: a batch of a thousand loggers would
# otherwise make three thousand, and on PostgreSQL each costs a network round trip and
# most of the worker's time. The t0/t1 sub-queries walk the primary key backwards and
# forwards from the span, as SqlReadingSource's queries do, once per logger (MATERIALIZED:
# inlined, they would run again for every joined reading); the readings are then one
# range scan of the primary key per logger (LATERAL), whatever the table's statistics say.
_SLICES_POSTGRESQL = """
WITH req AS (
    SELECT * FROM unnest(%s::int4[], %s::text[], %s::int8[], %s::int8[], %s::int8[],
                         %s::int8[], %s::float8[], %s::float8[])
        AS r(k, logger_id, span_from, span_until, win_from, win_until, min_c, max_c)
), bounds AS MATERIALIZED (
    SELECT r.k, r.logger_id, r.win_from, r.win_until,
        (SELECT x.time_us FROM readings x
          WHERE x.logger_id = r.logger_id AND x.name = 'temp'
            AND x.time_us < r.span_from AND x.time_us >= r.win_from
            AND (r.max_c IS NULL OR x.value <= r.max_c)
            AND (r.min_c IS NULL OR x.value >= r.min_c)
          ORDER BY x.time_us DESC LIMIT 1) AS t0,
        (SELECT x.time_us FROM readings x
          WHERE x.logger_id = r.logger_id AND x.name = 'temp'
            AND x.time_us > r.span_until AND (r.win_until IS NULL OR x.time_us <= r.win_until)
            AND (r.max_c IS NULL OR x.value <= r.max_c)
            AND (r.min_c IS NULL OR x.value >= r.min_c)
          ORDER BY x.time_us LIMIT 1) AS t1
    FROM req r
)
SELECT b.k, b.t0, b.t1, s.time_us, s.value
FROM bounds b
LEFT JOIN LATERAL (
    SELECT x.time_us, x.value FROM readings x
     WHERE x.logger_id = b.logger_id AND x.name = 'temp'
       AND x.time_us >= COALESCE(b.t0, b.win_from)
       AND x.time_us <= COALESCE(b.t1, b.win_until, %s)
     ORDER BY x.time_us
) s ON true
ORDER BY b.k, s.time_us
"""


def fetch_slices(conn: Connection, requests: Sequence[SliceRequest]) -> list[Slice]:
    """Read the slices of several loggers: in one statement on PostgreSQL.

    On SQLite the queries run in-process and cost microseconds each, so each logger is read
    through SqlReadingSource, as `excursions.reevaluate` reads it.
    """
    if not requests:
        return []
    if conn.dialect.name != "postgresql":
        return [
            read_slice(SqlReadingSource(conn, r.logger_id, r.profile), r.query) for r in requests
        ]
    rows = conn.exec_driver_sql(
        _SLICES_POSTGRESQL,
        (
            list(range(len(requests))),
            [r.logger_id for r in requests],
            [r.query.span_from_us for r in requests],
            [r.query.span_until_us for r in requests],
            [r.query.window_from_us for r in requests],
            [r.query.window_until_us for r in requests],
            [r.profile.min_c for r in requests],
            [r.profile.max_c for r in requests],
            _NO_END,
        ),
    )
    found: dict[int, Slice] = {}
    for k, t0, t1, time_us, value in rows:
        answer = found.get(k)
        if answer is None:
            answer = found[k] = Slice(t0, t1, [])
        if time_us is not None:
            answer.readings.append((time_us, value))
    return [found[k] for k in range(len(requests))]


# The temperatures of a shipment's loggers as min/max per time bucket, for a chart, each
# engine its own way (bench/queries.py, a 1M-reading shipment of two loggers). SQLite groups
# by sorting every row into a temporary b-tree (266 ms), so there each logger's buckets are
# walked one by one (a recursive counter), each a range scan of the primary key (139 ms).
# PostgreSQL hashes the groups in one pass, where the walk costs three sub-plans a bucket
# (270 ms); each logger's range is read through the primary key (LATERAL), since with
# `logger_id = ANY(...)` it chose a parallel scan of the whole table once it held 10M
# readings (355 ms against 164 ms). Nothing is ordered in SQL (the few buckets are ordered
# here): an ORDER BY, in the range or on the groups, made it sort every row first, on disk
# past work_mem (270 ms).
_CHART_BUCKETS_POSTGRESQL = """
SELECT (r.time_us - %s) / %s, min(r.time_us), min(r.value), max(r.value)
FROM unnest(%s::text[]) AS l(id)
CROSS JOIN LATERAL (
    SELECT x.time_us, x.value FROM readings x
     WHERE x.logger_id = l.id AND x.name = 'temp' AND x.time_us >= %s AND x.time_us <= %s
) r
GROUP BY 1
"""
_CHART_BUCKETS = """
WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < ?)
SELECT k.i,
    (SELECT x.time_us FROM readings x WHERE x.logger_id = ? AND x.name = 'temp'
        AND x.time_us >= ? + k.i * ? AND x.time_us < ? + (k.i + 1) * ? AND x.time_us <= ?
        ORDER BY x.time_us LIMIT 1),
    (SELECT min(x.value) FROM readings x WHERE x.logger_id = ? AND x.name = 'temp'
        AND x.time_us >= ? + k.i * ? AND x.time_us < ? + (k.i + 1) * ? AND x.time_us <= ?),
    (SELECT max(x.value) FROM readings x WHERE x.logger_id = ? AND x.name = 'temp'
        AND x.time_us >= ? + k.i * ? AND x.time_us < ? + (k.i + 1) * ? AND x.time_us <= ?)
FROM k
"""


def chart_buckets(
    conn: Connection, logger_ids: Sequence[str], start_us: int, end_us: int, bucket_us: int
) -> list[tuple[int, int, float, float]]:
    """Return (bucket, first time, min, max) of each non-empty bucket of [start_us, end_us].

    Bucket i holds the loggers' temperatures with start + i * bucket_us <= t < start +
    (i + 1) * bucket_us; a spike survives downsampling in its bucket's max (or min).
    """
    if conn.dialect.name == "postgresql":
        rows = conn.exec_driver_sql(
            _CHART_BUCKETS_POSTGRESQL, (start_us, bucket_us, list(logger_ids), start_us, end_us)
        )
        return sorted((int(i), int(t), lo, hi) for i, t, lo, hi in rows)
    merged: dict[int, tuple[int, float, float]] = {}
    last = (end_us - start_us) // bucket_us
    for logger_id in logger_ids:
        bounds = (logger_id, start_us, bucket_us, start_us, bucket_us, end_us)
        for i, t, lo, hi in conn.exec_driver_sql(_CHART_BUCKETS, (last, *bounds, *bounds, *bounds)):
            if t is None:
                continue
            seen = merged.get(i)
            if seen is not None:
                t, lo, hi = min(seen[0], t), min(seen[1], lo), max(seen[2], hi)
            merged[i] = (t, lo, hi)
    return [(i, *merged[i]) for i in sorted(merged)]
