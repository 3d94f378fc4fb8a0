"""Per-logger broker passwords for the simulated loggers (`python -m devices --credentials`)."""

from __future__ import annotations

import json
from pathlib import Path


def parse_credentials(text: str) -> dict[str, str]:
    """Read `{"LOGGER_ID": "PASSWORD", ...}` or lines `LOGGER_ID PASSWORD` (# comments)."""
    if text.lstrip().startswith("{"):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"credentials are not valid JSON: {exc}") from exc
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()):
            raise ValueError("credentials JSON must map logger ids to password strings")
        return dict(loaded)
    found: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"credentials line {number} is not 'LOGGER_ID PASSWORD'")
        found[parts[0]] = parts[1]
    return found


def read_credentials(path: str) -> dict[str, str]:
    """Read a credentials file (see parse_credentials)."""
    try:
        return parse_credentials(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read credentials file {path}: {exc}") from exc
