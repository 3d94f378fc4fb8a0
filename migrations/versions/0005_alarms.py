"""alarms: stability budget spent, rate of change, predicted crossing (issue 9)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import coldchain.store.models

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alarms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shipment_id", sa.Integer(), nullable=False),
        sa.Column("logger_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("severity", sa.String(length=20), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("cleared_us", sa.BigInteger(), nullable=True),
        sa.Column("detail_json", sa.Text(), nullable=False),
        sa.Column("raised_at", coldchain.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", coldchain.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["shipment_id"], ["shipments.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "uq_alarms_identity",
        "alarms",
        ["shipment_id", "logger_id", "kind", "at_us"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_alarms_identity", table_name="alarms")
    op.drop_table("alarms")
