"""A physical model of an LN2 dry shipper: hold on boil-off, then warm-up once dry.

Pure (no clock, no network, nothing from coldchain), so the `dry-shipper` scenario, the tests
and the estimator's validation (`python -m bench.holdtime`) share one curve.

The shipper is charged at time 0 with `charge_fraction` of its rated LN2 mass, absorbed in
its sorbent. A constant heat leak Q boils it off (latent heat L = 199 kJ/kg), so it is dry at
    t_dry = m * L / Q = rated_hold_h * charge_fraction / heat_leak_factor
(the rated static hold time is the rated mass over the rated heat leak). While LN2 is left
the product sits in its vapour near `hold_c`, drifting up to `dry_c` as the level falls
(cubic in the fraction boiled off: flat at first, faster near the end). Once dry, the
chamber warms towards `ambient_c` like a lumped thermal mass through the same insulation:
Newtonian, with time constant tau = C * R = C * (ambient - (-196)) / Q, which is
`warm_tau_h` at the rated heat leak and shorter with a larger leak. `lag_h` > 0 makes the
product follow the chamber through a first-order lag (a payload in a canister): the warm-up
then starts flat (an S-curve), which is harder to extrapolate than the pure exponential.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

LATENT_HEAT_J_PER_KG = 199_000.0
LN2_BOILING_C = -195.8


@dataclass(frozen=True)
class DryShipper:
    """A dry shipper and its charge; times in hours after charging."""

    rated_hold_h: float = 240.0
    # Of the rated LN2 mass (under-charged < 1).
    charge_fraction: float = 1.0
    # Actual heat leak over the rated one (a worn or tilted shipper > 1).
    heat_leak_factor: float = 1.0
    ambient_c: float = 20.0
    hold_c: float = -192.0
    dry_c: float = -186.0
    # Newtonian warm-up time constant at the rated heat leak.
    warm_tau_h: float = 40.0
    # The product's lag behind the chamber; 0 = none.
    lag_h: float = 0.0

    def __post_init__(self) -> None:
        for name in ("rated_hold_h", "charge_fraction", "heat_leak_factor", "warm_tau_h"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0")
        if not (math.isfinite(self.lag_h) and self.lag_h >= 0):
            raise ValueError("lag_h must be a finite number >= 0")
        if not self.hold_c <= self.dry_c < self.ambient_c:
            raise ValueError("need hold_c <= dry_c < ambient_c")

    @property
    def dry_h(self) -> float:
        """Hours from charging until the LN2 is gone (m * L / Q)."""
        return self.rated_hold_h * self.charge_fraction / self.heat_leak_factor

    @property
    def tau_h(self) -> float:
        """The warm-up time constant with the actual heat leak."""
        return self.warm_tau_h / self.heat_leak_factor

    def rated_mass_kg(self, rated_heat_leak_w: float) -> float:
        """The rated LN2 charge for a rated heat leak: rated hold = m * L / Q."""
        return self.rated_hold_h * 3600.0 * rated_heat_leak_w / LATENT_HEAT_J_PER_KG

    def temp_c(self, hours: float) -> float:
        """Return the product temperature `hours` after charging (no noise)."""
        if hours <= self.dry_h:
            boiled = min(1.0, max(0.0, hours / self.dry_h))
            return self.hold_c + (self.dry_c - self.hold_c) * boiled**3
        u, tau, lag = hours - self.dry_h, self.tau_h, self.lag_h
        gap = self.ambient_c - self.dry_c
        if lag == 0:
            return self.ambient_c - gap * math.exp(-u / tau)
        if abs(tau - lag) < 1e-9:
            return self.ambient_c - gap * (1 + u / tau) * math.exp(-u / tau)
        return self.ambient_c - gap * (tau * math.exp(-u / tau) - lag * math.exp(-u / lag)) / (
            tau - lag
        )

    def crossing_h(self, limit_c: float = -150.0) -> float:
        """Return the hours after charging at which the product first exceeds `limit_c`."""
        if limit_c <= self.dry_c:
            raise ValueError("the limit must be above the dry-out temperature")
        if limit_c >= self.ambient_c:
            return math.inf
        lo, hi = self.dry_h, self.dry_h + self.tau_h
        while self.temp_c(hi) <= limit_c:
            lo, hi = hi, hi + self.tau_h
        for _ in range(100):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if self.temp_c(mid) <= limit_c else (lo, mid)
        return hi


def curve(
    shipper: DryShipper, hours: Sequence[float], *, noise_c: float = 0.0, seed: int = 0
) -> list[float]:
    """Return the product temperatures at these hours after charging, with Gaussian noise."""
    rng = random.Random(seed)
    return [round(shipper.temp_c(h) + rng.gauss(0.0, noise_c), 2) for h in hours]
