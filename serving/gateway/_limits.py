"""Per-key limits shared by every ingress replica: a sliding one-minute window.

:class:`SlidingWindows` is the pure logic; :class:`RateLimiter` is the single Serve
deployment that holds it, so that limits hold across ingress replicas.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from ray import serve

WINDOW_S = 60.0


@dataclass
class _KeyWindow:
    requests: deque[float] = field(default_factory=deque)
    tokens: deque[tuple[float, int]] = field(default_factory=deque)
    token_sum: int = 0

    def expire(self, now: float) -> None:
        while self.requests and self.requests[0] <= now - WINDOW_S:
            self.requests.popleft()
        while self.tokens and self.tokens[0][0] <= now - WINDOW_S:
            self.token_sum -= self.tokens.popleft()[1]


@dataclass
class SlidingWindows:
    """Requests and tokens per key over the last minute."""

    windows: dict[str, _KeyWindow] = field(default_factory=dict)

    def admit(self, key: str, now: float, *, rpm: int | None, tpm: int | None) -> float | None:
        """Count a request and return ``None``, or return seconds to wait (not counted)."""
        w = self.windows.setdefault(key, _KeyWindow())
        w.expire(now)
        waits: list[float] = []
        if rpm is not None and len(w.requests) >= rpm:
            waits.append(w.requests[len(w.requests) - rpm] + WINDOW_S - now)
        if tpm is not None and w.token_sum >= tpm:
            # Wait until enough old tokens expire to bring the sum under the limit.
            excess = w.token_sum - tpm + 1
            freed = 0
            for t, n in w.tokens:
                freed += n
                if freed >= excess:
                    waits.append(t + WINDOW_S - now)
                    break
        if waits:
            return max(0.001, max(waits))
        w.requests.append(now)
        return None

    def add_tokens(self, key: str, now: float, tokens: int) -> None:
        """Charge tokens used by a finished request."""
        if tokens <= 0:
            return
        w = self.windows.setdefault(key, _KeyWindow())
        w.expire(now)
        w.tokens.append((now, tokens))
        w.token_sum += tokens


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0}, max_ongoing_requests=100_000)
class RateLimiter:
    """The one place limits are counted (a Serve deployment the ingress calls)."""

    def __init__(self) -> None:
        self._windows = SlidingWindows()

    async def admit(self, key: str, rpm: int | None, tpm: int | None) -> float | None:
        """See :meth:`SlidingWindows.admit`."""
        return self._windows.admit(key, time.monotonic(), rpm=rpm, tpm=tpm)

    async def add_tokens(self, key: str, tokens: int) -> None:
        """See :meth:`SlidingWindows.add_tokens`."""
        self._windows.add_tokens(key, time.monotonic(), tokens)
