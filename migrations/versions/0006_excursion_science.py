"""excursion science: stability budget, rate of change, start-up ignore, severities (issue 9)

An excursion's severity (info | warning | critical), and each shipment logger's running
total of time out of range for its stability budget. Excursions stored before this revision
get "warning", the least any excursion is.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import coldchain.store.models

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("excursions") as batch:
        batch.add_column(
            sa.Column("severity", sa.String(length=10), nullable=False, server_default="warning")
        )
    op.create_table(
        "stability_budgets",
        sa.Column("shipment_id", sa.Integer(), nullable=False),
        sa.Column("logger_id", sa.String(length=64), nullable=False),
        sa.Column("used_us", sa.BigInteger(), nullable=False),
        sa.Column("budget_us", sa.BigInteger(), nullable=True),
        sa.Column("judged_from_us", sa.BigInteger(), nullable=False),
        sa.Column("mkt", sa.Boolean(), nullable=False),
        sa.Column("counted_until_us", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", coldchain.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["shipment_id"], ["shipments.id"]),
        sa.PrimaryKeyConstraint("shipment_id", "logger_id"),
    )


def downgrade() -> None:
    op.drop_table("stability_budgets")
    with op.batch_alter_table("excursions") as batch:
        batch.drop_column("severity")
