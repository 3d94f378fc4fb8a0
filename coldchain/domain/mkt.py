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
    if not delta_h_j_per_mol > 0 or not math.isfinite(delta_h_j_per_mol):
        raise ValueError("delta_h_j_per_mol must be a finite positive number")
    kelvins = _kelvin(temps_c)
    if not kelvins:
        return None
    ratio_k = delta_h_j_per_mol / GAS_CONSTANT_J_PER_MOL_K
    exponents = [-ratio_k / temp_k for temp_k in kelvins]
    top = max(exponents)
    # ln(mean(exp(x))) = max(x) + ln(sum(exp(x - max(x)))) - ln(n): every term is in (0, 1].
    log_mean = (
        top + math.log(math.fsum(math.exp(x - top) for x in exponents)) - math.log(len(exponents))
    )
    mkt_k = ratio_k / -log_mean
    # Rounding can put a constant series a few ulps outside its own range; MKT lies within it.
    mkt_k = min(max(mkt_k, min(kelvins)), max(kelvins))
    return mkt_k - ZERO_C_IN_K


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
