"""Engine and session factory: plain SQLAlchemy, usable without Flask."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the API read while the worker writes; NORMAL sync is durable across process
    # crashes (WAL fsyncs at checkpoints), which is the failure the worker must survive.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine with the settings each dialect needs."""
    if url.startswith("postgresql"):
        # As SQLite's busy_timeout: a statement waits at most 10 s for a lock, then fails. The
        # worker then retries with backoff and reports itself failing (/healthz), instead of
        # waiting without end behind a table locked by another writer.
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args["options"] = f"{connect_args.get('options', '')} -c lock_timeout=10000"
        kwargs["connect_args"] = connect_args
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    """Return the session factory; services open transactions with `sessions.begin()`."""
    return sessionmaker(bind=engine, expire_on_commit=False)
