"""The data's lifecycle: retention (``gavel store purge``), and the queries erasure on
request (``gavel store erase``, :mod:`._erasure`) shares with it.

Both work in batches of request ids, one short transaction each, so capture's inserts
never wait on more than one batch. Labelled records and records promoted to a golden
set are kept (text and row) by retention; an erasure removes a key's text whatever it
is kept for, and is itself recorded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    delete,
    exists,
    func,
    not_,
    or_,
    select,
    update,
)

from serving._gateway_config import KeepFor, RetentionConfig
from serving._wire import Figure
from serving.store._rollup import keep_days_before
from serving.store._schema import feedback, feedback_history, labels, online_judged, traffic
from serving.store._store import Store, day_query, spend_query

What = Literal["text", "rows"]
BLANK_REQUEST = "{}"


@dataclass
class PurgeLine:
    """What the purge did (or would do) to one source's text or rows."""

    source: str
    what: What
    before: date
    """Records of days before this one were due."""
    removed: int = 0
    kept_labelled: int = 0
    kept_golden: int = 0


@dataclass
class PurgeReport:
    """Every source's lines, and whether anything was changed."""

    dry_run: bool
    lines: list[PurgeLine] = field(default_factory=list)

    def figures(self, now: datetime) -> list[Figure]:
        """The report as gauges for Prometheus (job ``store``)."""
        out = [
            Figure(
                name="gavel_store_last_purge_timestamp_seconds",
                help="When gavel store purge last finished (Unix time).",
                value=now.timestamp(),
            )
        ]
        for ln in self.lines:
            labels_ = {"source": ln.source, "what": ln.what}
            out.append(Figure(name="gavel_store_purged_records", labels=labels_,
                              help="Records whose text or row the last purge removed.",
                              value=ln.removed))  # fmt: skip
            for reason, n in (("labelled", ln.kept_labelled), ("golden", ln.kept_golden)):
                out.append(Figure(name="gavel_store_kept_records",
                                  labels={**labels_, "reason": reason},
                                  help="Records past retention that the last purge kept.",
                                  value=n))  # fmt: skip
        return out


def _of_source(source: str) -> ColumnElement[bool]:
    if source == "production":
        return or_(traffic.c.source.is_(None), traffic.c.source == "production")
    return traffic.c.source == source


_shadow = traffic.alias("shadow")
_labelled = or_(
    exists().where(labels.c.item_id == traffic.c.request_id),
    # A labelled shadow pair (item ``twin|shadow``) keeps both of its records: the shadow,
    # by its twin's id; the production twin, through its shadows (both by index).
    exists().where(labels.c.item_id == traffic.c.twin_id.concat("|").concat(traffic.c.request_id)),
    exists().where(
        _shadow.c.twin_id == traffic.c.request_id,
        labels.c.item_id == _shadow.c.twin_id.concat("|").concat(_shadow.c.request_id),
    ),
)


def _count(store: Store, where: ColumnElement[bool]) -> int:
    return int(store.scalar(select(func.count()).select_from(traffic).where(where)))


def _due(source: str, what: What, before: date) -> ColumnElement[bool]:
    due = and_(_of_source(source), traffic.c.day < before.isoformat())
    return and_(due, traffic.c.text_removed.is_(None)) if what == "text" else due


def _purgeable(source: str, what: What, before: date) -> ColumnElement[bool]:
    return and_(_due(source, what, before), not_(_labelled), traffic.c.kept.is_(None))


def purge_query(source: str, what: What, before: date, batch_size: int) -> Select[Any]:
    """One batch of the purge: records of ``source`` due before ``before``, neither
    labelled nor golden."""
    where = _purgeable(source, what, before)
    return select(traffic.c.request_id).where(where).limit(batch_size)


def _erasable(key_name: str, since: date | None) -> ColumnElement[bool]:
    where = and_(
        traffic.c.key_name == key_name,
        or_(traffic.c.text_removed.is_(None), traffic.c.text_removed != "erased"),
    )
    return and_(where, traffic.c.day >= since.isoformat()) if since is not None else where


def erase_query(key_name: str, since: date | None, batch_size: int) -> Select[Any]:
    """One batch of an erasure: the key's records (from ``since``) whose text is not erased."""
    return select(traffic.c.request_id).where(_erasable(key_name, since)).limit(batch_size)


def hot_queries(today: date, *, purge_before: date | None = None) -> dict[str, Select[Any]]:
    """The queries over ``gavel_traffic`` that run often or over much of it, as the code
    issues them (a test checks each has an index on PostgreSQL; the storage benchmark
    shows their plans). The purge's cutoff is ``purge_before`` (default: ``today``)."""
    before = purge_before or today
    return {
        "daily_sample": day_query(today, True),
        "export_day": day_query(today, False),
        "label_queue_record": select(traffic).where(traffic.c.request_id.in_(["x", "y"])),
        "purge_text": purge_query("production", "text", before, 1000),
        "purge_rows": purge_query("production", "rows", before, 1000),
        "erase": erase_query("app", today, 1000),
        "budget_spend": spend_query("app", today),
    }


def _batches(store: Store, query: Select[Any]) -> Iterator[list[str]]:
    """Request ids of ``query``, a batch at a time (the caller changes each batch so that
    it no longer matches)."""
    while True:
        rows = store.fetch(query)
        if not rows:
            return
        yield [r["request_id"] for r in rows]


def _purge_one(store: Store, line: PurgeLine, *, batch_size: int, dry_run: bool) -> None:
    due = and_(_of_source(line.source), traffic.c.day < line.before.isoformat())
    if line.what == "text":
        due = and_(due, traffic.c.text_removed.is_(None))
    line.kept_labelled = _count(store, and_(due, _labelled))
    line.kept_golden = _count(store, and_(due, not_(_labelled), traffic.c.kept.is_not(None)))
    query = purge_query(line.source, line.what, line.before, batch_size)
    if dry_run:
        line.removed = _count(store, _purgeable(line.source, line.what, line.before))
        return
    for ids in _batches(store, query):
        with store.transaction() as conn:
            line.removed += max(0, conn.execute(_removal(line.what, ids, "retention")).rowcount)
            for stmt in feedback_removal(line.what, ids):
                conn.execute(stmt)


def feedback_removal(what: What, ids: list[str]) -> list[Any]:
    """What goes of the feedback on requests ``ids`` when their text (the comments) or
    their rows (everything, and online judging's note that it picked them) go."""
    out: list[Any] = []
    for table in (feedback, feedback_history):
        about = table.c.request_id.in_(ids)
        out.append(delete(table).where(about) if what == "rows"
                   else update(table).where(about).values(comment=None))  # fmt: skip
    if what == "rows":
        out.append(delete(online_judged).where(online_judged.c.request_id.in_(ids)))
    return out


def _removal(what: What, ids: list[str], reason: str) -> Any:
    chosen = traffic.c.request_id.in_(ids)
    if what == "rows":
        return delete(traffic).where(chosen)
    return (
        update(traffic)
        .where(chosen)
        .values(request_json=BLANK_REQUEST, response_text=None, text_removed=reason)
    )


def purge(store: Store, retention: RetentionConfig, *, today: date, dry_run: bool) -> PurgeReport:
    """Apply ``retention`` as of ``today`` (UTC): blank text, then delete rows, per source."""
    report = PurgeReport(dry_run=dry_run)
    for source in ("production", "judge", "eval", "shadow"):
        keep: KeepFor = getattr(retention, source)
        due: tuple[tuple[What, int | None], ...] = (
            ("text", keep.text_days),
            ("rows", keep.row_days),
        )
        for what, days in due:
            if days is None:
                continue
            line = PurgeLine(source=source, what=what, before=today - timedelta(days=days))
            if what == "rows" and not dry_run:
                keep_days_before(store, line.before)  # the days' figures outlive their rows
            _purge_one(store, line, batch_size=retention.batch_size, dry_run=dry_run)
            report.lines.append(line)
    if not dry_run:
        store.replace_figures("store", report.figures(datetime.now(UTC)))
    return report


def keep_golden(store: Store, request_ids: list[str]) -> int:
    """Mark records promoted to a golden set: retention keeps their text and rows."""
    n = 0
    for i in range(0, len(request_ids), 1000):
        chunk = request_ids[i : i + 1000]
        n += store.execute(
            update(traffic)
            .where(traffic.c.request_id.in_(chunk), traffic.c.text_removed.is_(None))
            .values(kept="golden")
        )
    return n
