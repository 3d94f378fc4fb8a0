"""alerts out: webhooks, e-mail, delivery log (issue 9)

Reserved in the chain so that parts of issue 9 built side by side keep one head; empty
until its part needs a schema change.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from collections.abc import Sequence

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
