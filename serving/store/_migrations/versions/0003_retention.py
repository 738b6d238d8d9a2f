"""Retention and erasure: why a record's text is gone or kept, an index for one key's
records (erasure, budgets), a partial index of records that still hold text (the
purge), and the log of erasures.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``text_removed`` and ``kept`` to traffic, its key index, and ``gavel_erasures``."""
    with op.batch_alter_table("gavel_traffic") as batch:
        batch.add_column(sa.Column("text_removed", sa.String(16), nullable=True))
        batch.add_column(sa.Column("kept", sa.String(16), nullable=True))
    op.create_index("ix_gavel_traffic_key_day", "gavel_traffic", ["key_name", "day"])
    # The purge's scan for text still held: only rows that have it, by day.
    held = sa.text("text_removed IS NULL")
    op.create_index(
        "ix_gavel_traffic_text_day",
        "gavel_traffic",
        ["day"],
        postgresql_where=held,
        sqlite_where=held,
    )
    op.create_table(
        "gavel_erasures",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("key_name", sa.String(128), nullable=False),
        sa.Column("since", sa.String(10), nullable=True),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("erased_by", sa.String(128), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    """Undo it (erased text does not come back)."""
    op.drop_table("gavel_erasures")
    op.drop_index("ix_gavel_traffic_text_day", table_name="gavel_traffic")
    op.drop_index("ix_gavel_traffic_key_day", table_name="gavel_traffic")
    with op.batch_alter_table("gavel_traffic") as batch:
        batch.drop_column("kept")
        batch.drop_column("text_removed")
