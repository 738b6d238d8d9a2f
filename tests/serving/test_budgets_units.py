"""Budgets' pure logic: reservations, settlement, periods and their resets, and the
request's worst case at the model's price."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from serving._keys import new_key
from serving._model_config import PriceConfig
from serving.gateway._budget import budget_ask, over_budget
from serving.gateway._limits import BudgetAsk, Budgets, resets_at

NOW = datetime(2026, 12, 31, 23, 0, tzinfo=UTC)


def test_reservations_fill_the_budget_and_settle_with_the_real_cost() -> None:
    b = Budgets()
    b.load("k", NOW, day_usd=0.2, month_usd=5.0)
    ask = BudgetAsk(day_usd=1.0, month_usd=None, reserve_usd=0.3)
    assert b.reserve("k", NOW, ask, "r1").over_budget is None  # 0.5
    assert b.reserve("k", NOW, ask, "r2").over_budget is None  # 0.8
    refused = b.reserve("k", NOW, ask, "r3")
    assert refused.over_budget == "day" and refused.used["day"] == pytest.approx(0.8)
    b.settle("r1", 0.05)  # the first request cost less than its worst case
    assert b.reserve("k", NOW, ask, "r4").over_budget is None  # 0.55 + 0.3
    assert b.spent[("k", "2026-12-31")] == pytest.approx(0.85)
    assert b.spent[("k", "2026-12")] == pytest.approx(5.0 + 0.85 - 0.2)
    b.settle("r1", 1.0)  # settled once only
    assert b.spent[("k", "2026-12-31")] == pytest.approx(0.85)


def test_a_month_budget_and_the_resets() -> None:
    b = Budgets()
    b.load("k", NOW, day_usd=0.0, month_usd=9.9)
    answer = b.check("k", NOW, BudgetAsk(day_usd=None, month_usd=10.0, reserve_usd=0.2))
    assert answer.over_budget == "month"
    assert answer.resets_at == datetime(2027, 1, 1, tzinfo=UTC)
    assert resets_at("day", NOW) == datetime(2027, 1, 1, tzinfo=UTC)
    assert resets_at("month", datetime(2026, 2, 10, tzinfo=UTC)) == datetime(2026, 3, 1, tzinfo=UTC)
    tomorrow = NOW + timedelta(hours=2)
    assert not b.known("k", tomorrow)  # a new day (and month) is read back from the store


def test_the_worst_case_is_priced_and_the_refusal_names_the_budget() -> None:
    _, key = new_key("k", ["infer"])
    assert budget_ask(key, PriceConfig(), 10, 100) is None  # no budget, no ask
    key = key.model_copy(update={"budget_usd_day": 0.5})
    price = PriceConfig(input_per_mtok=1.0, output_per_mtok=2.0)
    ask = budget_ask(key, price, 10, 110)
    assert ask is not None and ask.reserve_usd == pytest.approx((10 * 1.0 + 100 * 2.0) / 1e6)
    b = Budgets()
    b.load("k", NOW, day_usd=0.5, month_usd=0.5)
    resp = over_budget(key, b.check("k", NOW, ask)).response()
    body = resp.body.decode()
    assert resp.status_code == 429 and "budget_exceeded" in body
    assert "USD 0.5 per day, 100% spent or reserved; it resets at" in body


def test_a_key_s_spend_is_read_back_from_the_store(store_url: str) -> None:
    """What a restarted limiter starts from: today's and this month's captured cost."""
    import uuid

    from serving._wire import TrafficRecord
    from serving.store import Store

    store = Store(store_url)
    name = f"spend-{uuid.uuid4().hex[:8]}"

    def rec(day: int, cost: float | None, key: str = name) -> TrafficRecord:
        return TrafficRecord(
            request_id=uuid.uuid4().hex, ts=datetime(2026, 12, day, 12, tzinfo=UTC),
            key_name=key, model="app-model", endpoint="chat", stream=False, request={},
            status=200, cost_usd=cost,
        )  # fmt: skip

    store.insert_traffic([rec(1, 0.5), rec(30, 0.25), rec(31, 1.0), rec(31, None),
                          rec(31, 9.0, key="other")])  # fmt: skip
    assert store.key_spend(name, NOW.date()) == pytest.approx((1.0, 1.75))
    assert store.key_spend(name, NOW.date() - timedelta(days=1)) == pytest.approx((0.25, 0.75))


async def test_the_limiter_settles_a_budget_with_the_real_cost() -> None:
    """The deployment's own methods: a request that cost less than its worst case frees
    the difference for the next one."""
    from serving.gateway._limits import RateLimiter
    from tests.serving.test_limits_units import MemoryKv

    limiter = RateLimiter.func_or_class(store_url=None, journal=MemoryKv())  # type: ignore[attr-defined]
    ask = BudgetAsk(day_usd=1.0, month_usd=None, reserve_usd=0.6)
    first = await limiter.admit("k", None, None, 0, "r1", ask)
    assert first.over_budget is None
    assert (await limiter.admit("k", None, None, 0, "r2", ask)).over_budget == "day"
    await limiter.settle("r1", "k", 10, 0.1)  # it cost 0.1, not 0.6
    assert (await limiter.admit("k", None, None, 0, "r3", ask)).over_budget is None
