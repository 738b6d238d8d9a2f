"""Model swap: each record's arm (production or candidate) and, for a shadow request, the
id of its production twin; and the log of the swap's state changes.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``arm`` and ``twin_id`` (indexed: the swap report joins on it) to traffic."""
    with op.batch_alter_table("gavel_traffic") as batch:
        batch.add_column(sa.Column("arm", sa.String(16), nullable=True))
        batch.add_column(sa.Column("twin_id", sa.String(64), nullable=True))
    op.create_index("ix_gavel_traffic_twin_id", "gavel_traffic", ["twin_id"])
    op.create_table(
        "gavel_swap_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("production", sa.String(128), nullable=False),
        sa.Column("candidate", sa.String(128), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("shadow_rate", sa.Float(), nullable=False),
        sa.Column("canary_weight", sa.Float(), nullable=False),
        sa.Column("promoted", sa.Boolean(), nullable=False),
        sa.Column("by", sa.String(128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_gavel_swap_events_pair", "gavel_swap_events", ["production", "candidate", "id"]
    )


def downgrade() -> None:
    """Undo it."""
    op.drop_index("ix_gavel_swap_events_pair", table_name="gavel_swap_events")
    op.drop_table("gavel_swap_events")
    op.drop_index("ix_gavel_traffic_twin_id", table_name="gavel_traffic")
    with op.batch_alter_table("gavel_traffic") as batch:
        batch.drop_column("twin_id")
        batch.drop_column("arm")
