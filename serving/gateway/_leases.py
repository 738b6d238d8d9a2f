"""The leases one ingress replica holds (see :mod:`._windows`): it admits a key's
requests from its lease with no round trip to the limiter, settles them locally, and
returns the lease when its term ends or it runs out.

A request still running when its lease is returned is reported at its reservation (the
most it may use, in tokens and USD), so the return never undercounts; its later
settlement is then dropped. A budgeted key's lease carries USD as well: its requests'
worst costs are taken from it, and what they really cost is returned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from serving.gateway._windows import Lease

Limits = tuple[int | float | None, ...]
"""A key's limits as a lease was granted under them (rpm, tpm, and its budgets)."""


@dataclass
class HeldLease:
    """A lease in this replica, and what was taken from it."""

    key: str
    lease: Lease
    until: float
    limits: Limits = (None, None)
    """The key's limits when it was granted (rpm, tpm, budgets): a changed limit ends it."""
    used_requests: int = 0
    used_tokens: int = 0
    used_usd: float = 0.0
    running: dict[str, tuple[int, float]] = field(default_factory=dict)
    """Reservation -> (tokens, USD) reserved, for requests admitted from it and running."""

    def fits(self, reserve: int, reserve_usd: float = 0.0) -> bool:
        """True if one more request of ``reserve`` tokens (and ``reserve_usd``, its worst
        cost) fits what is left."""
        lease = self.lease
        if lease.requests is not None and self.used_requests >= lease.requests:
            return False
        tokens = self.used_tokens + sum(t for t, _ in self.running.values())
        if lease.tokens is not None and tokens + reserve > lease.tokens:
            return False
        usd = self.used_usd + sum(u for _, u in self.running.values())
        return lease.usd is None or usd + reserve_usd <= lease.usd

    def exhausted(self) -> bool:
        """True once no request at all fits (its requests are used up)."""
        return self.lease.requests is not None and self.used_requests >= self.lease.requests


@dataclass(frozen=True)
class LeaseReturn:
    """What a returned lease used (running requests at their reservation)."""

    key: str
    lease_id: str
    used_requests: int
    used_tokens: int
    used_usd: float = 0.0


@dataclass
class LeaseBook:
    """Every lease this replica holds, by key."""

    held: dict[str, HeldLease] = field(default_factory=dict)
    _by_reservation: dict[str, HeldLease] = field(default_factory=dict)
    _ended: list[HeldLease] = field(default_factory=list)

    def add(
        self,
        key: str,
        lease: Lease,
        now: float,
        limits: Limits = (None, None),
    ) -> None:
        """Hold a lease the limiter granted (a lease already held for the key is ended)."""
        old = self.held.pop(key, None)
        if old is not None:
            self._ended.append(old)
        self.held[key] = HeldLease(key, lease, now + lease.term_s, limits)

    def take(
        self,
        key: str,
        now: float,
        reserve: int,
        reservation: str | None,
        limits: Limits = (None, None),
        reserve_usd: float = 0.0,
    ) -> bool:
        """Admit one request from the key's lease; False if none is held, it is spent, or
        the key's limits changed since its grant (the lease is then ended and returned,
        so a lowered limit holds within one key-cache refresh)."""
        held = self.held.get(key)
        if held is not None and held.limits != limits:
            self._ended.append(self.held.pop(key))
            return False
        if held is None or now >= held.until or not held.fits(reserve, reserve_usd):
            return False
        held.used_requests += 1
        metered = held.lease.tokens is not None or held.lease.usd is not None
        if reservation is not None and metered:
            held.running[reservation] = (reserve, reserve_usd)
            self._by_reservation[reservation] = held
        return True

    def settle(self, reservation: str | None, used: int, cost_usd: float | None = None) -> bool:
        """Settle a request admitted from a lease; False if it was not (ask the limiter)."""
        held = self._by_reservation.pop(reservation, None) if reservation else None
        if held is None:
            return False
        if held.running.pop(reservation or "", None) is not None:
            held.used_tokens += used
            held.used_usd += cost_usd or 0.0
        return True  # a request of a lease already returned was reported at its reserve

    def due(self, now: float) -> list[LeaseReturn]:
        """End the leases whose term is over or that are spent; what to return for each."""
        for key, held in list(self.held.items()):
            if now >= held.until or held.exhausted():
                self._ended.append(self.held.pop(key))
        out = [
            LeaseReturn(
                key=h.key,
                lease_id=h.lease.id,
                used_requests=h.used_requests,
                used_tokens=h.used_tokens + sum(t for t, _ in h.running.values()),
                used_usd=h.used_usd + sum(u for _, u in h.running.values()),
            )
            for h in self._ended
        ]
        for h in self._ended:
            h.running.clear()
        self._ended = []
        return out
