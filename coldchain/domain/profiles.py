"""Temperature profiles: the limits a shipment's product must stay within."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from coldchain.domain.errors import ValidationError


@dataclass(frozen=True, slots=True)
class Profile:
    """A named temperature range with its grace and signal-loss periods."""

    name: str
    min_c: float | None
    max_c: float | None
    grace_s: float
    signal_loss_s: float

    def out_of_range(self, temp_c: float) -> bool:
        """Tell whether a reading is strictly outside the range (limits are inclusive)."""
        return (self.max_c is not None and temp_c > self.max_c) or (
            self.min_c is not None and temp_c < self.min_c
        )


def profile_from_mapping(name: str, raw: Mapping[str, Any]) -> Profile:
    """Build a profile from its TOML table, refusing unknown keys and bad numbers."""
    allowed = {"min_c", "max_c", "grace_s", "signal_loss_s", "description"}
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
    return Profile(name, min_c, max_c, grace_s, signal_loss_s)
