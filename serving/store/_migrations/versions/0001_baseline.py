"""Baseline: the schema as it was before Alembic (commit ba50a8c).

A database made by that code (``create_all`` plus the additive column migration) and an
empty database both end here: tables that are missing are created, nullable columns an
older store lacks are added, and labels of the oldest table (``gavel_labels``) are copied
once into ``gavel_human_labels``. The tables are frozen here as they were; later changes
are later revisions.

Revision ID: 0001
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    text,
)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

LEGACY_LABELS = "gavel_labels"


def baseline() -> MetaData:
    """The tables of the baseline, frozen."""
    md = MetaData()
    Table(
        "gavel_api_keys",
        md,
        Column("name", String(128), primary_key=True),
        Column("key_hash", String(64), nullable=False, unique=True),
        Column("scopes", String(128), nullable=False),
        Column("rpm", Integer),
        Column("tpm", Integer),
        Column("metadata_only", Boolean, nullable=False, default=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("revoked_at", DateTime(timezone=True)),
    )

    Table(
        "gavel_traffic",
        md,
        Column("request_id", String(64), primary_key=True),
        Column("ts", DateTime(timezone=True), nullable=False, index=True),
        Column("day", String(10), nullable=False, index=True),
        Column("key_name", String(128)),
        Column("model", String(128), nullable=False),
        Column("role", String(16)),
        Column("endpoint", String(32), nullable=False),
        Column("stream", Boolean, nullable=False),
        Column("request_json", Text, nullable=False),
        Column("response_text", Text),
        Column("finish_reason", String(32)),
        Column("status", Integer, nullable=False),
        Column("error", Text),
        Column("prompt_tokens", Integer),
        Column("completion_tokens", Integer),
        Column("ttft_ms", Float),
        Column("e2e_ms", Float),
        Column("cost_usd", Float),
        Column("metadata_only", Boolean, nullable=False, default=False),
        Column("metadata_json", Text),
        # Who sent it: ``production`` (NULL in rows older than the column), ``judge``, ``eval``.
        Column("source", String(16), index=True),
        # The client's own request id, for correlation; never the key.
        Column("client_request_id", String(256)),
    )

    Table(
        "gavel_verdicts",
        md,
        Column("item_id", String(200), primary_key=True),
        Column("criterion", String(128), primary_key=True),
        Column("criterion_version", String(32), primary_key=True),
        Column("kind", String(16), nullable=False),
        Column("judge", String(64), nullable=False),
        Column("judge_version", String(16), nullable=False),
        Column("judge_model", String(128), nullable=False),
        Column("judge_args", Text, nullable=False),
        Column("model", String(260), nullable=False),
        Column("day", String(10), nullable=False, index=True),
        Column("verdict", String(8), nullable=False),
        Column("reasoning", Text),
        Column("error", Text),
        Column("order_winners", Text),
        Column("judge_prompt_tokens", Integer, nullable=False),
        Column("judge_completion_tokens", Integer, nullable=False),
        Column("judge_cost_usd", Float, nullable=False),
        Column("latency_ms", Float, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        # The run a verdict belongs to: the day for the daily job, an eval run's id.
        Column("run_id", String(64), index=True),
        # Verdict-only judging: the judge's probability of "fail" (from its logprobs).
        Column("p_fail", Float),
    )

    # One label per item, criterion version and labeller: two people keep two labels.
    # (``gavel_labels``, one label per item and criterion version whoever made it, is the
    # table of earlier versions; its rows are copied here once, below.)
    Table(
        "gavel_human_labels",
        md,
        Column("item_id", String(200), primary_key=True),
        Column("criterion", String(128), primary_key=True),
        Column("criterion_version", String(32), primary_key=True),
        Column("labeller", String(128), primary_key=True),
        Column("label", String(8), nullable=False),
        Column("note", Text),
        Column("criterion_note", Text),
        Column("labelled_at", DateTime(timezone=True), nullable=False, index=True),
    )

    # Every label as it was written, oldest first: a changed label keeps its history.
    Table(
        "gavel_label_history",
        md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("item_id", String(200), nullable=False, index=True),
        Column("criterion", String(128), nullable=False),
        Column("criterion_version", String(32), nullable=False),
        Column("labeller", String(128), nullable=False),
        Column("label", String(8), nullable=False),
        Column("note", Text),
        Column("criterion_note", Text),
        Column("labelled_at", DateTime(timezone=True), nullable=False),
    )

    # Offline evals: model answers cached by what was asked (so a re-run generates nothing),
    # and every finished run with its result document (so runs can be listed and compared).
    Table(
        "gavel_eval_cache",
        md,
        Column("cache_key", String(64), primary_key=True),
        Column("model", String(128), nullable=False),
        Column("response_text", Text),
        Column("finish_reason", String(32)),
        Column("prompt_tokens", Integer),
        Column("completion_tokens", Integer),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )

    Table(
        "gavel_eval_runs",
        md,
        Column("run_id", String(64), primary_key=True),
        Column("suite", String(128), nullable=False),
        Column("suite_hash", String(64), nullable=False, index=True),
        Column("dataset_hash", String(64), nullable=False),
        Column("model", String(128), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("result_json", Text, nullable=False),
    )

    # Figures batch jobs publish for Prometheus (the judge's daily pass rates, load-test
    # results, job status): each job replaces its whole set; the gateway serves the latest.
    Table(
        "gavel_figures",
        md,
        Column("job", String(32), primary_key=True),
        Column("name", String(128), primary_key=True),
        Column("labels", String(1024), primary_key=True),
        Column("help", String(256), nullable=False),
        Column("value", Float, nullable=False),
        Column("written_at", DateTime(timezone=True), nullable=False),
    )
    return md


def upgrade() -> None:
    """Create what is missing; bring a pre-Alembic store up to the baseline."""
    bind = op.get_bind()
    md = baseline()
    md.create_all(bind, checkfirst=True)
    insp = inspect(bind)
    for table in md.sorted_tables:
        have = {c["name"] for c in insp.get_columns(table.name)}
        for col in table.columns:
            if col.name not in have and col.nullable:
                ddl = col.type.compile(dialect=bind.dialect)
                op.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{col.name}" {ddl}'))
    if insp.has_table(LEGACY_LABELS):
        cols = (
            "item_id, criterion, criterion_version, labeller, label, note, criterion_note, "
            "labelled_at"
        )
        if bind.execute(text("SELECT 1 FROM gavel_human_labels LIMIT 1")).first() is None:
            op.execute(
                text(
                    # WHERE true: SQLite cannot parse INSERT ... SELECT ... ON CONFLICT
                    # without a WHERE (it would read ON as a join's).
                    f"INSERT INTO gavel_human_labels ({cols}) SELECT {cols} FROM {LEGACY_LABELS} "
                    "WHERE true ON CONFLICT DO NOTHING"
                )
            )


def downgrade() -> None:
    """Drop every table of the baseline (the store is then empty)."""
    baseline().drop_all(op.get_bind(), checkfirst=True)
