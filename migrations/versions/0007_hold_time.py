"""LN2 dry shipper hold-time prediction (issue 9)

Reserved in the chain so that parts of issue 9 built side by side keep one head; empty
until its part needs a schema change.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from collections.abc import Sequence

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
