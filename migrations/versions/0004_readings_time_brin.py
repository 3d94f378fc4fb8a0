"""readings: a BRIN index on time (PostgreSQL only)

Chosen by measurement (bench/readings_layout.py, 10M readings; see the README): the
primary key's btree keeps every per-logger path fast at any size, and BRIN adds the scans
across loggers by time for almost nothing. SQLite gets no index: it has no BRIN, and a
btree on time would cost every insert for queries the worker does not run.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_readings_time_brin", "readings", ["time_us"], postgresql_using="brin"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_readings_time_brin", table_name="readings")
