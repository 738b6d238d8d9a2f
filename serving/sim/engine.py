"""The simulated engine: Ray Serve LLM's ``LLMEngine`` interface over :class:`Scheduler`.

``LLMServer`` takes it through its ``engine_cls`` injection point, so everything above
the engine is the real stack (proxy, ingress and gateway, limiter, capture, metrics,
Ray); only the GPU is simulated, at the speed its profile says. It answers chat and
completions, streamed or not, with usage, ``n`` choices and structured outputs (a valid
answer for the choice or schema), in deterministic text. The profile travels in the
``LLMConfig``'s ``experimental_configs`` under :data:`PROFILE_KEY`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncGenerator
from typing import Any

from ray.llm._internal.serve.core.configs.openai_api_models import (
    ChatCompletionResponse,
    CompletionResponse,
    ErrorInfo,
    ErrorResponse,
)
from ray.llm._internal.serve.core.engine.protocol import LLMEngine

from serving.sim._profiles import SimProfile
from serving.sim._scheduler import Scheduler, TooLarge
from serving.sim._text import count_tokens, seed_of, structured_answer, words

PROFILE_KEY = "gavel_simulate"
"""Key of the profile (a :class:`SimProfile` as a dict) in ``experimental_configs``."""


def _error(message: str, code: int = 400) -> ErrorResponse:
    kind = "BadRequestError" if code < 500 else "InternalServerError"
    return ErrorResponse(error=ErrorInfo(message=message, type=kind, code=code))


def _chat_prompt(messages: list[Any]) -> str:
    parts: list[str] = []
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else getattr(m, "content", None)
        if isinstance(content, list):
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        parts.append(str(content or ""))
    return "\n".join(parts)


def _choices(n: int, field: str, value: Any, finish: str | None) -> list[dict[str, Any]]:
    return [{"index": i, field: value, "logprobs": None, "finish_reason": finish} for i in range(n)]


class _Plan:
    """What one request will produce: its prompt size, length, text and finish reason."""

    def __init__(self, request: Any, prompt: str, profile: SimProfile, *, overhead: int) -> None:
        self.prompt_tokens = count_tokens(prompt) + overhead
        self.n = int(getattr(request, "n", None) or 1)
        limit = getattr(request, "max_completion_tokens", None) or request.max_tokens
        room = profile.max_model_len - self.prompt_tokens
        if room < 1 or (limit is not None and limit > room):
            raise TooLarge(
                f"This model's maximum context length is {profile.max_model_len} tokens. "
                f"However, you requested {self.prompt_tokens + (limit or 1)} tokens "
                f"({self.prompt_tokens} in the messages, {limit or 1} in the completion)."
            )
        limit = room if limit is None else int(limit)
        seed = seed_of(prompt, getattr(request, "seed", None))
        fixed = structured_answer(
            getattr(request, "structured_outputs", None), getattr(request, "response_format", None)
        )
        if fixed is not None:
            pieces = [fixed[i : i + 4] for i in range(0, len(fixed), 4)] or [""]
        else:
            span = profile.output.max_tokens - profile.output.min_tokens + 1
            natural = profile.output.min_tokens + seed % span
            wanted = limit if getattr(request, "ignore_eos", False) else natural
            wanted = max(wanted, int(getattr(request, "min_tokens", 0) or 0))
            pieces = words(seed, min(wanted, limit))
        self.finish = (
            "length" if len(pieces) > limit or (fixed is None and len(pieces) >= limit) else "stop"
        )
        self.pieces = pieces[:limit]

    @property
    def output_tokens(self) -> int:
        return len(self.pieces)

    def usage(self) -> dict[str, int]:
        out = self.output_tokens * self.n
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": out,
            "total_tokens": self.prompt_tokens + out,
        }


class SimEngine(LLMEngine):
    """An engine that simulates a GPU replica's latency; see :mod:`serving.sim`."""

    def __init__(self, llm_config: Any) -> None:
        self._config = llm_config
        self.profile = SimProfile.model_validate(llm_config.experimental_configs[PROFILE_KEY])
        policy = (getattr(llm_config, "engine_kwargs", None) or {}).get("scheduling_policy")
        self.scheduler = Scheduler(self.profile, priority=policy == "priority")
        self._model = llm_config.model_id

    async def start(self) -> None:
        """Nothing to load: the simulated engine is ready at once."""

    def routing_stats(self) -> dict[str, Any]:
        """The queue, for Serve's request router."""
        return {"running": self.scheduler.running, "waiting": self.scheduler.waiting}

    async def resolve_lora(self, lora_model: Any) -> None:
        """LoRA adapters are not simulated."""
        raise NotImplementedError("the simulated engine serves no LoRA adapters")

    async def reset_prefix_cache(self) -> None:
        """No prefix cache is simulated."""

    async def check_health(self) -> None:
        """Always healthy."""

    async def build_asgi_app(self) -> Any:
        """The engine's own OpenAI server, which the replica serves itself on Ray's
        direct-streaming path (``RAY_SERVE_LLM_ENABLE_DIRECT_STREAMING``)."""
        from serving.sim._asgi import openai_app

        return openai_app(self, self._model)

    async def chat(  # type: ignore[override]
        self, request: Any, raw_request_info: Any = None
    ) -> AsyncGenerator[Any, None]:
        """A chat completion (see :class:`LLMEngine.chat`)."""
        async for item in self._run(request, _chat_prompt(request.messages), chat=True):
            yield item

    async def completions(  # type: ignore[override]
        self, request: Any, raw_request_info: Any = None
    ) -> AsyncGenerator[Any, None]:
        """A completion (see :class:`LLMEngine.completions`)."""
        prompt = request.prompt
        text = prompt if isinstance(prompt, str) else json.dumps(prompt)
        async for item in self._run(request, text, chat=False):
            yield item

    async def embeddings(  # type: ignore[override]
        self, request: Any, raw_request_info: Any = None
    ) -> AsyncGenerator[Any, None]:
        """Not simulated: an OpenAI-style 400."""
        yield _error("the simulated engine serves no embeddings")

    async def transcriptions(  # type: ignore[override]
        self, request: Any, raw_request_info: Any = None
    ) -> AsyncGenerator[Any, None]:
        """Not simulated: an OpenAI-style 400."""
        yield _error("the simulated engine serves no transcriptions")

    async def _run(self, request: Any, prompt: str, *, chat: bool) -> AsyncGenerator[Any, None]:
        priority = int(getattr(request, "priority", 0) or 0)
        if priority and not self.scheduler.priority:  # as vLLM's input processor says it
            yield _error(f"Got priority {priority} but Priority scheduling is not enabled.")
            return
        try:
            plan = _Plan(request, prompt, self.profile, overhead=4 if chat else 0)
            steps = self.scheduler.generate(
                plan.prompt_tokens, plan.output_tokens, width=plan.n, priority=priority
            )
        except TooLarge as e:
            yield _error(str(e))
            return
        # As vLLM's OpenAI server: the response id carries the request's own id.
        own = getattr(request, "request_id", None) or uuid.uuid4().hex
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{own}"
        created = int(time.time())
        stream = bool(getattr(request, "stream", False))
        if not stream:
            try:
                async for _ in steps:
                    pass
            except TooLarge as e:
                yield _error(str(e))
                return
            yield self._response(plan, rid, created, chat=chat)
            return
        opts = getattr(request, "stream_options", None)
        async for chunk in self._stream(plan, steps, rid, created, chat=chat):
            yield chunk
        if opts is not None and opts.include_usage:
            yield self._sse(rid, created, chat, [], usage=plan.usage())
        yield "data: [DONE]\n\n"

    async def _stream(
        self, plan: _Plan, steps: Any, rid: str, created: int, *, chat: bool
    ) -> AsyncGenerator[str, None]:
        sent = 0
        try:
            async for produced in steps:
                if chat and sent == 0:  # vLLM sends the role with the first token
                    role = {"role": "assistant", "content": ""}
                    yield self._sse(rid, created, chat, _choices(plan.n, "delta", role, None))
                text = "".join(plan.pieces[sent:produced])
                sent = produced
                done = produced >= plan.output_tokens
                finish = plan.finish if done else None
                if chat:
                    choices = _choices(plan.n, "delta", {"content": text}, finish)
                else:
                    choices = _choices(plan.n, "text", text, finish)
                yield self._sse(rid, created, chat, choices)
        except TooLarge as e:
            yield f"data: {_error(str(e)).model_dump_json()}\n\n"

    def _sse(
        self, rid: str, created: int, chat: bool, choices: list[Any], usage: Any = None
    ) -> str:
        body = {
            "id": rid,
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": created,
            "model": self._model,
            "choices": choices,
        }
        if usage is not None:
            body["usage"] = usage
        return f"data: {json.dumps(body)}\n\n"

    def _response(self, plan: _Plan, rid: str, created: int, *, chat: bool) -> Any:
        text = "".join(plan.pieces)
        body: dict[str, Any] = {"id": rid, "created": created, "model": self._model,
                                "usage": plan.usage()}  # fmt: skip
        if chat:
            message = {"role": "assistant", "content": text}
            body.update(object="chat.completion",
                        choices=_choices(plan.n, "message", message, plan.finish))  # fmt: skip
            return ChatCompletionResponse.model_validate(body)
        body.update(object="text_completion", choices=_choices(plan.n, "text", text, plan.finish))
        return CompletionResponse.model_validate(body)
