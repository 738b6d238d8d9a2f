"""Traffic per day, pre-aggregated (the console's overview): the histograms' percentiles
are within their resolution of the exact ones; a closed day is kept once and read back
the same; the open day follows new records; no text is kept."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta

from serving._wire import TrafficRecord
from serving.store import Store, tables, traffic_days
from serving.store._rollup import RATIO, aggregate, bucket, merge, percentile

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
    rows = [r.model_dump() | {"day": DAY.isoformat()} for r in (
        _rec(DAY, ttft=100), _rec(DAY, ttft=300), _rec(DAY, ttft=5000, source="judge"),
        _rec(DAY, ttft=100, status=429, key="k2"))]  # fmt: skip
    groups = {(g.key_name, g.source, g.status): g for g in aggregate(rows)}
    prod = groups[("k1", "production", 200)]
    assert (prod.requests, prod.completion_tokens, sum(prod.ttft.values())) == (2, 18, 2)
    assert percentile(prod.tpot, 0.5) is not None and abs(percentile(prod.tpot, 0.5) - 20) < 1.1  # type: ignore[operator]
    assert groups[("k1", "judge", 200)].ttft == {}  # background traffic is not the SLO's


def test_a_closed_day_is_kept_once_and_the_open_day_follows(store_url: str) -> None:
    store = Store(store_url)
    store.ensure_schema()
    day = DAY - timedelta(days=random.Random().randrange(1, 3000))  # fresh in a shared store
    model = f"m-{uuid.uuid4().hex[:6]}"
    store.insert_traffic([_rec(day, ttft=t, model=model) for t in (50, 60, 70)])
    now = datetime(day.year, day.month, day.day, 18, tzinfo=UTC)  # the day is open
    open_groups = [g for g in traffic_days(store, day, day, now=now) if g.model == model]
    store.insert_traffic([_rec(day, ttft=80, model=model)])
    later = [g for g in traffic_days(store, day, day, now=now) if g.model == model]
    assert sum(g.requests for g in open_groups) == 3 and sum(g.requests for g in later) == 4
    closed_at = now + timedelta(days=1)
    first = [g for g in traffic_days(store, day, day, now=closed_at) if g.model == model]
    t = tables.traffic_rollup
    kept = store.fetch(t.select().where(t.c.day == day.isoformat(), t.c.model == model))
    assert len(kept) == 1 and "secret" not in str(kept[0])  # kept, and no text in it
    store.insert_traffic([_rec(day, ttft=90, model=model)])  # a capture later than SETTLE
    again = [g for g in traffic_days(store, day, day, now=closed_at) if g.model == model]
    assert first == again == later  # read back as it was kept, the same as when open
    store.close()
