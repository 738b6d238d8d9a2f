"""Traffic per day, pre-aggregated: requests, tokens and cost per (day, model, key,
source, status), and each group's TTFT and TPOT as a histogram of log-spaced buckets, so
that a window's percentiles merge without reading its records.

A closed day (over for :data:`SETTLE` already) is aggregated once, on first use, and
kept (revision 0009); the open day is aggregated from its records at each call. Both go
through the same functions, so the figures of a day do not change when it closes. A
percentile from the buckets is within :data:`RATIO` - 1 (5%) of the exact one.

What is kept holds no text: erasure does not touch it, and it stays when retention
purges a day's records (the day's figures outlive its rows, as Prometheus' do).
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import Field
from sqlalchemy import select

from serving._base import GavelModel
from serving.store._db import Database
from serving.store._schema import traffic, traffic_rollup

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


def aggregate(rows: Iterable[Mapping[str, Any]]) -> list[TrafficDay]:
    """A day's records (as rows of :data:`tables.traffic`) grouped (pure)."""
    sums: dict[tuple[str, str, str, str, int], list[Any]] = {}
    for r in rows:
        source = r["source"] or "production"
        k = (r["day"], r["model"], r["key_name"] or "", source, int(r["status"]))
        g = sums.setdefault(k, [0, 0, 0, 0.0, Counter(), Counter()])
        g[0] += 1
        g[1] += r["prompt_tokens"] or 0
        g[2] += r["completion_tokens"] or 0
        g[3] += r["cost_usd"] or 0.0
        if r["ttft_ms"] is None or source != "production":
            continue
        g[4][bucket(r["ttft_ms"])] += 1
        out = r["completion_tokens"] or 0
        if r["e2e_ms"] is not None and out > 1:
            g[5][bucket((r["e2e_ms"] - r["ttft_ms"]) / (out - 1))] += 1
    return [
        TrafficDay(
            day=k[0],
            model=k[1],
            key_name=k[2],
            source=k[3],
            status=k[4],
            requests=n,
            prompt_tokens=p,
            completion_tokens=c,
            cost_usd=usd,
            ttft=dict(ttft),
            tpot=dict(tpot),
        )
        for k, (n, p, c, usd, ttft, tpot) in sums.items()
    ]


_COLS = (traffic.c.day, traffic.c.model, traffic.c.key_name, traffic.c.source,
         traffic.c.status, traffic.c.prompt_tokens, traffic.c.completion_tokens,
         traffic.c.cost_usd, traffic.c.ttft_ms, traffic.c.e2e_ms)  # fmt: skip


def _of_records(db: Database, day: date) -> list[TrafficDay]:
    return aggregate(db.fetch(select(*_COLS).where(traffic.c.day == day.isoformat())))


def _kept(db: Database, first: date, last: date) -> dict[str, list[TrafficDay]]:
    t = traffic_rollup
    out: dict[str, list[TrafficDay]] = defaultdict(list)
    for r in db.fetch(select(t).where(t.c.day >= first.isoformat(), t.c.day <= last.isoformat())):
        hists = {h: json.loads(r[h] or "{}") for h in ("ttft", "tpot")}
        out[r["day"]].append(TrafficDay.model_validate({**r, **hists}))
    return out


def traffic_days(
    db: Database, first: date, last: date, *, now: datetime | None = None
) -> list[TrafficDay]:
    """Every group of the days ``first`` to ``last``: kept ones read, closed days not yet
    kept aggregated and kept, open days aggregated from their records."""
    now = now or datetime.now(UTC)
    kept = _kept(db, first, last)
    out: list[TrafficDay] = []
    d = first
    while d <= last:
        closed = datetime(d.year, d.month, d.day, tzinfo=UTC) + timedelta(days=1) + SETTLE <= now
        if d.isoformat() in kept:
            out += kept[d.isoformat()]
        else:
            groups = _of_records(db, d)
            if closed:
                _keep(db, d, groups)
            out += groups
        d += timedelta(days=1)
    return out


def _keep(db: Database, day: date, groups: list[TrafficDay]) -> None:
    rows = [{**g.model_dump(exclude={"ttft", "tpot"}), "ttft": json.dumps(g.ttft),
             "tpot": json.dumps(g.tpot)} for g in groups]  # fmt: skip
    # A day without traffic is kept as one empty group, so it is not read again.
    rows = rows or [{"day": day.isoformat(), "model": "", "key_name": "", "source": "",
                     "status": 0, "requests": 0, "prompt_tokens": 0, "completion_tokens": 0,
                     "cost_usd": 0.0, "ttft": "{}", "tpot": "{}"}]  # fmt: skip
    db.insert_ignore(traffic_rollup, rows)
