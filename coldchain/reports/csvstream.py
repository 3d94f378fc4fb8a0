"""CSV written a chunk at a time, with the stdlib csv module: any number of rows, flat memory.

The cells are formatted as `tables.to_csv` (pandas) formats them, so that a streamed export
reads the same as the small tables built in memory: a fixed header, None as an empty cell,
lists joined by ";", numbers and booleans as Python prints them. One deliberate difference:
an integer column with empty cells stays integer here, where pandas would print 3 as "3.0".
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

# Characters buffered before a chunk is handed to the server: a few dozen TCP segments, and
# a bound on memory whatever the size of a row.
CHUNK_CHARS = 64 * 1024


def csv_cell(value: Any) -> Any:
    """Return a value as its CSV cell shows it: a list as its items joined by ";"."""
    if isinstance(value, list):
        return ";".join(map(str, value))
    return value


def csv_chunks(
    rows: Iterable[Mapping[str, Any]], columns: Sequence[str], chunk_chars: int | None = None
) -> Iterator[str]:
    """Yield the rows as CSV text with a header, in chunks of about `CHUNK_CHARS` characters.

    The rows are read as the chunks are taken, so a generator of rows is never held whole;
    closing this generator closes the rows' generator (and the database session behind it).
    """
    limit = CHUNK_CHARS if chunk_chars is None else chunk_chars
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    try:
        for row in rows:
            writer.writerow([csv_cell(row.get(column)) for column in columns])
            if buffer.tell() >= limit:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        if buffer.tell():
            yield buffer.getvalue()
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()
