"""Online judging (``gavel judge online``): each rule's cursor over captured traffic,
and every record a rule picked (the hour it counts in, when it was captured and judged);
and each record's W3C trace id (``gateway.tracing``).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``gavel_online_cursors`` and ``gavel_online_judged``; add ``trace_id``."""
    with op.batch_alter_table("gavel_traffic") as batch:
        batch.add_column(sa.Column("trace_id", sa.String(32), nullable=True))
    op.create_table(
        "gavel_online_cursors",
        sa.Column("rule", sa.String(64), primary_key=True),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "gavel_online_judged",
        sa.Column("rule", sa.String(64), primary_key=True),
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("hour", sa.String(13), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("judged_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_gavel_online_judged_hour", "gavel_online_judged", ["rule", "hour"])
    op.create_index("ix_gavel_online_judged_captured_at", "gavel_online_judged", ["captured_at"])


def downgrade() -> None:
    """Undo it."""
    op.drop_index("ix_gavel_online_judged_captured_at", table_name="gavel_online_judged")
    op.drop_index("ix_gavel_online_judged_hour", table_name="gavel_online_judged")
    op.drop_table("gavel_online_judged")
    op.drop_table("gavel_online_cursors")
    with op.batch_alter_table("gavel_traffic") as batch:
        batch.drop_column("trace_id")
