"""The request the engine gets: Gavel's request id, the swap variant's body, the cap on
a metered key's completion, the usage chunk a stream needs, and Ray's request model.

The prompt estimate and the reservation are taken from the body the engine gets, so a
variant's system prompt is reserved too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import ValidationError
from ray.llm._internal.serve.core.configs.openai_api_models import (
    ChatCompletionRequest,
    CompletionRequest,
)

from serving.gateway._body import cap_completion, completion_cap, token_reserve
from serving.gateway._context import RequestContext
from serving.gateway._refusal import Refusal

if TYPE_CHECKING:
    from serving.gateway._record import GatewaySettings
    from serving.swap._router import SwapRouter

REQUEST_MODELS: dict[str, type[ChatCompletionRequest] | type[CompletionRequest]] = {
    "chat": ChatCompletionRequest,
    "completions": CompletionRequest,
}


def with_priority(
    body: dict[str, object],
    settings: GatewaySettings,
    ctx: RequestContext,
    *,
    at_least: int | None = None,
) -> dict[str, object]:
    """``body`` with the gateway's ``priority`` for the request's source where its engine
    schedules by priority (never below ``at_least``: a shadow's twin's), and without any
    ``priority`` of the client's (a client cannot jump the engine's queue)."""
    out = {k: v for k, v in body.items() if k != "priority"}
    if ctx.model in settings.priority_models:
        own = settings.config.priority.engine.of(ctx.source)
        out["priority"] = own if at_least is None else max(own, at_least)
    return out


def engine_request(endpoint: str, body: dict[str, object]) -> object:
    """Ray's request model of ``body``, or a 400 naming the first bad field."""
    try:
        return REQUEST_MODELS[endpoint].model_validate(body)
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(p) for p in e.get("loc", ())) or "body"
        raise Refusal(400, f"{where}: {e.get('msg')}") from None


class EngineRequestHook:
    """Builds the engine's request and what admission reserves for it."""

    name = "engine_request"

    def __init__(self, router: SwapRouter, settings: GatewaySettings) -> None:
        self._router = router
        self._settings = settings
        self._default = settings.config.limits.default_completion_reserve
        self._context_lens = settings.context_lens

    async def before(self, ctx: RequestContext) -> None:
        body = self._router.engine_body({**ctx.body, "request_id": ctx.request_id}, ctx.model)
        body = with_priority(body, self._settings, ctx)
        ctx.prompt_estimate, ctx.reserve = token_reserve(body, default_completion=self._default)
        if ctx.key is not None and ctx.key.metered:
            cap = completion_cap(
                body,
                default=self._default,
                context_len=self._context_lens.get(ctx.model),
                prompt_est=ctx.prompt_estimate,
            )
            if cap is not None:  # no max_tokens: generate no more than was reserved
                body, ctx.cap = cap_completion(body, cap), cap
        if ctx.stream:
            opts = ctx.data.get("stream_options")
            ctx.pass_usage = isinstance(opts, dict) and bool(opts.get("include_usage"))
            if not ctx.pass_usage:
                # Usage is needed for cost and limits; its chunk is not passed on.
                base = opts if isinstance(opts, dict) else {}
                body["stream_options"] = {**base, "include_usage": True}
        ctx.engine_body = body
        ctx.engine_request = engine_request(ctx.endpoint, body)

    def end(self, ctx: RequestContext) -> None:
        """Nothing is held."""
