"""excursion science: stability budget, rate of change, start-up ignore, severities (issue 9)

Reserved in the chain so that parts of issue 9 built side by side keep one head; empty
until its part needs a schema change.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
