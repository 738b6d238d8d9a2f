"""The request lifecycle's hooks: one per concern, run in a declared order around the
engine call, each giving back what it took in its own ``end``.

The shape is Ray Serve LLM's ``LLMMiddleware`` (``before_inference`` /
``on_inference_complete`` over a ``RequestContext``, run by a ``MiddlewareChain``) and
LiteLLM's proxy hooks: a hook knows only the :class:`~._context.RequestContext` and the
replica's :class:`GatewayParts`, never the ingress, so the same hooks can run in Ray's
ingress or inside an LLM replica.

- ``before(ctx)`` runs in the declared order; it may raise a
  :class:`~._body.Refusal`, which stops the chain (the request is refused).
- ``end(ctx)`` runs once, in reverse order, for every hook whose ``before`` returned,
  whatever happened afterwards (a refusal by a later hook, an engine error, a client
  gone, a stream cut). A hook releases there exactly what its ``before`` took.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from serving._model_config import PriceConfig
from serving.gateway._admission import AdmissionHook, Admitter
from serving.gateway._auth import AuthHook, KeyCache, ScopeHook, WrongTokenGuard
from serving.gateway._body import BodyHook
from serving.gateway._capture import CaptureHook, CaptureWriter
from serving.gateway._context import RequestContext
from serving.gateway._engine_request import EngineRequestHook
from serving.gateway._headers import HeadersHook
from serving.gateway._metrics import GatewayMetrics
from serving.gateway._priority import BackgroundGate, PriorityHook
from serving.gateway._record import GatewaySettings, MetricsHook
from serving.swap._router import SwapHook, SwapRouter
from serving.swap._shadow import ShadowHook, ShadowRunner

if TYPE_CHECKING:
    from serving.gateway._metrics_hub import MetricsReporter

log = logging.getLogger("gavel.gateway")


class Hook(Protocol):
    """One concern of the request lifecycle."""

    name: str

    async def before(self, ctx: RequestContext) -> None:
        """Take what the request needs from this concern, or raise a Refusal."""

    def end(self, ctx: RequestContext) -> None:
        """Give back what :meth:`before` took (runs once, whatever happened)."""


@dataclass
class GatewayParts:
    """What one ingress replica's hooks share: its settings and its stateful parts."""

    settings: GatewaySettings
    metrics: GatewayMetrics
    keys: KeyCache | None
    guard: WrongTokenGuard | None
    gate: BackgroundGate
    admitter: Admitter
    swap: SwapRouter
    shadows: ShadowRunner
    writer: CaptureWriter | None
    reporter: MetricsReporter | None
    tracing: Any = None
    """With ``gateway.tracing`` on, the replica's OpenTelemetry ``TracerProvider``."""


class HookChain:
    """Hooks in their declared order, and the one ending of a request."""

    def __init__(self, hooks: list[Hook], prices: Mapping[str, PriceConfig]) -> None:
        self.hooks = hooks
        self._prices = prices

    @property
    def names(self) -> list[str]:
        """The hooks' names, in order."""
        return [h.name for h in self.hooks]

    def open(self, endpoint: str, request: Any = None, **fields: Any) -> RequestContext:
        """A new request's lifecycle object, whose ending is this chain's."""
        return RequestContext(endpoint=endpoint, request=request, on_end=self.end, **fields)

    async def begin(self, ctx: RequestContext) -> None:
        """Run every hook's ``before`` in order (a Refusal stops it); with a trace open,
        each is timed into it, and the engine call's start is marked."""
        for hook in self.hooks:
            if ctx.trace is None:
                await hook.before(ctx)
            else:
                t = time.perf_counter()
                try:
                    await hook.before(ctx)
                finally:  # a refusing hook has its span too
                    ctx.trace.timings.append((hook.name, t, time.perf_counter()))
            ctx.entered.append(hook)
        if ctx.trace is not None:
            ctx.trace.engine_at = time.perf_counter()

    def end(self, ctx: RequestContext) -> None:
        """The request's one ending: price it, then every entered hook's ``end`` in
        reverse order (one failing hook never keeps the others from giving back)."""
        price = self._prices.get(ctx.model)
        if ctx.engine_called and price is not None:
            ctx.cost = price.cost(ctx.prompt_tokens, ctx.completion_tokens)
        for hook in reversed(ctx.entered):
            try:
                if ctx.trace is not None and hook.name == "capture":
                    t = time.perf_counter()
                    hook.end(ctx)
                    ctx.trace.timings.append(("end:capture", t, time.perf_counter()))
                    continue
                hook.end(ctx)
            except Exception:
                log.exception("the %s hook failed to end request %s", hook.name, ctx.request_id)


HookFactory = Callable[[GatewayParts], Hook]


def _auth(p: GatewayParts) -> Hook:
    assert p.keys is not None, "the auth hook needs the key cache"
    return AuthHook(p.keys, p.guard, p.settings.config.auth.trusted_proxies)


def _trace(p: GatewayParts) -> Hook:
    from serving.gateway._tracing import TraceHook

    assert p.tracing is not None, "the trace hook needs gateway.tracing on"
    return TraceHook(p.tracing.get_tracer("gavel.gateway"))


HOOKS: dict[str, HookFactory] = {
    "metrics": lambda p: MetricsHook(p.metrics, p.reporter),
    "trace": _trace,
    "auth": _auth,
    "body": lambda p: BodyHook(p.settings.config, p.settings.roles),
    "scope": lambda p: ScopeHook(),
    "swap": lambda p: SwapHook(p.swap),
    "headers": lambda p: HeadersHook(p.settings.config.steering_metadata),
    "priority": lambda p: PriorityHook(p.gate),
    "engine_request": lambda p: EngineRequestHook(p.swap, p.settings),
    "admission": lambda p: AdmissionHook(p.admitter, p.settings.prices),
    "capture": lambda p: CaptureHook(p.writer, p.settings),
    "shadow": lambda p: ShadowHook(p.swap, p.shadows),
}
"""Every hook by name, built from the replica's parts (the builder declares which run,
in which order: :func:`serving._builder.gateway_hooks`)."""


def build_chain(names: list[str] | tuple[str, ...], parts: GatewayParts) -> HookChain:
    """The chain of the named hooks, in that order."""
    unknown = [n for n in names if n not in HOOKS]
    if unknown:
        raise ValueError(f"unknown gateway hooks: {', '.join(unknown)}")
    return HookChain([HOOKS[n](parts) for n in names], parts.settings.prices)
