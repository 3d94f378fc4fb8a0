"""Mean kinetic temperature (USP <1079>, ICH Q1A): one temperature for a series' thermal stress.

MKT is the single temperature that would degrade the product as much as the recorded series,
under Arrhenius kinetics with activation energy ``delta_h``::

    Tk = (delta_h / R) / -ln( sum(exp(-delta_h / (R * Ti))) / n )      (kelvin)

At cryogenic temperatures the terms underflow: at -190 C (83 K) with the default 83.144 kJ/mol,
``exp(-1e4 / 83.15)`` is about 1e-52, and at liquid-nitrogen temperature (-196 C) about 1e-56,
so a plain sum would lose precision and, for lower energies or colder series, reach 0 and divide
by ``-ln(0)``. The logarithm of the mean is therefore computed with the log-sum-exp trick.
Because ``exp(-a/T)`` is convex for ``T < a/2`` (thousands of kelvin), MKT is never below the
arithmetic mean.

USP <1079> and ICH take equally spaced readings. A logger's readings are not always so (a
backlog, a changed interval, a gap), so `time_weighted_mkt` weighs each reading by the time
it stands for: from it to the next reading (a step hold, as the excursion rules read a
series; the last reading stands for no time). With equal spacing it is the textbook figure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "DEFAULT_DELTA_H_J_PER_MOL",
    "GAS_CONSTANT_J_PER_MOL_K",
    "ZERO_C_IN_K",
    "TempSummary",
    "mean_kinetic_temperature",
    "summary",
    "time_weighted_mkt",
    "weighted_mean_kinetic_temperature",
]

DEFAULT_DELTA_H_J_PER_MOL = 83_144.0
GAS_CONSTANT_J_PER_MOL_K = 8.3144
ZERO_C_IN_K = 273.15


@dataclass(frozen=True, slots=True)
class TempSummary:
    """Count, extremes, arithmetic mean and mean kinetic temperature of a series, in Celsius."""

    count: int
    min_c: float | None
    max_c: float | None
    mean_c: float | None
    mkt_c: float | None


def _kelvin(temps_c: Sequence[float]) -> list[float]:
    kelvins = []
    for temp_c in temps_c:
        temp_k = float(temp_c) + ZERO_C_IN_K
        if not math.isfinite(temp_k) or temp_k <= 0:
            raise ValueError(f"temperature {temp_c!r} C is not a finite value above absolute zero")
        kelvins.append(temp_k)
    return kelvins


def mean_kinetic_temperature(
    temps_c: Sequence[float], delta_h_j_per_mol: float = DEFAULT_DELTA_H_J_PER_MOL
) -> float | None:
    """Return the mean kinetic temperature in Celsius of equally spaced readings (None if empty)."""
    return weighted_mean_kinetic_temperature(temps_c, [1.0] * len(temps_c), delta_h_j_per_mol)


def weighted_mean_kinetic_temperature(
    temps_c: Sequence[float],
    weights: Sequence[float],
    delta_h_j_per_mol: float = DEFAULT_DELTA_H_J_PER_MOL,
) -> float | None:
    """Return the MKT in Celsius with each temperature weighted (None if no weight at all)."""
    if not delta_h_j_per_mol > 0 or not math.isfinite(delta_h_j_per_mol):
        raise ValueError("delta_h_j_per_mol must be a finite positive number")
    if len(weights) != len(temps_c):
        raise ValueError("one weight per temperature")
    if any(not (w >= 0 and math.isfinite(w)) for w in weights):
        raise ValueError("weights must be finite and not negative")
    kelvins = _kelvin(temps_c)
    pairs = [(k, w) for k, w in zip(kelvins, weights, strict=True) if w > 0]
    if not pairs:
        return None
    ratio_k = delta_h_j_per_mol / GAS_CONSTANT_J_PER_MOL_K
    exponents = [(-ratio_k / temp_k, w) for temp_k, w in pairs]
    top = max(x for x, _w in exponents)
    # ln(sum(w exp(x)) / sum(w)) = max(x) + ln(sum(w exp(x - max(x)))) - ln(sum(w)): every
    # exponential is in (0, 1], so nothing underflows to a zero sum.
    log_mean = (
        top
        + math.log(math.fsum(w * math.exp(x - top) for x, w in exponents))
        - math.log(math.fsum(w for _x, w in exponents))
    )
    mkt_k = ratio_k / -log_mean
    # Rounding can put a constant series a few ulps outside its own range; MKT lies within it.
    used = [k for k, _w in pairs]
    mkt_k = min(max(mkt_k, min(used)), max(used))
    return mkt_k - ZERO_C_IN_K


def time_weighted_mkt(
    readings: Sequence[tuple[int, float]], delta_h_j_per_mol: float = DEFAULT_DELTA_H_J_PER_MOL
) -> float | None:
    """Return the MKT in Celsius of time-sorted (time_us, temp_c) readings, each held to the next.

    A single reading stands for itself; no reading gives None.
    """
    if len(readings) <= 1:
        return mean_kinetic_temperature([t for _, t in readings], delta_h_j_per_mol)
    weights = [float(b[0] - a[0]) for a, b in zip(readings, readings[1:], strict=False)]
    if any(w <= 0 for w in weights):
        raise ValueError("readings are not sorted by unique time")
    temps_c = [temp_c for _t, temp_c in readings]
    return weighted_mean_kinetic_temperature(temps_c, [*weights, 0.0], delta_h_j_per_mol)


def summary(
    temps_c: Sequence[float], delta_h_j_per_mol: float = DEFAULT_DELTA_H_J_PER_MOL
) -> TempSummary:
    """Return the count, min, max, arithmetic mean and MKT of a series (values None if empty)."""
    values = [float(t) for t in temps_c]
    if not values:
        return TempSummary(0, None, None, None, None)
    mkt_c = mean_kinetic_temperature(values, delta_h_j_per_mol)
    mean_c = math.fsum(values) / len(values)
    return TempSummary(len(values), min(values), max(values), mean_c, mkt_c)
