"""``gavel judge online``'s passes: read newly captured records after each rule's cursor,
pick by hash and cap, judge at background priority (the judge's requests go through the
gateway as ``judge`` traffic), record what was picked, move the cursor, publish figures.

Verdicts are the daily job's own (run id and day are the record's day), so the daily job
finds them done and does not judge those records again. A killed loop loses at most the
pass in flight: its verdicts are idempotent, and the cursor moves only after them.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from judges._config import JudgingConfig
from judges._criteria import Criterion
from judges._fanout import judge_items
from judges._items import applies, to_exchange
from judges._online import Candidate, OnlineRule, hour_of, pick
from judges._registry import KindRegistry
from judges._stats import wilson
from judges._store import VerdictStore
from judges._wire import JudgeItem
from serving import Figure, StackConfig
from serving.store import Store, as_utc, tables


@dataclass(frozen=True)
class OnlineContext:
    """What every pass needs: configs, the rules' criteria by name, the store, the key."""

    stack: StackConfig
    judging: JudgingConfig
    criteria: dict[str, Criterion]
    store: Store
    api_key: str
    kinds: KindRegistry
    log: Callable[[str], None] = print


@dataclass(frozen=True)
class RulePass:
    """What one pass of one rule did."""

    rule: str
    read: int
    picked: int
    judged_now: int
    cursor: datetime


def _candidates(store: Store, after: datetime, until: datetime) -> list[Candidate]:
    t = tables.traffic
    cols = (t.c.request_id, t.c.ts, t.c.model, t.c.key_name, t.c.source, t.c.status,
            t.c.metadata_json, t.c.response_text.is_not(None).label("has_text"))  # fmt: skip
    rows = store.fetch(select(*cols).where(t.c.ts > after, t.c.ts <= until))
    return [
        Candidate(
            request_id=r["request_id"],
            ts=as_utc(r["ts"]),
            model=r["model"],
            key_name=r["key_name"],
            source=r["source"] or "production",
            answered=200 <= r["status"] < 300 and bool(r["has_text"]),
            metadata=_metadata(r["metadata_json"]),
        )
        for r in rows
    ]


def _metadata(raw: str | None) -> dict[str, str]:
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def read_cursor(store: Store, rule: str) -> datetime | None:
    """Where ``rule`` has read up to (capture time), if it ever ran."""
    c = tables.online_cursors
    rows = store.fetch(select(c.c.ts).where(c.c.rule == rule))
    return as_utc(rows[0]["ts"]) if rows else None


def _picked(store: Store, rule: str, ids: list[str]) -> set[str]:
    j = tables.online_judged
    out: set[str] = set()
    for i in range(0, len(ids), 500):
        stmt = select(j.c.request_id).where(j.c.rule == rule, j.c.request_id.in_(ids[i : i + 500]))
        out |= {r["request_id"] for r in store.fetch(stmt)}
    return out


def _taken(store: Store, rule: str, hours: set[str]) -> dict[str, int]:
    j = tables.online_judged
    if not hours:
        return {}
    stmt = (select(j.c.hour, func.count().label("n"))
            .where(j.c.rule == rule, j.c.hour.in_(sorted(hours))).group_by(j.c.hour))  # fmt: skip
    return {r["hour"]: int(r["n"]) for r in store.fetch(stmt)}


def run_rule(rule: OnlineRule, ctx: OnlineContext, now: datetime) -> RulePass:
    """One pass of ``rule``: the records that started after its cursor (less ``late_s``,
    for late captures) and at least ``settle_s`` ago, not picked before, judged; then what
    was picked and the cursor, in one transaction."""
    loop = ctx.judging.online_loop
    start = read_cursor(ctx.store, rule.name) or now - timedelta(hours=loop.start_lookback_h)
    until = min(now - timedelta(seconds=loop.settle_s), start + timedelta(hours=loop.window_h))
    if until <= start:
        return RulePass(rule.name, 0, 0, 0, start)
    found = _candidates(ctx.store, start - timedelta(seconds=loop.late_s), until)
    before = _picked(ctx.store, rule.name, [c.request_id for c in found])
    found = [c for c in found if c.request_id not in before]
    chosen = pick(found, rule, _taken(ctx.store, rule.name, {hour_of(c.ts) for c in found}))
    judged = _judge(rule, chosen, ctx)
    rows = [{"rule": rule.name, "request_id": c.request_id, "hour": hour_of(c.ts),
             "model": c.model, "captured_at": c.ts, "judged_at": datetime.now(UTC)}
            for c in chosen]  # fmt: skip
    with ctx.store.transaction() as conn:
        ctx.store.insert_ignore(tables.online_judged, rows, conn=conn)
        ctx.store.upsert(tables.online_cursors, [{"rule": rule.name, "ts": until,
                         "updated_at": datetime.now(UTC)}], update=("ts", "updated_at"),
                         conn=conn)  # fmt: skip
    return RulePass(rule.name, len(found), len(chosen), judged, until)


def _judge(rule: OnlineRule, chosen: Sequence[Candidate], ctx: OnlineContext) -> int:
    """Judge the picked records on the rule's criteria (what is judged already is not
    asked again), filed under each record's day; returns the verdicts written."""
    if not chosen:
        return 0
    crits = [ctx.criteria[n] for n in rule.criteria]
    versions = {c.name: c.version for c in crits}
    ids = [c.request_id for c in chosen]
    vstore = VerdictStore(ctx.store)
    done = {(v.item_id, v.criterion) for v in vstore.for_items(ids)
            if versions.get(v.criterion) == v.criterion_version}  # fmt: skip
    by_day: dict[str, list[JudgeItem]] = defaultdict(list)
    records = [r for i in range(0, len(ids), 500)
               for r in ctx.store.traffic_by_ids(ids[i : i + 500])]  # fmt: skip
    for rec in records:
        for c in crits:
            if (rec.request_id, c.name) not in done and applies(rec, c, ctx.stack):
                item = JudgeItem(criterion=c.name, exchanges=[to_exchange(rec)])
                by_day[rec.ts.astimezone(UTC).date().isoformat()].append(item)
    written = sum(
        judge_items(
            items,
            crits,
            ctx.stack,
            ctx.judging,
            vstore,
            run_id=day,
            day=day,
            api_key=ctx.api_key,
            use_ray=False,
            kinds=ctx.kinds,
            log=ctx.log,
        )
        for day, items in sorted(by_day.items())
    )
    _forget_errors(ctx.store, ids, list(versions))
    return written


def _forget_errors(store: Store, ids: list[str], criteria: list[str]) -> None:
    """Drop the error verdicts of this pass (the judge was down, say): the daily job, which
    skips what is judged, judges those records again."""
    v = tables.verdicts
    for i in range(0, len(ids), 500):
        chunk = v.c.item_id.in_(ids[i : i + 500])
        store.execute(v.delete().where(chunk, v.c.criterion.in_(criteria), v.c.verdict == "error"))


@dataclass(frozen=True)
class HourRate:
    """One criterion's pass rate over a rule's picks of one hour (or window)."""

    criterion: str
    criterion_version: str
    model: str
    passes: int
    fails: int

    @property
    def rate(self) -> float | None:
        """Pass rate, or ``None`` with no pass/fail verdict."""
        n = self.passes + self.fails
        return self.passes / n if n else None


def window_rates(ctx: OnlineContext, since: datetime) -> tuple[list[HourRate], list[float]]:
    """Pass rates of every rule's picks captured since ``since`` (per criterion, version
    and model), and their lags (capture to verdict, seconds)."""
    j = tables.online_judged
    rows = ctx.store.fetch(select(j).where(j.c.captured_at >= since))
    lags = [(as_utc(r["judged_at"]) - as_utc(r["captured_at"])).total_seconds() for r in rows]
    model_of = {r["request_id"]: r["model"] for r in rows}
    versions = {c.name: c.version for c in ctx.criteria.values()}
    tally: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for v in VerdictStore(ctx.store).for_items(list(model_of)):
        if versions.get(v.criterion) == v.criterion_version and v.verdict in ("pass", "fail"):
            tally[(v.criterion, v.criterion_version, model_of[v.item_id])][v.verdict == "fail"] += 1
    rates = [HourRate(c, cv, m, p, f) for (c, cv, m), (p, f) in sorted(tally.items())]
    return rates, lags


def online_figures(rates: Sequence[HourRate], lags: Sequence[float], now: datetime) -> list[Figure]:
    """The last hour's figures for Prometheus: pass rates with their 95% Wilson interval,
    sample sizes, the lag from capture to verdict (median and max), the pass's time."""
    out: list[Figure] = []

    def add(name: str, help_: str, value: float, **labels: str) -> None:
        out.append(Figure(name=name, help=help_, labels=labels, value=value))

    for r in rates:
        lv = {"criterion": r.criterion, "criterion_version": r.criterion_version, "model": r.model}
        n = r.passes + r.fails
        low, high = wilson(r.passes, n)
        if r.rate is not None:
            add("gavel_judge_online_pass_rate", "Online pass rate over the last hour", r.rate, **lv)
            add("gavel_judge_online_pass_rate_low", "Lower bound of its 95% Wilson interval",
                low, **lv)  # fmt: skip
            add("gavel_judge_online_pass_rate_high", "Upper bound of its 95% Wilson interval",
                high, **lv)  # fmt: skip
        add("gavel_judge_online_sample_size", "Online verdicts over the last hour", n, **lv)
    if lags:
        add("gavel_judge_online_lag_seconds", "Capture to verdict, last hour (median)",
            statistics.median(lags), stat="median")  # fmt: skip
        add("gavel_judge_online_lag_seconds", "Capture to verdict, last hour (max)",
            max(lags), stat="max")  # fmt: skip
    add("gavel_judge_online_last_pass_timestamp_seconds", "When the online loop last passed",
        now.timestamp())  # fmt: skip
    return out


def online_pass(ctx: OnlineContext, now: datetime | None = None) -> list[RulePass]:
    """One pass of every rule, then the last hour's figures published."""
    at = now or datetime.now(UTC)
    done, failed = [], []
    for rule in ctx.judging.online:  # one rule's failure keeps none of the others back
        try:
            done.append(run_rule(rule, ctx, at))
        except Exception as exc:
            ctx.log(f"warning: online rule {rule.name} failed: {type(exc).__name__}: {exc}")
            failed.append(rule.name)
    rates, lags = window_rates(ctx, at - timedelta(hours=1))
    ctx.store.replace_figures("judge_online", online_figures(rates, lags, at))
    if failed:
        raise RuntimeError(f"online rule(s) failed: {', '.join(failed)} (the others ran)")
    return done
