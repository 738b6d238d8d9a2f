"""Gavel's extension of ``ray.serve.llm``'s OpenAI ingress: the gateway's routes.

The OpenAI protocol stays Ray Serve LLM's. This subclass wraps its ``chat`` and
``completions`` handlers: it checks the key from the headers before reading the body
(:mod:`._auth`), reads and checks the body itself (:mod:`._body`: size, UTF-8, text a
store can hold, exactly a configured model, caps), checks the scope, reserves the
request's tokens (:mod:`._admission`: from a lease, or with the shared limiter), reads
Gavel's headers (:mod:`._headers`), gives the engine a request id of Gavel's own, and
only then hands Ray's own request model to Ray's handler. The SSE tap (:mod:`._call`),
cost, metrics and capture (:mod:`._record`, :mod:`._capture`) follow the response.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from ray.llm._internal.serve.core.configs.openai_api_models import OpenAIHTTPException
from ray.serve.handle import DeploymentHandle
from ray.serve.llm.ingress import OpenAiIngress

from serving._errors import openai_error
from serving._wire import ApiKey
from serving.gateway._admission import Admitter
from serving.gateway._auth import KeyCache, WrongTokenGuard, authenticate, check_scope
from serving.gateway._body import (
    MAX_TOKENS_HEADER,
    Refusal,
    check_request,
    client_request_id,
    completion_cap,
    parse_body,
    read_body,
    token_reserve,
)
from serving.gateway._budget import OverBudget, RateLimited, budget_ask
from serving.gateway._call import Call, absorb_json, tap
from serving.gateway._capture import CaptureWriter
from serving.gateway._headers import parse_extras
from serving.gateway._metrics import GatewayMetrics
from serving.gateway._metrics_hub import MetricsReporter
from serving.gateway._priority import RETRY_AFTER_S, BackgroundBusy, BackgroundGate
from serving.gateway._record import (
    GatewaySettings,
    elapsed,
    observe,
    prepare_for_storage,
    to_record,
)
from serving.gateway._shadow import REQUEST_MODELS, ShadowRunner
from serving.gateway._swap import ARM_HEADER, SwapRouter
from serving.gateway._swap_state import SwapStateWatcher
from serving.store import Store

log = logging.getLogger("gavel.gateway")


_ERROR_TYPES = {400: "invalid_request_error", 404: "model_not_found"}
_SERVER_ERROR = "The model could not serve this request; it was recorded. Retry shortly."


def _engine_message(message: str) -> str:
    """An engine's 4xx message without Ray's internals (its exception chain)."""
    text = message.removeprefix("Message: ")
    return text.split(" (Request ID:", 1)[0].split(", Internal exception:", 1)[0][:1000]


def _refused(r: Refusal) -> JSONResponse:
    return openai_error(r.status, r.message, type_=r.type_, code=r.code)


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
        self._metrics = GatewayMetrics()
        self._admitter = Admitter(limiter, self._settings.config.limits, self._metrics)
        self._gate = BackgroundGate(self._settings.config.priority, self._metrics)
        self._swap = SwapRouter(self._settings.swap)
        self._shadows = ShadowRunner(self._swap, self._metrics, self._record)
        self._metrics.know_models(sorted(self._settings.roles), self._settings.slos)
        self._reporter = MetricsReporter(hub, self._metrics.registry) if hub else None
        cfg = self._settings.config
        store = Store(self._settings.store_url)
        self._store = store
        self._swap_state = SwapStateWatcher(self._swap, store, self._metrics)
        if self._settings.swap is not None:  # every swap series exists from the start
            self._metrics.shadow_dropped.labels(self._settings.swap.candidate)
        self._keys = KeyCache(
            store, ttl_s=cfg.auth.key_cache_ttl_s, max_entries=cfg.auth.key_cache_size
        )
        self._guard = (
            WrongTokenGuard(
                limit=cfg.auth.wrong_token_limit, window_s=cfg.auth.wrong_token_window_s
            )
            if cfg.auth.wrong_token_limit
            else None
        )
        self._writer: CaptureWriter | None = None
        if cfg.capture.enabled:
            cap = cfg.capture
            self._writer = CaptureWriter(
                store,
                spool_dir=Path(self._settings.spool_dir),
                flush_interval_s=cap.flush_interval_s,
                batch_size=cap.batch_size,
                queue_max=cap.queue_max,
                metrics=self._metrics,
                prepare=lambda r: prepare_for_storage(
                    r, redacting=cap.redact, max_chars=cap.redact_max_chars
                ),
            )

    async def __del__(self) -> None:
        """Graceful shutdown (Serve awaits this): finish the shadow requests in flight and
        flush every captured record."""
        await self._shadows.drain()
        if self._writer is not None:
            await self._writer.close()

    # --- routes Gavel adds ----------------------------------------------------

    async def check_health(self) -> None:
        """Serve's periodic health check. It also starts the background loops (capture's
        flush, which adopts the spool of a gone writer, and the metrics report) on a
        replica that has not served a request yet."""
        if self._writer is not None:
            self._writer.start()
        if self._reporter is not None:
            self._reporter.start()
        self._admitter.start()
        self._swap_state.start()

    async def health(self) -> dict[str, str]:
        """Liveness; open without a key."""
        return {"status": "ok"}

    async def metrics(self) -> Response:
        """Prometheus text exposition of the gateway's metrics: every replica's, summed by
        the hub, and the batch jobs' figures."""
        from prometheus_client import CONTENT_TYPE_LATEST

        down = self._keys.store_ok is False or (
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

    # --- OpenAI routes, wrapped -------------------------------------------------

    async def models(self, request: Request) -> Any:  # type: ignore[override]
        """List models (any valid key)."""
        denied, _ = await self._authenticate(request)
        if denied is not None:
            return denied
        listed = await super().models()
        for card in list(listed.data):  # a swap's variant is listed like its base
            for model in self._settings.roles:
                if self._swap.variant_base(model) == card.id:
                    listed.data.append(card.model_copy(update={"id": model}))
        return listed

    async def model_data(self, model: str, request: Request) -> Any:  # type: ignore[override]
        """One model's card (any valid key); only exactly configured ids exist."""
        denied, _ = await self._authenticate(request)
        if denied is not None:
            return denied
        if model not in self._settings.roles:
            return _refused(Refusal(404, f"No model {model[:128]!r}.", code="model_not_found"))
        base = self._swap.variant_base(model)
        if base is not None:
            return (await super().model_data(base)).model_copy(update={"id": model})
        return await super().model_data(model)

    async def chat(self, request: Request) -> Response:  # type: ignore[override]
        """Chat completions through the gateway."""
        return await self._serve(request, "chat", super().chat)

    async def completions(self, request: Request) -> Response:  # type: ignore[override]
        """Completions through the gateway."""
        return await self._serve(request, "completions", super().completions)

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
        if not self._settings.config.auth.enabled:
            return None, None
        client = request.client.host if request.client is not None else ""
        return await authenticate(
            request.headers.get("authorization"),
            self._keys,
            self._metrics,
            guard=self._guard,
            client=client,
        )

    async def _serve(
        self,
        request: Request,
        endpoint: str,
        handler: Callable[[Any, Request], Awaitable[Response]],
    ) -> Response:
        denied, key = await self._authenticate(request)
        if denied is not None:
            return denied
        cfg = self._settings.config
        gavel_id = uuid.uuid4().hex
        cap: int | None = None
        gated = False  # a background slot was taken (given back when the request ends)
        try:
            raw = await read_body(request, cfg.limits.max_body_bytes)
            data = parse_body(raw, max_depth=cfg.limits.max_json_depth)
            model, role = check_request(
                data, endpoint=endpoint, roles=self._settings.roles, limits=cfg.limits
            )
            if key is not None:
                denied = check_scope(key, model, role, self._metrics)
                if denied is not None:
                    return denied
            arm = self._swap.arm(model, key)  # under a swap, the arm that answers
            served = self._swap.served(model, arm)
            extras, bad = parse_extras(request.headers, key, steering=cfg.steering_metadata)
            if bad is not None or extras is None:
                return bad  # type: ignore[return-value]
            gated = await self._gate.enter(extras.source)
            client_id = client_request_id(
                data, request.headers.get("x-request-id"), cfg.capture.client_request_id_max
            )
            captured = {k: v for k, v in data.items() if k != "request_id"}
            prompt_est, reserve = token_reserve(
                data, default_completion=cfg.limits.default_completion_reserve
            )
            client_wants_usage = True
            engine_data = {**captured, "request_id": gavel_id}
            if key is not None and key.metered:
                cap = completion_cap(
                    data,
                    default=cfg.limits.default_completion_reserve,
                    context_len=self._settings.context_lens.get(served),
                    prompt_est=prompt_est,
                )
                if cap is not None:  # no max_tokens: generate no more than was reserved
                    engine_data["max_tokens"] = cap
            if data.get("stream"):
                opts = data.get("stream_options")
                client_wants_usage = isinstance(opts, dict) and bool(opts.get("include_usage"))
                if not client_wants_usage:
                    # Usage is needed for cost and limits; its chunk is not passed on.
                    base = opts if isinstance(opts, dict) else {}
                    engine_data["stream_options"] = {**base, "include_usage": True}
            engine_data = self._swap.engine_body(engine_data, served)
            try:
                body = REQUEST_MODELS[endpoint].model_validate(engine_data)
            except ValidationError as exc:
                e = exc.errors()[0]
                where = ".".join(str(p) for p in e.get("loc", ())) or "body"
                raise Refusal(400, f"{where}: {e.get('msg')}") from None
            if key is not None:
                ask = budget_ask(key, self._settings.prices.get(served), prompt_est, reserve)
                await self._admitter.admit(key, reserve, gavel_id, ask)
        except BaseException as exc:
            if gated:
                self._gate.leave()
            if isinstance(exc, RateLimited | OverBudget):
                return exc.response()
            if isinstance(exc, Refusal):
                return _refused(exc)
            if isinstance(exc, BackgroundBusy):
                return openai_error(
                    429, f"Background traffic waited {exc.waited_s:g} s behind production; "
                    "retry.", type_="rate_limit_error", code="background_busy",
                    headers={"Retry-After": str(RETRY_AFTER_S)},
                )  # fmt: skip
            raise
        call = Call(
            request_id=gavel_id,
            key=key,
            model=served,
            role=role,
            endpoint=endpoint,
            stream=bool(data.get("stream")),
            body=captured,
            metadata=extras.metadata,
            source=extras.source,
            client_request_id=client_id,
            prompt_estimate=prompt_est,
            reservation=gavel_id if key is not None and key.tpm is not None else None,
            background_slot=gated,
            arm=arm,
        )
        if self._swap.wants_shadow(arm):  # sent to the candidate once this one has ended
            call.after = lambda c: self._shadows.send(c, captured, handler)
        if extras.ts is not None:
            call.ts = extras.ts
        self._metrics.in_flight.labels(served).inc()
        task = asyncio.current_task()
        if task is not None:  # the one ending that runs whatever happens to the request
            task.add_done_callback(lambda _: call.end_if_abandoned(self._record))
        try:
            resp = await handler(body, request)
        except OpenAIHTTPException as exc:
            call.status, call.error = exc.status_code, exc.message
            self._finish(call)
            if exc.status_code >= 500:
                return openai_error(500, _SERVER_ERROR, type_="server_error")
            exc.message = _engine_message(exc.message)  # Ray's shape, without its internals
            raise
        except Exception as exc:
            call.status, call.error = 500, f"{type(exc).__name__}: {exc}"
            self._finish(call)
            log.exception("model call failed")
            return openai_error(500, _SERVER_ERROR, type_="server_error")
        except asyncio.CancelledError:
            # The client went away before the first token (a non-streaming request, or a
            # stream before its first chunk): settle, capture with 499, count it out.
            call.status, call.error = 499, "client disconnected"
            call.settle_usage()
            self._finish(call)
            raise
        if cap is not None:
            resp.headers[MAX_TOKENS_HEADER] = str(cap)
        if arm is not None:
            resp.headers[ARM_HEADER] = arm
        if isinstance(resp, StreamingResponse):
            resp.body_iterator = tap(
                resp.body_iterator, call, pass_usage=client_wants_usage, finish=self._record
            )
            return resp
        call.status = resp.status_code
        absorb_json(call, bytes(resp.body))
        self._finish(call)
        return resp

    def _finish(self, call: Call) -> None:
        """End the request: :meth:`_record` it, exactly once whichever path gets here."""
        call.end(self._record)

    def _record(self, call: Call) -> None:
        """Record metrics, settle the key's tokens, and hand the record to capture."""
        e2e = elapsed(call)
        if call.background_slot:
            self._gate.leave()
        price = self._settings.prices.get(call.model)
        cost = price.cost(call.prompt_tokens, call.completion_tokens) if price else None
        observe(call, self._metrics, cost, e2e)
        if self._reporter is not None:
            self._reporter.start()
        key = call.key
        used = (call.prompt_tokens or 0) + (call.completion_tokens or 0)
        if key is not None:
            self._admitter.settle(key, call.reservation, used, cost)
        if self._writer is not None:
            self._writer.start()
            self._writer.submit(to_record(call, self._settings, cost=cost, e2e_s=e2e))
        if call.after is not None and call.status < 400:
            call.after(call)
