"""The Alembic migrations produce exactly the models."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from coldchain.store.engine import make_engine
from coldchain.store.migrate import upgrade
from coldchain.store.models import Base, for_dialect


def _diff(url: str) -> list[object]:
    engine = make_engine(url)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_object": for_dialect(conn.dialect.name)}
        )
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    return list(diff)


def test_migrations_leave_no_difference_from_the_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    assert _diff(url) == []


def test_migrations_leave_no_difference_from_the_models_on_postgresql(
    pg_database_url: str,
) -> None:
    # The test database was migrated from the template; head is where it stands.
    assert _diff(pg_database_url) == []


def test_readings_have_a_brin_index_on_time_on_postgresql_only(
    pg_database_url: str, tmp_path: Path
) -> None:
    engine = make_engine(pg_database_url)
    with engine.connect() as conn:
        method = conn.exec_driver_sql(
            "SELECT am.amname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_am am ON am.oid = c.relam WHERE c.relname = 'ix_readings_time_brin'"
        ).scalar_one()
    engine.dispose()
    assert method == "brin"
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    sqlite = make_engine(url)
    assert "ix_readings_time_brin" not in {
        i["name"] for i in inspect(sqlite).get_indexes("readings")
    }
    sqlite.dispose()


def test_upgrading_twice_is_harmless(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    upgrade(url)
    engine = make_engine(url)
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_readings_table_has_no_rowid(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        sql = conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE name = 'readings'"
        ).scalar_one()
    engine.dispose()
    assert "WITHOUT ROWID" in sql.upper()
