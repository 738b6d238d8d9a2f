"""Keys: expiry, last use, rotation with a grace period, and USD budgets.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("expires_at", sa.DateTime(timezone=True)),
    ("last_used_at", sa.DateTime(timezone=True)),
    ("previous_key_hash", sa.String(64)),
    ("previous_valid_until", sa.DateTime(timezone=True)),
    ("budget_usd_day", sa.Float()),
    ("budget_usd_month", sa.Float()),
)


def upgrade() -> None:
    """Add the nullable columns and the index rotation looks the old secret up by."""
    with op.batch_alter_table("gavel_api_keys") as batch:
        for name, type_ in _COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
    op.create_index("ix_gavel_api_keys_previous_key_hash", "gavel_api_keys", ["previous_key_hash"])


def downgrade() -> None:
    """Drop them again."""
    op.drop_index("ix_gavel_api_keys_previous_key_hash", table_name="gavel_api_keys")
    with op.batch_alter_table("gavel_api_keys") as batch:
        for name, _ in reversed(_COLUMNS):
            batch.drop_column(name)
