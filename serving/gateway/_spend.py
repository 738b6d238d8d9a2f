"""USD budgets of keys per UTC day and month, and what the limiter answers: the pure
logic that :class:`~._limits.RateLimiter` holds. A request's worst cost is reserved and
settled with its real cost; a lease's USD is held from its grant until it comes back."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from serving.gateway._windows import (
    LEASE_GRACE_S,
    LEASE_MIN_REQUESTS,
    LEASE_SHARE,
    LEASE_TERM_S,
    Lease,
    _Released,
)

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
    lease: Lease | None = None
    """Granted with an admission when asked for and the key is far below its limits."""
    budget_leased: bool = False
    """The wait is for a budget that other replicas' leases hold, not for a rate limit."""


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


@dataclass(frozen=True)
class _UsdHold:
    """A lease's USD, held against the day and month it was granted in until ``until``."""

    day: str
    month: str
    usd: float
    until: datetime


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
    _forgotten: _Released = field(default_factory=_Released)
    _holds: dict[str, dict[str, _UsdHold]] = field(default_factory=dict)
    """Key -> lease id -> its USD hold, for leases granted and not returned."""

    def _held(self, key: str, pid: str) -> float:
        return sum(h.usd for h in self._holds.get(key, {}).values() if pid in (h.day, h.month))

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
            spent, held = self.spent.get((key, pid), 0.0), self._held(key, pid)
            if spent + ask.reserve_usd > budget:
                share: dict[str, float] = {period: (spent - held) / budget}
                if spent - held + ask.reserve_usd <= budget:  # only leases out hold it
                    wait = self._first_return_s(key, now)
                    return Admission(wait_s=wait, used=share, budget_leased=True)
                return Admission(over_budget=period, resets_at=resets_at(period, now), used=share)
            used[period] = (spent - held + ask.reserve_usd) / budget
        return Admission(used=used)

    def _first_return_s(self, key: str, now: datetime) -> float:
        """Seconds until the key's first lease out is back (its term, and a return)."""
        until = min((h.until for h in self._holds.get(key, {}).values()), default=now)
        return max(0.5, (until - now).total_seconds() + 1.0)

    def reserve(self, key: str, now: datetime, ask: BudgetAsk, reservation: str) -> Admission:
        """Reserve ``ask.reserve_usd`` under ``reservation``, or refuse (nothing reserved)."""
        while self._opened and self._opened[0][0] <= now - timedelta(seconds=OPEN_BUDGET_MAX_S):
            rid = self._opened.popleft()[1]
            if self._open.pop(rid, None) is not None:
                self._forgotten.add(rid)  # charged at its worst case: never settled again
        if self._released.take(reservation):
            return Admission()  # its ingress gave up on it: nothing to charge
        answer = self.check(key, now, ask)
        if answer.over_budget is not None or answer.wait_s is not None:
            return answer
        day, month = period_ids(now)
        for pid in (day, month):
            self.spent[(key, pid)] = self.spent.get((key, pid), 0.0) + ask.reserve_usd
        self._open[reservation] = (key, day, month, ask.reserve_usd)
        self._opened.append((now, reservation))
        return answer

    def offer(self, key: str, now: datetime, ask: BudgetAsk) -> float | None:
        """The USD a lease may take now: ``1 / LEASE_SHARE`` of what the tighter budget
        has free, or ``None`` when that is under ``LEASE_MIN_REQUESTS`` worst cases (the
        key is near its budget: each request asks)."""
        day, month = period_ids(now)
        free = [
            budget - self.spent.get((key, pid), 0.0)
            for pid, budget in ((day, ask.day_usd), (month, ask.month_usd))
            if budget is not None
        ]
        share = min(free, default=0.0) / LEASE_SHARE
        if share <= 0 or share < LEASE_MIN_REQUESTS * ask.reserve_usd:
            return None
        return share

    def hold(
        self, key: str, lease_id: str, now: datetime, usd: float, term_s: float = LEASE_TERM_S
    ) -> None:
        """Hold a lease's USD against the key's day and month until it comes back. A hold
        never returned (its replica died) stays charged in full, and is forgotten
        ``LEASE_GRACE_S`` after its term."""
        day, month = period_ids(now)
        for pid in (day, month):
            self.spent[(key, pid)] = self.spent.get((key, pid), 0.0) + usd
        holds = self._holds.setdefault(key, {})
        for old, h in list(holds.items()):
            if h.until + timedelta(seconds=LEASE_GRACE_S) <= now:
                del holds[old]
        holds[lease_id] = _UsdHold(day, month, usd, now + timedelta(seconds=term_s))

    def give_back(self, lease_id: str, used_usd: float, key: str, now: datetime) -> None:
        """A returned lease: what it used replaces its hold. A lease this limiter never
        held (granted before a restart) is charged what it used, as :meth:`settle` does."""
        held = self._holds.get(key, {}).pop(lease_id, None)
        if held is None:
            if used_usd > 0 and self.known(key, now):  # else it is read back from the store
                for pid in period_ids(now):
                    self.spent[(key, pid)] = self.spent.get((key, pid), 0.0) + used_usd
            return
        for pid in (held.day, held.month):
            self.spent[(key, pid)] = self.spent.get((key, pid), 0.0) + used_usd - held.usd

    def open_reservations(self) -> int:
        """Reservations admitted and not settled (nor forgotten)."""
        return len(self._open)

    def settle(self, reservation: str | None, cost_usd: float, key: str | None = None) -> None:
        """Replace a reservation by the request's real cost. A reservation this limiter
        never made (it was admitted by the limiter before a restart) is charged its real
        cost, so that what was in flight at a restart is not lost."""
        opened = self._open.pop(reservation, None) if reservation is not None else None
        if opened is None:
            if reservation is not None and cost_usd == 0:
                self._released.add(reservation)
            elif key is not None and cost_usd > 0 and not self._forgotten.take(reservation):
                now = datetime.now(UTC)
                if self.known(key, now):  # else it is read back from the store
                    for pid in period_ids(now):
                        self.spent[(key, pid)] = self.spent.get((key, pid), 0.0) + cost_usd
            return
        key, day, month, reserved = opened
        for pid in (day, month):
            self.spent[(key, pid)] = self.spent.get((key, pid), 0.0) + cost_usd - reserved
