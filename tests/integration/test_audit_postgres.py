"""The audit trail on a real PostgreSQL server: triggers, and hashes equal to SQLite's."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DBAPIError

from coldchain.domain.audit import event_hash
from coldchain.services import audit
from coldchain.store.engine import make_engine, make_sessions
from coldchain.store.models import AuditEvent


def append_fixed_events(url: str) -> list[str]:
    """Append the same events, at the same times, and return their hashes as read back.

    The chain position (sequence, previous hash) is set aside: the seeded trails before
    them differ between the two databases; everything else is read back from the engine.
    """
    engine = make_engine(url)
    sessions = make_sessions(engine)
    with sessions.begin() as session:
        head = session.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1))
    start = head or 0
    contents = [
        {"old": None, "new": {"temp": -190.25, "name": "Zoë", "ok": True}, "reason": None},
        {"old": {"status": "created"}, "new": {"status": "picked_up"}, "reason": "pickup"},
        {"old": {"n": 1}, "new": {"n": 2, "list": [1.5, "x", None]}, "reason": "ünïcode ✓"},
    ]
    for n, content in enumerate(contents):
        with sessions.begin() as session:
            audit.record(
                session,
                actor="tester",
                action="test.fixed",
                entity="test",
                entity_id=n,
                old=content["old"],
                new=content["new"],
                reason=content["reason"],
                request_id="req-1",
                at=datetime(2026, 11, 25, 5, 0, n, 123450 * (n + 1) % 1_000_000, tzinfo=UTC),
            )
    with sessions() as session:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.seq > start).order_by(AuditEvent.seq)
        ).all()
        bodies = [audit.event_body(row) for row in rows]
    engine.dispose()
    return [event_hash({**body, "seq": body["seq"] - start, "prev_hash": "p"}) for body in bodies]


def test_an_event_hashes_the_same_on_sqlite_and_postgresql(
    sqlite_database_url: str, pg_database_url: str
) -> None:
    assert append_fixed_events(sqlite_database_url) == append_fixed_events(pg_database_url)


def test_the_whole_chain_verifies_on_postgresql(pg_database_url: str) -> None:
    append_fixed_events(pg_database_url)
    engine = make_engine(pg_database_url)
    verdict = audit.verify_database(make_sessions(engine))
    engine.dispose()
    assert verdict.ok and verdict.events > 3


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET actor = 'mallory' WHERE seq = 1",
        "DELETE FROM audit_events WHERE seq = 1",
        "TRUNCATE audit_events",
    ],
)
def test_postgresql_refuses_to_change_audit_events(pg_database_url: str, statement: str) -> None:
    engine = create_engine(pg_database_url)
    with engine.connect() as conn, pytest.raises(DBAPIError, match="append-only"):
        conn.execute(text(statement))
    engine.dispose()


def test_concurrent_appends_on_postgresql_never_fork_the_chain(pg_database_url: str) -> None:
    engine = make_engine(pg_database_url, pool_size=8)
    sessions = make_sessions(engine)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(10):
                with sessions.begin() as session:
                    audit.record(
                        session, actor=f"w{n}", action="test.race", entity="test", entity_id=i
                    )
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    verdict = audit.verify_database(sessions)
    with sessions() as session:
        races = session.scalars(select(AuditEvent).where(AuditEvent.action == "test.race")).all()
    engine.dispose()
    assert verdict.ok and len(races) == 60
