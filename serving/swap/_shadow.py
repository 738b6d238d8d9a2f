"""Shadow requests: a production request, once answered, sent again to the swap's
candidate in the background. Never returned to the client, never counted against its
key, captured with ``source: shadow``, ``arm: candidate`` and the production record's id
as ``twin_id``. Dropped (and counted) when the replica's shadow slots are all taken."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable

from ray.llm._internal.serve.core.configs.openai_api_models import OpenAIHTTPException

from serving.gateway._body import cap_completion
from serving.gateway._context import RequestContext, absorb_json
from serving.gateway._engine_request import engine_request, with_priority
from serving.gateway._metrics import GatewayMetrics
from serving.gateway._record import GatewaySettings
from serving.swap._router import SwapRouter

log = logging.getLogger("gavel.gateway")

_NOT_SENT = frozenset({"stream", "stream_options", "request_id", "priority"})


class ShadowRunner:
    """The shadow requests of one ingress replica."""

    def __init__(
        self,
        router: SwapRouter,
        metrics: GatewayMetrics,
        open_shadow: Callable[..., RequestContext] | None = None,
        settings: GatewaySettings | None = None,
    ) -> None:
        """``open_shadow(endpoint, **fields)`` opens a shadow's lifecycle object, whose
        ending counts and captures it (never charges it). ``settings`` give the
        shadow's engine priority (``gateway.priority.engine``)."""
        self._router = router
        self._metrics = metrics
        self._settings = settings
        self.open_shadow = open_shadow or (lambda endpoint, **f: RequestContext(endpoint, **f))
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, twin: RequestContext) -> None:
        """Send ``twin``'s request to the candidate in the background, or drop it."""
        swap = self._router.swap
        if swap is None:
            return
        if not self._router.take_shadow_slot():
            self._metrics.shadow_dropped.labels(swap.candidate).inc()
            return
        # Not a child of the twin's request (Ray cancels those when its client goes away):
        # a shadow outlives its twin.
        loop = asyncio.get_running_loop()
        task = contextvars.Context().run(loop.create_task, self._run(twin))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _open(self, twin: RequestContext) -> RequestContext:
        """The shadow's lifecycle object: the candidate's model, the twin's key (for
        metadata-only and erasure; never charged) and the twin's cap on its length."""
        candidate = self._router.swap.candidate if self._router.swap else twin.model
        sent = {k: v for k, v in twin.body.items() if k not in _NOT_SENT}
        if twin.cap is not None:  # production was capped: so is its shadow
            sent = cap_completion(sent, twin.cap)
        return self.open_shadow(
            twin.endpoint,
            key=twin.key,
            charged=False,
            model=candidate,
            role=twin.role,
            body={**sent, "model": candidate},
            source="shadow",
            metadata=twin.metadata,
            arm="candidate",
            twin_id=twin.request_id,
            handler=twin.handler,
            prompt_estimate=twin.prompt_estimate,
        )

    async def _run(self, twin: RequestContext) -> None:
        ctx = self._open(twin)
        ctx.engine_called = True
        self._metrics.in_flight.labels(ctx.model).inc()
        try:
            data = self._router.engine_body({**ctx.body, "request_id": ctx.request_id}, ctx.model)
            if self._settings is not None:
                twin_priority = self._settings.config.priority.engine.of(twin.source)
                data = with_priority(data, self._settings, ctx, at_least=twin_priority)
            resp = await ctx.handler(engine_request(ctx.endpoint, data), None)
            ctx.status = resp.status_code
            absorb_json(ctx, bytes(resp.body))
        except OpenAIHTTPException as exc:
            ctx.status, ctx.error = exc.status_code, exc.message
        except Exception as exc:  # a shadow never fails production; it is recorded
            log.warning("shadow request failed", exc_info=True)
            ctx.status, ctx.error = 500, f"{type(exc).__name__}: {exc}"
        finally:
            self._router.give_shadow_slot()
            ctx.end()

    async def drain(self) -> None:
        """Wait for the shadow requests in flight (graceful shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class ShadowHook:
    """Once a production request on the swap's production arm has been served, its
    shadow goes to the candidate (at the swap's shadow rate)."""

    name = "shadow"

    def __init__(self, router: SwapRouter, shadows: ShadowRunner) -> None:
        self._router = router
        self._shadows = shadows

    async def before(self, ctx: RequestContext) -> None:
        """Nothing to take."""

    def end(self, ctx: RequestContext) -> None:
        if ctx.engine_called and ctx.status < 400 and self._router.wants_shadow(ctx.arm):  # type: ignore[arg-type]
            self._shadows.send(ctx)
