"""Gavel's extension of ``ray.serve.llm``'s OpenAI ingress: the gateway's routes.

The OpenAI protocol stays Ray Serve LLM's. This subclass keeps the routes and Ray's
handlers; every chat and completions request goes through the replica's
:class:`~._gateway.Gateway`: one lifecycle object per request and the hooks declared by
the builder (auth, body, scope, swap, headers, priority, the engine's request,
admission, capture, shadow), around Ray's own handler.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, Response
from ray.llm._internal.serve.core.configs.openai_api_models import OpenAIHTTPException
from ray.serve.handle import DeploymentHandle
from ray.serve.llm.ingress import OpenAiIngress

from serving._errors import openai_error
from serving.feedback import FeedbackRoute
from serving.feedback._route import MAX_BODY_BYTES as FEEDBACK_MAX_BYTES
from serving.gateway._body import read_body
from serving.gateway._gateway import Gateway, make_parts
from serving.gateway._record import GatewaySettings
from serving.gateway._refusal import Refusal
from serving.store import Store

log = logging.getLogger("gavel.gateway")


_ERROR_TYPES = {400: "invalid_request_error", 404: "model_not_found"}


class GavelIngress(OpenAiIngress):
    """OpenAI ingress with Gavel's gateway around the model calls."""

    def __init__(
        self,
        llm_deployments: dict[str, DeploymentHandle],
        model_cards: dict[str, Any],
        *,
        gateway: dict[str, Any],
        limiter: DeploymentHandle | None = None,
        hub: DeploymentHandle | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(llm_deployments, model_cards, **kwargs)
        self._settings = GatewaySettings.model_validate(gateway)
        store = Store(self._settings.store_url)
        parts = make_parts(self._settings, store=store, limiter=limiter, hub=hub)
        self._gateway = Gateway(parts, store)
        self._metrics = parts.metrics
        self._keys = parts.keys
        self._writer = parts.writer
        self._reporter = parts.reporter
        self._swap = parts.swap
        cfg = self._settings.config
        self._feedback = FeedbackRoute(store, cfg.feedback, cfg.capture)

    async def __del__(self) -> None:
        """Graceful shutdown (Serve awaits this)."""
        await self.close()

    async def close(self) -> None:
        """Finish the shadow requests in flight and flush every captured record."""
        await self._gateway.close()

    # --- routes Gavel adds ----------------------------------------------------

    async def check_health(self) -> None:
        """Serve's periodic health check. It also starts the background loops (capture's
        flush, which adopts the spool of a gone writer, the metrics report, lease
        returns, the swap state) on a replica that has not served a request yet."""
        self._gateway.start()

    async def health(self) -> dict[str, str]:
        """Liveness; open without a key."""
        return {"status": "ok"}

    async def metrics(self) -> Response:
        """Prometheus text exposition of the gateway's metrics: every replica's, summed by
        the hub, and the batch jobs' figures."""
        from prometheus_client import CONTENT_TYPE_LATEST

        down = (self._keys is not None and self._keys.store_ok is False) or (
            self._writer is not None and self._writer.store_down
        )
        self._metrics.store_up.set(0 if down else 1)
        if self._reporter is None:
            return Response(self._metrics.render(), media_type=CONTENT_TYPE_LATEST)
        try:
            page = await self._reporter.render()
        except Exception:  # a scrape that fails shows as up == 0, never as partial counts
            log.warning("metrics hub unavailable", exc_info=True)
            return openai_error(503, "The metrics hub is restarting; scrape again.",
                                type_="server_error")  # fmt: skip
        return Response(page, media_type=CONTENT_TYPE_LATEST)

    async def feedback(self, request: Request) -> Response:
        """End users' feedback on an answer (``POST /v1/feedback``; any valid key on its
        own requests, a ``feedback`` key on any)."""
        try:
            key = await self._gateway.key_of(request)
            raw = await read_body(request, FEEDBACK_MAX_BYTES)
            body = await self._feedback.handle(raw, key)
        except Refusal as refused:
            self._metrics.feedback.labels(str(refused.status)).inc()
            return refused.response()
        except Exception:  # never a 500 with internals
            log.exception("feedback failed")
            self._metrics.feedback.labels("503").inc()
            return openai_error(503, "The feedback could not be kept; send it again shortly.",
                                type_="server_error")  # fmt: skip
        self._metrics.feedback.labels("200").inc()
        return JSONResponse(body)

    # --- OpenAI routes, wrapped -------------------------------------------------

    async def models(self, request: Request) -> Any:  # type: ignore[override]
        """List models (any valid key)."""
        try:
            await self._gateway.key_of(request)
        except Refusal as refused:
            return refused.response()
        listed = await super().models()
        for card in list(listed.data):  # a swap's variant is listed like its base
            for model in self._settings.roles:
                if self._swap.variant_base(model) == card.id:
                    listed.data.append(card.model_copy(update={"id": model}))
        return listed

    async def model_data(self, model: str, request: Request) -> Any:  # type: ignore[override]
        """One model's card (any valid key); only exactly configured ids exist."""
        try:
            await self._gateway.key_of(request)
        except Refusal as refused:
            return refused.response()
        if model not in self._settings.roles:
            return Refusal(404, f"No model {model[:128]!r}.", code="model_not_found").response()
        base = self._swap.variant_base(model)
        if base is not None:
            return (await super().model_data(base)).model_copy(update={"id": model})
        return await super().model_data(model)

    async def chat(self, request: Request) -> Response:  # type: ignore[override]
        """Chat completions through the gateway."""
        return await self._gateway.serve(request, "chat", super().chat)

    async def completions(self, request: Request) -> Response:  # type: ignore[override]
        """Completions through the gateway."""
        return await self._gateway.serve(request, "completions", super().completions)

    async def _get_model_id(self, model: str | None) -> str:
        try:
            return await super()._get_model_id(model)
        except HTTPException as exc:
            raise OpenAIHTTPException(
                status_code=exc.status_code,
                message=str(exc.detail),
                type=_ERROR_TYPES.get(exc.status_code, "invalid_request_error"),
            ) from None
