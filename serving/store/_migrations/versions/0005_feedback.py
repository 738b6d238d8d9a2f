"""End users' feedback: the latest value per request, name and user, and its history.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``gavel_feedback`` and ``gavel_feedback_history``."""
    op.create_table(
        "gavel_feedback",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("positive", sa.Boolean(), nullable=False),
        sa.Column("comment", sa.Text()),
        sa.Column("sent_by", sa.String(128), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_gavel_feedback_day", "gavel_feedback", ["day"])
    op.create_table(
        "gavel_feedback_history",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("comment", sa.Text()),
        sa.Column("sent_by", sa.String(128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_gavel_feedback_history_request_id", "gavel_feedback_history", ["request_id"]
    )


def downgrade() -> None:
    """Undo it."""
    op.drop_index("ix_gavel_feedback_history_request_id", table_name="gavel_feedback_history")
    op.drop_table("gavel_feedback_history")
    op.drop_index("ix_gavel_feedback_day", table_name="gavel_feedback")
    op.drop_table("gavel_feedback")
