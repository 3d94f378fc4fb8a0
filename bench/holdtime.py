"""Validate the hold-time estimator on simulated dry-shipper warm-ups; print its error in hours.

Run: python bench/holdtime.py [--interval-min 5] [--step-min 10] (or python -m bench.holdtime)

Each case is a dry shipper of devices/dryshipper.py (rated, under-charged, with a larger heat
leak than rated, a lagging payload, another ambient, noisier sensors), sampled every
`interval_min` with Gaussian noise, and the estimator (coldchain/domain/holdtime.py) run as
the worker runs it: at the first reading of every `step_min` bucket, on the last
LOOKBACK_H hours of readings. Columns:

- `cross h`: the simulated crossing of -150 C, hours after charging.
- `err -Nh`: estimated minus true crossing, hours, at the last evaluation N hours before the
  true crossing (negative = early, the safe side), and the method then in use.
- `trend lead h`: how long before the crossing the warm-up was first detected (the estimate
  switched to the trend and stayed there).
- `alarm lead h`: with a planned arrival at the true crossing and the default margin_h of 2 h,
  how long before the crossing the alarm rule (estimate < arrival + margin) first held.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from coldchain.domain.holdtime import (  # noqa: E402
    US_PER_H,
    HoldSettings,
    Prediction,
    evaluation_points,
    is_alarming,
    predict_crossing,
)
from devices.dryshipper import DryShipper, curve  # noqa: E402

LIMIT_C = -150.0
HORIZONS_H = (8.0, 6.0, 4.0, 2.0, 1.0)
CHARGED_AT_US = 1_764_000_000 * 1_000_000


@dataclass(frozen=True)
class Case:
    """A named simulated shipper and how its logger reads it."""

    name: str
    shipper: DryShipper
    noise_c: float = 0.5
    seed: int = 1


@dataclass
class Outcome:
    """The estimator's record on one case."""

    case: Case
    crossing_h: float
    errors_h: dict[float, tuple[float, str]] = field(default_factory=dict)
    trend_lead_h: float = math.nan
    alarm_lead_h: float = math.nan


def cases() -> list[Case]:
    """Return the validation cases: rated and wrong ratings, lag, ambient, noise."""
    base = DryShipper()
    return [
        Case("as rated, 240 h", base),
        Case("as rated, 120 h", replace(base, rated_hold_h=120.0)),
        Case("under-charged 60 %", replace(base, charge_fraction=0.6), seed=2),
        Case("under-charged 80 %", replace(base, charge_fraction=0.8), seed=3),
        Case("heat leak x1.5", replace(base, heat_leak_factor=1.5), seed=4),
        Case("heat leak x2, 70 %", replace(base, heat_leak_factor=2.0, charge_fraction=0.7)),
        Case("slow warm-up tau 80 h", replace(base, warm_tau_h=80.0), seed=5),
        Case("fast warm-up tau 20 h", replace(base, warm_tau_h=20.0), seed=6),
        Case("payload lag 2 h", replace(base, lag_h=2.0), seed=7),
        Case("payload lag 4 h, 70 %", replace(base, lag_h=4.0, charge_fraction=0.7), seed=8),
        Case("ambient 35 C", replace(base, ambient_c=35.0), seed=9),
        Case("ambient 5 C", replace(base, ambient_c=5.0), seed=10),
        Case("noise 1.5 C", base, noise_c=1.5, seed=11),
        Case("noise 0.1 C", base, noise_c=0.1, seed=12),
    ]


def evaluate(
    case: Case,
    *,
    interval_min: float = 5.0,
    step_min: float = 10.0,
    settings: HoldSettings | None = None,
) -> Outcome:
    """Run the estimator over one simulated case as the worker would."""
    settings = dataclasses.replace(settings or HoldSettings(), step_min=step_min)
    shipper = case.shipper
    crossing_h = shipper.crossing_h(LIMIT_C)
    end_h = crossing_h + 1.0
    # From a day before the warm-up (the earlier hours only ever give the prior).
    start_h = max(0.0, shipper.dry_h - 24.0)
    count = int((end_h - start_h) * 60 / interval_min) + 1
    hours = [start_h + i * interval_min / 60 for i in range(count)]
    temps = curve(shipper, hours, noise_c=case.noise_c, seed=case.seed)
    times = [CHARGED_AT_US + round(h * US_PER_H) for h in hours]
    outcome = Outcome(case, crossing_h)
    arrival_us = round(CHARGED_AT_US + crossing_h * US_PER_H)
    lo = 0
    trend_since: float | None = None
    history: list[tuple[float, Prediction]] = []
    for i in evaluation_points(times, step_min=step_min):
        t = times[i]
        while times[lo] < t - settings.lookback_h * US_PER_H:
            lo += 1
        window = list(zip(times[lo : i + 1], temps[lo : i + 1], strict=True))
        prediction = predict_crossing(
            window,
            limit_c=LIMIT_C,
            charged_at_us=CHARGED_AT_US,
            rated_hold_h=shipper.rated_hold_h,
            settings=settings,
        )
        hour = hours[i]
        history.append((hour, prediction))
        if hour > crossing_h:
            continue
        if prediction.method == "prior":
            trend_since = None
        elif trend_since is None:
            trend_since = hour
        alarming = is_alarming(prediction, arrival_us=arrival_us, settings=settings)
        if math.isnan(outcome.alarm_lead_h) and alarming:
            outcome.alarm_lead_h = crossing_h - hour
    if trend_since is not None:
        outcome.trend_lead_h = crossing_h - trend_since
    for horizon in HORIZONS_H:
        before = [(h, p) for h, p in history if h <= crossing_h - horizon]
        if before:
            _h, p = before[-1]
            error_h = (p.crossing_us - CHARGED_AT_US) / US_PER_H - crossing_h
            outcome.errors_h[horizon] = (error_h, p.method)
    return outcome


def table(outcomes: Sequence[Outcome]) -> str:
    """Format the outcomes as a Markdown table."""
    head = ["case", "dry h", "cross h"]
    head += [f"err -{h:g}h" for h in HORIZONS_H] + ["trend lead h", "alarm lead h"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for o in outcomes:
        cells = [o.case.name, f"{o.case.shipper.dry_h:.1f}", f"{o.crossing_h:.1f}"]
        for horizon in HORIZONS_H:
            error = o.errors_h.get(horizon)
            cells.append("-" if error is None else f"{error[0]:+.1f} {error[1]}")
        cells += [f"{o.trend_lead_h:.1f}", f"{o.alarm_lead_h:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(outcomes: Sequence[Outcome]) -> str:
    """Return the error range per horizon of the trend estimates, and the least leads."""
    parts = []
    for horizon in HORIZONS_H:
        errors = [e for e, m in (o.errors_h[horizon] for o in outcomes) if m != "prior"]
        prior = len(outcomes) - len(errors)
        if errors:
            mean = sum(abs(e) for e in errors) / len(errors)
            parts.append(
                f"-{horizon:g}h: trend in {len(errors)} of {len(outcomes)} cases, mean |err| "
                f"{mean:.2f} h, range {min(errors):+.2f} to {max(errors):+.2f} h"
                + (f" (prior in {prior})" if prior else "")
            )
    parts.append(f"least trend lead {min(o.trend_lead_h for o in outcomes):.1f} h")
    parts.append(f"least alarm lead {min(o.alarm_lead_h for o in outcomes):.1f} h")
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the validation table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval-min", type=float, default=5.0)
    parser.add_argument("--step-min", type=float, default=10.0)
    args = parser.parse_args(argv)
    outcomes = [
        evaluate(case, interval_min=args.interval_min, step_min=args.step_min) for case in cases()
    ]
    print(table(outcomes))  # noqa: T201
    print()  # noqa: T201
    print(summary(outcomes))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
