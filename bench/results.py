"""Targets and results of the benchmark suite: summary rows, judging, statistics, JSON files."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


# --------------------------------------------------------------------------------------------
# Targets and results


@dataclass
class Row:
    """One line of the summary: a figure, its baseline, and the target it answers."""

    part: str
    engine: str
    measure: str
    figure: str
    baseline: str = ""
    target: str = ""
    status: str = ""  # pass | FAIL | not measured | "" (no target)
    note: str = ""


def judge(value: float | None, op: str, threshold: float) -> str:
    """Compare a figure with its target: 'pass', 'FAIL' or 'not measured'."""
    if value is None or value != value:  # None or NaN
        return "not measured"
    ok = value >= threshold if op == ">=" else value < threshold
    return "pass" if ok else "FAIL"


@dataclass
class PartResult:
    """What a part hands back: its JSON document and its summary rows."""

    name: str
    data: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def machine() -> dict[str, Any]:
    """Describe where the figures were taken."""
    return {
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_json(folder: Path, name: str, data: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return float("nan")
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by the nearest-rank method."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def wait_until(predicate: Any, timeout_s: float, interval_s: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return False
