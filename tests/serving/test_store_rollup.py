"""Traffic per day, pre-aggregated (the console's overview): the histograms' percentiles
are within their resolution of the exact ones; a closed day is kept once and read back
the same; the open day follows new records; no text is kept."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta

from serving._wire import TrafficRecord
from serving.store import Store, tables, traffic_days
from serving.store._rollup import (
    COLUMNS,
    RATIO,
    SETTLE,
    aggregate,
    bucket,
    closed,
    merge,
    percentile,
)

DAY = date(2026, 11, 20)


def _rec(day: date, *, ttft: float, out: int = 9, key: str = "k1", status: int = 200,
         source: str = "production", model: str = "m") -> TrafficRecord:  # fmt: skip
    return TrafficRecord(
        request_id=uuid.uuid4().hex, ts=datetime(day.year, day.month, day.day, 12, tzinfo=UTC),
        key_name=key, model=model, endpoint="chat", stream=True, status=status, source=source,  # type: ignore[arg-type]
        request={"messages": [{"role": "user", "content": "secret words"}]},
        response_text="secret answer", ttft_ms=ttft, e2e_ms=ttft + 20.0 * (out - 1),
        prompt_tokens=5, completion_tokens=out, cost_usd=0.01,
    )  # fmt: skip


def test_histogram_percentiles_are_within_their_resolution() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(4, 1.2) for _ in range(5000)]
    hist: dict[int, int] = {}
    for v in values:
        hist[bucket(v)] = hist.get(bucket(v), 0) + 1
    ordered = sorted(values)
    for q in (0.5, 0.9, 0.99):
        exact = ordered[round(q * len(ordered)) - 1]
        got = percentile(hist, q)
        assert got is not None and exact <= got <= exact * RATIO, (q, exact, got)
    halves = [dict(list(hist.items())[::2]), dict(list(hist.items())[1::2])]
    assert merge(halves) == hist and percentile({}, 0.5) is None


def test_groups_count_production_latency_only() -> None:
    cols = [c.name for c in COLUMNS]
    rows = [tuple((r.model_dump() | {"day": DAY.isoformat()})[c] for c in cols) for r in (
        _rec(DAY, ttft=100), _rec(DAY, ttft=300), _rec(DAY, ttft=5000, source="judge"),
        _rec(DAY, ttft=100, status=429, key="k2"))]  # fmt: skip
    groups = {(g.key_name, g.source, g.status): g for g in aggregate(rows)}
    prod = groups[("k1", "production", 200)]
    assert (prod.requests, prod.completion_tokens, sum(prod.ttft.values())) == (2, 18, 2)
    assert percentile(prod.tpot, 0.5) is not None and abs(percentile(prod.tpot, 0.5) - 20) < 1.1  # type: ignore[operator]
    assert groups[("k1", "judge", 200)].ttft == {}  # background traffic is not the SLO's


def test_a_closed_day_is_kept_once_and_a_late_capture_reopens_it(scratch_store_url: str) -> None:
    store = Store(scratch_store_url)
    store.ensure_schema()
    day = DAY
    t = tables.traffic_rollup
    store.insert_traffic([_rec(day, ttft=t_ms) for t_ms in (50, 60, 70)])
    now = datetime(day.year, day.month, day.day, 18, tzinfo=UTC)  # the day is open
    assert sum(g.requests for g in traffic_days(store, day, day, now=now)) == 3
    assert store.fetch(t.select()) == []  # an open day is not kept
    ended = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    just_before = ended + SETTLE - timedelta(seconds=1)
    assert not closed(day, just_before) and closed(day, ended + SETTLE)
    at = ended + timedelta(days=2)
    first = traffic_days(store, day, day, now=at)
    kept = store.fetch(t.select().where(t.c.day == day.isoformat()))
    assert len(kept) == 1 and "secret" not in str(kept[0])  # kept, and no text in it
    assert traffic_days(store, day, day, now=at) == first  # read back as it was kept
    store.insert_traffic([_rec(day, ttft=90)])  # a spool replayed after the day closed
    assert store.fetch(t.select()) == []  # the kept figures are dropped ...
    assert sum(g.requests for g in traffic_days(store, day, day, now=at)) == 4  # ... and redone
    empty = DAY + timedelta(days=5)
    assert traffic_days(store, empty, empty, now=at + timedelta(days=9)) == []
    assert len(store.fetch(t.select().where(t.c.day == empty.isoformat()))) == 1  # placeholder
    store.close()


def test_retention_keeps_a_days_figures_before_it_deletes_its_rows(scratch_store_url: str) -> None:
    from serving._gateway_config import RetentionConfig
    from serving.store import purge

    store = Store(scratch_store_url)
    store.ensure_schema()
    old = date(2026, 1, 5)
    store.insert_traffic([_rec(old, ttft=100) for _ in range(3)])
    retention = RetentionConfig.model_validate({"production": {"row_days": 30}})
    purge(store, retention, today=old + timedelta(days=60), dry_run=False)
    assert store.count_traffic() == 0  # the rows are gone ...
    groups = traffic_days(store, old, old)
    assert sum(g.requests for g in groups) == 3  # ... their day's figures are not
    store.close()
