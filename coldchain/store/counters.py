"""Cumulative counters kept in the database, so every process reports the same figures."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from coldchain.store.models import IngestCounter

counters = IngestCounter.__table__


def add_counts(conn: Connection, increments: Mapping[str, int]) -> None:
    """Add to named counters within the caller's transaction."""
    rows = [{"name": name, "value": n} for name, n in sorted(increments.items()) if n]
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(counters)
    stmt = stmt.on_conflict_do_update(
        index_elements=[counters.c.name], set_={"value": counters.c.value + stmt.excluded.value}
    )
    conn.execute(stmt, rows)


def read_counts(conn: Connection) -> dict[str, int]:
    """Return every counter by name."""
    return {name: value for name, value in conn.execute(select(counters.c.name, counters.c.value))}
