"""Per-key limits shared by every ingress replica: a sliding one-minute window.

:class:`SlidingWindows` is the pure logic; :class:`RateLimiter` is the single Serve
deployment that holds it, so that limits hold across ingress replicas.

Tokens are *reserved* at admission (an estimate of the prompt plus the most the request
may generate) and *settled* with the real usage when it ends, so neither concurrent
requests nor aborted streams can spend more than a key's tokens per minute.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from ray import serve

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


@dataclass
class SlidingWindows:
    """Requests and tokens per key over the last minute."""

    windows: dict[str, _KeyWindow] = field(default_factory=dict)
    _open: dict[str, _Charge] = field(default_factory=dict)

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
        return None

    def settle(self, reservation: str | None, key: str, now: float, used: int) -> None:
        """Replace a reservation by the tokens really used (or charge ``used`` if none)."""
        charge = self._open.pop(reservation, None) if reservation is not None else None
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


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0}, max_ongoing_requests=100_000)
class RateLimiter:
    """The one place limits are counted (a Serve deployment the ingress calls)."""

    def __init__(self) -> None:
        self._windows = SlidingWindows()

    async def admit(
        self,
        key: str,
        rpm: int | None,
        tpm: int | None,
        reserve: int = 0,
        reservation: str | None = None,
    ) -> float | None:
        """See :meth:`SlidingWindows.admit`."""
        return self._windows.admit(
            key, time.monotonic(), rpm=rpm, tpm=tpm, reserve=reserve, reservation=reservation
        )

    async def settle(self, reservation: str | None, key: str, used: int) -> None:
        """See :meth:`SlidingWindows.settle`."""
        self._windows.settle(reservation, key, time.monotonic(), used)
