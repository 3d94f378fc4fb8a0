"""The coldchain benchmark suite: ingest, latency, queries and growth, with their targets.

Run: python bench/run.py [--only ingest,latency,queries,growth] [--engines sqlite,postgresql]
     [--quick] [size options]     (or: python -m bench ...; `make bench`, `make bench-quick`)

Writes bench/results/<part>.json (bench/results/quick/ with --quick) and summary.md, and
prints the summary table: each figure beside its baseline measured in the same run, and its
target with pass/FAIL. A figure that could not be taken says so ("not measured").
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import growth, ingest, latency, queries  # noqa: E402
from bench.dataset import Dataset  # noqa: E402
from bench.results import RESULTS, PartResult, Row, machine, write_json  # noqa: E402
from bench.servers import ENGINES, Lab, lab  # noqa: E402

PARTS = ("ingest", "latency", "queries", "growth")
# What the issue asks for; smaller sizes are reported as reductions.
ISSUE_SIZES = {"big_readings": 1_000_000, "total_readings": 10_000_000, "rate": 1000.0}

FULL = {
    "messages": 60_000,
    "packs": 200,
    "repeat": 3,
    "workers": "1,2,4",
    "rate": 1000.0,
    "latency_s": 60.0,
    "big_readings": 1_000_000,
    "total_readings": 10_000_000,
    "growth_messages": 20_000,
    "growth_packs": 200,
    "growth_repeat": 3,
}
QUICK = {
    "messages": 2_000,
    "packs": 20,
    "repeat": 1,
    "workers": "1,2",
    "rate": 1000.0,
    "latency_s": 8.0,
    "big_readings": 100_000,
    "total_readings": 300_000,
    "growth_messages": 2_000,
    "growth_packs": 20,
    "growth_repeat": 1,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", default=",".join(PARTS), help="parts to run, comma-separated")
    parser.add_argument("--engines", default=",".join(ENGINES), help="sqlite,postgresql")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    sizes = parser.add_argument_group("sizes (defaults: full run; --quick: smaller)")
    for name, value in FULL.items():
        sizes.add_argument(
            f"--{name.replace('_', '-')}",
            type=type(value),
            default=None,
            help=f"default {value} ({QUICK[name]} with --quick)",
        )
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.parts = [p.strip() for p in args.only.split(",") if p.strip()]
    args.engine_list = [e.strip() for e in args.engines.split(",") if e.strip()]
    for part in args.parts:
        if part not in PARTS:
            parser.error(f"unknown part {part!r}; parts: {', '.join(PARTS)}")
    for engine in args.engine_list:
        if engine not in ENGINES:
            parser.error(f"unknown engine {engine!r}; engines: {', '.join(ENGINES)}")
    if args.out is None:
        args.out = RESULTS / "quick" if args.quick else RESULTS
    return args


def reductions(args: argparse.Namespace) -> list[str]:
    """Say where this run is smaller than the issue asks."""
    notes = []
    if {"queries", "growth"} & set(args.parts):
        if args.big_readings < ISSUE_SIZES["big_readings"]:
            notes.append(
                f"size reduced: the large shipment has {args.big_readings:,} readings "
                f"(the issue asks for {ISSUE_SIZES['big_readings']:,})"
            )
        if args.total_readings < ISSUE_SIZES["total_readings"]:
            notes.append(
                f"size reduced: the large database has {args.total_readings:,} readings "
                f"(the issue asks for {ISSUE_SIZES['total_readings']:,})"
            )
    if "latency" in args.parts and args.rate < ISSUE_SIZES["rate"]:
        notes.append(f"rate reduced: {args.rate:,.0f} msg/s (the issue asks for 1,000)")
    return notes


def failed(name: str, engines: list[str], exc: BaseException) -> PartResult:
    """A part that could not run: every figure it owed is reported as not measured."""
    message = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    return PartResult(
        name,
        {"part": name, "error": message, "traceback": traceback.format_exc()},
        [
            Row(name, e, "(the whole part)", "error", "", "", "not measured", message)
            for e in engines
        ],
        [f"{name}: not measured: {message}"],
    )


def run_scale(
    lab_: Lab, args: argparse.Namespace, log: Callable[[str], None]
) -> tuple[PartResult | None, PartResult | None]:
    """Build each engine's large database in stages; run the queries and growth parts on it."""
    want_queries, want_growth = "queries" in args.parts, "growth" in args.parts
    query_stages: dict[str, list[dict[str, Any]]] = {}
    growth_results: list[dict[str, Any]] = []
    datasets: list[dict[str, Any]] = []
    cases = [
        ingest.Case("one-reading-per-message", args.growth_messages, 1),
        ingest.Case("packs-of-1000", args.growth_packs, 1000),
    ]
    errors: dict[str, str] = {}
    for engine in args.engine_list:
        dataset = Dataset(lab_.databases(engine), args.big_readings, args.total_readings)
        try:
            dataset.open()
            for stage, grow in (
                ("big", dataset.grow_to_big),
                ("total", lambda d=dataset: d.grow_to_total(log)),
            ):
                built = grow()
                log(f"  {engine} dataset stage {stage}: {built}")
                if want_queries:
                    query_stages.setdefault(engine, []).append(
                        queries.measure_stage(dataset, stage, args.quick, log)
                    )
                if want_growth:
                    growth_results += growth.measure_stage(
                        lab_=lab_,
                        dataset=dataset,
                        stage=stage,
                        cases=cases,
                        repeat=args.growth_repeat,
                        log=log,
                    )
        except Exception as exc:  # noqa: BLE001 - report it, go on with the next engine
            errors[engine] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            log(traceback.format_exc())
        finally:
            datasets.append(
                {
                    "engine": engine,
                    "big_readings": args.big_readings,
                    "total_readings": args.total_readings,
                    "stages": dataset.stages,
                    "big_shipment": dataset.big_shipment,
                }
            )
            dataset.close()
    common = {"machine": machine(), "versions": lab_.versions(), "errors": errors}
    query_part = growth_part = None
    if want_queries:
        rows: list[Row] = []
        for engine in args.engine_list:
            info = next(d for d in datasets if d["engine"] == engine)
            rows += queries.summary_rows(engine, query_stages.get(engine, []), info)
            if engine in errors:
                rows.append(
                    Row("queries", engine, "(some figures)", "error", "", "", "not measured",
                        errors[engine])
                )  # fmt: skip
        query_part = PartResult(
            "queries",
            {**common, "part": "queries", "method": (queries.__doc__ or "").strip(),
             "datasets": datasets, "stages": query_stages},
            rows,
        )  # fmt: skip
    if want_growth:
        growth_part = growth.part(growth_results, datasets, common)
        for engine, error in errors.items():
            growth_part.rows.append(
                Row("growth", engine, "(some figures)", "error", "", "", "not measured", error)
            )
    return query_part, growth_part


def table(rows: list[Row]) -> str:
    """The summary as a Markdown table."""
    lines = [
        "| part | engine | measure | figure | baseline (same run) | target | result |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        status = r.status + (f" ({r.note})" if r.note else "")
        lines.append(
            f"| {r.part} | {r.engine} | {r.measure} | {r.figure} | {r.baseline} | {r.target} "
            f"| {status} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()

    def log(text: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f}s] {text}", flush=True)

    log(
        f"coldchain bench: parts {','.join(args.parts)}; engines {','.join(args.engine_list)}; "
        f"results in {args.out}"
    )
    results: list[PartResult] = []
    notes = reductions(args)

    def keep(result: PartResult) -> None:
        results.append(result)
        write_json(args.out, result.name, result.data)
        log(f"{result.name}: written to {args.out / (result.name + '.json')}")

    with lab() as opened:
        if "ingest" in args.parts:
            log("ingest")
            try:
                counts = [int(n) for n in args.workers.split(",")]
                result = ingest.run_part(
                    lab_=opened,
                    engines=args.engine_list,
                    cases=[
                        ingest.Case("one-reading-per-message", args.messages, 1),
                        ingest.Case("packs-of-1000", args.packs, 1000),
                    ],
                    repeat=args.repeat,
                    pg_worker_counts=counts,
                    log=log,
                )
            except Exception as exc:  # noqa: BLE001 - report it, go on with the next part
                log(traceback.format_exc())
                result = failed("ingest", args.engine_list, exc)
            keep(result)
        if "latency" in args.parts:
            log("latency")
            try:
                result = latency.run_part(
                    lab_=opened,
                    engines=args.engine_list,
                    rate=args.rate,
                    duration_s=args.latency_s,
                    log=log,
                )
            except Exception as exc:  # noqa: BLE001
                log(traceback.format_exc())
                result = failed("latency", args.engine_list, exc)
            keep(result)
        if {"queries", "growth"} & set(args.parts):
            log("queries and growth (one large database per engine, built in stages)")
            try:
                for part_result in run_scale(opened, args, log):
                    if part_result is not None:
                        keep(part_result)
            except Exception as exc:  # noqa: BLE001
                log(traceback.format_exc())
                for name in ("queries", "growth"):
                    if name in args.parts:
                        keep(failed(name, args.engine_list, exc))
        versions = opened.versions()
    for result in results:
        notes += result.notes
    rows = [row for result in results for row in result.rows]
    elapsed_min = (time.perf_counter() - started) / 60
    header = [
        "# coldchain benchmark summary",
        "",
        f"- parts: {', '.join(args.parts)}; engines: {', '.join(args.engine_list)};"
        f" {'quick' if args.quick else 'full'} sizes; took {elapsed_min:.1f} min",
        f"- machine: {machine()}",
        f"- versions: {versions}",
        "- figures are medians of the runs; a 2-core machine shared with other work swings"
        " by up to 1.5x between runs of the same build: compare ratios, not absolutes",
    ]
    header += [f"- {note}" for note in notes]
    summary = "\n".join([*header, "", table(rows), ""])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.md").write_text(summary)
    print()
    print(summary)
    errors = [r for r in results if "error" in r.data]
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
