"""The one schema of Gavel's store: every table, in one ``MetaData``.

Traffic and keys belong to the gateway; verdicts and labels to the judges; eval runs
to the evals. They live in one database (SQLite or PostgreSQL) and one schema. Every change to
these tables is also an Alembic revision in ``_migrations/versions`` (a test checks
that the two agree).
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

api_keys = Table(
    "gavel_api_keys",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("scopes", String(128), nullable=False),
    Column("rpm", Integer),
    Column("tpm", Integer),
    Column("metadata_only", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("expires_at", DateTime(timezone=True)),
    Column("last_used_at", DateTime(timezone=True)),
    # Rotation: the secret before the last rotation works until ``previous_valid_until``.
    Column("previous_key_hash", String(64), index=True),
    Column("previous_valid_until", DateTime(timezone=True)),
    Column("budget_usd_day", Float),
    Column("budget_usd_month", Float),
)

traffic = Table(
    "gavel_traffic",
    metadata,
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
    # Why the text is gone: ``retention`` (``gavel store purge``) or ``erased``.
    Column("text_removed", String(16)),
    # Why the text is kept past retention: ``golden`` (promoted to a golden set).
    Column("kept", String(16)),
    # Under a model swap: the arm that answered, and a shadow request's production twin.
    Column("arm", String(16)),
    Column("twin_id", String(64)),
    # With ``gateway.tracing`` on: the request's W3C trace id.
    Column("trace_id", String(32)),
    Index("ix_gavel_traffic_key_day", "key_name", "day"),
    Index("ix_gavel_traffic_twin_id", "twin_id"),
)

# ``gavel store purge`` looks for text still held, by day: an index of those rows only.
Index(
    "ix_gavel_traffic_text_day",
    traffic.c.day,
    postgresql_where=traffic.c.text_removed.is_(None),
    sqlite_where=traffic.c.text_removed.is_(None),
)

# Every ``gavel store erase``: whose text, from when, how many records, who asked.
erasures = Table(
    "gavel_erasures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key_name", String(128), nullable=False),
    Column("since", String(10)),
    Column("records", Integer, nullable=False),
    Column("erased_by", String(128), nullable=False),
    Column("erased_at", DateTime(timezone=True), nullable=False),
)

# Every change of a model swap's state (``gavel swap set|promote|rollback``), who made
# it and when; the gateway replicas apply the latest one for their swap.
swap_events = Table(
    "gavel_swap_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("production", String(128), nullable=False),
    Column("candidate", String(128), nullable=False),
    Column("action", String(16), nullable=False),
    Column("shadow_rate", Float, nullable=False),
    Column("canary_weight", Float, nullable=False),
    Column("promoted", Boolean, nullable=False),
    Column("by", String(128), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_gavel_swap_events_pair", "production", "candidate", "id"),
)

# Traffic per day, pre-aggregated (closed days only; ``serving.store._rollup``): no text.
traffic_rollup = Table(
    "gavel_traffic_days",
    metadata,
    Column("day", String(10), primary_key=True),
    Column("model", String(128), primary_key=True),
    Column("key_name", String(128), primary_key=True),
    Column("source", String(16), primary_key=True),
    Column("status", Integer, primary_key=True, autoincrement=False),
    Column("requests", Integer, nullable=False),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("ttft", Text, nullable=False),
    Column("tpot", Text, nullable=False),
)

# Every ``gavel swap report``'s document, as decided (no captured text in it).
swap_reports = Table(
    "gavel_swap_reports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("production", String(128), nullable=False),
    Column("candidate", String(128), nullable=False),
    Column("last_day", String(10), nullable=False),
    Column("decision", String(16), nullable=False),
    Column("report_json", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_gavel_swap_reports_pair", "production", "candidate", "id"),
)

verdicts = Table(
    "gavel_verdicts",
    metadata,
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
# (``gavel_labels`` of early versions is copied here once by the baseline revision.)
labels = Table(
    "gavel_human_labels",
    metadata,
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
label_history = Table(
    "gavel_label_history",
    metadata,
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
eval_cache = Table(
    "gavel_eval_cache",
    metadata,
    Column("cache_key", String(64), primary_key=True),
    Column("model", String(128), nullable=False),
    Column("response_text", Text),
    Column("finish_reason", String(32)),
    Column("prompt_tokens", Integer),
    Column("completion_tokens", Integer),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

eval_runs = Table(
    "gavel_eval_runs",
    metadata,
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
figures = Table(
    "gavel_figures",
    metadata,
    Column("job", String(32), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("labels", String(1024), primary_key=True),
    Column("help", String(256), nullable=False),
    Column("value", Float, nullable=False),
    Column("written_at", DateTime(timezone=True), nullable=False),
)

# End users' feedback on answers (``POST /v1/feedback``): the latest value per request,
# name and user, and every value as it was sent (oldest first).
feedback = Table(
    "gavel_feedback",
    metadata,
    Column("request_id", String(64), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("user_id", String(128), primary_key=True),
    Column("value", Float, nullable=False),
    Column("positive", Boolean, nullable=False),
    Column("comment", Text),
    Column("sent_by", String(128), nullable=False),
    Column("model", String(128), nullable=False),
    Column("day", String(10), nullable=False, index=True),
    Column("revision", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

feedback_history = Table(
    "gavel_feedback_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False, index=True),
    Column("name", String(64), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("value", Float, nullable=False),
    Column("comment", Text),
    Column("sent_by", String(128), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

# Online judging (``gavel judge online``): each rule's cursor over captured traffic (it
# survives restarts), and every record a rule picked, with the hour it counts in (for
# ``max_per_hour`` and the hourly pass rates) and when it was captured and judged.
online_cursors = Table(
    "gavel_online_cursors",
    metadata,
    Column("rule", String(64), primary_key=True),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

online_judged = Table(
    "gavel_online_judged",
    metadata,
    Column("rule", String(64), primary_key=True),
    Column("request_id", String(64), primary_key=True),
    Column("hour", String(13), nullable=False),
    Column("model", String(128), nullable=False),
    Column("captured_at", DateTime(timezone=True), nullable=False),
    Column("judged_at", DateTime(timezone=True), nullable=False),
    Index("ix_gavel_online_judged_hour", "rule", "hour"),
    Index("ix_gavel_online_judged_captured_at", "captured_at"),
)
