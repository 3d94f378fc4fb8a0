"""Predict when the product in an LN2 dry shipper crosses its limit (pure).

What is observable: while LN2 is left the product sits flat near -190 C, so its trend says
almost nothing about how much LN2 is left; only once the sorbent is dry does the product
warm, and then the warm-up itself tells how fast. So the estimate has two sources:

- The prior, from the shipper: dry-out is expected at `charged_at + rated_hold * derating`
  (the rated static hold is measured at rest at 20 C with a full charge; transport shortens
  it), and the crossing `warmup_h` after it. While the product is still flat past that
  expected dry-out, the shipper may dry any moment: the estimate is then `as_of + warmup_h`.
- The trend, once the recent readings rise significantly (a least-squares slope over the
  last `fit_h` hours of at least `min_rate_c_per_h`, at least `min_t` standard errors from
  zero, and the fitted level `min_rise_c` above the flat level seen before): a lumped thermal
  mass warming towards an ambient `ambient_c` (Newton: dT/dt = (A - T) / tau) has
  tau = (A - T) / slope now, and crosses the limit after tau * ln((A - T) / (A - limit)).
  The slope is the larger of the whole window's and its latter half's, so a warm-up that is
  still speeding up (a payload lagging behind the chamber) is not extrapolated too slowly.
  An assumed ambient above the real one errs early (the linear extrapolation is its
  limit), which is the safe side. The band is the estimate with the slope +- 2 standard
  errors.
- Observed: once the fitted level is above the limit, the crossing is where the fit reached it.

The trend, when there is one, replaces the prior: it is direct evidence about this shipper,
whereas the prior cannot know of an under-charge or a larger heat leak than rated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

US_PER_H = 3_600_000_000


@dataclass(frozen=True, slots=True)
class HoldSettings:
    """The estimator's assumptions and the alarm rule ([prediction] in config/default.toml)."""

    derating: float = 0.8
    warmup_h: float = 4.0
    ambient_c: float = 25.0
    # Alarm when the estimate falls before the planned arrival plus margin_h; clear it when
    # a later estimate is past the arrival plus margin_h plus clear_h.
    margin_h: float = 2.0
    clear_h: float = 1.0
    fit_h: float = 2.0
    min_rate_c_per_h: float = 1.0
    min_t: float = 4.0
    min_rise_c: float = 3.0
    # How far back the estimate looks, and how often (on the logger's clock) it is made for
    # the alarm: at the first reading of every step_min bucket.
    lookback_h: float = 4.0
    step_min: float = 10.0

    def __post_init__(self) -> None:
        for name in ("warmup_h", "margin_h", "clear_h"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"prediction {name} must be a finite number >= 0")
        if not (math.isfinite(self.derating) and 0 < self.derating <= 1):
            raise ValueError("prediction derating must be in (0, 1]")
        if not math.isfinite(self.ambient_c):
            raise ValueError("prediction ambient_c must be a finite number")
        if not (self.fit_h > 0 and self.lookback_h >= self.fit_h and self.step_min > 0):
            raise ValueError("need fit_h > 0, lookback_h >= fit_h and step_min > 0")


@dataclass(frozen=True, slots=True)
class Prediction:
    """When the product is expected to cross its limit, and on what evidence."""

    crossing_us: int
    # "prior" (rated hold, charge time), "trend" (warm-up seen), "observed" (already above)
    method: str
    earliest_us: int
    latest_us: int
    # The reading the estimate is made at (None: no reading yet, prior only).
    as_of_us: int | None


def predict_crossing(
    readings: Sequence[tuple[int, float]],
    *,
    limit_c: float,
    charged_at_us: int,
    rated_hold_h: float,
    settings: HoldSettings = HoldSettings(),
) -> Prediction:
    """Estimate the limit crossing from recent (time_us, temp_c) readings, oldest first."""
    if not readings:
        return _prior(None, charged_at_us, rated_hold_h, settings)
    as_of_us = readings[-1][0]
    trend = _trend(readings, limit_c, settings)
    if trend is not None:
        return trend
    return _prior(as_of_us, charged_at_us, rated_hold_h, settings)


def _prior(
    as_of_us: int | None, charged_at_us: int, rated_hold_h: float, s: HoldSettings
) -> Prediction:
    hold_us = rated_hold_h * US_PER_H
    warmup_us = s.warmup_h * US_PER_H
    dry_us = charged_at_us + hold_us * s.derating
    if as_of_us is not None and as_of_us > dry_us:
        # Still cold past the derated dry-out: it may dry out at any moment.
        dry_us = as_of_us
    # The band: the derating's own uncertainty (half of it either way, within the rating).
    earliest = charged_at_us + hold_us * s.derating * 0.75
    latest = charged_at_us + hold_us * max(1.0, s.derating)
    if as_of_us is not None:
        earliest, latest = max(earliest, as_of_us), max(latest, as_of_us)
    return Prediction(
        crossing_us=round(dry_us + warmup_us),
        method="prior",
        earliest_us=round(earliest + warmup_us),
        latest_us=round(latest + warmup_us),
        as_of_us=as_of_us,
    )


@dataclass(frozen=True, slots=True)
class _Fit:
    slope: float  # C per hour
    slope_se: float
    level: float  # fitted value at the last reading
    n: int


def _fit(points: Sequence[tuple[float, float]]) -> _Fit | None:
    """Least-squares line through (hours, temp_c) points, evaluated at the last one."""
    n = len(points)
    if n < 4:
        return None
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    if sxx <= 0:
        return None
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx
    residual = sum((y - mean_y - slope * (x - mean_x)) ** 2 for x, y in points)
    sigma2 = max(residual / (n - 2), 1e-4)
    last_x = points[-1][0]
    return _Fit(slope, math.sqrt(sigma2 / sxx), mean_y + slope * (last_x - mean_x), n)


def _trend(
    readings: Sequence[tuple[int, float]], limit_c: float, s: HoldSettings
) -> Prediction | None:
    as_of_us = readings[-1][0]
    window_from = as_of_us - s.fit_h * US_PER_H
    recent = [((t - as_of_us) / US_PER_H, v) for t, v in readings if t >= window_from]
    whole = _fit(recent)
    if whole is None or recent[-1][0] - recent[0][0] < s.fit_h / 4:
        return None
    half = _fit([p for p in recent if p[0] >= -s.fit_h / 2])
    fit = whole
    if half is not None and half.slope - 2 * half.slope_se > whole.slope:
        fit = half
    before = [v for t, v in readings if t < window_from]
    flat_c = min(v for _, v in recent) if not before else sorted(before)[len(before) // 2]
    if fit.level > limit_c and fit.slope > 0:
        back_h = (fit.level - limit_c) / fit.slope
        crossing = round(as_of_us - min(back_h, s.fit_h) * US_PER_H)
        return Prediction(crossing, "observed", crossing, crossing, as_of_us)
    if (
        fit.slope < s.min_rate_c_per_h
        or fit.slope < s.min_t * fit.slope_se
        or fit.level - flat_c < s.min_rise_c
    ):
        return None
    times = [
        _newton_h(fit.level, slope, limit_c, s.ambient_c)
        for slope in (fit.slope, fit.slope + 2 * fit.slope_se, fit.slope - 2 * fit.slope_se)
    ]
    return Prediction(
        crossing_us=round(as_of_us + times[0] * US_PER_H),
        method="trend",
        earliest_us=round(as_of_us + times[1] * US_PER_H),
        latest_us=round(as_of_us + min(times[2], 10 * times[0]) * US_PER_H),
        as_of_us=as_of_us,
    )


def _newton_h(level_c: float, slope_c_per_h: float, limit_c: float, ambient_c: float) -> float:
    """Hours until a lumped mass at `level_c` rising at `slope` reaches `limit_c`."""
    if slope_c_per_h <= 0:
        return math.inf
    if level_c >= limit_c:
        return 0.0
    gap = ambient_c - level_c
    if gap <= limit_c - level_c:
        return (limit_c - level_c) / slope_c_per_h
    tau_h = gap / slope_c_per_h
    return tau_h * math.log(gap / (ambient_c - limit_c))


def is_alarming(prediction: Prediction, *, arrival_us: int, settings: HoldSettings) -> bool:
    """Tell whether the estimate falls before the planned arrival plus the margin."""
    return prediction.crossing_us < arrival_us + settings.margin_h * US_PER_H


def is_safe(prediction: Prediction, *, arrival_us: int, settings: HoldSettings) -> bool:
    """Tell whether the estimate is far enough past the arrival to clear an alarm."""
    return prediction.crossing_us >= arrival_us + (settings.margin_h + settings.clear_h) * US_PER_H


def evaluation_points(times_us: Sequence[int], *, step_min: float) -> list[int]:
    """Return the indexes of the first reading of each step bucket (times sorted ascending)."""
    step_us = round(step_min * 60_000_000)
    points, last = [], None
    for index, time_us in enumerate(times_us):
        bucket = time_us // step_us
        if bucket != last:
            points.append(index)
            last = bucket
    return points
