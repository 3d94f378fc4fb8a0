"""Queries on a large database: a shipment's chart, its excursion recompute and CSV export, and
the excursion log, each with its time and the peak memory of the process that serves it.

Each measurement runs in a fresh Python process (`python bench/queries.py probe ...`) that
builds the real Flask app (`create_app`) on the database and sends the requests through
Flask's test client, in-process; the process reads nothing else. Its peak memory is its
peak resident set size (VmHWM from /proc, the same figure as ru_maxrss), printed with its
resident size just before the first request, so that the cost of the request itself shows.
Times: the first request (cold: a new process, connections to open) and the median of the
next ones (warm), which the targets are judged on.

- chart: GET /shipments/{id}/chart.json (the shipment page's data; a signed-in session);
- recompute: the full re-evaluation of the shipment's window, logger by logger
  (`excursions.reevaluate` over a `SqlReadingSource`, as the worker runs it), reconciled
  with the stored excursions (it must find nothing to change);
- CSV export: GET /api/v1/shipments/{id}/readings?format=csv, read as a stream and thrown
  away, for slices of the shipment (since/until) of about 1%, 10% and all of its readings;
- excursion log: GET /api/v1/excursions, the default page, as an auditor.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.results import PartResult, Row, judge, median  # noqa: E402

CHART_TARGET_MS = 200.0
LOG_TARGET_MS = 500.0
CSV_TARGET_MB = 200.0


# --------------------------------------------------------------------------------------------
# In the probe process


def _rss_mb(field_name: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _rfc3339(time_us: int) -> str:
    moment = datetime.fromtimestamp(time_us / 1e6, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def probe(args: argparse.Namespace) -> dict[str, Any]:
    """Run one kind of query `repeat` times in this process; return times and memory."""
    from bench.servers import settings_for
    from coldchain.app import create_app

    settings = settings_for(args.url)
    app = create_app(settings=settings)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {args.token}"}
    info: dict[str, Any] = {}

    def chart() -> None:
        response = client.get(f"/shipments/{args.shipment}/chart.json")
        if response.status_code != 200:
            raise RuntimeError(f"chart: {response.status_code} {response.data[:200]!r}")
        body = response.get_json()
        info.update(points=len(body["t"]), excursions=len(body["excursions"]))

    def csv() -> None:
        query = "format=csv"
        if args.since_us:
            query += f"&since={_rfc3339(args.since_us)}&until={_rfc3339(args.until_us)}"
        response = client.get(
            f"/api/v1/shipments/{args.shipment}/readings?{query}", headers=headers, buffered=False
        )
        if response.status_code != 200:
            raise RuntimeError(f"csv: {response.status_code} {response.get_data()[:200]!r}")
        size = lines = 0
        for chunk in response.response:
            data = chunk.encode() if isinstance(chunk, str) else chunk
            size += len(data)
            lines += data.count(b"\n")
        response.close()
        info.update(bytes=size, rows=lines - 1)

    def log() -> None:
        response = client.get("/api/v1/excursions", headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"log: {response.status_code} {response.data[:200]!r}")
        info.update(rows=len(response.get_json()), bytes=len(response.data))

    def recompute() -> None:
        from sqlalchemy import select

        from coldchain.domain import excursions as exc
        from coldchain.services.timefmt import now_us, to_us
        from coldchain.store.models import Excursion, Shipment
        from coldchain.store.readings import SqlReadingSource

        engine = app.extensions["coldchain"].engine
        changes = found = 0
        with engine.connect() as conn:
            shipment = conn.execute(select(Shipment).where(Shipment.id == args.shipment)).one()
            loggers = [
                row[0]
                for row in conn.exec_driver_sql(
                    "SELECT logger_id FROM shipment_loggers WHERE shipment_id = "
                    + str(int(args.shipment))
                )
            ]
            profile = settings.profiles[shipment.profile]
            window_from = to_us(shipment.monitoring_from)
            until = shipment.monitoring_until
            window_until = None if until is None else to_us(until)
            now = now_us()
            for logger_id in loggers:
                result = exc.reevaluate(
                    SqlReadingSource(conn, logger_id, profile),
                    profile,
                    window_from_us=window_from,
                    window_until_us=window_until,
                    touched_from_us=window_from,
                    touched_until_us=window_until if window_until is not None else now,
                    now_us=now,
                    silent_since_us=max(window_from, to_us(shipment.created_at)),
                )
                stored = [
                    exc.StoredExcursion(
                        r.id, exc.Kind(r.kind), r.started_us, r.ended_us, r.peak_c, r.duration_s
                    )
                    for r in conn.execute(
                        select(Excursion).where(
                            Excursion.shipment_id == args.shipment,
                            Excursion.logger_id == logger_id,
                            Excursion.resolution.is_(None),
                        )
                    )
                ]
                found += len(result.found)
                changes += len(exc.reconcile(stored, result.found))
        info.update(excursions_found=found, changes=changes)

    def board() -> None:
        with client.session_transaction() as session:
            session["user_id"] = args.user_id

    work = {"chart": chart, "csv": csv, "log": log, "recompute": recompute}[args.what]
    board()
    rss_before = _rss_mb("VmRSS")
    times = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return {
        "what": args.what,
        "first_ms": times[0],
        "warm_ms": times[1:],
        "warm_median_ms": median(times[1:]) if len(times) > 1 else times[0],
        "rss_before_mb": rss_before,
        "peak_rss_mb": _rss_mb("VmHWM"),
        **info,
    }


# --------------------------------------------------------------------------------------------
# In the bench process


def run_probe(
    *,
    url: str,
    what: str,
    shipment: int | None,
    token: str,
    user_id: int,
    repeat: int,
    since_us: int = 0,
    until_us: int = 0,
    timeout_s: float = 1800,
) -> dict[str, Any]:
    """Run a probe in a fresh process and return its figures (or why it failed)."""
    command = [
        sys.executable, str(Path(__file__).resolve()), "probe", "--url", url, "--what", what,
        "--token", token, "--user-id", str(user_id), "--repeat", str(repeat),
        "--shipment", str(shipment or 0), "--since-us", str(since_us), "--until-us", str(until_us),
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, cwd=ROOT)
    if done.returncode != 0:
        return {"what": what, "error": done.stderr.strip().splitlines()[-1:] or ["failed"]}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = round(time.perf_counter() - started, 1)
    return result


def measure_stage(dataset: Any, stage: str, quick: bool, log: Any = print) -> dict[str, Any]:
    """Every query on the dataset as it stands at this stage."""
    world = dataset.databases.world
    common = {
        "url": dataset.url,
        "token": world.auditor_token,
        "user_id": world.auditor_id,
        "shipment": dataset.big_shipment,
    }
    figures: dict[str, Any] = {"stage": stage, "readings_stored": dataset.stored}
    figures["chart"] = run_probe(what="chart", repeat=6, **common)
    figures["recompute"] = run_probe(what="recompute", repeat=2, **common)
    figures["log"] = run_probe(what="log", repeat=6, **common)
    first_us, end_us = dataset.big_window_us
    csv = []
    for fraction in (0.01, 0.1, 1.0):
        if stage == "total" and fraction < 1.0:
            continue  # the curve is drawn at the first stage; here only the whole shipment
        until_us = first_us + int((end_us - first_us) * fraction) if fraction < 1.0 else 0
        csv.append(
            {
                "fraction": fraction,
                **run_probe(
                    what="csv",
                    repeat=1 if fraction == 1.0 or quick else 2,
                    since_us=first_us if fraction < 1.0 else 0,
                    until_us=until_us,
                    **common,
                ),
            }
        )
    figures["csv"] = csv
    log(
        f"  {dataset.engine} queries at {dataset.stored:,} readings: "
        + "; ".join(
            f"{k} {v.get('warm_median_ms', float('nan')):,.0f} ms"
            for k, v in figures.items()
            if isinstance(v, dict)
        )
        + "; csv "
        + ", ".join(
            f"{c.get('rows', '?')} rows {c.get('first_ms', float('nan')):,.0f} ms "
            f"{c.get('peak_rss_mb', float('nan')):.0f} MB"
            for c in csv
        )
    )
    return figures


def _ms(result: dict[str, Any]) -> float | None:
    value = result.get("warm_median_ms")
    return None if value is None else float(value)


def summary_rows(engine: str, stages: list[dict[str, Any]], dataset: dict[str, Any]) -> list[Row]:
    rows = []
    for figures in stages:
        size = f"{figures['readings_stored']:,} stored"
        big = f"{dataset['big_readings']:,}-reading shipment"
        chart = figures["chart"]
        rows.append(
            Row(
                "queries",
                engine,
                f"chart data, {big} ({size})",
                _fmt(chart),
                f"first request {chart.get('first_ms', float('nan')):,.0f} ms",
                f"< {CHART_TARGET_MS:.0f} ms",
                judge(_ms(chart), "<", CHART_TARGET_MS),
                chart.get("error", [""])[0] if "error" in chart else "",
            )
        )
        recompute = figures["recompute"]
        rows.append(
            Row(
                "queries",
                engine,
                f"excursion recompute, {big} ({size})",
                _fmt(recompute),
                f"{recompute.get('excursions_found', '?')} excursions,"
                f" {recompute.get('changes', '?')} changes",
                "",
                "" if "error" not in recompute else "not measured",
            )
        )
        for c in figures["csv"]:
            peak = c.get("peak_rss_mb")
            rows.append(
                Row(
                    "queries",
                    engine,
                    f"CSV export, {c.get('rows', '?'):,} readings ({size})"
                    if isinstance(c.get("rows"), int)
                    else f"CSV export, {c['fraction']:.0%} of the shipment ({size})",
                    f"peak {peak:,.0f} MB, {c.get('first_ms', float('nan')) / 1000:,.1f} s"
                    if peak is not None
                    else "error",
                    f"RSS before the request {c.get('rss_before_mb', float('nan')):,.0f} MB",
                    f"peak < {CSV_TARGET_MB:.0f} MB",
                    judge(peak, "<", CSV_TARGET_MB),
                    c.get("error", [""])[0] if "error" in c else "",
                )
            )
        log_ = figures["log"]
        rows.append(
            Row(
                "queries",
                engine,
                f"excursion log page ({log_.get('rows', '?')} rows) over {size}",
                _fmt(log_),
                f"first request {log_.get('first_ms', float('nan')):,.0f} ms",
                f"< {LOG_TARGET_MS:.0f} ms" if figures["stage"] == "total" else "",
                judge(_ms(log_), "<", LOG_TARGET_MS) if figures["stage"] == "total" else "",
            )
        )
    return rows


def _fmt(result: dict[str, Any]) -> str:
    if "error" in result:
        return "error: " + " ".join(result["error"])[:80]
    return (
        f"{result['warm_median_ms']:,.0f} ms (peak {result['peak_rss_mb']:,.0f} MB,"
        f" RSS before {result['rss_before_mb']:,.0f} MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="run one query probe (used by the suite)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("probe")
    p.add_argument("--url", required=True)
    p.add_argument("--what", choices=["chart", "csv", "log", "recompute"], required=True)
    p.add_argument("--shipment", type=int, default=0)
    p.add_argument("--token", required=True)
    p.add_argument("--user-id", type=int, required=True)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--since-us", type=int, default=0)
    p.add_argument("--until-us", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps(probe(args)))


if __name__ == "__main__":
    main()

__all__ = ["PartResult", "measure_stage", "summary_rows"]
