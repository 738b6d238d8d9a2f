"""Budgets' pure logic: reservations, settlement, periods and their resets, and the
request's worst case at the model's price."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from serving._keys import new_key
from serving._model_config import PriceConfig
from serving.gateway._budget import budget_ask, over_budget, rate_limited
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


def test_a_budget_lease_is_a_share_of_the_tighter_free_budget_and_none_near_it() -> None:
    b = Budgets()
    b.load("k", NOW, day_usd=2.0, month_usd=60.0)
    ask = BudgetAsk(day_usd=10.0, month_usd=100.0, reserve_usd=0.01)
    assert b.offer("k", NOW, ask) == pytest.approx(8.0 / 8)  # the day has 8 free, the month 40
    b.hold("k", "L1", NOW, 1.0)  # held at once: not free for the next replica
    assert b.offer("k", NOW, ask) == pytest.approx(7.0 / 8)
    held_back = b.check("k", NOW, BudgetAsk(day_usd=10.0, month_usd=None, reserve_usd=7.5))
    assert held_back.over_budget is None and held_back.wait_s is not None  # until L is back
    b.give_back("L1", 0.25, "k", NOW)  # it used 0.25 of its 1.0: the rest is free again
    assert b.spent[("k", "2026-12-31")] == pytest.approx(2.25)
    assert b.spent[("k", "2026-12")] == pytest.approx(60.25)
    b.give_back("L1", 0.25, "k", NOW)  # returned once only: a second return is a late charge
    assert b.spent[("k", "2026-12-31")] == pytest.approx(2.5)
    near = BudgetAsk(day_usd=2.6, month_usd=None, reserve_usd=0.05)
    assert b.offer("k", NOW, near) is None  # 0.1 free: under four worst cases per lease


async def test_the_limiter_leases_a_budget_and_counts_what_the_lease_used() -> None:
    """A budgeted key far below its budget gets a lease with its admission (no later ask
    while it lasts); the lease's USD is held, and its return charges what it used."""
    from serving.gateway._leases import LeaseBook
    from serving.gateway._limits import RateLimiter
    from tests.serving.test_limits_units import MemoryKv

    limiter = RateLimiter.func_or_class(store_url=None, journal=MemoryKv())  # type: ignore[attr-defined]
    ask = BudgetAsk(day_usd=8.0, month_usd=None, reserve_usd=0.1)
    first = await limiter.admit("k", None, None, 0, "r1", ask, True)
    lease = first.lease
    assert lease is not None and lease.usd == pytest.approx((8.0 - 0.1) / 8)
    assert lease.requests is None and lease.tokens is None and 1.0 <= lease.term_s <= 5.0
    book = LeaseBook()
    book.add("k", lease, 0.0)
    taken = sum(book.take("k", 0.1, 0, f"x{i}", reserve_usd=0.1) for i in range(20))
    assert taken == 9  # 9 worst cases fit 0.9875
    for i in range(9):
        assert book.settle(f"x{i}", 5, 0.02)
    (back,) = book.due(10.0)
    assert back.used_requests == 9 and back.used_usd == pytest.approx(0.18)
    budgets = limiter._budgets
    day = NOW.date().isoformat()
    before = sum(v for (k, pid), v in budgets.spent.items() if k == "k" and len(pid) == 10)
    await limiter.give_back("k", lease.id, back.used_requests, back.used_tokens, back.used_usd)
    after = sum(v for (k, pid), v in budgets.spent.items() if k == "k" and len(pid) == 10)
    assert after - before == pytest.approx(0.18 - lease.usd) and day  # the rest freed
    # Near the budget, no lease: every request asks.
    tight = BudgetAsk(day_usd=0.5, month_usd=None, reserve_usd=0.1)
    assert (await limiter.admit("t", None, None, 0, "t1", tight, True)).lease is None


@pytest.mark.parametrize("seed", range(4))
def test_replicas_with_budget_leases_never_spend_more_than_the_budget(seed: int) -> None:
    """Three replicas admit a budgeted key's requests from their leases or by asking,
    with requests running across lease returns: what every admitted request really cost
    stays within the budget, and while the key is far below it most admissions come from
    leases."""
    import random

    from serving.gateway._leases import LeaseBook
    from serving.gateway._windows import Lease

    rng = random.Random(seed)
    budget = rng.choice([3.0, 5.0, 20.0])
    b, books = Budgets(), [LeaseBook() for _ in range(3)]
    running: list[tuple[float, int, str, float]] = []  # (ends, replica or -1, id, cost)
    spent_real, leased, asked, now, n = 0.0, 0, 0, 0.0, 0

    def end(item: tuple[float, int, str, float]) -> None:
        _, i, rid, cost = item
        if i < 0 or not books[i].settle(rid, 1, cost):
            b.settle(rid, cost, "k")

    while now < 120:
        now += rng.expovariate(20.0)
        wall = NOW + timedelta(seconds=now)
        for item in [r for r in running if r[0] <= now]:
            running.remove(item)
            end(item)
        i = rng.randrange(3)
        for r in books[i].due(now):
            b.give_back(r.lease_id, r.used_usd, "k", wall)
        ask = BudgetAsk(day_usd=budget, month_usd=None, reserve_usd=rng.uniform(0.001, 0.05))
        rid, n = f"r{n}", n + 1
        cost = ask.reserve_usd * rng.random()
        far = spent_real < budget / 2
        if books[i].take("k", now, 0, rid, reserve_usd=ask.reserve_usd):
            leased += far
            running.append((now + rng.uniform(0, 8), i, rid, cost))
        elif (answer := b.reserve("k", wall, ask, rid)).over_budget is None and not answer.wait_s:
            asked += far
            usd = b.offer("k", wall, ask)
            if usd is not None:
                b.hold("k", f"l{n}", wall, usd)
                books[i].add("k", Lease(id=f"l{n}", requests=None, tokens=None, term_s=5.0,
                                        usd=usd), now)  # fmt: skip
            running.append((now + rng.uniform(0, 8), -1, rid, cost))
        else:
            continue
        spent_real += cost
    assert spent_real <= budget, (spent_real, budget)
    assert leased > asked, (leased, asked)  # while the key was far below its budget


def test_a_lease_out_at_midnight_is_returned_to_its_own_day_and_month() -> None:
    """A lease granted before midnight and returned after it is settled against the
    hold (the day and month it was granted in), not charged again."""
    b = Budgets()
    eve = datetime(2026, 12, 30, 23, 59, 58, tzinfo=UTC)
    b.load("k", eve, day_usd=0.0, month_usd=1.0)
    b.hold("k", "L", eve, 0.5, term_s=1.5)
    after = eve + timedelta(seconds=3)
    b.hold("k", "M", after, 0.1)  # another grant after midnight: L is still out
    b.give_back("L", 0.2, "k", after)
    assert b.spent[("k", "2026-12-30")] == pytest.approx(0.2)
    assert b.spent[("k", "2026-12")] == pytest.approx(1.0 + 0.2 + 0.1)


def test_a_request_that_fits_but_for_leases_out_waits_for_them() -> None:
    """Near the budget, what other replicas' leases hold is not spent: a request that
    fits without them is told to retry when the first lease is back (a rate-style wait),
    not refused until midnight; the share reported leaves the holds out."""
    b = Budgets()
    b.load("k", NOW, day_usd=6.0, month_usd=6.0)
    b.hold("k", "L", NOW, 3.0, term_s=5.0)
    ask = BudgetAsk(day_usd=10.0, month_usd=None, reserve_usd=2.0)
    answer = b.check("k", NOW, ask)
    assert answer.over_budget is None and answer.wait_s == pytest.approx(6.0)
    assert answer.used["day"] == pytest.approx(0.6)
    _, key = new_key("k", ["infer"])
    refused = rate_limited(6, key, leased=answer.budget_leased)  # its 429 says why
    assert "held by requests in flight" in refused.message and "rpm" not in refused.message
    big = BudgetAsk(day_usd=10.0, month_usd=None, reserve_usd=4.5)
    assert b.check("k", NOW, big).over_budget == "day"  # does not fit even without them
