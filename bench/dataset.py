"""A large database for the query and growth parts, built in stages (1M, then 10M readings).

Readings go straight into the readings table (COPY with psycopg 3 on PostgreSQL, executemany
on SQLite): sending ten million readings through MQTT would take most of an hour and measure
nothing these parts are about. Everything else goes through the services: loggers are
registered, and each shipment is created after its loggers' readings are stored, so the
service's own re-evaluation of the monitoring window finds the excursions (with their audit
events), exactly as for a shipment created with a past `monitoring_from`. Each shipment is
then cancelled through the service: historical shipments are not monitored any more, and a
worker started later must not find them silent.

Stage 1 is one shipment of `big_readings` readings from two loggers (one reading every 2 s
per logger, an out-of-range run every 20,000 readings). Stage 2 adds shipments of one logger
and `per_logger` readings each (one every 10 s, an out-of-range run every 1,000 readings, and
a 1,000 s hole in every tenth logger: a SIGNAL_LOSS) until the table holds `total_readings`.
All series end a minute before they are loaded, in loads of at most ~1M readings, so that no
shipment is created long after its last reading (that would be a signal loss until now).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg

from bench.seeding import cancel_shipments, create_shipments, register_loggers
from bench.servers import Databases, database_size_mb, file_of

Row = tuple[str, str, int, float, int]

# LN2_VAPOR: above -150 C is out of range.
NOMINAL = [-190.0 + (k % 50) / 10 for k in range(50)]
HIGH = [-140.0 + (k % 20) for k in range(20)]


def series(
    logger_id: str,
    n: int,
    *,
    interval_s: int,
    end_us: int,
    run_every: int,
    gap_at: int | None,
    gap_s: int = 1000,
) -> Iterator[Row]:
    """One logger's readings, oldest first: nominal values, out-of-range runs, maybe a hole."""
    step = interval_s * 1_000_000
    span = (n - 1) * step + (gap_s * 1_000_000 if gap_at is not None else 0)
    t = end_us - span
    run_left = 0
    for i in range(n):
        if gap_at is not None and i == gap_at:
            t += gap_s * 1_000_000 - step
        if i % run_every == run_every // 2:
            run_left = 1 + (i // run_every * 13) % 30
        if run_left:
            value = HIGH[run_left % 20]
            run_left -= 1
        else:
            value = NOMINAL[i % 50]
        yield (logger_id, "temp", t, value, t + 2_000_000)
        t += step


def _copy_postgres(url: str, rows: Iterator[Row]) -> int:
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    count = 0
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY readings (logger_id, name, time_us, value, received_us) FROM STDIN"
        ) as copy:
            chunk: list[str] = []
            for logger_id, name, t, value, received in rows:
                chunk.append(f"{logger_id}\t{name}\t{t}\t{value}\t{received}\n")
                if len(chunk) >= 50_000:
                    copy.write("".join(chunk))
                    count += len(chunk)
                    chunk = []
            if chunk:
                copy.write("".join(chunk))
                count += len(chunk)
    return count


def _insert_sqlite(url: str, rows: Iterator[Row]) -> int:
    path = file_of(url)
    assert path is not None
    conn = sqlite3.connect(path, timeout=60)
    try:
        conn.execute("PRAGMA busy_timeout=60000")
        before = conn.total_changes
        with conn:
            conn.executemany(
                "INSERT INTO readings (logger_id, name, time_us, value, received_us) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )
        return conn.total_changes - before
    finally:
        conn.close()


def bulk_insert(url: str, rows: Iterator[Row]) -> int:
    """Insert readings directly in the readings table; return how many."""
    if url.startswith("postgresql"):
        return _copy_postgres(url, rows)
    return _insert_sqlite(url, rows)


def vacuum_analyze(url: str) -> None:
    """What autovacuum does after a bulk load, done now so that every figure sees it done."""
    if not url.startswith("postgresql"):
        return  # coldchain never runs ANALYZE on SQLite: the figures are without statistics.
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def count(url: str, sql: str) -> int:
    if url.startswith("postgresql"):
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn) as conn:
            row = conn.execute(sql).fetchone()
    else:
        path = file_of(url)
        assert path is not None
        with sqlite3.connect(path) as lite:
            row = lite.execute(sql).fetchone()
    return int(row[0]) if row else 0


@dataclass
class Dataset:
    """The large database of one engine and what it holds."""

    databases: Databases
    big_readings: int
    total_readings: int
    per_logger: int = 10_000
    url: str = ""
    stored: int = 0
    big_shipment: int | None = None
    big_loggers: list[str] = field(default_factory=list)
    big_window_us: tuple[int, int] = (0, 0)
    stages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def engine(self) -> str:
        return self.databases.engine

    def open(self) -> Dataset:
        self.url = self.databases.fresh("bench_dataset")
        return self

    def close(self) -> None:
        if self.url:
            self.databases.drop(self.url)
            self.url = ""

    def _shipment(self, loggers: list[str], rows: Iterator[Row], first_us: int) -> tuple[int, int]:
        """Store readings, then create (excursions found by the service) and cancel a shipment.

        Returns the shipment id and the number of readings stored.
        """
        from datetime import UTC, datetime

        world = self.databases.world
        assert world is not None
        stored = bulk_insert(self.url, rows)
        monitoring_from = datetime.fromtimestamp((first_us - 60_000_000) / 1e6, UTC)
        (shipment_id,) = create_shipments(self.url, world, [loggers], monitoring_from)
        cancel_shipments(self.url, world, [shipment_id])
        return shipment_id, stored

    def grow_to_big(self) -> dict[str, Any]:
        """Stage 1: the database holds one shipment of `big_readings` readings."""
        started = time.perf_counter()
        loggers = ["DS-BIG-1", "DS-BIG-2"]
        register_loggers(self.url, loggers)
        per = self.big_readings // len(loggers)
        end_us = time.time_ns() // 1000 - 60_000_000
        first_us = end_us - (per - 1) * 2_000_000

        def rows() -> Iterator[Row]:
            for logger_id in loggers:
                yield from series(
                    logger_id, per, interval_s=2, end_us=end_us, run_every=20_000, gap_at=None
                )

        self.big_shipment, stored = self._shipment(loggers, rows(), first_us)
        self.big_loggers = loggers
        self.big_window_us = (first_us, end_us)
        self.stored += stored
        return self._stage("big", started)

    def grow_to_total(self, log: Any = print) -> dict[str, Any]:
        """Stage 2: more shipments of `per_logger` readings until the table holds the total."""
        started = time.perf_counter()
        remaining = self.total_readings - self.stored
        loggers_n = max(0, remaining // self.per_logger)
        chunk = max(1, 1_000_000 // self.per_logger)
        done = 0
        while done < loggers_n:
            group = [f"DS-{n:05d}" for n in range(done, min(loggers_n, done + chunk))]
            register_loggers(self.url, group)
            end_us = time.time_ns() // 1000 - 60_000_000
            first_us = end_us - (self.per_logger - 1) * 10_000_000 - 1000 * 1_000_000

            def rows(group: list[str] = group, end_us: int = end_us) -> Iterator[Row]:
                for logger_id in group:
                    n = int(logger_id[3:])
                    yield from series(
                        logger_id,
                        self.per_logger,
                        interval_s=10,
                        end_us=end_us,
                        run_every=1_000,
                        gap_at=self.per_logger // 2 if n % 10 == 0 else None,
                    )

            self.stored += bulk_insert(self.url, rows())
            world = self.databases.world
            assert world is not None
            from datetime import UTC, datetime

            monitoring_from = datetime.fromtimestamp((first_us - 60_000_000) / 1e6, UTC)
            ids = create_shipments(self.url, world, [[g] for g in group], monitoring_from)
            cancel_shipments(self.url, world, ids)
            done += len(group)
            log(f"  {self.engine} dataset: {self.stored:,} readings stored")
        return self._stage("total", started)

    def _stage(self, name: str, started: float) -> dict[str, Any]:
        vacuum_analyze(self.url)
        stage = {
            "stage": name,
            "readings": count(self.url, "SELECT count(*) FROM readings"),
            "excursions": count(self.url, "SELECT count(*) FROM excursions"),
            "shipments": count(self.url, "SELECT count(*) FROM shipments"),
            "audit_events": count(self.url, "SELECT count(*) FROM audit_events"),
            "size_mb": round(database_size_mb(self.url)),
            "build_s": round(time.perf_counter() - started, 1),
        }
        self.stages.append(stage)
        return stage
