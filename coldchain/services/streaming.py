"""Big result sets read a batch at a time, so that exports stream in constant memory.

One session and one query per export: the rows come from one snapshot of the database, as
an auditor expects of an export. On PostgreSQL (psycopg 3) `yield_per` opens a server-side
cursor and fetches `BATCH_ROWS` rows per round trip; SQLite has no server-side cursors, but
its driver steps the statement as rows are fetched, so a batch is all that is in memory.
The read stays open while the client downloads: SQLite's WAL readers block no writer (the
worker goes on storing readings), and PostgreSQL's MVCC snapshot blocks none either.
Closing the generator (a download that stops early) closes the result, then the session:
on PostgreSQL the server-side cursor is closed then, not left to the garbage collector.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from sqlalchemy import Row, Select
from sqlalchemy.orm import Session, sessionmaker

# Rows per database fetch: large enough that round trips do not dominate, small enough that
# a batch of ORM objects and their dicts stays well under a megabyte or two. Read at call
# time, so that tests can make batches small.
BATCH_ROWS = 1000

T = TypeVar("T")
# A select of any columns (SQLAlchemy 2.1 types a select by the types of its columns).
AnySelect = Select[*tuple[Any, ...]]
Q = TypeVar("Q", bound=AnySelect)


def _batched() -> dict[str, Any]:
    return {"yield_per": BATCH_ROWS}


def stream_scalars(
    sessions: sessionmaker[Session],
    query: Select[T],
    view: Callable[[T], dict[str, Any]],
) -> Iterator[dict[str, Any]]:
    """Yield `view` of each object the ORM query selects, fetched `BATCH_ROWS` at a time."""
    with sessions() as session, session.scalars(query, execution_options=_batched()) as result:
        for item in result:
            yield view(item)


def stream_rows(
    sessions: sessionmaker[Session],
    query: AnySelect,
    view: Callable[[Row[*tuple[Any, ...]]], dict[str, Any]],
) -> Iterator[dict[str, Any]]:
    """Yield `view` of each row of a column query, fetched `BATCH_ROWS` at a time."""
    with sessions() as session, session.execute(query, execution_options=_batched()) as result:
        for row in result:
            yield view(row)


def paged(query: Q, limit: int | None, offset: int) -> Q:
    """Return the query with its offset and, if given, its limit."""
    query = query.offset(offset) if offset else query
    return query if limit is None else query.limit(limit)
