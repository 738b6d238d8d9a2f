"""The end of a request: metrics, the tokens charged to the key, the captured record."""

from __future__ import annotations

import time
from typing import Any

from serving._config import GatewayConfig, GavelModel, PriceConfig
from serving._wire import TrafficRecord
from serving.gateway._call import Call
from serving.gateway._metrics import GatewayMetrics
from serving.gateway._redact import redact, redact_obj


class GatewaySettings(GavelModel):
    """What the ingress needs, resolved by the builder (absolute paths, prices, roles)."""

    config: GatewayConfig
    store_url: str
    spool_dir: str
    roles: dict[str, str]
    """Served model id -> role."""
    prices: dict[str, PriceConfig]


def observe(call: Call, metrics: GatewayMetrics, cost: float | None, e2e_s: float) -> None:
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
    if call.ttft_s is not None:
        metrics.ttft.labels(model).observe(call.ttft_s)
    metrics.e2e.labels(model).observe(e2e_s)


def to_record(
    call: Call, settings: GatewaySettings, *, cost: float | None, e2e_s: float
) -> TrafficRecord:
    """The record to capture: no text for metadata-only keys, redacted when configured."""
    key = call.key
    metadata_only = key.metadata_only if key is not None else False
    text: str | None = "".join(call.text)
    body: dict[str, Any] = call.body
    if metadata_only:
        text = None
        body = {k: v for k, v in call.body.items() if k not in ("messages", "prompt")}
    elif settings.config.capture.redact:
        text = redact(text or "")
        body = dict(redact_obj(call.body))  # type: ignore[call-overload]
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
        metadata=call.metadata,
        source=call.source,
    )


def elapsed(call: Call) -> float:
    """Seconds since the request arrived."""
    return time.perf_counter() - call.t0
