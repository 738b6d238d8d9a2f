"""Traffic per day, pre-aggregated for the console's overview: requests, tokens and cost
per (day, model, key, source, status), with TTFT and TPOT histograms (log-spaced
buckets), for closed days only (``serving.store._rollup``). No captured text.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``gavel_traffic_days``."""
    op.create_table(
        "gavel_traffic_days",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("key_name", sa.String(128), primary_key=True),
        sa.Column("source", sa.String(16), primary_key=True),
        sa.Column("status", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("ttft", sa.Text, nullable=False),
        sa.Column("tpot", sa.Text, nullable=False),
    )


def downgrade() -> None:
    """Drop ``gavel_traffic_days``."""
    op.drop_table("gavel_traffic_days")
