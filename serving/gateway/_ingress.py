"""Gavel's extension of ``ray.serve.llm``'s OpenAI ingress: the gateway's routes.

The OpenAI protocol stays Ray Serve LLM's. This subclass wraps its ``chat`` and
``completions`` handlers with API-key auth (:mod:`._auth`), scopes, per-key limits (a
shared :class:`~._limits.RateLimiter` deployment), Gavel's headers (:mod:`._headers`),
the SSE tap (:mod:`._call`), cost, metrics and capture (:mod:`._record`,
:mod:`._capture`), and adds ``/health`` and ``/metrics``.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable
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

from serving._errors import openai_error
from serving._wire import ApiKey
from serving.gateway._auth import KeyCache, authenticate, check_scope
from serving.gateway._call import Call, absorb_json, tap
from serving.gateway._capture import CaptureWriter
from serving.gateway._headers import parse_extras
from serving.gateway._metrics import GatewayMetrics
from serving.gateway._record import GatewaySettings, elapsed, observe, to_record
from serving.store import Store

_ERROR_TYPES = {400: "invalid_request_error", 404: "model_not_found"}


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
        self._keys: KeyCache | None = None
        self._writer: CaptureWriter | None = None
        if self._settings is not None:
            store = Store(self._settings.store_url)
            self._keys = KeyCache(store)
            cap = self._settings.config.capture
            if cap.enabled:
                self._writer = CaptureWriter(
                    store,
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

    async def _authenticate(self, request: Request) -> tuple[JSONResponse | None, ApiKey | None]:
        if self._keys is None or self._settings is None or not self._settings.config.auth.enabled:
            return None, None
        return await authenticate(request.headers.get("authorization"), self._keys, self._metrics)

    async def _admit(self, key: ApiKey) -> JSONResponse | None:
        if self._limiter is None or (key.rpm is None and key.tpm is None):
            return None
        wait = await self._limiter.admit.remote(key.name, key.rpm, key.tpm)
        if wait is None:
            return None
        self._metrics.rejected.labels("rate_limit").inc()
        secs = max(1, math.ceil(wait))
        return openai_error(
            429,
            f"Rate limit of key {key.name!r} reached (rpm={key.rpm}, tpm={key.tpm}); "
            f"retry in {secs} s.",
            type_="rate_limit_error",
            code="rate_limit_exceeded",
            headers={"Retry-After": str(secs)},
        )

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
        if key is not None and role is not None:
            denied = check_scope(key, model, role, self._metrics) or await self._admit(key)
            if denied is not None:
                return denied
        extras, bad = parse_extras(request.headers, key)
        if bad is not None or extras is None:
            return bad  # type: ignore[return-value]
        client_wants_usage = True
        if body.stream:
            opts = body.stream_options
            client_wants_usage = bool(opts is not None and opts.include_usage)
            if not client_wants_usage:
                # Usage is needed for cost and limits; its chunk is not passed on.
                data = body.model_dump(exclude_unset=True)
                data["stream_options"] = {"include_usage": True}
                body = type(body).model_validate(data)
        call = Call(
            request_id=f"req-{uuid.uuid4().hex}",
            key=key,
            model=model,
            role=role,
            endpoint=endpoint,
            stream=bool(body.stream),
            body=body.model_dump(mode="json", exclude_unset=True, exclude_none=True),
            metadata=extras.metadata,
            source=extras.source,
        )
        if extras.ts is not None:
            call.ts = extras.ts
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
            resp.body_iterator = tap(
                resp.body_iterator, call, pass_usage=client_wants_usage, finish=self._finish
            )
            return resp
        call.status = resp.status_code
        absorb_json(call, bytes(resp.body))
        self._finish(call)
        return resp

    def _finish(self, call: Call) -> None:
        """Record metrics, charge tokens, and hand the record to the capture writer."""
        e2e = elapsed(call)
        price = self._settings.prices.get(call.model) if self._settings else None
        cost = price.cost(call.prompt_tokens, call.completion_tokens) if price else None
        observe(call, self._metrics, cost, e2e)
        key = call.key
        used = (call.prompt_tokens or 0) + (call.completion_tokens or 0)
        if key is not None and key.tpm is not None and used and self._limiter is not None:
            self._limiter.add_tokens.remote(key.name, used)
        if self._writer is None or self._settings is None:
            return
        self._writer.start()
        self._writer.submit(to_record(call, self._settings, cost=cost, e2e_s=e2e))
