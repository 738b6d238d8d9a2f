"""Per-key limits shared by every ingress replica: a sliding one-minute window for rpm
and tpm, and USD budgets per UTC day and month.

:class:`SlidingWindows` and :class:`Budgets` are the pure logic; :class:`RateLimiter` is
the single Serve deployment that holds them, so that limits hold across ingress replicas.

Tokens (and their price) are *reserved* at admission (an estimate of the prompt plus the
most the request may generate) and *settled* with the real usage when it ends, so
neither concurrent requests nor aborted streams can spend more than a key's tokens per
minute or its budget. Budgets outlive a restart of the limiter: what a key spent in the
current day and month is read back from the captured traffic the first time the key is
seen.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from ray import serve

from serving.store import Store

WINDOW_S = 60.0


@dataclass
class _Charge:
    t: float
    tokens: int


@dataclass
class _KeyWindow:
    requests: deque[float] = field(default_factory=deque)
    charges: deque[_Charge] = field(default_factory=deque)
    token_sum: int = 0

    def expire(self, now: float) -> None:
        while self.requests and self.requests[0] <= now - WINDOW_S:
            self.requests.popleft()
        while self.charges and self.charges[0].t <= now - WINDOW_S:
            self.token_sum -= self.charges.popleft().tokens


RELEASED_MAX = 10_000


@dataclass
class _Released:
    """Reservations released before their admission arrived (an ingress that gave up on a
    slow limiter releases what it asked for; its admission may still come later). The
    newest ``RELEASED_MAX`` are remembered."""

    ids: set[str] = field(default_factory=set)
    order: deque[str] = field(default_factory=deque)

    def add(self, reservation: str) -> None:
        if reservation in self.ids:
            return
        self.ids.add(reservation)
        self.order.append(reservation)
        while len(self.order) > RELEASED_MAX:
            self.ids.discard(self.order.popleft())

    def take(self, reservation: str | None) -> bool:
        """True (once) if ``reservation`` was released before it was admitted."""
        if reservation is None or reservation not in self.ids:
            return False
        self.ids.discard(reservation)
        return True


@dataclass
class SlidingWindows:
    """Requests and tokens per key over the last minute.

    Open reservations are forgotten once their charge leaves the window (a request that
    never settles cannot grow the table); a reservation released before its admission
    arrives is never charged.
    """

    windows: dict[str, _KeyWindow] = field(default_factory=dict)
    _open: dict[str, _Charge] = field(default_factory=dict)
    _opened: deque[tuple[float, str]] = field(default_factory=deque)
    _released: _Released = field(default_factory=_Released)

    def open_reservations(self, now: float) -> int:
        """Reservations admitted and not settled, within the window."""
        self._forget_old(now)
        return len(self._open)

    def _forget_old(self, now: float) -> None:
        while self._opened and self._opened[0][0] <= now - WINDOW_S:
            self._open.pop(self._opened.popleft()[1], None)

    def admit(
        self,
        key: str,
        now: float,
        *,
        rpm: int | None,
        tpm: int | None,
        reserve: int = 0,
        reservation: str | None = None,
    ) -> float | None:
        """Count a request and return ``None``, or return seconds to wait (not counted).

        With a tpm, ``reserve`` tokens are charged at once under ``reservation`` (an id
        the caller chose); :meth:`settle` replaces them with the real usage.
        """
        self._forget_old(now)
        if self._released.take(reservation):
            return None  # its ingress gave up on it: nothing to count
        w = self.windows.setdefault(key, _KeyWindow())
        w.expire(now)
        waits: list[float] = []
        if rpm is not None and len(w.requests) >= rpm:
            waits.append(w.requests[len(w.requests) - rpm] + WINDOW_S - now)
        if tpm is not None and (w.token_sum + reserve > tpm or w.token_sum >= tpm):
            # Wait until enough old charges expire for this reservation to fit.
            excess = w.token_sum + reserve - tpm
            freed = 0
            for c in w.charges:
                freed += c.tokens
                if freed >= excess:
                    waits.append(c.t + WINDOW_S - now)
                    break
            else:
                waits.append(WINDOW_S)
        if waits:
            return max(0.001, max(waits))
        w.requests.append(now)
        if tpm is not None and reserve > 0 and reservation is not None:
            charge = _Charge(now, reserve)
            w.charges.append(charge)
            w.token_sum += reserve
            self._open[reservation] = charge
            self._opened.append((now, reservation))
        return None

    def settle(self, reservation: str | None, key: str, now: float, used: int) -> None:
        """Replace a reservation by the tokens really used (or charge ``used`` if none)."""
        charge = self._open.pop(reservation, None) if reservation is not None else None
        if charge is None and reservation is not None and used == 0:
            self._released.add(reservation)  # a release that may precede its admission
            return
        w = self.windows.setdefault(key, _KeyWindow())
        if charge is not None and any(c is charge for c in w.charges):
            w.token_sum += used - charge.tokens  # still in the window: correct it in place
            charge.tokens = used
            return
        w.expire(now)
        if used > 0:
            w.charges.append(_Charge(now, used))
            w.token_sum += used

    def add_tokens(self, key: str, now: float, tokens: int) -> None:
        """Charge tokens used by a finished request that held no reservation."""
        self.settle(None, key, now, tokens)


Period = Literal["day", "month"]


@dataclass(frozen=True)
class BudgetAsk:
    """A budgeted key's request: its budgets and the USD its worst case may cost."""

    day_usd: float | None
    month_usd: float | None
    reserve_usd: float


@dataclass(frozen=True)
class Admission:
    """The limiter's answer: admitted (both fields ``None``), wait (rate), or over budget."""

    wait_s: float | None = None
    over_budget: Period | None = None
    resets_at: datetime | None = None
    used: dict[str, float] = field(default_factory=dict)
    """Per budget period, the share spent or reserved (this request included)."""


def period_ids(now: datetime) -> tuple[str, str]:
    """The UTC day (``YYYY-MM-DD``) and month (``YYYY-MM``) of ``now``."""
    day = now.astimezone(UTC).date().isoformat()
    return day, day[:7]


def resets_at(period: Period, now: datetime) -> datetime:
    """When a budget period that contains ``now`` ends (UTC midnight, or the 1st)."""
    d = now.astimezone(UTC).date()
    if period == "day":
        nxt = d + timedelta(days=1)
    else:
        nxt = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    return datetime(nxt.year, nxt.month, nxt.day, tzinfo=UTC)


OPEN_BUDGET_MAX_S = 3600.0


@dataclass
class Budgets:
    """USD spent or reserved per key and period (day and month, UTC).

    A reservation not settled within ``OPEN_BUDGET_MAX_S`` is forgotten and stays charged
    at its worst case (the safe side); one released before its admission is never
    charged.
    """

    spent: dict[tuple[str, str], float] = field(default_factory=dict)
    _open: dict[str, tuple[str, str, str, float]] = field(default_factory=dict)
    _opened: deque[tuple[datetime, str]] = field(default_factory=deque)
    _released: _Released = field(default_factory=_Released)

    def known(self, key: str, now: datetime) -> bool:
        """True once the key's spend for ``now``'s day and month is loaded."""
        day, month = period_ids(now)
        return (key, day) in self.spent and (key, month) in self.spent

    def load(self, key: str, now: datetime, *, day_usd: float, month_usd: float) -> None:
        """Start from what the store says the key spent (after a restart, a new day)."""
        day, month = period_ids(now)
        self.spent.setdefault((key, day), day_usd)
        self.spent.setdefault((key, month), month_usd)

    def check(self, key: str, now: datetime, ask: BudgetAsk) -> Admission:
        """Whether ``ask.reserve_usd`` fits every budget of the key (nothing is reserved)."""
        day, month = period_ids(now)
        used: dict[str, float] = {}
        periods: tuple[tuple[Period, str, float | None], ...] = (
            ("day", day, ask.day_usd),
            ("month", month, ask.month_usd),
        )
        for period, pid, budget in periods:
            if budget is None:
                continue
            spent = self.spent.get((key, pid), 0.0)
            if spent + ask.reserve_usd > budget:
                return Admission(
                    over_budget=period,
                    resets_at=resets_at(period, now),
                    used={period: spent / budget},
                )
            used[period] = (spent + ask.reserve_usd) / budget
        return Admission(used=used)

    def reserve(self, key: str, now: datetime, ask: BudgetAsk, reservation: str) -> Admission:
        """Reserve ``ask.reserve_usd`` under ``reservation``, or refuse (nothing reserved)."""
        while self._opened and self._opened[0][0] <= now - timedelta(seconds=OPEN_BUDGET_MAX_S):
            self._open.pop(self._opened.popleft()[1], None)
        if self._released.take(reservation):
            return Admission()  # its ingress gave up on it: nothing to charge
        answer = self.check(key, now, ask)
        if answer.over_budget is not None:
            return answer
        day, month = period_ids(now)
        for pid in (day, month):
            self.spent[(key, pid)] = self.spent.get((key, pid), 0.0) + ask.reserve_usd
        self._open[reservation] = (key, day, month, ask.reserve_usd)
        self._opened.append((now, reservation))
        return answer

    def open_reservations(self) -> int:
        """Reservations admitted and not settled (nor forgotten)."""
        return len(self._open)

    def settle(self, reservation: str | None, cost_usd: float) -> None:
        """Replace a reservation by the request's real cost."""
        opened = self._open.pop(reservation, None) if reservation is not None else None
        if opened is None:
            if reservation is not None and cost_usd == 0:
                self._released.add(reservation)
            return
        key, day, month, reserved = opened
        for pid in (day, month):
            self.spent[(key, pid)] = self.spent.get((key, pid), 0.0) + cost_usd - reserved


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0}, max_ongoing_requests=100_000)
class RateLimiter:
    """The one place limits and budgets are counted (a Serve deployment the ingress calls)."""

    def __init__(self, store_url: str | None = None) -> None:
        self._windows = SlidingWindows()
        self._budgets = Budgets()
        self._store = Store(store_url) if store_url else None

    async def admit(
        self,
        key: str,
        rpm: int | None,
        tpm: int | None,
        reserve: int = 0,
        reservation: str | None = None,
        budget: BudgetAsk | None = None,
    ) -> Admission:
        """Check the budget (without reserving), then the rate (see
        :meth:`SlidingWindows.admit`), then reserve the budget."""
        wall = datetime.now(UTC)
        if budget is not None:
            if not self._budgets.known(key, wall):
                spent = (0.0, 0.0)
                if self._store is not None:
                    spent = await asyncio.to_thread(self._store.key_spend, key, wall.date())
                self._budgets.load(key, wall, day_usd=spent[0], month_usd=spent[1])
            refused = self._budgets.check(key, wall, budget)
            if refused.over_budget is not None:
                return refused
        wait = self._windows.admit(
            key, time.monotonic(), rpm=rpm, tpm=tpm, reserve=reserve, reservation=reservation
        )
        if wait is not None:
            return Admission(wait_s=wait)
        if budget is None:
            return Admission()
        return self._budgets.reserve(key, wall, budget, reservation or "")

    async def settle(
        self, reservation: str | None, key: str, used: int, cost_usd: float | None = None
    ) -> None:
        """Settle tokens (see :meth:`SlidingWindows.settle`) and the budget's reservation."""
        self._windows.settle(reservation, key, time.monotonic(), used)
        self._budgets.settle(reservation, cost_usd or 0.0)
