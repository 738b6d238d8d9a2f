"""Verdicts, in the same database as the traffic (SQLite or PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Float, Integer, MetaData, String, Table, Text, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from judges._wire import Verdict
from serving._store import Store, add_missing_columns

metadata = MetaData()

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
)


class VerdictStore:
    """Idempotent writes of verdicts; reads by day."""

    def __init__(self, store: Store) -> None:
        self.store = store
        metadata.create_all(store.engine)
        add_missing_columns(store.engine, metadata)

    def insert(self, items: Iterable[Verdict]) -> int:
        """Insert verdicts; one already stored (same item, criterion, version) is kept."""
        rows = [_row(v) for v in items]
        if not rows:
            return 0
        ins = pg_insert(verdicts) if self.store.dialect == "postgresql" else sqlite_insert(verdicts)
        stmt = ins.on_conflict_do_nothing(
            index_elements=["item_id", "criterion", "criterion_version"]
        )
        with self.store.engine.begin() as conn:
            res = conn.execute(stmt, rows)
        return int(res.rowcount) if res.rowcount is not None and res.rowcount >= 0 else len(rows)

    def delete_errors(self, day: date) -> None:
        """Forget a day's error verdicts so that they are judged again."""
        with self.store.engine.begin() as conn:
            conn.execute(
                verdicts.delete().where(
                    verdicts.c.day == day.isoformat(), verdicts.c.verdict == "error"
                )
            )

    def for_days(self, first: date, last: date) -> list[Verdict]:
        """Verdicts of days ``first``..``last`` inclusive."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(verdicts).where(
                    verdicts.c.day >= first.isoformat(), verdicts.c.day <= last.isoformat()
                )
            ).all()
        return [_from_row(r._mapping) for r in rows]

    def current(
        self,
        versions: dict[str, str],
        *,
        day: str | None = None,
        model: str | None = None,
        item_id: str | None = None,
    ) -> list[Verdict]:
        """Verdicts of these criteria at these versions (criterion -> version), filtered."""
        if not versions:
            return []
        stmt = select(verdicts).where(verdicts.c.criterion.in_(list(versions)))
        if day is not None:
            stmt = stmt.where(verdicts.c.day == day)
        if model is not None:
            stmt = stmt.where(verdicts.c.model == model)
        if item_id is not None:
            stmt = stmt.where(verdicts.c.item_id == item_id)
        with self.store.engine.connect() as conn:
            rows = conn.execute(stmt.order_by(verdicts.c.day, verdicts.c.item_id)).all()
        found = [_from_row(r._mapping) for r in rows]
        return [v for v in found if versions[v.criterion] == v.criterion_version]

    def done_keys(self, day: date) -> set[tuple[str, str, str]]:
        """(item id, criterion, version) already judged on ``day``."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(
                    verdicts.c.item_id, verdicts.c.criterion, verdicts.c.criterion_version
                ).where(verdicts.c.day == day.isoformat())
            ).all()
        return {(r[0], r[1], r[2]) for r in rows}


def _row(v: Verdict) -> dict[str, Any]:
    row = v.model_dump()
    row["judge_args"] = json.dumps(v.judge_args, sort_keys=True)
    row["order_winners"] = json.dumps(v.order_winners) if v.order_winners is not None else None
    return row


def _from_row(m: Any) -> Verdict:
    d = dict(m)
    d["judge_args"] = json.loads(d["judge_args"])
    d["order_winners"] = json.loads(d["order_winners"]) if d["order_winners"] else None
    if isinstance(d["created_at"], datetime) and d["created_at"].tzinfo is None:
        d["created_at"] = d["created_at"].replace(tzinfo=UTC)
    return Verdict.model_validate(d)
