"""OpenTelemetry traces of the request path (``gateway.tracing``), off by default.

With tracing on, the ``trace`` hook (right after ``metrics``) continues the client's
W3C ``traceparent`` or starts a trace, and puts the request's span context into the
headers Ray passes to the engine (vLLM, with ``otlp_traces_endpoint`` set through
``engine.extra``, then parents its own spans on it). The hook chain times every other
hook while a trace is open; when the request ends, this hook writes the spans with
those times: the key (``gavel.auth``), a background request's wait (``gavel.priority``),
admission (``gavel.admission``) and the hook that refused a request, the engine call
(``chat MODEL``, a GenAI client span with the first token as an event), the tap (first
token to the end of the stream) and the capture hand-off. Attributes follow the GenAI
semantic conventions and never hold prompt or response text. With tracing off nothing
here is imported and no hook runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from serving.gateway._context import RequestContext

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

    from serving._gateway_config import TracingConfig

TRACEPARENT = "traceparent"
SPANNED = frozenset({"auth", "priority", "admission", "end:capture"})
"""The hooks with a span of their own (the others take microseconds): the key lookup, a
background request's wait, admission (the limiter or the lease), the capture hand-off."""


@dataclass
class TraceState:
    """A request's open trace: its root span, and the hooks' times (perf_counter)."""

    root: Span
    epoch_ns: int
    """Wall-clock nanoseconds at the request's ``t0``."""
    t0: float
    timings: list[tuple[str, float, float]] = field(default_factory=list)
    """(what, start, end) of every hook's ``before`` (and ``end:NAME`` of its end)."""
    engine_at: float | None = None
    """When the engine was called."""

    def ns(self, t: float) -> int:
        """Epoch nanoseconds of a perf_counter time of this request."""
        return self.epoch_ns + int((t - self.t0) * 1e9)


def make_provider(cfg: TracingConfig, exporter: SpanExporter | None = None) -> TracerProvider:
    """The replica's tracer provider: OTLP/HTTP export in batches (or ``exporter``)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=cfg.endpoint, headers=dict(cfg.headers))
    provider = TracerProvider(
        resource=Resource.create({"service.name": cfg.service_name}),
        sampler=ParentBased(TraceIdRatioBased(cfg.sample_ratio)),
    )
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
    return provider


def _set_header(request: Any, name: str, value: str) -> None:
    """Replace a header of a Starlette request (Ray copies its headers to the engine)."""
    raw = [(k, v) for k, v in request.scope["headers"] if k != name.encode()]
    request.scope["headers"] = [*raw, (name.encode(), value.encode())]
    request.__dict__.pop("_headers", None)


class TraceHook:
    """The request's trace: opened first, written when the request ends."""

    name = "trace"

    def __init__(self, tracer: Tracer) -> None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._tracer = tracer
        self._propagator = TraceContextTextMapPropagator()

    async def before(self, ctx: RequestContext) -> None:
        """Continue the client's trace (or start one) and hand its context to the engine."""
        from opentelemetry.trace import SpanKind, set_span_in_context

        headers = dict(ctx.request.headers) if ctx.request is not None else {}
        parent = self._propagator.extract(headers)
        epoch_ns = time.time_ns() - int((time.perf_counter() - ctx.t0) * 1e9)
        root = self._tracer.start_span(
            f"POST /v1/{'chat/completions' if ctx.endpoint == 'chat' else 'completions'}",
            context=parent, kind=SpanKind.SERVER, start_time=epoch_ns,
        )  # fmt: skip
        sc = root.get_span_context()
        if sc.is_valid:
            ctx.trace_id = format(sc.trace_id, "032x")
        if root.is_recording():  # an unsampled trace is passed on, and costs no more
            ctx.trace = TraceState(root=root, epoch_ns=epoch_ns, t0=ctx.t0)
        if getattr(ctx.request, "scope", None) is not None:  # a Starlette request
            carrier: dict[str, str] = {}
            self._propagator.inject(carrier, context=set_span_in_context(root))
            if TRACEPARENT in carrier:
                _set_header(ctx.request, TRACEPARENT, carrier[TRACEPARENT])

    def end(self, ctx: RequestContext) -> None:
        """Write the hooks', the engine's, the tap's and the capture's spans; end the root."""
        state = ctx.trace
        if state is None:
            return
        from opentelemetry.trace import Status, StatusCode, set_span_in_context

        parent = set_span_in_context(state.root)
        befores = [w for w, _, _ in state.timings if not w.startswith("end:")]
        refused_by = befores[-1] if befores else None  # the chain stopped there
        for what, start, stop in state.timings:
            refusing = ctx.refusal is not None and what == refused_by
            if what not in SPANNED and not refusing:
                continue
            name = f"gavel.{what.removeprefix('end:')}"
            span = self._tracer.start_span(name, context=parent, start_time=state.ns(start))
            if what.startswith("end:"):
                span.set_attribute("gavel.phase", "end")
            if refusing and ctx.refusal is not None:
                span.set_status(Status(StatusCode.ERROR, ctx.refusal.reason))
            span.end(end_time=state.ns(stop))
        end_t = max([ctx.t0 + ctx.e2e_s, *(stop for _, _, stop in state.timings)])
        if ctx.engine_called and state.engine_at is not None:
            self._engine_spans(ctx, state, parent, end_t)
        root = state.root
        root.set_attributes(_attributes(ctx))
        if ctx.status >= 500:
            root.set_status(Status(StatusCode.ERROR, (ctx.error or "")[:200]))
        root.end(end_time=state.ns(end_t))

    def _engine_spans(self, ctx: RequestContext, state: TraceState, parent: Any,
                      end_t: float) -> None:  # fmt: skip
        from opentelemetry.trace import SpanKind

        assert state.engine_at is not None
        engine = self._tracer.start_span(f"{ctx.endpoint} {ctx.model}", context=parent,
                                         kind=SpanKind.CLIENT,
                                         start_time=state.ns(state.engine_at))  # fmt: skip
        engine.set_attributes(_attributes(ctx))
        if ctx.ttft_s is not None:
            first = state.ns(ctx.t0 + ctx.ttft_s)
            engine.add_event("gen_ai.first_token", timestamp=first)
            if ctx.stream:
                tap = self._tracer.start_span("gavel.tap", context=parent, start_time=first)
                tap.set_attribute("gavel.tap.pieces", ctx.pieces)
                tap.end(end_time=state.ns(end_t))
        engine.end(end_time=state.ns(end_t))


def _attributes(ctx: RequestContext) -> dict[str, Any]:
    """GenAI semantic-convention attributes of a request (no text), and Gavel's own."""
    out: dict[str, Any] = {
        "gen_ai.operation.name": "chat" if ctx.endpoint == "chat" else "text_completion",
        "gen_ai.request.model": ctx.asked or ctx.model,
        "gen_ai.response.model": ctx.model,
        "gen_ai.response.id": ctx.request_id,
        "http.response.status_code": ctx.status,
        "gavel.source": ctx.source,
        "gavel.stream": ctx.stream,
    }
    if ctx.key is not None:
        out["gavel.key_name"] = ctx.key.name
    if ctx.arm is not None:
        out["gavel.arm"] = ctx.arm
    if ctx.prompt_tokens is not None:
        out["gen_ai.usage.input_tokens"] = ctx.prompt_tokens
    if ctx.completion_tokens is not None:
        out["gen_ai.usage.output_tokens"] = ctx.completion_tokens
    if ctx.finish_reason:
        out["gen_ai.response.finish_reasons"] = [ctx.finish_reason]
    if isinstance(ctx.engine_body.get("max_tokens"), int):
        out["gen_ai.request.max_tokens"] = ctx.engine_body["max_tokens"]
    return out
