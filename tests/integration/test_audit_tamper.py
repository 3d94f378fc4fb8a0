"""Tampering with the audit trail, on a real SQLite file and a real PostgreSQL database.

Each test builds a trail through the services, signs a checkpoint with `coldchain audit
checkpoint`, tampers with the database directly, and runs `coldchain audit verify` as
a real process: it must exit 1 and name the first bad event. A cut tail and a rewritten
chain are consistent in themselves, so only the checkpoint catches them, as designed.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from coldchain.domain.audit import GENESIS_HASH, event_hash
from coldchain.services import accounts, audit
from coldchain.store.engine import make_engine, make_sessions
from coldchain.store.models import AuditEvent

ROOT = Path(__file__).resolve().parents[2]


def coldchain(db: str, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "COLDCHAIN_DATABASE_URL": db,
        "COLDCHAIN_AUDIT_SIGNING_KEY_FILE": str(tmp / "keys" / "audit.pem"),
        "COLDCHAIN_AUDIT_CHECKPOINT_DIR": str(tmp / "checkpoints"),
    }
    return subprocess.run(
        [sys.executable, "-m", "coldchain", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest) -> str:
    """The database URL of this test, on each engine."""
    name = "sqlite_database_url" if request.param == "sqlite" else "pg_database_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def trail(db: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A database whose trail has a dozen more events, and a checkpoint of its head."""
    engine = make_engine(db)
    sessions = make_sessions(engine)
    for n in range(6):
        accounts.add_logger(sessions=sessions, logger_id=f"T-{n}", model="tamper test")
        accounts.set_role(
            sessions=sessions,
            username="courier2",
            role="coordinator" if n % 2 == 0 else "courier",
            site_id=None,
            reason=f"rota change {n}",
        )
    engine.dispose()
    done = coldchain(db, tmp_path, "audit", "checkpoint", "--out", str(tmp_path / "cp.json"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "keys" / "audit.pub.pem").exists()
    assert (tmp_path / "keys" / "audit.pem").stat().st_mode & 0o777 == 0o600
    yield db, tmp_path / "cp.json"


def attack(db: str, *statements: str) -> None:
    """Change the database as someone with access to it would: triggers off, then the edit."""
    engine = create_engine(db, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_events_no_update")
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_events_no_delete")
        else:
            conn.exec_driver_sql("ALTER TABLE audit_events DISABLE TRIGGER USER")
        for statement in statements:
            conn.exec_driver_sql(statement)
    engine.dispose()


def rows(db: str) -> list[dict[str, Any]]:
    engine = make_engine(db)
    with make_sessions(engine)() as session:
        found = [
            audit.event_view(e)
            for e in session.scalars(select(AuditEvent).order_by(AuditEvent.seq))
        ]
    engine.dispose()
    return found


def verify(db: str, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return coldchain(db, tmp, "audit", "verify", *args)


def test_an_intact_trail_verifies_against_its_checkpoint(trail: tuple[str, Path]) -> None:
    db, checkpoint = trail
    done = verify(db, checkpoint.parent, "--checkpoint", str(checkpoint))
    assert done.returncode == 0, done.stderr
    assert "intact" in done.stdout
    # Without a file, the newest checkpoint kept in the database is used.
    assert "checkpoint of event" in verify(db, checkpoint.parent).stdout


def test_sqlite_refuses_update_and_delete_of_audit_events(sqlite_database_url: str) -> None:
    with sqlite3.connect(sqlite_database_url.removeprefix("sqlite:///")) as conn:
        for statement in (
            "UPDATE audit_events SET actor = 'mallory' WHERE seq = 1",
            "DELETE FROM audit_events WHERE seq = 1",
        ):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                conn.execute(statement)


def middle(db: str) -> int:
    return len(rows(db)) // 2


TAMPERS: dict[str, Callable[[str], tuple[list[str], int]]] = {
    "edited field": lambda db: (
        [f"UPDATE audit_events SET reason = 'nothing to see' WHERE seq = {middle(db)}"],
        middle(db),
    ),
    "deleted row": lambda db: ([f"DELETE FROM audit_events WHERE seq = {middle(db)}"], middle(db)),
    "swapped pair": lambda db: (
        [
            f"UPDATE audit_events SET seq = -1 WHERE seq = {middle(db)}",
            f"UPDATE audit_events SET seq = {middle(db)} WHERE seq = {middle(db) + 1}",
            f"UPDATE audit_events SET seq = {middle(db) + 1} WHERE seq = -1",
        ],
        middle(db),
    ),
}


@pytest.mark.parametrize("kind", list(TAMPERS))
def test_an_edit_a_deletion_or_a_swap_is_caught_even_without_a_checkpoint(
    trail: tuple[str, Path], kind: str
) -> None:
    db, checkpoint = trail
    statements, first_bad = TAMPERS[kind](db)
    attack(db, *statements)
    for args in ((), ("--checkpoint", str(checkpoint))):
        done = verify(db, checkpoint.parent, *args)
        assert done.returncode == 1, (kind, done.stdout)
        assert f"at event {first_bad}:" in done.stderr, done.stderr


def test_a_cut_tail_is_caught_only_with_a_checkpoint(trail: tuple[str, Path]) -> None:
    db, checkpoint = trail
    head = len(rows(db))
    attack(db, f"DELETE FROM audit_events WHERE seq > {head - 3}", "DELETE FROM audit_checkpoints")
    assert verify(db, checkpoint.parent).returncode == 0  # consistent in itself
    done = verify(db, checkpoint.parent, "--checkpoint", str(checkpoint))
    assert done.returncode == 1
    assert "cut off the end" in done.stderr


def test_a_rewritten_chain_is_caught_only_with_a_checkpoint(trail: tuple[str, Path]) -> None:
    db, checkpoint = trail
    events = rows(db)
    target = len(events) // 3
    prev = GENESIS_HASH
    statements = []
    for event in events:
        body = {**event, "prev_hash": prev}
        if event["seq"] == target:
            body["actor"] = "mallory"
        new_hash = event_hash(body)
        statements.append(
            f"UPDATE audit_events SET actor = '{body['actor']}', prev_hash = '{prev}', "
            f"hash = '{new_hash}' WHERE seq = {event['seq']}"
        )
        prev = new_hash
    attack(db, "DELETE FROM audit_checkpoints", *statements)
    assert verify(db, checkpoint.parent).returncode == 0  # consistent in itself
    done = verify(db, checkpoint.parent, "--checkpoint", str(checkpoint))
    assert done.returncode == 1
    assert "rewritten" in done.stderr


def test_a_checkpoint_signed_with_another_key_or_altered_is_refused(
    trail: tuple[str, Path], tmp_path: Path
) -> None:
    db, checkpoint = trail
    forged = json.loads(checkpoint.read_text())
    forged["seq"] -= 1
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    done = verify(db, checkpoint.parent, "--checkpoint", str(tmp_path / "forged.json"))
    assert done.returncode == 1 and "signature is not valid" in done.stderr
    other = tmp_path / "other"
    other.mkdir()
    signed_elsewhere = coldchain(db, other, "audit", "checkpoint", "--out", str(other / "cp.json"))
    assert signed_elsewhere.returncode == 0
    pinned = checkpoint.parent / "keys" / "audit.pub.pem"
    done = verify(db, checkpoint.parent, "--checkpoint", str(other / "cp.json"),
                  "--public-key", str(pinned))  # fmt: skip
    assert done.returncode == 1 and "another key" in done.stderr
