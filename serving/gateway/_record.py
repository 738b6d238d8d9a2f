"""The end of a request: metrics, the tokens charged to the key, the captured record."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from serving._config import GatewayConfig, GavelModel, PriceConfig, SloConfig
from serving._wire import TrafficRecord
from serving.gateway._context import RequestContext
from serving.gateway._metrics import GatewayMetrics, length_bucket
from serving.gateway._redact import redact, redact_obj
from serving.gateway._text import clean
from serving.swap._config import SwapConfig

if TYPE_CHECKING:
    from serving.gateway._metrics_hub import MetricsReporter


class GatewaySettings(GavelModel):
    """What the ingress needs, resolved by the builder (absolute paths, prices, roles)."""

    config: GatewayConfig
    store_url: str
    spool_dir: str
    roles: dict[str, str]
    """Served model id -> role."""
    prices: dict[str, PriceConfig]
    slos: dict[str, SloConfig] = {}
    """Served model id -> latency objectives (the gateway counts attainment)."""
    context_lens: dict[str, int] = {}
    """Served model id -> its engine's ``max_model_len``, where the config sets it."""
    priority_models: frozenset[str] = frozenset()
    """Served model ids whose engine schedules by priority (``scheduling_policy:
    priority``): their requests carry ``gateway.priority.engine``'s priority."""
    swap: SwapConfig | None = None
    """A candidate beside the production model (shadow, canary), if one is configured."""
    hooks: tuple[str, ...] = (
        "metrics", "auth", "body", "scope", "swap", "headers", "priority",
        "engine_request", "admission", "capture", "shadow",
    )  # fmt: skip
    """The request lifecycle's hooks, in order (:func:`serving._builder.gateway_hooks`)."""


def observe(
    call: RequestContext, metrics: GatewayMetrics, cost: float | None, e2e_s: float
) -> None:
    """Count one finished request in the gateway's metrics."""
    model, src = call.model, call.source
    metrics.in_flight.labels(model).dec()
    metrics.requests.labels(model, str(call.status), src).inc()
    if call.prompt_tokens:
        metrics.input_tokens.labels(model, src).inc(call.prompt_tokens)
    if call.completion_tokens is not None:
        metrics.output_tokens.labels(model, src).inc(call.completion_tokens)
        metrics.output_len.labels(model).observe(call.completion_tokens)
    if cost:
        metrics.cost.labels(model, src).inc(cost)
        if call.key is not None:
            metrics.key_cost.labels(call.key.name, model).inc(cost)
    if call.status >= 400:
        return  # latency of refusals and failures says nothing about the model's speed
    length = length_bucket(call.completion_tokens)
    tpot = None
    if call.ttft_s is not None:
        metrics.ttft.labels(model, length).observe(call.ttft_s)
        if call.completion_tokens is not None and call.completion_tokens > 1:
            tpot = (e2e_s - call.ttft_s) / (call.completion_tokens - 1)
            metrics.tpot.labels(model).observe(tpot)
    metrics.e2e.labels(model, length).observe(e2e_s)
    metrics.count_slo(model, ttft_s=call.ttft_s, tpot_s=tpot)


METADATA_ONLY_FIELDS = frozenset(
    {
        "model", "stream", "n", "max_tokens", "max_completion_tokens", "min_tokens",
        "temperature", "top_p", "top_k", "min_p", "seed", "presence_penalty",
        "frequency_penalty", "repetition_penalty", "logprobs", "top_logprobs", "ignore_eos",
        "echo", "best_of",
    }
)  # fmt: skip
"""Request fields a ``--metadata-only`` key's record keeps: the model and the sampling
parameters, never text. Everything else is dropped (an allow-list, not a deny-list)."""


def metadata_only_body(body: dict[str, Any]) -> dict[str, Any]:
    """The model, the sampling parameters and the sizes of a request; no text."""
    kept: dict[str, Any] = {
        k: v
        for k, v in body.items()
        if k in METADATA_ONLY_FIELDS and isinstance(v, int | float | bool | str | None)
    }
    messages, prompt = body.get("messages"), body.get("prompt")
    sizes: dict[str, int] = {}
    if isinstance(messages, list):
        sizes["messages"] = len(messages)
        sizes["message_chars"] = sum(len(str(m)) for m in messages)
    if prompt is not None:
        sizes["prompt_chars"] = len(str(prompt))
    kept["sizes"] = sizes
    return kept


def prepare_for_storage(record: TrafficRecord, *, redacting: bool, max_chars: int) -> TrafficRecord:
    """Make a record storable: NULs and lone surrogates cleaned, redacted when configured.

    Runs in the capture writer's thread, off the event loop.
    """
    text = record.response_text
    body: Any = record.request
    if redacting:
        text = redact(text, max_chars=max_chars) if text is not None else None
        body = redact_obj(body, max_chars=max_chars)
    return record.model_copy(
        update={
            "response_text": clean(text),
            "request": clean(body),
            "metadata": clean(record.metadata),
            "error": clean(record.error),
        }
    )


def to_record(
    call: RequestContext, settings: GatewaySettings, *, cost: float | None, e2e_s: float
) -> TrafficRecord:
    """The record to capture: nothing but sizes and parameters for metadata-only keys."""
    key = call.key
    metadata_only = key.metadata_only if key is not None else False
    text: str | None = "".join(call.text)
    body: dict[str, Any] = call.body
    metadata = call.metadata
    client_id = call.client_request_id
    if metadata_only:
        text, body, metadata, client_id = None, metadata_only_body(call.body), {}, None
    return TrafficRecord(
        request_id=call.request_id,
        ts=call.ts,
        key_name=key.name if key is not None else None,
        model=call.model,
        role=call.role,
        endpoint=call.endpoint,  # type: ignore[arg-type]
        stream=call.stream,
        request=body,
        response_text=text,
        finish_reason=call.finish_reason,
        status=call.status,
        error=call.error,
        prompt_tokens=call.prompt_tokens,
        completion_tokens=call.completion_tokens,
        ttft_ms=call.ttft_s * 1000 if call.ttft_s is not None else None,
        e2e_ms=e2e_s * 1000,
        cost_usd=cost,
        metadata_only=metadata_only,
        metadata=metadata,
        source=call.source,
        client_request_id=client_id,
        arm=call.arm,  # type: ignore[arg-type]
        twin_id=call.twin_id,
        trace_id=call.trace_id,
    )


class MetricsHook:
    """Counts every request once when it ends: a refusal by its reason, a request that
    reached a model by its model, status and source (latency, tokens, cost, SLOs)."""

    name = "metrics"

    def __init__(self, metrics: GatewayMetrics, reporter: MetricsReporter | None) -> None:
        self._metrics = metrics
        self._reporter = reporter

    async def before(self, ctx: RequestContext) -> None:
        """Nothing to take (the gateway starts the metrics report)."""

    def end(self, ctx: RequestContext) -> None:
        if ctx.engine_called:
            observe(ctx, self._metrics, ctx.cost, ctx.e2e_s)
        else:
            reason = ctx.refusal.reason if ctx.refusal is not None else "client_gone"
            self._metrics.rejected.labels(reason).inc()
