"""Electronic signatures (21 CFR Part 11 style): the signed record's hash, and lockout.

A signature has two components: the API token identifies the signer, and the password
re-entered at signing proves it is them. It stores printed name, user, time, meaning and the
SHA-256 of the canonical form of the record it signs, so that the record cannot be changed
afterwards without the signature ceasing to match it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from coldchain.domain.errors import ValidationError

# Consecutive wrong passwords after which the account is locked.
MAX_FAILED_SIGNATURES = 5
MAX_MEANING_LENGTH = 200


def _plain(value: Any) -> Any:
    """Convert to the JSON-safe, float-free form that is hashed."""
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        # Floats are written as their shortest exact decimal text, so that a hash does not
        # depend on how an engine or a JSON library prints them.
        if not math.isfinite(value):
            raise ValueError(f"a hashed record cannot hold {value!r}")
        return repr(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    raise TypeError(f"a hashed record cannot hold a {type(value).__name__}")


def canonical_json(record: Mapping[str, Any]) -> str:
    """Return the canonical JSON text of a record: sorted keys, no spaces, no floats."""
    return json.dumps(_plain(record), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_hash(record: Mapping[str, Any]) -> str:
    """Return the SHA-256 (hex) of a record's canonical JSON."""
    return hashlib.sha256(canonical_json(record).encode()).hexdigest()


def check_meaning(meaning: object) -> str:
    """The meaning of a signature (e.g. "Released for transport") is required text."""
    if not isinstance(meaning, str) or not meaning.strip():
        raise ValidationError("a signature needs its meaning", field="signature.meaning")
    if len(meaning) > MAX_MEANING_LENGTH:
        raise ValidationError(
            f"a signature's meaning has at most {MAX_MEANING_LENGTH} characters",
            field="signature.meaning",
        )
    return " ".join(meaning.split())


@dataclass(frozen=True)
class FailedAttempt:
    """The outcome of one more wrong password."""

    failures: int
    locks: bool


def after_wrong_password(failures_so_far: int) -> FailedAttempt:
    """Count a wrong password; the fifth in a row locks the account."""
    failures = failures_so_far + 1
    return FailedAttempt(failures, failures >= MAX_FAILED_SIGNATURES)
