"""Per-key limits shared by every ingress replica: a sliding one-minute window for rpm
and tpm (:mod:`._windows`, with the leases it grants), and USD budgets per UTC day and
month.

:class:`~._windows.SlidingWindows` and :class:`Budgets` are the pure logic;
:class:`RateLimiter` is the single Serve deployment that holds them, so that limits hold
across ingress replicas. Its windows outlive it: every charge is journaled to Ray's GCS
before it answers (:mod:`._journal`), and a new limiter replays the journal.

Tokens (and their price) are *reserved* at admission (an estimate of the prompt plus the
most the request may generate) and *settled* with the real usage when it ends, so
neither concurrent requests nor aborted streams can spend more than a key's tokens per
minute or its budget. Budgets outlive a restart of the limiter: what a key spent in the
current day and month is read back from the captured traffic the first time the key is
seen.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
import uuid
from collections import OrderedDict
from datetime import UTC, datetime

from ray import serve

from serving.gateway._journal import GcsKeyValue, Journal, KeyValue, WindowEvent, apply
from serving.gateway._spend import (
    OPEN_BUDGET_MAX_S,
    Admission,
    BudgetAsk,
    Budgets,
    resets_at,
)
from serving.gateway._windows import (
    LEASE_TERM_S,
    RELEASED_MAX,
    WINDOW_S,
    Lease,
    SlidingWindows,
)
from serving.store import Store

log = logging.getLogger("gavel.limiter")

__all__ = [
    "OPEN_BUDGET_MAX_S",
    "WINDOW_S",
    "Admission",
    "BudgetAsk",
    "Budgets",
    "RateLimiter",
    "SlidingWindows",
    "resets_at",
]


def replay_shift(events: list[WindowEvent], wall_now: float) -> float:
    """Seconds to add to journaled times when a new limiter replays them.

    The journal's times are the old limiter's wall clock, which may lag this node's (a
    restart onto another node). Shifting the newest event up to now, at most one window,
    keeps every charge at least as long as it really lasted: a skew can only make the
    limits stricter for a while, never let a key through twice."""
    if not events:
        return 0.0
    newest = max(e.t for e in events)
    return min(WINDOW_S, max(0.0, wall_now - newest))


def journal_namespace(store_url: str | None) -> str:
    """The GCS namespace of one store's limiter journal (keys are named per store)."""
    digest = hashlib.sha256((store_url or "").encode()).hexdigest()[:12]
    return f"gavel_limiter_{digest}"


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0}, max_ongoing_requests=100_000)
class RateLimiter:
    """The one place limits and budgets are counted (a Serve deployment the ingress calls).

    Args:
        store_url: The store budgets are read back from after a restart.
        journal: Where window charges are made durable (default: Ray's GCS, under a
            namespace of the store's); the windows are replayed from it at start.
    """

    def __init__(self, store_url: str | None = None, *, journal: KeyValue | None = None) -> None:
        self._windows = SlidingWindows()
        self._budgets = Budgets()
        self._store = Store(store_url) if store_url else None
        self._journal = Journal(journal or GcsKeyValue(journal_namespace(store_url)))
        self._granted: OrderedDict[str, str] = OrderedDict()
        """Reservation -> the lease granted with its admission (the newest only)."""
        t0 = time.monotonic()
        events = self._journal.load()
        shift = replay_shift(events, time.time())
        offset = time.time() - time.monotonic()
        for event in events:
            apply(self._windows, event, min(event.t + shift, time.time()) - offset)
        if events:
            log.info(
                "replayed %d charges from the journal in %.2f s", len(events), time.monotonic() - t0
            )

    def _event(self, event: WindowEvent) -> None:
        """Apply a charge now and journal it."""
        apply(self._windows, event, time.monotonic())
        self._journal.add(event)

    async def admit(
        self,
        key: str,
        rpm: int | None,
        tpm: int | None,
        reserve: int = 0,
        reservation: str | None = None,
        budget: BudgetAsk | None = None,
        lease: bool = False,
    ) -> Admission:
        """Check the budget (without reserving), then the rate (see
        :meth:`SlidingWindows.admit`), then reserve the budget. With ``lease`` (a key
        without a budget), a lease may come with the admission."""
        wall = datetime.now(UTC)
        if budget is not None:
            if not self._budgets.known(key, wall):
                spent = (0.0, 0.0)
                if self._store is not None:
                    spent = await asyncio.to_thread(self._store.key_spend, key, wall.date())
                self._budgets.load(key, wall, day_usd=spent[0], month_usd=spent[1])
            refused = self._budgets.check(key, wall, budget)
            if refused.over_budget is not None or refused.wait_s is not None:
                return refused
        now = time.monotonic()
        if self._windows.released(reservation):
            return Admission()  # its ingress gave up on it: nothing to count
        wait = self._windows.wait(key, now, rpm=rpm, tpm=tpm, reserve=reserve)
        if wait is not None:
            return Admission(wait_s=wait)
        t = time.time()
        tokens = reserve if tpm is not None and reservation is not None else 0
        self._event(WindowEvent(kind="admit", t=t, key=key, id=reservation, tokens=tokens))
        answer = Admission()
        if budget is not None:
            answer = self._budgets.reserve(key, wall, budget, reservation or "")
        granted = None
        if lease and answer.over_budget is None and answer.wait_s is None:
            granted = self._grant(key, now, wall, t, (rpm, tpm, reserve), budget)
        if granted is not None:
            self._granted[reservation or granted.id] = granted.id
            while len(self._granted) > RELEASED_MAX:
                self._granted.popitem(last=False)
        await self._journal.durable()  # answered only once it would outlive this actor
        return dataclasses.replace(answer, lease=granted)

    def _grant(
        self,
        key: str,
        now: float,
        wall: datetime,
        t: float,
        rate: tuple[int | None, int | None, int],
        budget: BudgetAsk | None,
    ) -> Lease | None:
        """A lease for a key far below its rate limits and its budget (held at once,
        the rate part journaled), or ``None``. A budget lease ends by the UTC midnight, so
        that what it admits is counted in the day it was granted for."""
        rpm, tpm, reserve = rate
        offer: tuple[int | None, int | None] | None = (None, None)
        if rpm is not None or tpm is not None:
            offer = self._windows.offer_lease(key, now, rpm=rpm, tpm=tpm, reserve=reserve)
        usd = None if budget is None else self._budgets.offer(key, wall, budget)
        term = LEASE_TERM_S
        if budget is not None:
            term = min(term, (resets_at("day", wall) - wall).total_seconds())
        if offer is None or (budget is not None and usd is None) or term < 1.0:
            return None
        granted = Lease(
            id=uuid.uuid4().hex, requests=offer[0], tokens=offer[1], term_s=term, usd=usd
        )
        if usd is not None:
            self._budgets.hold(key, granted.id, wall, usd, term)
        if rpm is not None or tpm is not None:
            event = WindowEvent(
                kind="lease",
                t=t,
                key=key,
                id=granted.id,
                requests=offer[0] or 0,
                tokens=offer[1] or 0,
                term_s=term,
            )
            self._event(event)
        return granted

    async def settle(
        self, reservation: str | None, key: str, used: int, cost_usd: float | None = None
    ) -> None:
        """Settle tokens (see :meth:`SlidingWindows.settle`) and the budget's reservation."""
        event = WindowEvent(kind="settle", t=time.time(), key=key, id=reservation, tokens=used)
        self._event(event)
        self._budgets.settle(reservation, cost_usd or 0.0, key)
        self._journal.kick()

    async def release(self, reservation: str, key: str) -> None:
        """An ingress gave up on an admission (the limiter was slow, or its client went
        away): free the reservation's tokens and USD, and the lease granted with it. A
        release that arrives before its admission makes that admission charge nothing."""
        await self.settle(reservation, key, 0, 0.0)
        lease_id = self._granted.pop(reservation, None)
        if lease_id is not None:
            await self.give_back(key, lease_id, 0, 0)

    async def give_back(
        self, key: str, lease_id: str, used_requests: int, used_tokens: int, used_usd: float = 0.0
    ) -> None:
        """A replica returns a lease: what it used is charged now, the rest is freed."""
        event = WindowEvent(
            kind="return",
            t=time.time(),
            key=key,
            id=lease_id,
            requests=used_requests,
            tokens=used_tokens,
        )
        self._event(event)
        self._budgets.give_back(lease_id, used_usd, key, datetime.now(UTC))
        self._journal.kick()

    def journal_writes(self) -> int:
        """How many journal writes this limiter made (for benchmarks)."""
        return self._journal.writes
