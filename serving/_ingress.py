"""Gavel's extension of ``ray.serve.llm``'s OpenAI ingress: the gateway.

The OpenAI protocol stays Ray Serve LLM's. This subclass wraps its ``chat`` and
``completions`` handlers with API-key auth, scopes, per-key limits (a shared
:class:`~serving._limiter.RateLimiter` deployment), traffic capture, cost and
Prometheus metrics, and adds ``/health`` and ``/metrics``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from ray.llm._internal.serve.core.configs.openai_api_models import (
    ChatCompletionRequest,
    CompletionRequest,
    OpenAIHTTPException,
)
from ray.serve.handle import DeploymentHandle
from ray.serve.llm.ingress import OpenAiIngress

from serving._capture import CaptureWriter, redact, redact_obj
from serving._config import GatewayConfig, GavelModel
from serving._errors import openai_error
from serving._gateway_metrics import GatewayMetrics
from serving._keys import bearer_token, hash_key
from serving._store import Store
from serving._wire import ROLE_SCOPE, ApiKey, TrafficRecord

log = logging.getLogger("gavel.gateway")

_ERROR_TYPES = {400: "invalid_request_error", 404: "model_not_found"}
KEY_CACHE_TTL_S = 2.0


class ModelPrice(GavelModel):
    """USD per 1M input and output tokens of one served model."""

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0

    def cost(self, prompt_tokens: int | None, completion_tokens: int | None) -> float:
        """Cost of one request."""
        return (
            (prompt_tokens or 0) * self.input_per_mtok
            + (completion_tokens or 0) * self.output_per_mtok
        ) / 1e6


class GatewaySettings(GavelModel):
    """What the ingress needs, resolved by the builder (absolute paths, prices, roles)."""

    config: GatewayConfig
    store_url: str
    spool_dir: str
    roles: dict[str, str]
    """Served model id -> role."""
    prices: dict[str, ModelPrice]


@dataclass
class _Call:
    """What is known about one request while it is served."""

    request_id: str
    key: ApiKey | None
    model: str
    role: str | None
    endpoint: str
    stream: bool
    body: dict[str, Any]
    t0: float = field(default_factory=time.perf_counter)
    ts: datetime = field(default_factory=lambda: datetime.now(UTC))
    text: list[str] = field(default_factory=list)
    ttft_s: float | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    status: int = 200
    error: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


class GavelIngress(OpenAiIngress):
    """OpenAI ingress with Gavel's gateway around the model calls."""

    def __init__(
        self,
        llm_deployments: dict[str, DeploymentHandle],
        model_cards: dict[str, Any],
        *,
        gateway: dict[str, Any] | None = None,
        limiter: DeploymentHandle | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(llm_deployments, model_cards, **kwargs)
        self._settings = GatewaySettings.model_validate(gateway) if gateway else None
        self._limiter = limiter
        self._metrics = GatewayMetrics()
        self._key_cache: dict[str, tuple[float, ApiKey | None]] = {}
        self._store: Store | None = None
        self._writer: CaptureWriter | None = None
        if self._settings is not None:
            self._store = Store(self._settings.store_url)
            cap = self._settings.config.capture
            if cap.enabled:
                self._writer = CaptureWriter(
                    self._store,
                    spool_dir=Path(self._settings.spool_dir),
                    flush_interval_s=cap.flush_interval_s,
                    batch_size=cap.batch_size,
                    queue_max=cap.queue_max,
                    metrics=self._metrics,
                )

    async def __del__(self) -> None:
        """Graceful shutdown (Serve awaits this): flush every captured record."""
        if self._writer is not None:
            await self._writer.close()

    # --- routes Gavel adds ----------------------------------------------------

    async def health(self) -> dict[str, str]:
        """Liveness; open without a key."""
        return {"status": "ok"}

    async def metrics(self) -> Response:
        """Prometheus text exposition of the gateway's metrics."""
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(self._metrics.render(), media_type=CONTENT_TYPE_LATEST)

    # --- OpenAI routes, wrapped -------------------------------------------------

    async def models(self, request: Request) -> Any:  # type: ignore[override]
        """List models (any valid key)."""
        denied, _ = await self._authenticate(request)
        if denied is not None:
            return denied
        return await super().models()

    async def model_data(self, model: str, request: Request) -> Any:  # type: ignore[override]
        """One model's card (any valid key)."""
        denied, _ = await self._authenticate(request)
        if denied is not None:
            return denied
        return await super().model_data(model)

    async def chat(self, body: ChatCompletionRequest, request: Request) -> Response:
        """Chat completions through the gateway."""
        return await self._serve(body, request, "chat", super().chat)

    async def completions(self, body: CompletionRequest, request: Request) -> Response:
        """Completions through the gateway."""
        return await self._serve(body, request, "completions", super().completions)

    async def _get_model_id(self, model: str | None) -> str:
        try:
            return await super()._get_model_id(model)
        except HTTPException as exc:
            raise OpenAIHTTPException(
                status_code=exc.status_code,
                message=str(exc.detail),
                type=_ERROR_TYPES.get(exc.status_code, "invalid_request_error"),
            ) from None

    # --- gateway ----------------------------------------------------------------

    def _auth_enabled(self) -> bool:
        return self._settings is not None and self._settings.config.auth.enabled

    async def _lookup(self, key_hash: str) -> ApiKey | None:
        now = time.monotonic()
        hit = self._key_cache.get(key_hash)
        if hit is not None and now - hit[0] < KEY_CACHE_TTL_S:
            return hit[1]
        assert self._store is not None
        try:
            key = await asyncio.to_thread(self._store.key_by_hash, key_hash)
        except Exception:
            if hit is None:
                raise
            # Store down: keep serving keys already validated (captures are spooled meanwhile).
            log.warning("key store unreachable; using the cached key")
            return hit[1]
        self._key_cache[key_hash] = (now, key)
        return key

    async def _authenticate(self, request: Request) -> tuple[JSONResponse | None, ApiKey | None]:
        if not self._auth_enabled():
            return None, None
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            self._metrics.rejected.labels("missing_key").inc()
            return openai_error(
                401,
                "Missing API key: send 'Authorization: Bearer <key>'.",
                type_="invalid_request_error",
                code="invalid_api_key",
            ), None
        try:
            key = await self._lookup(hash_key(token))
        except Exception:
            log.exception("key store unreachable")
            return openai_error(
                503, "The key store is unreachable; retry shortly.", type_="server_error"
            ), None
        if key is None or key.revoked_at is not None:
            self._metrics.rejected.labels("invalid_key").inc()
            what = "revoked" if key is not None else "invalid"
            return openai_error(
                401,
                f"The API key is {what}.",
                type_="invalid_request_error",
                code="invalid_api_key",
            ), None
        return None, key

    async def _authorize(
        self, key: ApiKey | None, model: str, role: str | None
    ) -> JSONResponse | None:
        if key is None or role is None:
            return None
        scope = ROLE_SCOPE.get(role, "admin")
        if not key.allows(scope):
            self._metrics.rejected.labels("scope").inc()
            return openai_error(
                403,
                f"The key {key.name!r} lacks the '{scope}' scope needed for model {model!r}.",
                type_="permission_error",
                code="insufficient_scope",
            )
        if self._limiter is not None and (key.rpm is not None or key.tpm is not None):
            wait = await self._limiter.admit.remote(key.name, key.rpm, key.tpm)
            if wait is not None:
                self._metrics.rejected.labels("rate_limit").inc()
                secs = max(1, math.ceil(wait))
                return openai_error(
                    429,
                    f"Rate limit of key {key.name!r} reached "
                    f"(rpm={key.rpm}, tpm={key.tpm}); retry in {secs} s.",
                    type_="rate_limit_error",
                    code="rate_limit_exceeded",
                    headers={"Retry-After": str(secs)},
                )
        return None

    @staticmethod
    def _request_extras(
        request: Request, key: ApiKey | None
    ) -> tuple[dict[str, str], datetime | None, JSONResponse | None]:
        """Metadata from ``X-Gavel-Metadata``; a replay date from ``X-Gavel-Replay-Date``."""
        meta: dict[str, str] = {}
        raw = request.headers.get("x-gavel-metadata")
        if raw:
            try:
                data = json.loads(raw)
                if not isinstance(data, dict) or len(raw) > 4096:
                    raise ValueError
                meta = {str(k): str(v) for k, v in data.items()}
            except ValueError:
                return (
                    {},
                    None,
                    openai_error(
                        400,
                        "X-Gavel-Metadata must be a JSON object of strings (at most 4 KiB).",
                        type_="invalid_request_error",
                    ),
                )
        ts = None
        day = request.headers.get("x-gavel-replay-date")
        if day:
            if key is not None and not key.allows("admin"):
                return (
                    {},
                    None,
                    openai_error(
                        403,
                        "X-Gavel-Replay-Date needs a key with the 'admin' scope.",
                        type_="permission_error",
                    ),
                )
            try:
                d = datetime.fromisoformat(day).date()
            except ValueError:
                return (
                    {},
                    None,
                    openai_error(
                        400,
                        "X-Gavel-Replay-Date must be YYYY-MM-DD.",
                        type_="invalid_request_error",
                    ),
                )
            now = datetime.now(UTC)
            ts = now.replace(year=d.year, month=d.month, day=d.day)
        return meta, ts, None

    async def _serve(
        self,
        body: ChatCompletionRequest | CompletionRequest,
        request: Request,
        endpoint: str,
        handler: Callable[[Any, Request], Awaitable[Response]],
    ) -> Response:
        denied, key = await self._authenticate(request)
        if denied is not None:
            return denied
        model = str(body.model)
        role = self._settings.roles.get(model) if self._settings else None
        denied = await self._authorize(key, model, role)
        if denied is not None:
            return denied
        meta, ts, bad = self._request_extras(request, key)
        if bad is not None:
            return bad
        client_wants_usage = True
        if body.stream:
            opts = body.stream_options
            client_wants_usage = bool(opts is not None and opts.include_usage)
            if not client_wants_usage:
                # Usage is needed for cost and limits; its chunk is not passed on.
                data = body.model_dump(exclude_unset=True)
                data["stream_options"] = {"include_usage": True}
                body = type(body).model_validate(data)
        call = _Call(
            request_id=f"req-{uuid.uuid4().hex}",
            key=key,
            model=model,
            role=role,
            endpoint=endpoint,
            stream=bool(body.stream),
            body=body.model_dump(mode="json", exclude_unset=True, exclude_none=True),
            metadata=meta,
        )
        if ts is not None:
            call.ts = ts
        if role is None:  # unknown model: Ray answers 404, nothing reached a model
            return await handler(body, request)
        self._metrics.in_flight.labels(model).inc()
        try:
            resp = await handler(body, request)
        except OpenAIHTTPException as exc:
            call.status, call.error = exc.status_code, exc.message
            self._finish(call)
            raise
        except Exception as exc:
            call.status, call.error = 500, f"{type(exc).__name__}: {exc}"
            self._finish(call)
            raise
        if isinstance(resp, StreamingResponse):
            resp.body_iterator = self._tap(resp.body_iterator, call, client_wants_usage)
            return resp
        call.status = resp.status_code
        self._absorb_json(call, bytes(resp.body))
        self._finish(call)
        return resp

    def _absorb_json(self, call: _Call, raw: bytes) -> None:
        try:
            data = json.loads(raw)
        except ValueError:
            return
        if isinstance(data.get("id"), str):
            call.request_id = data["id"]
        choice = (data.get("choices") or [{}])[0]
        if call.endpoint == "chat":
            call.text.append((choice.get("message") or {}).get("content") or "")
        else:
            call.text.append(choice.get("text") or "")
        call.finish_reason = choice.get("finish_reason")
        usage = data.get("usage") or {}
        call.prompt_tokens = usage.get("prompt_tokens")
        call.completion_tokens = usage.get("completion_tokens")

    async def _tap(
        self, it: AsyncIterable[Any], call: _Call, pass_usage: bool
    ) -> AsyncIterator[str]:
        """Pass the SSE stream through, assembling text, timings and usage for capture."""
        try:
            async for packet in it:
                text = packet.decode() if isinstance(packet, bytes) else packet
                out: list[str] = []
                for event in text.split("\n\n"):
                    if not event.strip():
                        continue
                    keep = self._absorb_event(call, event)
                    if keep or pass_usage:
                        out.append(event + "\n\n")
                if out:
                    yield "".join(out)
        except BaseException as exc:  # client gone (CancelledError) or stream failure
            if call.status == 200:
                call.status = 499 if isinstance(exc, asyncio.CancelledError) else 500
                call.error = call.error or type(exc).__name__
            raise
        finally:
            self._finish(call)

    def _absorb_event(self, call: _Call, event: str) -> bool:
        """Update ``call`` from one SSE event; False for a usage-only event."""
        if not event.startswith("data: "):
            return True
        payload = event[6:].strip()
        if payload == "[DONE]":
            return True
        try:
            data = json.loads(payload)
        except ValueError:
            return True
        if "error" in data and not data.get("choices"):
            err = data["error"] if isinstance(data["error"], dict) else {"message": data["error"]}
            call.status = int(err.get("code") or 500) if str(err.get("code", "")).isdigit() else 500
            call.error = str(err.get("message"))
            return True
        if call.ttft_s is None and isinstance(data.get("id"), str):
            call.request_id = data["id"]  # the id the client sees
        choices = data.get("choices") or []
        for ch in choices:
            piece = (
                (ch.get("delta") or {}).get("content")
                if call.endpoint == "chat"
                else ch.get("text")
            )
            if piece:
                if call.ttft_s is None:
                    call.ttft_s = time.perf_counter() - call.t0
                call.text.append(piece)
            if ch.get("finish_reason"):
                call.finish_reason = ch["finish_reason"]
        usage = data.get("usage")
        if usage:
            call.prompt_tokens = usage.get("prompt_tokens")
            call.completion_tokens = usage.get("completion_tokens")
            return bool(choices)
        return True

    def _finish(self, call: _Call) -> None:
        """Record metrics, charge tokens, and hand the record to the capture writer."""
        e2e = time.perf_counter() - call.t0
        model = call.model
        m = self._metrics
        m.in_flight.labels(model).dec()
        m.requests.labels(model, str(call.status)).inc()
        price = self._settings.prices.get(model) if self._settings else None
        cost = price.cost(call.prompt_tokens, call.completion_tokens) if price else None
        if call.prompt_tokens:
            m.input_tokens.labels(model).inc(call.prompt_tokens)
        if call.completion_tokens is not None:
            m.output_tokens.labels(model).inc(call.completion_tokens)
            m.output_len.labels(model).observe(call.completion_tokens)
        if cost:
            m.cost.labels(model).inc(cost)
        if call.ttft_s is not None:
            m.ttft.labels(model).observe(call.ttft_s)
        m.e2e.labels(model).observe(e2e)
        key = call.key
        used = (call.prompt_tokens or 0) + (call.completion_tokens or 0)
        if key is not None and key.tpm is not None and used and self._limiter is not None:
            self._limiter.add_tokens.remote(key.name, used)
        if self._writer is None:
            return
        self._writer.start()
        metadata_only = key.metadata_only if key is not None else False
        redacting = self._settings is not None and self._settings.config.capture.redact
        text: str | None = "".join(call.text)
        request_body: dict[str, Any] = call.body
        if metadata_only:
            text = None
            request_body = {k: v for k, v in call.body.items() if k not in ("messages", "prompt")}
        elif redacting:
            text = redact(text or "")
            request_body = dict(redact_obj(call.body))  # type: ignore[call-overload]
        self._writer.submit(
            TrafficRecord(
                request_id=call.request_id,
                ts=call.ts,
                key_name=key.name if key is not None else None,
                model=model,
                role=call.role,
                endpoint=call.endpoint,  # type: ignore[arg-type]
                stream=call.stream,
                request=request_body,
                response_text=text,
                finish_reason=call.finish_reason,
                status=call.status,
                error=call.error,
                prompt_tokens=call.prompt_tokens,
                completion_tokens=call.completion_tokens,
                ttft_ms=call.ttft_s * 1000 if call.ttft_s is not None else None,
                e2e_ms=e2e * 1000,
                cost_usd=cost,
                metadata_only=metadata_only,
                metadata=call.metadata,
            )
        )
