"""Readings layout benchmark on PostgreSQL: which storage keeps a year of readings fast.

Three candidate layouts of the same `readings` table, each in its own database of one
PostgreSQL cluster started for the run (tests.support.postgres):
  (a) plain:        today's table, primary key btree (logger_id, name, time_us);
  (b) partitioned:  PARTITION BY RANGE (time_us), one partition a month and a DEFAULT one;
  (c) brin:         (a) plus a BRIN index on time_us.
For each it measures, with --rows stored readings (20 loggers over 12 months, in time order,
so 10M is a year at about one reading a minute) and on an empty table:
  - insert throughput of 500-row batches from 1,000 loggers, one reading a minute each, in
    time order: `INSERT ... ON CONFLICT DO NOTHING` alone ("insert"), and with the store's
    per-series duplicate check before it ("store"), one commit a batch;
  - the median latency of the access paths: one logger's last 24 h, the first in-range
    reading after an excursion starts and the last before it ends, a logger's latest
    reading (with and without readings), the chart's min/max per bucket over a year of two
    loggers (about 1M readings at 10M), and an all-loggers hour (the one path BRIN is for);
  - the heap and index sizes (and the index of the month being written);
  - the retention of the oldest month: DELETE, or DROP of its partition;
  - the Alembic migration of (a) to the head revision, if that converts the table.
Prints a table and writes bench/results/readings_layout.json.
Run: python bench/readings_layout.py [--rows 10000000] [--batches 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.postgres import Postgres  # noqa: E402

LAYOUTS = ("plain", "partitioned", "brin", "covering")
STORED_LOGGERS = list(range(0, 1000, 50))  # 20 loggers spread over the fleet's key range
FLEET = 1000
BATCH = 500
MINUTE_US = 60_000_000
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US
MAX_C = -150.0  # LN2_VAPOR's upper limit: the excursion queries look for readings below it

TABLE = """
CREATE TABLE readings (
    logger_id varchar(64) NOT NULL,
    name varchar(8) NOT NULL,
    time_us bigint NOT NULL,
    value double precision NOT NULL,
    received_us bigint NOT NULL,
    CONSTRAINT pk_readings PRIMARY KEY (logger_id, name, time_us)
)"""
INSERT = (
    "INSERT INTO readings (logger_id, name, time_us, value, received_us) "
    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)
EXISTING = (
    "SELECT time_us, value FROM readings WHERE logger_id = %s AND name = %s "
    "AND time_us BETWEEN %s AND %s"
)


def logger_id(n: int) -> str:
    return f"LOG-{n:04d}"


def epoch_us(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def month_start(moment: datetime, shift: int = 0) -> datetime:
    """Return the first instant of the month `shift` months after the one of `moment`."""
    index = moment.year * 12 + moment.month - 1 + shift
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


class Plan:
    """Where the stored year lies and what the queries ask for."""

    def __init__(self, rows: int, now: datetime):
        self.rows = rows
        self.end_us = epoch_us(now) - 2 * HOUR_US
        self.start_us = self.end_us - 365 * DAY_US
        self.steps = rows // len(STORED_LOGGERS)
        self.interval_us = (self.end_us - self.start_us) // self.steps
        # A six-hour HIGH excursion of LOG-0000 in the middle of the year.
        self.excursion_from_us = self.start_us + 180 * DAY_US
        self.excursion_until_us = self.excursion_from_us + 6 * HOUR_US
        first = datetime.fromtimestamp(self.start_us / 1e6, UTC)
        self.months = [month_start(first, i) for i in range(15)]
        self.months = [m for m in self.months if m <= month_start(now, 1)]

    def excursion_steps(self) -> tuple[int, int]:
        return (
            (self.excursion_from_us - self.start_us) // self.interval_us,
            (self.excursion_until_us - self.start_us) // self.interval_us,
        )


def conninfo(server: Postgres, database: str) -> str:
    return server.url(database).replace("postgresql+psycopg://", "postgresql://")


def admin(server: Postgres, *statements: str) -> None:
    with psycopg.connect(conninfo(server, "postgres"), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]


def create_layout(server: Postgres, database: str, layout: str, plan: Plan) -> None:
    """Create a database holding an empty readings table of the layout."""
    admin(server, f"CREATE DATABASE {database}")
    if layout != "partitioned":
        # Today's schema, made by the migrations, so that the migration can start from it.
        from coldchain.store.migrate import upgrade

        upgrade(server.url(database), "0003")
    with psycopg.connect(conninfo(server, database), autocommit=True) as conn:
        if layout == "partitioned":
            conn.execute((TABLE + " PARTITION BY RANGE (time_us)").encode())
            conn.execute(b"CREATE TABLE readings_default PARTITION OF readings DEFAULT")
            for lo in plan.months:
                hi = month_start(lo, 1)
                conn.execute(
                    f"CREATE TABLE readings_p{lo:%Y_%m} PARTITION OF readings "
                    f"FOR VALUES FROM ({epoch_us(lo)}) TO ({epoch_us(hi)})".encode()
                )
        elif layout == "brin":
            add_brin(conn)
        elif layout == "covering":
            conn.execute(
                b"ALTER TABLE readings DROP CONSTRAINT pk_readings, ADD CONSTRAINT pk_readings "
                b"PRIMARY KEY (logger_id, name, time_us) INCLUDE (value)"
            )


def add_brin(conn: psycopg.Connection[Any]) -> None:
    conn.execute(b"CREATE INDEX ix_readings_time_us_brin ON readings USING brin (time_us)")


def load(server: Postgres, database: str, plan: Plan) -> float:
    """Store the year of readings in time order, as loggers would have; return seconds."""
    low, high = plan.excursion_steps()
    started = time.perf_counter()
    with psycopg.connect(conninfo(server, database), autocommit=True) as conn:
        # One series of row numbers, steps outermost: rows arrive in time order, loggers
        # interleaved, which is the physical order a year of ingest leaves in the heap.
        conn.execute(
            "INSERT INTO readings (logger_id, name, time_us, value, received_us) "
            "SELECT 'LOG-' || lpad(l::text, 4, '0'), 'temp', t, "
            "  CASE WHEN l = 0 AND s BETWEEN %(low)s AND %(high)s THEN -120.0 "
            "       ELSE -190.0 + ((s + l) %% 7) / 10.0 END, t + 5000000 "
            "FROM (SELECT s, l, %(start)s::int8 + s * %(interval)s::int8 + l * 997 AS t FROM ("
            "  SELECT i / %(n)s::int8 AS s, (%(loggers)s::int[])[i %% %(n)s::int8 + 1] AS l "
            "  FROM generate_series(0, %(steps)s::int8 * %(n)s - 1) AS i) AS x) AS y",
            {
                "low": low,
                "high": high,
                "steps": plan.steps,
                "start": plan.start_us,
                "interval": plan.interval_us,
                "loggers": STORED_LOGGERS,
                "n": len(STORED_LOGGERS),
            },
        )
        conn.execute(b"VACUUM (ANALYZE) readings")
        conn.execute(b"CHECKPOINT")
    return time.perf_counter() - started


def fleet_batches(t0_us: int, batches: int) -> list[list[tuple[str, str, int, float, int]]]:
    """Readings of 1,000 loggers once a minute from t0, in time order, in 500-row batches."""
    rows = []
    for tick in range(batches * BATCH // FLEET + 1):
        for n in range(FLEET):
            t = t0_us + tick * MINUTE_US + n * 997
            rows.append((logger_id(n), "temp", t, -190.0 + n % 7 / 10, t + 3_000_000))
    return [rows[i * BATCH : (i + 1) * BATCH] for i in range(batches)]


def insert_rate(
    conn: psycopg.Connection[Any], batches: Sequence[Sequence[tuple[Any, ...]]], check: bool
) -> float:
    """Store the batches, one transaction each; return readings per second."""
    started = time.perf_counter()
    for batch in batches:
        with conn.transaction(), conn.cursor() as cursor:
            if check:
                series: dict[tuple[str, str], list[int]] = {}
                for row in batch:
                    series.setdefault((row[0], row[1]), []).append(row[2])
                for (logger, name), times in series.items():
                    cursor.execute(EXISTING, (logger, name, min(times), max(times)))
                    cursor.fetchall()
            cursor.executemany(INSERT, batch)
    return sum(len(b) for b in batches) / (time.perf_counter() - started)


def measure_inserts(
    server: Postgres, databases: dict[str, str], plan: Plan, batches: int, rounds: int
) -> dict[str, dict[str, Any]]:
    """Median readings/s of the two insert paths in each database.

    The rounds go round the layouts in turn, so that the load of other work on the machine
    falls on all of them alike.
    """
    rates = {name: {"insert": [], "store": []} for name in databases}  # type: dict[str, dict[str, list[float]]]
    t_us = plan.end_us + HOUR_US
    conns = {name: psycopg.connect(conninfo(server, db)) for name, db in databases.items()}
    try:
        # Not counted: fills the caches of each connection (statements, partition routing).
        for kind in ("insert", "store"):
            work = fleet_batches(t_us, 6)
            t_us = work[-1][-1][2] + MINUTE_US
            for conn in conns.values():
                insert_rate(conn, work, check=kind == "store")
        for _ in range(rounds):
            for kind in ("insert", "store"):
                work = fleet_batches(t_us, batches)
                t_us = work[-1][-1][2] + MINUTE_US
                for name, conn in conns.items():
                    rates[name][kind].append(insert_rate(conn, work, check=kind == "store"))
    finally:
        for conn in conns.values():
            conn.close()
    return {
        name: {f"{kind}_rows_per_s": round(statistics.median(v)) for kind, v in found.items()}
        | {"rounds": {kind: [round(x) for x in v] for kind, v in found.items()}}
        for name, found in rates.items()
    }


def queries(plan: Plan) -> dict[str, tuple[str, tuple[Any, ...]]]:
    """The access paths of coldchain, in the SQL the store and the services send."""
    chart_bucket = (plan.end_us - plan.start_us) // 1500
    return {
        # SqlReadingSource.readings_between, over the last day.
        "series_24h": (
            "SELECT time_us, value FROM readings WHERE logger_id = %s AND name = 'temp' "
            "AND time_us >= %s AND time_us <= %s ORDER BY time_us",
            (logger_id(0), plan.end_us - DAY_US, plan.end_us),
        ),
        # SqlReadingSource.first_in_range_after: skips the six hours of the excursion.
        "first_in_range_after": (
            "SELECT time_us FROM readings WHERE logger_id = %s AND name = 'temp' "
            "AND value <= %s AND time_us > %s ORDER BY time_us ASC LIMIT 1",
            (logger_id(0), MAX_C, plan.excursion_from_us),
        ),
        "last_in_range_before": (
            "SELECT time_us FROM readings WHERE logger_id = %s AND name = 'temp' "
            "AND value <= %s AND time_us < %s ORDER BY time_us DESC LIMIT 1",
            (logger_id(0), MAX_C, plan.excursion_until_us),
        ),
        # board._latest without a lower bound.
        "latest": (
            "SELECT logger_id, name, time_us, value, received_us FROM readings "
            "WHERE logger_id IN (%s) AND name = 'temp' ORDER BY time_us DESC LIMIT 1",
            (logger_id(50),),
        ),
        "latest_none": (
            "SELECT logger_id, name, time_us, value, received_us FROM readings "
            "WHERE logger_id IN (%s) AND name = 'temp' ORDER BY time_us DESC LIMIT 1",
            (logger_id(1),),
        ),
        # board.chart over a year-long shipment with two loggers.
        "chart_year_2_loggers": (
            "SELECT min(time_us), min(value), max(value) FROM readings "
            "WHERE logger_id IN (%s, %s) AND name = 'temp' AND time_us >= %s AND time_us <= %s "
            "GROUP BY (time_us - %s) / %s ORDER BY min(time_us)",
            (
                logger_id(0),
                logger_id(50),
                plan.start_us,
                plan.end_us,
                plan.start_us,
                chart_bucket,
            ),
        ),
        # Not a path of coldchain today: what BRIN indexes are for.
        "all_loggers_1h": (
            "SELECT count(*), max(value) FROM readings WHERE time_us >= %s AND time_us < %s",
            (plan.start_us + 100 * DAY_US, plan.start_us + 100 * DAY_US + HOUR_US),
        ),
    }


def time_queries(
    server: Postgres, databases: dict[str, str], plan: Plan, repeat: int
) -> dict[str, dict[str, dict[str, Any]]]:
    """Median and p90 milliseconds of each query in each database, warm, one connection each.

    Each run goes round the layouts in turn, like the inserts.
    """
    found: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in databases}
    conns = {
        name: psycopg.connect(conninfo(server, db), autocommit=True)
        for name, db in databases.items()
    }
    try:
        for query, (sql, params) in queries(plan).items():
            times: dict[str, list[float]] = {name: [] for name in databases}
            rows = {}
            for i in range(repeat + 3):
                for name, conn in conns.items():
                    started = time.perf_counter()
                    rows[name] = len(conn.execute(sql, params).fetchall())  # type: ignore[arg-type]
                    if i >= 3:  # the first runs warm the caches and the prepared statement
                        times[name].append((time.perf_counter() - started) * 1000)
            for name, conn in conns.items():
                plan_text = conn.execute(("EXPLAIN " + sql).encode(), params).fetchall()
                # The pages a query reads: what it costs once the year no longer fits in
                # memory (a warm cache hides it from the timings).
                analyzed = conn.execute(
                    ("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql).encode(), params
                ).fetchone()[0][0]["Plan"]  # type: ignore[index]
                found[name][query] = {
                    "pages": analyzed["Shared Hit Blocks"] + analyzed["Shared Read Blocks"],
                    "median_ms": round(statistics.median(times[name]), 3),
                    "p90_ms": round(sorted(times[name])[int(len(times[name]) * 0.9) - 1], 3),
                    "rows": rows[name],
                    "relations_scanned": sum(1 for (line,) in plan_text if " on readings" in line),
                }
        for name, conn in conns.items():
            found[name]["chart_year_2_loggers"]["readings"] = conn.execute(
                "SELECT count(*) FROM readings WHERE logger_id IN (%s, %s) AND name = 'temp'",
                (logger_id(0), logger_id(50)),
            ).fetchone()[0]  # type: ignore[index]
    finally:
        for conn in conns.values():
            conn.close()
    return found


def sizes(server: Postgres, database: str, plan: Plan) -> dict[str, float]:
    """Heap and index megabytes, and the index of the month being written now."""
    with psycopg.connect(conninfo(server, database)) as conn:
        # pg_partition_tree has no rows for a table that is not partitioned.
        heap, indexes = conn.execute(
            "SELECT sum(pg_relation_size(relid)), sum(pg_indexes_size(relid)) FROM ("
            "SELECT relid FROM pg_partition_tree('readings') WHERE isleaf "
            "UNION SELECT 'readings'::regclass WHERE NOT EXISTS "
            "(SELECT FROM pg_partition_tree('readings'))) AS leaves"
        ).fetchone()  # type: ignore[misc]
        brin = conn.execute(
            "SELECT coalesce(sum(pg_relation_size(indexrelid)), 0) FROM pg_index "
            "JOIN pg_class ON pg_class.oid = indexrelid JOIN pg_am ON pg_am.oid = relam "
            "WHERE amname = 'brin'"
        ).fetchone()[0]  # type: ignore[index]
        current = f"readings_p{month_start(datetime.fromtimestamp(plan.end_us / 1e6, UTC)):%Y_%m}"
        hot = conn.execute(
            "SELECT pg_indexes_size(c.oid) FROM pg_class c WHERE relname = %s", (current,)
        ).fetchone()
    mb = 1024 * 1024
    return {
        "heap_mb": round(float(heap) / mb, 1),
        "index_mb": round(float(indexes) / mb, 1),
        "brin_mb": round(float(brin) / mb, 3),
        "current_month_index_mb": round(float(hot[0] if hot else indexes) / mb, 1),
    }


def retention(server: Postgres, database: str, layout: str, plan: Plan) -> dict[str, Any]:
    """Remove the oldest month of readings: DROP its partition, or DELETE its rows."""
    first, second = plan.months[0], plan.months[1]
    with psycopg.connect(conninfo(server, database), autocommit=True) as conn:
        started = time.perf_counter()
        if layout == "partitioned":
            conn.execute(f"ALTER TABLE readings DETACH PARTITION readings_p{first:%Y_%m}".encode())
            conn.execute(f"DROP TABLE readings_p{first:%Y_%m}".encode())
            removed = None
        else:
            removed = conn.execute(
                "DELETE FROM readings WHERE time_us < %s", (epoch_us(second),)
            ).rowcount
        took = time.perf_counter() - started
    return {"drop_oldest_month_s": round(took, 3), "deleted_rows": removed}


def migrate(server: Postgres, database: str) -> dict[str, Any] | None:
    """Time the Alembic upgrade from 0003 to head, on a copy of the plain layout."""
    from alembic.script import ScriptDirectory

    from coldchain.store.migrate import alembic_config, upgrade

    url = server.url(database)
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    if head == "0003":
        return None
    with psycopg.connect(conninfo(server, database)) as conn:
        before = conn.execute("SELECT count(*) FROM readings").fetchone()[0]  # type: ignore[index]
    started = time.perf_counter()
    upgrade(url)
    took = time.perf_counter() - started
    with psycopg.connect(conninfo(server, database)) as conn:
        after = conn.execute("SELECT count(*) FROM readings").fetchone()[0]  # type: ignore[index]
        kind = conn.execute("SELECT relkind FROM pg_class WHERE relname = 'readings'").fetchone()[0]  # type: ignore[index]
    return {
        "to": head,
        "seconds": round(took, 1),
        "rows_before": before,
        "rows_after": after,
        "partitioned": kind == "p",
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    plan = Plan(args.rows, datetime.now(UTC))
    server = Postgres(Path(tempfile.mkdtemp(prefix="coldchain-bench-pg-"))).start()
    layouts = [name for name in LAYOUTS if name in args.layouts.split(",")]
    results: dict[str, Any] = {
        "rows": plan.steps * len(STORED_LOGGERS),
        "stored_loggers": len(STORED_LOGGERS),
        "interval_s": round(plan.interval_us / 1e6, 1),
        "months": len(plan.months),
        "insert_fleet": FLEET,
        "batch": BATCH,
        "batches_per_round": args.batches,
        "rounds": args.rounds,
        "layouts": {name: {} for name in layouts},
    }
    try:
        log(f"inserts on empty tables: {', '.join(layouts)}")
        for name in layouts:
            create_layout(server, f"empty_{name}", name, plan)
        empty = measure_inserts(
            server, {name: f"empty_{name}" for name in layouts}, plan, args.batches, args.rounds
        )
        for name in layouts:
            results["layouts"][name]["empty"] = empty[name]
            admin(server, f"DROP DATABASE empty_{name}")
        loaded: dict[str, str] = {}
        results["load_s"] = {}
        if "plain" in layouts or "brin" in layouts or args.migration:
            log(f"plain: loading {results['rows']:,} readings")
            create_layout(server, "full_plain", "plain", plan)
            results["load_s"]["plain"] = round(load(server, "full_plain", plan), 1)
            if "brin" in layouts:
                admin(server, "CREATE DATABASE full_brin TEMPLATE full_plain")
                with psycopg.connect(conninfo(server, "full_brin"), autocommit=True) as conn:
                    started = time.perf_counter()
                    add_brin(conn)
                    results["load_s"]["brin_index"] = round(time.perf_counter() - started, 2)
            if args.migration:
                admin(server, "CREATE DATABASE full_migrated TEMPLATE full_plain")
        for name in ("partitioned", "covering"):
            if name in layouts:
                log(f"{name}: loading {results['rows']:,} readings")
                create_layout(server, f"full_{name}", name, plan)
                results["load_s"][name] = round(load(server, f"full_{name}", plan), 1)
        loaded = {name: f"full_{name}" for name in layouts}
        log(f"sizes, queries, inserts, retention at {results['rows']:,} readings")
        measured = time_queries(server, loaded, plan, args.repeat)
        full = measure_inserts(server, loaded, plan, args.batches, args.rounds)
        for name, database in loaded.items():
            entry = results["layouts"][name]
            entry["size"] = sizes(server, database, plan)
            entry["queries"] = measured[name]
            entry["full"] = full[name]
            for kind in ("insert", "store"):
                key = f"{kind}_rows_per_s"
                entry[f"{kind}_full_vs_empty"] = round(entry["full"][key] / entry["empty"][key], 3)
            entry["retention"] = retention(server, database, name, plan)
            admin(server, f"DROP DATABASE {database}")
        if args.migration:
            log("migration: alembic upgrade of the plain layout to head")
            results["migration"] = migrate(server, "full_migrated")
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)
    return results


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def table(results: dict[str, Any]) -> str:
    """Render the figures as a Markdown table: one column a layout."""
    names = list(results["layouts"])
    cells: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
        ("insert rows/s, empty", lambda e: e["empty"]["insert_rows_per_s"]),
        ("insert rows/s, full", lambda e: e["full"]["insert_rows_per_s"]),
        ("insert full/empty", lambda e: e["insert_full_vs_empty"]),
        ("store rows/s, empty", lambda e: e["empty"]["store_rows_per_s"]),
        ("store rows/s, full", lambda e: e["full"]["store_rows_per_s"]),
        ("store full/empty", lambda e: e["store_full_vs_empty"]),
    ]
    for query in queries(Plan(1_000_000, datetime.now(UTC))):
        cells.append((f"{query} ms", lambda e, q=query: e["queries"][q]["median_ms"]))
    for query in queries(Plan(1_000_000, datetime.now(UTC))):
        cells.append((f"{query} pages", lambda e, q=query: e["queries"][q]["pages"]))
    cells += [
        ("heap MB", lambda e: e["size"]["heap_mb"]),
        ("index MB", lambda e: e["size"]["index_mb"]),
        ("index MB, month written", lambda e: e["size"]["current_month_index_mb"]),
        ("drop oldest month s", lambda e: e["retention"]["drop_oldest_month_s"]),
    ]
    lines = [
        "| " + " | ".join(["at " + f"{results['rows']:,} readings", *names]) + " |",
        "|" + "---|" * (len(names) + 1),
    ]
    for label, cell in cells:
        values = []
        for name in names:
            try:
                values.append(f"{cell(results['layouts'][name]):,}")
            except KeyError:
                values.append("-")
        lines.append("| " + " | ".join([label, *values]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="stored readings")
    parser.add_argument("--batches", type=int, default=100, help="500-row batches a round")
    parser.add_argument("--rounds", type=int, default=3, help="insert rounds (median)")
    parser.add_argument("--repeat", type=int, default=15, help="runs of each query (median)")
    parser.add_argument("--layouts", default=",".join(LAYOUTS))
    parser.add_argument("--no-migration", dest="migration", action="store_false")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/readings_layout.json")
    args = parser.parse_args()
    started = time.perf_counter()
    results = run(args)
    results["total_s"] = round(time.perf_counter() - started, 1)
    print(table(results))
    if "migration" in results and results["migration"]:
        m = results["migration"]
        print(f"\nmigration to {m['to']}: {m['seconds']} s for {m['rows_before']:,} readings")
    print(f"\nload s: {results.get('load_s')}; total {results['total_s']} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
