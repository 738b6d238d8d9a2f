"""Leases and the limiter's journal: exact limits with leases held by several replicas,
and windows that outlive the limiter (the pure logic, and the deployment's own methods
on an in-memory key-value store in place of Ray's GCS)."""

from __future__ import annotations

import asyncio
import random

import pytest

from serving.gateway._journal import HORIZON_S, Journal, WindowEvent, apply
from serving.gateway._leases import LeaseBook
from serving.gateway._limits import RateLimiter
from serving.gateway._windows import (
    LEASE_GRACE_S,
    LEASE_SHARE,
    WINDOW_S,
    Lease,
    SlidingWindows,
)


class MemoryKv:
    """The journal's key-value store, in memory (optionally slow, to batch writes)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.data: dict[str, bytes] = {}
        self.delay_s = delay_s
        self.puts = 0

    async def put(self, key: str, value: bytes) -> None:
        await asyncio.sleep(self.delay_s)
        self.puts += 1
        self.data[key] = value

    def items(self, prefix: str) -> list[tuple[str, bytes]]:
        return [(k, v) for k, v in self.data.items() if k.startswith(prefix)]

    async def delete_prefix(self, prefix: str) -> None:
        for k in [k for k in self.data if k.startswith(prefix)]:
            del self.data[k]


def _grant(w: SlidingWindows, key: str, now: float, *, rpm: int | None, tpm: int | None,
           reserve: int, lease_id: str) -> Lease | None:  # fmt: skip
    offer = w.offer_lease(key, now, rpm=rpm, tpm=tpm, reserve=reserve)
    if offer is None:
        return None
    w.hold(key, lease_id, now, requests=offer[0] or 0, tokens=offer[1] or 0, term_s=5.0)
    return Lease(id=lease_id, requests=offer[0], tokens=offer[1], term_s=5.0)


def test_a_lease_is_a_share_of_what_is_free_and_none_near_the_limit() -> None:
    w = SlidingWindows()
    lease = _grant(w, "k", 0.0, rpm=800, tpm=None, reserve=0, lease_id="a")
    assert lease is not None and lease.requests == 800 // LEASE_SHARE and lease.tokens is None
    # What is held is not free for others: the next lease is a share of the rest.
    second = _grant(w, "k", 0.0, rpm=800, tpm=None, reserve=0, lease_id="b")
    assert second is not None and second.requests == (800 - 100) // LEASE_SHARE
    assert _grant(w, "n", 0.0, rpm=20, tpm=None, reserve=0, lease_id="c") is None
    # tpm: at least a few of this request's reservations must fit in a lease.
    assert _grant(w, "t", 0.0, rpm=None, tpm=8_000, reserve=300, lease_id="d") is None
    t = _grant(w, "t", 0.0, rpm=None, tpm=80_000, reserve=300, lease_id="e")
    assert t is not None and t.requests is None and t.tokens == 10_000


def test_a_held_lease_blocks_the_rest_and_its_return_charges_what_it_used() -> None:
    w = SlidingWindows()
    assert w.admit("k", 0.0, rpm=40, tpm=None) is None
    w.hold("k", "a", 0.0, requests=37, tokens=0, term_s=5.0)
    assert w.admit("k", 1.0, rpm=40, tpm=None) is None
    assert w.admit("k", 2.0, rpm=40, tpm=None) is None
    assert w.admit("k", 3.0, rpm=40, tpm=None) == pytest.approx(2.0)  # until its term ends
    w.give_back("k", "a", 5.0, used_requests=10, used_tokens=0)
    assert len(w.windows["k"].requests) == 3 + 10  # the 27 unused are free again
    assert w.windows["k"].held_requests == 0
    # The ten are charged at the return: they leave the window a minute after it.
    assert w.admit("k", 5.0 + WINDOW_S - 0.1, rpm=10, tpm=None) is not None
    assert w.admit("k", 5.0 + WINDOW_S + 0.1, rpm=10, tpm=None) is None


def test_a_lease_never_returned_is_charged_in_full_after_its_grace() -> None:
    w = SlidingWindows()
    w.hold("k", "gone", 0.0, requests=10, tokens=5_000, term_s=5.0)
    w.windows["k"].expire(5.0 + LEASE_GRACE_S + 0.01)
    k = w.windows["k"]
    assert k.held_requests == 0 and len(k.requests) == 10 and k.token_sum == 5_000
    w.give_back("k", "gone", 20.0, used_requests=3, used_tokens=100)  # too late: no change
    assert len(k.requests) == 10 and k.token_sum == 5_000


@pytest.mark.parametrize("seed", range(6))
def test_replicas_with_leases_never_exceed_a_limit(seed: int) -> None:
    """Three replicas, each admitting from its leases or asking the limiter, under random
    traffic: in every one-minute window the key's admissions stay within rpm and its
    tokens within tpm."""
    rng = random.Random(seed)
    rpm, tpm = rng.choice([(40, None), (300, None), (None, 30_000), (200, 40_000)])
    w = SlidingWindows()
    books = [LeaseBook() for _ in range(3)]
    admitted: list[tuple[float, int]] = []
    now, n = 0.0, 0
    while now < 300:
        now += rng.expovariate(8.0)
        i = rng.randrange(3)
        book = books[i]
        for r in book.due(now):
            w.give_back("k", r.lease_id, now, used_requests=r.used_requests,
                        used_tokens=r.used_tokens)  # fmt: skip
        reserve, rid = rng.randint(50, 600), f"r{n}"
        n += 1
        if not book.take("k", now, reserve, rid if tpm else None):
            if w.admit("k", now, rpm=rpm, tpm=tpm, reserve=reserve, reservation=rid) is not None:
                continue
            lease = _grant(w, "k", now, rpm=rpm, tpm=tpm, reserve=reserve, lease_id=f"l{n}")
            if lease is not None:
                book.add("k", lease, now)
            used = rng.randint(0, reserve)
            w.settle(rid if tpm else None, "k", now, used)
        else:
            used = rng.randint(0, reserve)
            book.settle(rid if tpm else None, used)
        admitted.append((now, used))
    assert len(admitted) > 50
    for t0, _ in admitted:
        inside = [u for t, u in admitted if t0 - WINDOW_S < t <= t0]
        assert rpm is None or len(inside) <= rpm, (t0, len(inside), rpm)
        assert tpm is None or sum(inside) <= tpm, (t0, sum(inside), tpm)


def test_a_lease_book_settles_locally_and_reports_running_requests_at_their_reserve() -> None:
    book = LeaseBook()
    book.add("k", Lease(id="a", requests=3, tokens=1_000, term_s=5.0), 0.0)
    assert book.take("k", 1.0, 400, "r1") and book.take("k", 1.0, 400, "r2")
    assert not book.take("k", 1.0, 400, "r3")  # 800 committed: 400 more do not fit
    assert book.settle("r1", 100)  # settled here, no round trip
    assert book.take("k", 1.0, 400, "r3")
    assert not book.take("k", 1.0, 1, "r4")  # its 3 requests are spent
    (ret,) = book.due(1.0)
    assert (ret.used_requests, ret.used_tokens) == (3, 100 + 400 + 400)
    assert book.settle("r2", 10)  # its lease went back at its reserve: nothing to send
    assert not book.settle("other", 10)  # not from a lease: ask the limiter
    book.add("k", Lease(id="b", requests=None, tokens=None, term_s=5.0), 2.0)
    assert book.take("k", 6.9, 0, None) and not book.take("k", 7.0, 0, None)  # term over


def test_the_journal_replays_to_the_same_windows() -> None:
    events = [
        WindowEvent(kind="admit", t=1000.0, key="k", id="r1", tokens=300),
        WindowEvent(kind="lease", t=1001.0, key="k", id="L", requests=5, tokens=2_000, term_s=5.0),
        WindowEvent(kind="settle", t=1002.0, key="k", id="r1", tokens=120),
        WindowEvent(kind="return", t=1004.0, key="k", id="L", requests=2, tokens=700),
        WindowEvent(kind="settle", t=1005.0, key="k", id="gone", tokens=0),
    ]
    live = SlidingWindows()
    for e in events:
        apply(live, e, e.t)
    kv = MemoryKv()
    journal = Journal(kv, clock=lambda: 1005.0)
    for e in events:
        journal.add(e)
    asyncio.run(journal.durable())
    replayed = SlidingWindows()
    for e in Journal(kv, clock=lambda: 1006.0).load():
        apply(replayed, e, e.t)
    for w in (live, replayed):
        k = w.windows["k"]
        assert (len(k.requests), k.token_sum, k.held_requests) == (3, 820, 0)
        assert w.admit("k", 1006.0, rpm=None, tpm=10_000, reserve=1, reservation="gone") is None
    # Past the horizon the journal is empty, and its old writes go with the next write.
    later = Journal(kv, clock=lambda: 1005.0 + HORIZON_S + 2)
    assert later.load() == []
    later.add(WindowEvent(kind="settle", t=1005.0 + HORIZON_S + 2, key="k", tokens=1))
    asyncio.run(later.durable())
    assert len(kv.data) == 1


def test_writes_are_group_committed() -> None:
    async def run() -> tuple[int, int]:
        kv = MemoryKv(delay_s=0.02)
        journal = Journal(kv)

        async def one(i: int) -> None:
            journal.add(WindowEvent(kind="admit", t=float(i), key="k"))
            await journal.durable()

        await asyncio.gather(*(one(i) for i in range(200)))
        return kv.puts, len(Journal(kv, clock=lambda: 1.0).load())

    puts, events = asyncio.run(run())
    assert 1 <= puts <= 3 and events == 200  # 200 waiters, one or two writes


async def test_a_new_limiter_keeps_the_windows_of_the_one_it_replaces() -> None:
    kv = MemoryKv()
    first = RateLimiter.func_or_class(store_url=None, journal=kv)  # type: ignore[attr-defined]
    for i in range(10):
        assert (await first.admit("k", 10, 5_000, 200, f"r{i}")).wait_s is None
    leased = await first.admit("big", 1_000, None, 0, "x", None, True)
    assert leased.lease is not None and leased.lease.requests == (1_000 - 1) // LEASE_SHARE
    await first.settle("r0", "k", 50)
    await first._journal.durable()  # a settlement is written in the background
    # The actor is killed; Serve starts another, which reads the journal.
    second = RateLimiter.func_or_class(store_url=None, journal=kv)  # type: ignore[attr-defined]
    assert (await second.admit("k", 10, 5_000, 200, "r10")).wait_s is not None
    # 9 x 200 reserved and 50 settled: exactly 1,850 tokens are in the window.
    assert (await second.admit("k", 100, 1_850, 1, "r11")).wait_s is not None
    assert (await second.admit("k", 100, 1_851, 1, "r12")).wait_s is None
    assert second._windows.windows["big"].held_requests == leased.lease.requests
    await second.give_back("big", leased.lease.id, 3, 0)
    assert second._windows.windows["big"].held_requests == 0


# --- limits at the edges (issue 30, defect 9) ------------------------------------------


def test_a_request_longer_than_the_window_keeps_its_reservation() -> None:
    w = SlidingWindows()
    assert w.admit("k", 0.0, rpm=None, tpm=1000, reserve=800, reservation="long") is None
    assert w.admit("k", 70.0, rpm=None, tpm=1000, reserve=300, reservation="b") is not None
    w.settle("long", "k", 80.0, 100)  # it ends, having used 100
    assert w.admit("k", 81.0, rpm=None, tpm=1000, reserve=300, reservation="c") is None


def test_a_lowered_limit_ends_the_leases_granted_under_the_old_one() -> None:
    from serving.gateway._windows import Lease

    book = LeaseBook()
    book.add("k", Lease(id="l", requests=200, tokens=None, term_s=5), 0.0, (2000, None))
    assert book.take("k", 1.0, 0, None, (2000, None))
    assert not book.take("k", 1.1, 0, None, (10, None))  # the key's rpm was lowered
    (returned,) = book.due(1.2)  # the lease goes back at once, with what it used
    assert returned.used_requests == 1 and "k" not in book.held


def test_a_replay_never_lets_a_lagging_clock_free_charges_early() -> None:
    from serving.gateway._journal import WindowEvent
    from serving.gateway._limits import replay_shift

    now = 1_000_000.0
    lagging = [WindowEvent(kind="admit", t=now - 30.0 - i, key="k", id=f"r{i}") for i in range(24)]
    assert replay_shift(lagging, now) == 30.0  # the newest charge is put at now
    assert replay_shift([], now) == 0.0
    assert replay_shift([WindowEvent(kind="admit", t=now - 500, key="k")], now) == 60.0


def test_a_budget_settled_after_a_limiter_restart_is_charged() -> None:
    from datetime import UTC, datetime

    from serving.gateway._limits import Budgets

    b = Budgets()  # a new limiter: the request was admitted by the old one
    now = datetime.now(UTC)
    b.load("k", now, day_usd=0.1, month_usd=0.1)
    b.settle("admitted-before-the-restart", 0.05, "k")
    assert b.spent[("k", now.date().isoformat())] == pytest.approx(0.15)
    b.settle("released", 0.0, "k")  # a release charges nothing
    assert b.spent[("k", now.date().isoformat())] == pytest.approx(0.15)
