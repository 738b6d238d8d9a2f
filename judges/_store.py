"""Verdicts, in the store's ``gavel_verdicts`` table (the same database as the traffic)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, date
from typing import Any

from sqlalchemy import and_, func, or_, select

from judges._wire import Verdict
from serving.store import Row, Store, tables

_v = tables.verdicts


def _in_run(run_id: str) -> Any:
    # Rows written before the run_id column existed belong to the run of their day.
    return or_(_v.c.run_id == run_id, and_(_v.c.run_id.is_(None), _v.c.day == run_id))


class VerdictStore:
    """Idempotent writes of verdicts; reads by run, day and criterion version."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.ensure_schema()

    def insert(self, items: Iterable[Verdict]) -> int:
        """Insert verdicts; one already stored (same item, criterion, version) is kept."""
        return self.store.insert_ignore(_v, [_row(v) for v in items])

    def delete_errors(self, run_id: str) -> None:
        """Forget a run's error verdicts so that they are judged again."""
        self.store.execute(_v.delete().where(_in_run(run_id), _v.c.verdict == "error"))

    def for_days(self, first: date, last: date) -> list[Verdict]:
        """Verdicts of traffic days ``first``..``last`` inclusive (daily runs)."""
        stmt = select(_v).where(_v.c.day >= first.isoformat(), _v.c.day <= last.isoformat())
        return [_from_row(r) for r in self.store.fetch(stmt)]

    def day_counts(self, first: date, last: date) -> list[tuple[str, str, str, int]]:
        """(criterion, day, verdict, count) of traffic days ``first``..``last``, counted
        by the store (the daily runs' verdicts, every criterion version)."""
        n = func.count().label("n")
        stmt = (
            select(_v.c.criterion, _v.c.day, _v.c.verdict, n)
            .where(_v.c.day >= first.isoformat(), _v.c.day <= last.isoformat())
            .group_by(_v.c.criterion, _v.c.day, _v.c.verdict)
        )
        return [
            (r["criterion"], r["day"], r["verdict"], int(r["n"])) for r in self.store.fetch(stmt)
        ]

    def for_run(self, run_id: str) -> list[Verdict]:
        """Every verdict of one run."""
        return [_from_row(r) for r in self.store.fetch(select(_v).where(_in_run(run_id)))]

    def for_items(self, item_ids: Iterable[str]) -> list[Verdict]:
        """Every verdict of these items (any run, criterion and version)."""
        wanted = list(item_ids)
        out: list[Verdict] = []
        for i in range(0, len(wanted), 500):
            stmt = select(_v).where(_v.c.item_id.in_(wanted[i : i + 500]))
            out += [_from_row(r) for r in self.store.fetch(stmt)]
        return out

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
        stmt = select(_v).where(_v.c.criterion.in_(list(versions)))
        if day is not None:
            stmt = stmt.where(_v.c.day == day)
        if model is not None:
            stmt = stmt.where(_v.c.model == model)
        if item_id is not None:
            stmt = stmt.where(_v.c.item_id == item_id)
        found = [_from_row(r) for r in self.store.fetch(stmt.order_by(_v.c.day, _v.c.item_id))]
        return [v for v in found if versions[v.criterion] == v.criterion_version]

    def done_keys(self, run: date | str) -> set[tuple[str, str, str]]:
        """(item id, criterion, version) already judged in a run (a day or a run id)."""
        run_id = run.isoformat() if isinstance(run, date) else run
        rows = self.store.fetch(
            select(_v.c.item_id, _v.c.criterion, _v.c.criterion_version).where(_in_run(run_id))
        )
        return {(r["item_id"], r["criterion"], r["criterion_version"]) for r in rows}


def _row(v: Verdict) -> Row:
    row = v.model_dump()
    row["judge_args"] = json.dumps(v.judge_args, sort_keys=True)
    row["order_winners"] = json.dumps(v.order_winners) if v.order_winners is not None else None
    # The day column is required: offline runs file their verdicts under the day they ran.
    row["day"] = v.day or v.created_at.astimezone(UTC).date().isoformat()
    return row


def _from_row(m: Row) -> Verdict:
    d = dict(m)
    d["judge_args"] = json.loads(d["judge_args"])
    d["order_winners"] = json.loads(d["order_winners"]) if d["order_winners"] else None
    d["run_id"] = d.get("run_id") or d["day"]
    return Verdict.model_validate(d)
