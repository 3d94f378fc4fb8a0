"""Growth: the ingest part's worker measurement on the large database, against an empty one.

At each stage of the dataset (1M, then 10M stored readings) the same traffic as the ingest
part (10 loggers on monitored shipments; one reading per message, and packs of 1,000) is
drained by one real worker into the large database and, alternately, into a fresh empty
one: the empty database is the baseline, measured beside it in the same minutes, so that the
load of the machine weighs on both alike. The ratio of the medians (large / empty) is what
the target judges. Each run on the large database monitors new loggers (and cancels their
shipments afterwards), so every run stores new readings.
"""

from __future__ import annotations

from typing import Any

from bench.dataset import Dataset
from bench.ingest import LOGGERS, Case, measure_worker_once
from bench.results import PartResult, Row, judge, median
from bench.servers import Lab

GROWTH_TARGET = 0.8


def measure_stage(
    *, lab_: Lab, dataset: Dataset, stage: str, cases: list[Case], repeat: int, log: Any = print
) -> list[dict[str, Any]]:
    """Measure every case `repeat` times on the large database and on an empty one."""
    results = []
    for case in cases:
        if case.messages <= 0:
            continue
        empty: list[float] = []
        loaded: list[float] = []
        for r in range(repeat):
            loggers = [f"GR-{stage}-{case.per_message}-{r}-{n:02d}" for n in range(len(LOGGERS))]
            order = ("empty", "loaded") if r % 2 == 0 else ("loaded", "empty")
            for which in order:
                run = measure_worker_once(
                    databases=dataset.databases,
                    workdir=lab_.workdir,
                    case=case,
                    workers=1,
                    extra_env={},
                    url=dataset.url if which == "loaded" else None,
                    loggers=loggers,
                )
                (loaded if which == "loaded" else empty).append(case.readings / run.seconds)
            log(
                f"  {dataset.engine} growth at {dataset.stored:,} readings, {case.name} run "
                f"{r + 1}/{repeat}: empty {empty[-1]:,.0f} r/s, loaded {loaded[-1]:,.0f} r/s"
            )
        results.append(
            {
                "engine": dataset.engine,
                "stage": stage,
                "readings_stored": dataset.stored,
                "case": case.name,
                "messages": case.messages,
                "readings_per_message": case.per_message,
                "runs": repeat,
                "empty_readings_per_s": median(empty),
                "loaded_readings_per_s": median(loaded),
                "ratio": median(loaded) / median(empty),
                "empty_per_run": [round(x) for x in empty],
                "loaded_per_run": [round(x) for x in loaded],
            }
        )
    return results


def summary_rows(results: list[dict[str, Any]], final_stage: str) -> list[Row]:
    rows = []
    for r in results:
        judged = r["stage"] == final_stage
        rows.append(
            Row(
                "growth",
                r["engine"],
                f"{r['case']}: worker r/s at {r['readings_stored']:,} stored / empty database",
                f"{r['ratio']:.2f} ({r['loaded_readings_per_s']:,.0f} r/s)",
                f"empty database {r['empty_readings_per_s']:,.0f} r/s",
                f">= {GROWTH_TARGET}" if judged else "",
                judge(r["ratio"], ">=", GROWTH_TARGET) if judged else "",
            )
        )
    return rows


def part(results: list[dict[str, Any]], datasets: list[dict[str, Any]], data: Any) -> PartResult:
    return PartResult(
        "growth",
        {**data, "part": "growth", "method": (__doc__ or "").strip(), "datasets": datasets,
         "results": results},
        summary_rows(results, "total"),
    )  # fmt: skip
