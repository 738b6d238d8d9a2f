"""Traffic per day, pre-aggregated: requests, tokens and cost per (day, model, key,
source, status), and each group's TTFT and TPOT as a histogram of log-spaced buckets, so
that a window's percentiles merge without reading its records.

A closed day (over for :data:`SETTLE` already) is aggregated once, on first use, and
kept (revision 0009); a capture that lands in a kept day later (a spool replayed after an
outage) drops it, to be aggregated again; retention keeps a day before it deletes its
rows. The open day is aggregated from its records (a console reuses every day's figures for
a minute, :class:`DayCache`). Both go through the same functions, so the figures of a day do not
change when it closes. A
percentile from the buckets is within :data:`RATIO` - 1 (5%) of the exact one.

What is kept holds no text: erasure does not touch it, and it stays when retention
purges a day's records (the day's figures outlive its rows, as Prometheus' do).
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import Field
from sqlalchemy import delete, select

from serving._base import GavelModel
from serving.store._db import Database
from serving.store._schema import traffic, traffic_rollup

CACHE_TTL_S = 60.0
"""How long days' figures are reused by one process (:class:`DayCache`)."""

RATIO = 1.05
"""Each bucket's upper bound is this times the one before: 5% relative resolution."""
FLOOR_MS = 0.1
SETTLE = timedelta(hours=1)
"""How long after its end a day is aggregated for good (late captures land by then)."""


class TrafficDay(GavelModel):
    """One group of a day's traffic."""

    day: str
    model: str
    key_name: str
    """The key's name ('' without one)."""
    source: str
    status: int
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    ttft: dict[int, int] = Field(default_factory=dict)
    """Bucket index -> requests (production answers with a first token)."""
    tpot: dict[int, int] = Field(default_factory=dict)


def bucket(ms: float) -> int:
    """The index of the bucket that holds ``ms`` (pure)."""
    return max(0, math.ceil(math.log(max(ms, FLOOR_MS) / FLOOR_MS, RATIO)))


def percentile(hist: Mapping[int, int], q: float) -> float | None:
    """The nearest-rank ``q`` percentile (0 < q <= 1) of a histogram, as its bucket's
    upper bound (pure); ``None`` when empty."""
    total = sum(hist.values())
    if not total:
        return None
    rank, seen = max(1, round(q * total)), 0
    for b in sorted(hist):
        seen += hist[b]
        if seen >= rank:
            return FLOOR_MS * RATIO**b
    return None  # pragma: no cover  (the loop reaches the rank)


def merge(hists: Iterable[Mapping[int, int]]) -> dict[int, int]:
    """The sum of histograms (pure)."""
    out: Counter[int] = Counter()
    for h in hists:
        out.update(h)
    return dict(out)


def aggregate(rows: Iterable[Sequence[Any]]) -> list[TrafficDay]:
    """A day's records, as tuples of :data:`COLUMNS`, grouped (pure)."""
    sums: dict[tuple[str, str, str, str, int], list[Any]] = {}
    for day, model, key_name, source, status, prompt, completion, cost, ttft, e2e in rows:
        source = source or "production"
        k = (day, model, key_name or "", source, int(status))
        g = sums.get(k)
        if g is None:
            g = sums[k] = [0, 0, 0, 0.0, Counter(), Counter()]
        g[0] += 1
        g[1] += prompt or 0
        g[2] += completion or 0
        g[3] += cost or 0.0
        if ttft is None or source != "production":
            continue
        g[4][bucket(ttft)] += 1
        if e2e is not None and completion and completion > 1:
            g[5][bucket((e2e - ttft) / (completion - 1))] += 1
    return [
        TrafficDay(day=k[0], model=k[1], key_name=k[2], source=k[3], status=k[4], requests=n,
                   prompt_tokens=p, completion_tokens=c, cost_usd=usd, ttft=dict(ttft),
                   tpot=dict(tpot))
        for k, (n, p, c, usd, ttft, tpot) in sums.items()
    ]  # fmt: skip


COLUMNS = (traffic.c.day, traffic.c.model, traffic.c.key_name, traffic.c.source,
         traffic.c.status, traffic.c.prompt_tokens, traffic.c.completion_tokens,
         traffic.c.cost_usd, traffic.c.ttft_ms, traffic.c.e2e_ms)  # fmt: skip


def _of_records(db: Database, day: date) -> list[TrafficDay]:
    return aggregate(db.tuples(select(*COLUMNS).where(traffic.c.day == day.isoformat())))


def _kept(db: Database, first: date, last: date) -> dict[str, list[TrafficDay]]:
    t = traffic_rollup
    out: dict[str, list[TrafficDay]] = defaultdict(list)
    for r in db.fetch(select(t).where(t.c.day >= first.isoformat(), t.c.day <= last.isoformat())):
        hists = {h: json.loads(r[h] or "{}") for h in ("ttft", "tpot")}
        out[r["day"]].append(TrafficDay.model_validate({**r, **hists}))
    return out


class DayCache:
    """Days' figures reused for :data:`CACHE_TTL_S` by one process (a console): views
    within a minute share one read of the store, and an open day's records are read once
    a minute, not at every view."""

    def __init__(self, ttl_s: float = CACHE_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._held: dict[date, tuple[float, list[TrafficDay]]] = {}

    def window(self, db: Database, first: date, last: date, now: datetime) -> list[TrafficDay]:
        """The groups of ``first``..``last``, the days not held (or held too long) read."""
        t = time.monotonic()
        self._held = {d: h for d, h in self._held.items() if h[0] > t}
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        missing = [d for d in days if d not in self._held]
        if missing:
            for d, groups in _days(db, min(missing), max(missing), now).items():
                self._held.setdefault(d, (t + self.ttl_s, groups))
        return [g for d in days for g in self._held[d][1]]


def closed(day: date, now: datetime) -> bool:
    """Whether ``day`` ended :data:`SETTLE` ago (its figures are then kept for good)."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1) + SETTLE <= now


def traffic_days(
    db: Database,
    first: date,
    last: date,
    *,
    now: datetime | None = None,
    cache: DayCache | None = None,
) -> list[TrafficDay]:
    """Every group of the days ``first`` to ``last``: kept ones read, closed days not yet
    kept aggregated and kept, open days aggregated from their records (all of them reused
    for a minute through ``cache``)."""
    now = now or datetime.now(UTC)
    if cache is not None:
        return cache.window(db, first, last, now)
    return [g for groups in _days(db, first, last, now).values() for g in groups]


def _days(db: Database, first: date, last: date, now: datetime) -> dict[date, list[TrafficDay]]:
    kept = _kept(db, first, last)
    out: dict[date, list[TrafficDay]] = {}
    d = first
    while d <= last:
        if d.isoformat() in kept:
            out[d] = kept[d.isoformat()]
        else:
            out[d] = _of_records(db, d)
            if closed(d, now):
                _keep(db, d, out[d])
        d += timedelta(days=1)
    return out


def keep_days_before(db: Database, before: date) -> None:
    """Aggregate and keep every day before ``before`` that has records and is not kept
    (retention calls it before it deletes a day's rows, so the day's figures outlive
    them). Only days with records are visited."""
    t, cut = traffic_rollup, before.isoformat()
    days = {r[0] for r in db.tuples(select(traffic.c.day).where(traffic.c.day < cut).distinct())}
    kept = {r[0] for r in db.tuples(select(t.c.day).where(t.c.day < cut).distinct())}
    for d in sorted(days - kept):
        day = date.fromisoformat(d)
        _keep(db, day, _of_records(db, day))


def forget_late_days(db: Database, days: set[str], now: datetime | None = None) -> None:
    """A capture of a closed day (a spool replayed late): its kept figures are dropped,
    to be aggregated again with it."""
    now = now or datetime.now(UTC)
    late = [d for d in days if closed(date.fromisoformat(d), now)]
    if late:
        db.execute(delete(traffic_rollup).where(traffic_rollup.c.day.in_(late)))


def _keep(db: Database, day: date, groups: list[TrafficDay]) -> None:
    rows = [{**g.model_dump(exclude={"ttft", "tpot"}), "ttft": json.dumps(g.ttft),
             "tpot": json.dumps(g.tpot)} for g in groups]  # fmt: skip
    # A day without traffic is kept as one empty group, so it is not read again.
    rows = rows or [{"day": day.isoformat(), "model": "", "key_name": "", "source": "",
                     "status": 0, "requests": 0, "prompt_tokens": 0, "completion_tokens": 0,
                     "cost_usd": 0.0, "ttft": "{}", "tpot": "{}"}]  # fmt: skip
    db.insert_ignore(traffic_rollup, rows)
