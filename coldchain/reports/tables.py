"""Tabular exports built with pandas (the only package that imports it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd


def to_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Return rows as CSV with a fixed header, nested values flattened to JSON text.

    Built whole in memory: for small tables. The API, the web export and the reports write
    CSV with `coldchain.reports.csvstream`, which streams and formats cells the same way.
    """
    frame = pd.DataFrame.from_records(list(rows), columns=list(columns))
    for column in frame.columns:
        if frame[column].map(lambda v: isinstance(v, list | dict)).any():
            frame[column] = frame[column].map(
                lambda v: ";".join(map(str, v)) if isinstance(v, list) else v
            )
    return str(frame.to_csv(index=False, lineterminator="\n"))
