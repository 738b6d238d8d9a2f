"""Per-key rate windows (rpm and tpm over a sliding minute) and the leases the limiter
grants from them: the pure logic of :class:`~._limits.RateLimiter`.

A **lease** lets an ingress replica admit a key's requests by itself, with no round trip
to the limiter, while the key is far below its limits: a share of what the key has free
(at most ``1 / LEASE_SHARE`` of its free requests and tokens), for ``LEASE_TERM_S``.
The whole lease is *held* against the key from its grant; when the replica returns it,
what it used is charged at the return's time (no earlier than any use), and the rest is
freed. A lease that is never returned (its replica died) is charged in full
``LEASE_GRACE_S`` after its term. So the sum of what every replica may admit never
exceeds the key's limits: exactness holds, on the safe side.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from serving._base import GavelModel

WINDOW_S = 60.0
RELEASED_MAX = 10_000
LEASE_SHARE = 8
"""A lease is at most this fraction (1/N) of what a key has free, so that several
replicas can hold one and the key still has room for the rest."""
LEASE_MIN_REQUESTS = 4
"""Below this many requests (or this many of the request's reservations, in tokens), no
lease is granted: the key is near its limit and every request asks the limiter."""
LEASE_TERM_S = 5.0
OPEN_MAX_S = 3600.0
"""A reservation never settled (its replica died) is forgotten after this long."""
LEASE_GRACE_S = 10.0


class Lease(GavelModel):
    """A share of a key's limits granted to one ingress replica (``None``: unbounded)."""

    id: str
    requests: int | None
    tokens: int | None
    term_s: float
    usd: float | None = None
    """A budgeted key's share of its free USD (day and month alike)."""


@dataclass
class _Charge:
    t: float
    tokens: int
    open: bool = False
    """A reservation not settled yet: it stays charged past the window (re-stamped), so a
    request longer than a minute keeps what it reserved until it ends."""


@dataclass
class _Hold:
    """A lease granted and not yet returned."""

    requests: int
    tokens: int
    until: float


@dataclass
class _KeyWindow:
    requests: deque[float] = field(default_factory=deque)
    charges: deque[_Charge] = field(default_factory=deque)
    token_sum: int = 0
    holds: dict[str, _Hold] = field(default_factory=dict)
    held_requests: int = 0
    held_tokens: int = 0

    def expire(self, now: float) -> None:
        while self.requests and self.requests[0] <= now - WINDOW_S:
            self.requests.popleft()
        while self.charges and self.charges[0].t <= now - WINDOW_S:
            charge = self.charges.popleft()
            if charge.open:  # still running: its reservation holds, stamped now
                charge.t = now
                self.charges.append(charge)
            else:
                self.token_sum -= charge.tokens
        for lease_id, hold in list(self.holds.items()):
            if hold.until + LEASE_GRACE_S <= now:  # never returned: charged in full
                self.end_hold(lease_id, hold.until + LEASE_GRACE_S, hold.requests, hold.tokens)

    def end_hold(self, lease_id: str, now: float, used_requests: int, used_tokens: int) -> bool:
        """Turn a hold into what it used, charged at ``now``; False if it is not held."""
        hold = self.holds.pop(lease_id, None)
        if hold is None:
            return False
        self.held_requests -= hold.requests
        self.held_tokens -= hold.tokens
        self.requests.extend([now] * max(0, used_requests))
        if used_tokens > 0:
            self.charges.append(_Charge(now, used_tokens))
            self.token_sum += used_tokens
        return True

    def free(self, rpm: int | None, tpm: int | None) -> tuple[int | None, int | None]:
        """Requests and tokens the key may still use in the window (``None``: no limit)."""
        req = None if rpm is None else rpm - len(self.requests) - self.held_requests
        tok = None if tpm is None else tpm - self.token_sum - self.held_tokens
        return req, tok


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
    """Requests and tokens per key over the last minute, and the leases held on them.

    Open reservations are forgotten once their charge leaves the window (a request that
    never settles cannot grow the table); a reservation released before its admission
    arrives is never charged.
    """

    windows: dict[str, _KeyWindow] = field(default_factory=dict)
    _open: dict[str, _Charge] = field(default_factory=dict)
    _opened: deque[tuple[float, str]] = field(default_factory=deque)
    _released: _Released = field(default_factory=_Released)

    def open_reservations(self, now: float) -> int:
        """Reservations admitted and not settled (for at most ``OPEN_MAX_S``)."""
        self._forget_old(now)
        return len(self._open)

    def _forget_old(self, now: float) -> None:
        while self._opened and self._opened[0][0] <= now - OPEN_MAX_S:
            forgotten = self._open.pop(self._opened.popleft()[1], None)
            if forgotten is not None:  # never settled: it ages out like any charge now
                forgotten.open = False

    def released(self, reservation: str | None) -> bool:
        """True (once) if ``reservation``'s ingress gave up on it before it was admitted."""
        return self._released.take(reservation)

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
        if self.released(reservation):
            return None  # its ingress gave up on it: nothing to count
        wait = self.wait(key, now, rpm=rpm, tpm=tpm, reserve=reserve)
        if wait is None:
            self.record(
                key, now, reserve=reserve if tpm is not None else 0, reservation=reservation
            )
        return wait

    def wait(
        self, key: str, now: float, *, rpm: int | None, tpm: int | None, reserve: int
    ) -> float | None:
        """Seconds until one more request of ``reserve`` tokens fits, or ``None`` (now)."""
        w = self.windows.setdefault(key, _KeyWindow())
        w.expire(now)
        waits: list[float] = []
        held_until = min((h.until for h in w.holds.values()), default=now + WINDOW_S)
        if rpm is not None and len(w.requests) + w.held_requests >= rpm:
            if len(w.requests) >= rpm:
                waits.append(w.requests[len(w.requests) - rpm] + WINDOW_S - now)
            else:  # leases hold the rest: until the first one comes back
                waits.append(held_until - now)
        taken = w.token_sum + w.held_tokens
        if tpm is not None and (taken + reserve > tpm or taken >= tpm):
            # Wait until enough old charges expire for this reservation to fit.
            excess = taken + reserve - tpm
            freed = 0
            for c in w.charges:
                freed += c.tokens
                if freed >= excess:
                    waits.append(c.t + WINDOW_S - now)
                    break
            else:
                waits.append(held_until - now if w.held_tokens else WINDOW_S)
        return max(0.001, max(waits)) if waits else None

    def record(self, key: str, now: float, *, reserve: int, reservation: str | None) -> None:
        """Charge one admitted request (and its reservation), without checking."""
        w = self.windows.setdefault(key, _KeyWindow())
        w.requests.append(now)
        if reserve > 0 and reservation is not None:
            charge = _Charge(now, reserve, open=True)
            w.charges.append(charge)
            w.token_sum += reserve
            self._open[reservation] = charge
            self._opened.append((now, reservation))

    def offer_lease(
        self, key: str, now: float, *, rpm: int | None, tpm: int | None, reserve: int
    ) -> tuple[int | None, int | None] | None:
        """The lease this key can be granted now (requests, tokens), or ``None`` when it
        is too near its limits for one."""
        if rpm is None and tpm is None:
            return None
        w = self.windows.setdefault(key, _KeyWindow())
        free_req, free_tok = w.free(rpm, tpm)
        req = None if free_req is None else free_req // LEASE_SHARE
        tok = None if free_tok is None else free_tok // LEASE_SHARE
        if req is not None and req < LEASE_MIN_REQUESTS:
            return None
        if tok is not None and tok < LEASE_MIN_REQUESTS * max(1, reserve):
            return None
        return req, tok

    def hold(
        self, key: str, lease_id: str, now: float, *, requests: int, tokens: int, term_s: float
    ) -> None:
        """Hold a granted lease against the key until it comes back (or its grace ends)."""
        w = self.windows.setdefault(key, _KeyWindow())
        w.holds[lease_id] = _Hold(requests, tokens, now + term_s)
        w.held_requests += requests
        w.held_tokens += tokens

    def give_back(
        self, key: str, lease_id: str, now: float, *, used_requests: int, used_tokens: int
    ) -> None:
        """A returned lease: charge what it used at ``now`` and free the rest. A lease
        already charged in full (returned after its grace) is not charged again."""
        w = self.windows.setdefault(key, _KeyWindow())
        w.expire(now)
        w.end_hold(lease_id, now, used_requests, used_tokens)

    def settle(self, reservation: str | None, key: str, now: float, used: int) -> None:
        """Replace a reservation by the tokens really used (or charge ``used`` if none)."""
        charge = self._open.pop(reservation, None) if reservation is not None else None
        if charge is None and reservation is not None and used == 0:
            self._released.add(reservation)  # a release that may precede its admission
            return
        w = self.windows.setdefault(key, _KeyWindow())
        if charge is not None:
            charge.open = False
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
