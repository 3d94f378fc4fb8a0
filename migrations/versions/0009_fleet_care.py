"""logger fleet care: calibration due date, last calibration and its certificate (issue 9)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: loggers registered before have no calibration on record ("unknown").
    with op.batch_alter_table("loggers") as batch:
        batch.add_column(sa.Column("calibration_due", sa.Date(), nullable=True))
        batch.add_column(sa.Column("calibrated_on", sa.Date(), nullable=True))
        batch.add_column(sa.Column("calibration_certificate", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("loggers") as batch:
        batch.drop_column("calibration_certificate")
        batch.drop_column("calibrated_on")
        batch.drop_column("calibration_due")
