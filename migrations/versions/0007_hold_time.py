"""LN2 dry shipper hold-time prediction (issue 9)

The shipment's planned arrival, its dry shipper's rated static hold and charge time, and the
[prediction] settings in force when it was created.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import coldchain.store.models

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("planned_arrival", coldchain.store.models.UTCDateTime(timezone=True)),
    ("shipper_rated_hold_h", sa.Float()),
    ("shipper_charged_at", coldchain.store.models.UTCDateTime(timezone=True)),
    ("prediction_settings", sa.Text()),
)


def upgrade() -> None:
    with op.batch_alter_table("shipments") as batch:
        for name, type_ in COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("shipments") as batch:
        for name, _type in reversed(COLUMNS):
            batch.drop_column(name)
