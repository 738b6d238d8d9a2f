"""A replica's side of the shared limits: admit a request (from a lease this replica
holds, or by asking the :class:`~._limits.RateLimiter`), settle it, and return leases.

A key far below its limits (rpm, tpm and USD budgets alike) is admitted from a lease
with no round trip; a key near them asks the limiter for every request (with a timeout; when it does
not answer, the request is refused with a 503 or allowed, per
``gateway.limits.on_limiter_unavailable``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
import time
from collections.abc import Callable, Mapping

from ray.serve.handle import DeploymentHandle

from serving._gateway_config import LimitsConfig
from serving._model_config import PriceConfig
from serving._wire import ApiKey
from serving.gateway._budget import budget_ask, over_budget, rate_limited
from serving.gateway._context import RequestContext
from serving.gateway._leases import LeaseBook, Limits
from serving.gateway._limits import Admission, BudgetAsk
from serving.gateway._metrics import GatewayMetrics
from serving.gateway._refusal import Refusal

log = logging.getLogger("gavel.gateway")

RETURN_EVERY_S = 1.0
NO_LEASE_BACKOFF_S = 1.0
"""After the limiter granted a key no lease, its requests ask at once for this long."""


def detached(call: Callable[..., object], *args: object) -> None:
    """Make a fire-and-forget limiter call outside the request's Serve context.

    Ray Serve cancels every call a request made (its child requests) when the request's
    client goes away. A settlement, a release or a lease's return is sent exactly then,
    and must outlive the request: sent from an empty context, it is no request's child.
    """
    contextvars.Context().run(call, *args)


def _limits(key: ApiKey) -> Limits:
    """What a lease of ``key`` was granted under: a change to any of it ends the lease."""
    return (key.rpm, key.tpm, key.budget_usd_day, key.budget_usd_month)


class Admitter:
    """Admission and settlement of limited keys for one ingress replica."""

    def __init__(
        self, limiter: DeploymentHandle | None, limits: LimitsConfig, metrics: GatewayMetrics
    ) -> None:
        self._limiter = limiter
        self._limits = limits
        self._metrics = metrics
        self.leases = LeaseBook()
        self._task: asyncio.Task[None] | None = None
        self._asking: dict[str, asyncio.Future[None]] = {}
        self._no_lease_until: dict[str, float] = {}

    async def admit(
        self, key: ApiKey, reserve: int, reservation: str, budget: BudgetAsk | None
    ) -> None:
        """Reserve the request's tokens and USD under ``reservation``; raise a
        :class:`Refusal` (429, 400 or 503). Once it returns, :meth:`settle` must be called
        once with the same ``reservation``; when it raises (or is cancelled), nothing
        stays taken: neither the reservation nor a lease granted with it."""
        if self._limiter is None or (key.rpm is None and not key.metered):
            return
        if key.tpm is not None and reserve > key.tpm:
            raise Refusal(
                400,
                f"This request may use up to {reserve} tokens (prompt estimate plus "
                f"max_tokens), more than key {key.name!r} may use in a minute ({key.tpm}); "
                "lower max_tokens.",
                reason="reserve_above_tpm",
            )
        now = time.monotonic()
        self.return_due(now)
        held = reservation if key.metered else None
        usd = budget.reserve_usd if budget is not None else 0.0
        if self.leases.take(key.name, now, reserve, held, _limits(key), usd):
            self._metrics.admissions.labels("lease").inc()
            return
        if await self._lease_after_pending(key, now, (reserve, usd), held):
            self._metrics.admissions.labels("lease").inc()
            return
        self._metrics.admissions.labels("limiter").inc()
        asking = asyncio.get_running_loop().create_future()
        self._asking.setdefault(key.name, asking)
        try:
            answer = await self._ask(key, reserve, reservation, budget)
        finally:
            if self._asking.get(key.name) is asking:
                del self._asking[key.name]
            asking.set_result(None)
        if answer is None:
            return  # the limiter did not answer, and the config allows it
        if answer.lease is None:
            self._no_lease_until[key.name] = time.monotonic() + NO_LEASE_BACKOFF_S
        else:
            self._no_lease_until.pop(key.name, None)
            self.leases.add(key.name, answer.lease, time.monotonic(), _limits(key))
        for period, share in answer.used.items():
            self._metrics.budget_used.labels(key.name, period).set(share)
        if answer.over_budget is not None:
            raise over_budget(key, answer)
        if answer.wait_s is None:
            return
        raise rate_limited(max(1, math.ceil(answer.wait_s)), key, leased=answer.budget_leased)

    async def _lease_after_pending(
        self, key: ApiKey, now: float, reserve: tuple[int, float], held: str | None
    ) -> bool:
        """When a call for this key is already on its way (which may bring a lease), wait
        for it and take from its lease: a burst makes one round trip, not one each. Not
        for a key the limiter just refused a lease (near its limits: no waiting)."""
        pending = self._asking.get(key.name)
        if pending is None or self._no_lease_until.get(key.name, 0.0) > now:
            return False
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(pending), self._limits.limiter_timeout_s)
        tokens, usd = reserve
        return self.leases.take(key.name, time.monotonic(), tokens, held, _limits(key), usd)

    async def _ask(
        self, key: ApiKey, reserve: int, reservation: str, budget: BudgetAsk | None
    ) -> Admission | None:
        """One round trip to the limiter (``None``: no answer, and the config allows it)."""
        assert self._limiter is not None
        try:
            return await asyncio.wait_for(
                self._limiter.admit.remote(
                    key.name, key.rpm, key.tpm, reserve, reservation, budget, True
                ),
                timeout=self._limits.limiter_timeout_s,
            )
        except BaseException as exc:
            # Timed out, failed, or the client went away (CancelledError): release what
            # was asked for, the reservation and any lease granted with it, so that a late
            # admission does not stay charged.
            with contextlib.suppress(Exception):
                detached(self._limiter.release.remote, reservation, key.name)
            if not isinstance(exc, Exception):
                raise
            log.warning("the rate limiter did not answer; %s", self._limits.on_limiter_unavailable)
            if self._limits.on_limiter_unavailable == "allow":
                return None
            raise Refusal(
                503,
                "Rate limits cannot be checked right now; retry shortly.",
                "server_error",
                reason="limiter_unavailable",
            ) from None

    def settle(self, key: ApiKey, reservation: str | None, used: int, cost: float | None) -> None:
        """Settle a finished request's tokens and cost (locally if a lease admitted it).
        A budgeted key is settled with the limiter even without a tpm (its USD)."""
        if self._limiter is None or not key.metered:
            return
        if self.leases.settle(reservation, used, cost):
            return
        detached(self._limiter.settle.remote, reservation, key.name, used, cost)

    def return_due(self, now: float) -> None:
        """Send back the leases whose term is over or that are spent (no waiting)."""
        if self._limiter is None:
            return
        for r in self.leases.due(now):
            with contextlib.suppress(Exception):  # not returned: charged in full later
                detached(
                    self._limiter.give_back.remote,
                    r.key,
                    r.lease_id,
                    r.used_requests,
                    r.used_tokens,
                    r.used_usd,
                )

    def start(self) -> None:
        """Start returning leases in the background (once, on the running loop)."""
        if self._task is None and self._limiter is not None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(RETURN_EVERY_S)
            self.return_due(time.monotonic())


class AdmissionHook:
    """Admission of a keyed request: its rpm, its tokens and its USD are reserved (from a
    lease or with the limiter) before the engine call, and settled with what it really
    used when it ends (the one place a reservation is settled). A metered key (a tpm or
    a budget) always has a reservation, so its USD is settled too."""

    name = "admission"

    def __init__(self, admitter: Admitter, prices: Mapping[str, PriceConfig]) -> None:
        self._admitter = admitter
        self._prices = prices

    async def before(self, ctx: RequestContext) -> None:
        key = ctx.key
        if key is None:
            return
        ask = budget_ask(key, self._prices.get(ctx.model), ctx.prompt_estimate, ctx.reserve)
        reservation = ctx.request_id  # fixed now: the response may rename the request
        await self._admitter.admit(key, ctx.reserve, reservation, ask)
        ctx.reservation = reservation if key.metered else None
        ctx.admitted = True

    def end(self, ctx: RequestContext) -> None:
        if ctx.admitted and ctx.key is not None:
            ctx.admitted = False
            self._admitter.settle(ctx.key, ctx.reservation, ctx.used_tokens, ctx.cost)
