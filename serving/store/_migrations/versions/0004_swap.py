"""Model swap: each record's arm (production or candidate) and, for a shadow request, the
id of its production twin.

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


def downgrade() -> None:
    """Undo it."""
    op.drop_index("ix_gavel_traffic_twin_id", table_name="gavel_traffic")
    with op.batch_alter_table("gavel_traffic") as batch:
        batch.drop_column("twin_id")
        batch.drop_column("arm")
