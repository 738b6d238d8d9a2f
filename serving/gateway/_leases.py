"""The leases one ingress replica holds (see :mod:`._windows`): it admits a key's
requests from its lease with no round trip to the limiter, settles them locally, and
returns the lease when its term ends or it runs out.

A request still running when its lease is returned is reported at its reservation (the
most it may use), so the return never undercounts; its later settlement is then dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from serving.gateway._windows import Lease


@dataclass
class HeldLease:
    """A lease in this replica, and what was taken from it."""

    key: str
    lease: Lease
    until: float
    limits: tuple[int | None, int | None] = (None, None)
    """The key's (rpm, tpm) when it was granted: a changed limit ends it."""
    used_requests: int = 0
    used_tokens: int = 0
    running: dict[str, int] = field(default_factory=dict)
    """Reservation -> tokens reserved, for requests admitted from it and still running."""

    def fits(self, reserve: int) -> bool:
        """True if one more request of ``reserve`` tokens fits what is left."""
        lease = self.lease
        if lease.requests is not None and self.used_requests >= lease.requests:
            return False
        committed = self.used_tokens + sum(self.running.values())
        return lease.tokens is None or committed + reserve <= lease.tokens

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
        limits: tuple[int | None, int | None] = (None, None),
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
        limits: tuple[int | None, int | None] = (None, None),
    ) -> bool:
        """Admit one request from the key's lease; False if none is held, it is spent, or
        the key's limits changed since its grant (the lease is then ended and returned,
        so a lowered limit holds within one key-cache refresh)."""
        held = self.held.get(key)
        if held is not None and held.limits != limits:
            self._ended.append(self.held.pop(key))
            return False
        if held is None or now >= held.until or not held.fits(reserve):
            return False
        held.used_requests += 1
        if reservation is not None and held.lease.tokens is not None:
            held.running[reservation] = reserve
            self._by_reservation[reservation] = held
        return True

    def settle(self, reservation: str | None, used: int) -> bool:
        """Settle a request admitted from a lease; False if it was not (ask the limiter)."""
        held = self._by_reservation.pop(reservation, None) if reservation else None
        if held is None:
            return False
        if held.running.pop(reservation or "", None) is not None:
            held.used_tokens += used
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
                used_tokens=h.used_tokens + sum(h.running.values()),
            )
            for h in self._ended
        ]
        for h in self._ended:
            h.running.clear()
        self._ended = []
        return out
