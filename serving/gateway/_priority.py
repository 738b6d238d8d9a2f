"""Production before Gavel's own traffic: a per-replica cap on the judge's and evals'
requests in flight.

Gavel's daily judge and its evals send their calls through the same gateway as the
applications (``X-Gavel-Source``). Left alone, a judging job at full concurrency takes
the ingress replicas' event loops and CPU from production (issue 19 measured the app's
p99 TTFT going from 1.1 s to 3.9 s on this machine). Each replica lets at most
``max_in_flight`` background requests run at once; the others wait, in order, for up to
``max_wait_s`` and then get 429 with ``Retry-After`` (the judge client retries 429).
Production requests never wait here.
"""

from __future__ import annotations

import asyncio

from serving._gateway_config import PriorityConfig
from serving.gateway._context import RequestContext
from serving.gateway._metrics import GatewayMetrics
from serving.gateway._refusal import Refusal

RETRY_AFTER_S = 2


def background_busy(waited_s: float) -> Refusal:
    """The 429 of a background request that waited ``max_wait_s`` for a slot."""
    return Refusal(
        429,
        f"Background traffic waited {waited_s:g} s behind production; retry.",
        type_="rate_limit_error",
        code="background_busy",
        reason="background_busy",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


class BackgroundGate:
    """The slots of one ingress replica for background (judge, eval) requests."""

    def __init__(self, config: PriorityConfig, metrics: GatewayMetrics) -> None:
        self._sources = frozenset(config.background_sources)
        self._wait_s = config.max_wait_s
        cap = config.max_in_flight
        self._slots = asyncio.Semaphore(cap) if cap is not None else None
        self._metrics = metrics

    def applies(self, source: str) -> bool:
        """Whether a request of this source takes a slot."""
        return self._slots is not None and source in self._sources

    async def enter(self, source: str) -> bool:
        """Take a slot for a background request (waiting for one); True if one was
        taken, and :meth:`leave` must then be called once. Raises the Refusal of
        :func:`background_busy`."""
        if self._slots is None or source not in self._sources:
            return False
        if not self._slots.locked():
            await self._slots.acquire()
            return True
        waiting = self._metrics.background_waiting
        waiting.inc()
        try:
            await asyncio.wait_for(self._slots.acquire(), self._wait_s)
        except TimeoutError:
            raise background_busy(self._wait_s) from None
        finally:
            waiting.dec()
        return True

    def leave(self) -> None:
        """Give back a slot taken by :meth:`enter`."""
        if self._slots is not None:
            self._slots.release()


class PriorityHook:
    """Takes a background slot for the judge's and evals' requests; gives it back when
    the request ends (the one place a slot is given back)."""

    name = "priority"

    def __init__(self, gate: BackgroundGate) -> None:
        self._gate = gate

    async def before(self, ctx: RequestContext) -> None:
        ctx.background_slot = await self._gate.enter(ctx.source)

    def end(self, ctx: RequestContext) -> None:
        if ctx.background_slot:
            ctx.background_slot = False
            self._gate.leave()
