"""One ingress replica's gateway: its parts, its hook chain, and the request path.

:meth:`Gateway.serve` is the whole request path: open the request's lifecycle object,
run the hooks' ``before`` in order (a refusal ends it there), call the engine, and hand
the response (or its stream, through the SSE tap) back. Whatever happens, the request
ends exactly once, through the chain's ending (:class:`~._hooks.HookChain`), and every
hook gives back there what it took. The ingress (:mod:`._ingress`) keeps the routes and
Ray's handlers; nothing here depends on it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi.responses import Response, StreamingResponse
from ray.llm._internal.serve.core.configs.openai_api_models import OpenAIHTTPException

from serving._errors import openai_error
from serving._wire import ApiKey
from serving.gateway._admission import Admitter
from serving.gateway._auth import KeyCache, WrongTokenGuard, authenticate_request
from serving.gateway._body import MAX_TOKENS_HEADER
from serving.gateway._capture import CaptureWriter
from serving.gateway._context import RequestContext, absorb_json, tap
from serving.gateway._hooks import GatewayParts, HookChain, build_chain
from serving.gateway._metrics import GatewayMetrics
from serving.gateway._metrics_hub import MetricsReporter
from serving.gateway._priority import BackgroundGate
from serving.gateway._record import GatewaySettings, prepare_for_storage
from serving.gateway._refusal import Refusal
from serving.store import Store
from serving.swap._router import ARM_HEADER, SwapRouter
from serving.swap._shadow import ShadowRunner
from serving.swap._state import SwapStateWatcher

log = logging.getLogger("gavel.gateway")

Handler = Callable[[Any, Any], Awaitable[Response]]
SERVER_ERROR = "The model could not serve this request; it was recorded. Retry shortly."
SHADOW_HOOKS = ("metrics", "capture")
"""A shadow's chain: counted and captured, never authenticated, admitted or charged."""


def engine_message(message: str) -> str:
    """An engine's 4xx message without Ray's internals (its exception chain)."""
    text = message.removeprefix("Message: ")
    return text.split(" (Request ID:", 1)[0].split(", Internal exception:", 1)[0][:1000]


def make_parts(
    settings: GatewaySettings,
    *,
    store: Store,
    limiter: Any = None,
    hub: Any = None,
    span_exporter: Any = None,
) -> GatewayParts:
    """The stateful parts of one replica's gateway (``limiter``, ``hub``: Serve handles;
    ``span_exporter``: where spans go instead of OTLP, for tests)."""
    cfg = settings.config
    metrics = GatewayMetrics()
    swap = SwapRouter(settings.swap)
    writer = None
    if cfg.capture.enabled:
        cap = cfg.capture
        writer = CaptureWriter(
            store,
            spool_dir=Path(settings.spool_dir),
            flush_interval_s=cap.flush_interval_s,
            batch_size=cap.batch_size,
            queue_max=cap.queue_max,
            metrics=metrics,
            prepare=lambda r: prepare_for_storage(
                r, redacting=cap.redact, max_chars=cap.redact_max_chars
            ),
        )
    auth = cfg.auth
    return GatewayParts(
        settings=settings,
        metrics=metrics,
        keys=KeyCache(
            store,
            ttl_s=auth.key_cache_ttl_s,
            max_entries=auth.key_cache_size,
            outage_grace_s=auth.outage_grace_s,
        ),
        guard=WrongTokenGuard(limit=auth.wrong_token_limit, window_s=auth.wrong_token_window_s)
        if auth.wrong_token_limit
        else None,
        gate=BackgroundGate(cfg.priority, metrics),
        admitter=Admitter(limiter, cfg.limits, metrics),
        swap=swap,
        shadows=ShadowRunner(swap, metrics, settings=settings),
        writer=writer,
        reporter=MetricsReporter(hub, metrics.registry) if hub is not None else None,
        tracing=_tracing(settings, span_exporter),
    )


def _tracing(settings: GatewaySettings, exporter: Any) -> Any:
    if not settings.config.tracing.enabled:
        return None
    from serving.gateway._tracing import make_provider

    return make_provider(settings.config.tracing, exporter)


class Gateway:
    """The gateway of one ingress replica (or of one LLM replica): hooks around a handler."""

    def __init__(self, parts: GatewayParts, store: Store) -> None:
        self.parts = parts
        self.chain: HookChain = build_chain(parts.settings.hooks, parts)
        shadow_chain = build_chain(SHADOW_HOOKS, parts)
        parts.shadows.open_shadow = lambda endpoint, **f: _opened(shadow_chain, endpoint, f)
        self.swap_state = SwapStateWatcher(parts.swap, store, parts.metrics)
        parts.swap.hold()  # production alone until the recorded swap state is read
        parts.metrics.know_models(sorted(parts.settings.roles), parts.settings.slos)
        if parts.settings.swap is not None:  # every swap series exists from the start
            parts.metrics.shadow_dropped.labels(parts.settings.swap.candidate)

    def start(self) -> None:
        """Start the background loops (idempotent): capture's flush, the metrics report,
        lease returns, and the swap state's watcher. They start outside any request's
        Serve context: a loop started by a request must not be its child, which Ray
        cancels when that request's client goes away."""
        contextvars.Context().run(self._start_loops)

    def _start_loops(self) -> None:
        p = self.parts
        if p.writer is not None:
            p.writer.start()
        if p.reporter is not None:
            p.reporter.start()
        p.admitter.start()
        self.swap_state.start()

    async def close(self) -> None:
        """Finish the shadows in flight and flush every captured record."""
        await self.parts.shadows.drain()
        if self.parts.writer is not None:
            await self.parts.writer.close()
        if self.parts.tracing is not None:  # the spans still in the batch
            await asyncio.to_thread(self.parts.tracing.shutdown)

    async def key_of(self, request: Any) -> ApiKey | None:
        """The request's key for a route outside the lifecycle (``/v1/models``); raises a
        Refusal, counted by its reason."""
        p = self.parts
        if p.keys is None or not p.settings.config.auth.enabled:
            return None
        trusted = frozenset(p.settings.config.auth.trusted_proxies)
        try:
            return await authenticate_request(request, p.keys, p.guard, trusted)
        except Refusal as refused:
            p.metrics.rejected.labels(refused.reason).inc()
            raise

    async def serve(self, request: Any, endpoint: str, handler: Handler) -> Response:
        """The request path: hooks, the engine, the response; one ending whatever happens."""
        self.start()
        ctx = self.chain.open(endpoint, request, handler=handler)
        task = asyncio.current_task()
        if task is not None:  # the one ending that runs whatever happens to the request
            task.add_done_callback(lambda _: ctx.end_if_abandoned())
        try:
            await self.chain.begin(ctx)
        except Refusal as refused:
            ctx.refuse(refused)
            ctx.end()
            return refused.response()
        return await self._respond(ctx, handler)

    async def _respond(self, ctx: RequestContext, handler: Handler) -> Response:
        """Call the engine and hand its response back through the SSE tap."""
        ctx.engine_called = True
        self.parts.metrics.in_flight.labels(ctx.model).inc()
        try:
            resp = await handler(ctx.engine_request, ctx.request)
        except OpenAIHTTPException as exc:
            ctx.status, ctx.error = exc.status_code, exc.message
            ctx.end()
            if exc.status_code >= 500:
                return openai_error(500, SERVER_ERROR, type_="server_error")
            exc.message = engine_message(exc.message)  # Ray's shape, without its internals
            raise
        except Exception as exc:
            ctx.status, ctx.error = 500, f"{type(exc).__name__}: {exc}"
            ctx.end()
            log.exception("model call failed")
            return openai_error(500, SERVER_ERROR, type_="server_error")
        except asyncio.CancelledError:
            # The client went away before the first token: charge what was generated.
            ctx.status, ctx.error = 499, "client disconnected"
            ctx.settle_usage()
            ctx.end()
            raise
        if ctx.cap is not None:
            resp.headers[MAX_TOKENS_HEADER] = str(ctx.cap)
        if ctx.arm is not None:
            resp.headers[ARM_HEADER] = ctx.arm
        if isinstance(resp, StreamingResponse):
            resp.body_iterator = tap(resp.body_iterator, ctx, pass_usage=ctx.pass_usage)
            return resp
        ctx.status = resp.status_code
        absorb_json(ctx, bytes(resp.body))
        ctx.end()
        return resp


def _opened(chain: HookChain, endpoint: str, fields: dict[str, Any]) -> RequestContext:
    """A shadow's lifecycle object, whose every hook counts as entered (none refuses)."""
    ctx = chain.open(endpoint, **fields)
    ctx.entered.extend(chain.hooks)
    return ctx
