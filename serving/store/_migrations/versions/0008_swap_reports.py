"""Every ``gavel swap report`` as it was decided: its document (arms, checks, the
pairwise judge, the win rate's confidence sequence day by day, the decision and what was
withheld), which the console's swap view reads. No captured text is in it.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``gavel_swap_reports``."""
    op.create_table(
        "gavel_swap_reports",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("production", sa.String(128), nullable=False),
        sa.Column("candidate", sa.String(128), nullable=False),
        sa.Column("last_day", sa.String(10), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("report_json", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_gavel_swap_reports_pair", "gavel_swap_reports", ["production", "candidate", "id"]
    )


def downgrade() -> None:
    """Drop ``gavel_swap_reports``."""
    op.drop_table("gavel_swap_reports")
