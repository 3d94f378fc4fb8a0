"""Temperature profiles: the limits a shipment's product must stay within.

Besides the contract's keys (`min_c`, `max_c`, `grace_s`, `signal_loss_s`) a profile may set
the excursion-science keys of issue 9 (all optional; see README "Excursion science"):
`stability_budget_s` (cumulative time out of range the product tolerates),
`max_rise_c_per_min` (the fastest allowed rise between consecutive readings),
`startup_ignore_s` (readings this soon after the window start are not judged; default 0),
`critical_margin_c` and `critical_duration_s` (when an excursion is critical rather than a
warning) and `mkt` (true: show the mean kinetic temperature).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from coldchain.domain.errors import ValidationError

_SCIENCE_KEYS = (
    "stability_budget_s",
    "max_rise_c_per_min",
    "startup_ignore_s",
    "critical_margin_c",
    "critical_duration_s",
    "mkt",
)


@dataclass(frozen=True, slots=True)
class Profile:
    """A named temperature range with its grace and signal-loss periods."""

    name: str
    min_c: float | None
    max_c: float | None
    grace_s: float
    signal_loss_s: float
    stability_budget_s: float | None = None
    max_rise_c_per_min: float | None = None
    startup_ignore_s: float = 0.0
    critical_margin_c: float | None = None
    critical_duration_s: float | None = None
    mkt: bool = False

    def out_of_range(self, temp_c: float) -> bool:
        """Tell whether a reading is strictly outside the range (limits are inclusive)."""
        return (self.max_c is not None and temp_c > self.max_c) or (
            self.min_c is not None and temp_c < self.min_c
        )

    def judged_from_us(self, window_from_us: int) -> int:
        """Return the first time judged in a window: its start plus the start-up ignore."""
        return window_from_us + round(self.startup_ignore_s * 1_000_000)


def profile_from_mapping(name: str, raw: Mapping[str, Any]) -> Profile:
    """Build a profile from its TOML table, refusing unknown keys and bad numbers."""
    allowed = {"min_c", "max_c", "grace_s", "signal_loss_s", "description", *_SCIENCE_KEYS}
    unknown = set(raw) - allowed
    if unknown:
        raise ValidationError(f"profile {name}: unknown keys {sorted(unknown)}", field=name)

    def number(key: str, default: float | None) -> float | None:
        value = raw.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError(f"profile {name}: {key} must be a number", field=key)
        return float(value)

    grace_s = number("grace_s", 0.0)
    signal_loss_s = number("signal_loss_s", None)
    if grace_s is None or grace_s < 0:
        raise ValidationError(f"profile {name}: grace_s must be >= 0", field="grace_s")
    if signal_loss_s is None or signal_loss_s <= 0:
        raise ValidationError(f"profile {name}: signal_loss_s must be > 0", field="signal_loss_s")
    min_c, max_c = number("min_c", None), number("max_c", None)
    if min_c is not None and max_c is not None and min_c > max_c:
        raise ValidationError(f"profile {name}: min_c is above max_c", field="min_c")
    science: dict[str, Any] = {}
    for key in ("startup_ignore_s", "critical_duration_s"):
        value = number(key, None)
        if value is not None and (value < 0 or not math.isfinite(value)):
            raise ValidationError(f"profile {name}: {key} must be >= 0", field=key)
        if value is not None:
            science[key] = value
    for key in ("stability_budget_s", "max_rise_c_per_min", "critical_margin_c"):
        value = number(key, None)
        if value is not None and (value <= 0 or not math.isfinite(value)):
            raise ValidationError(f"profile {name}: {key} must be > 0", field=key)
        if value is not None:
            science[key] = value
    mkt = raw.get("mkt", False)
    if not isinstance(mkt, bool):
        raise ValidationError(f"profile {name}: mkt must be true or false", field="mkt")
    return Profile(name, min_c, max_c, grace_s, signal_loss_s, mkt=mkt, **science)
