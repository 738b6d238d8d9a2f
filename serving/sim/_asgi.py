"""The simulated engine's own OpenAI server (FastAPI): what a replica serves on Ray's
direct-streaming path (``LLMEngine.build_asgi_app``), where the request skips every Serve
hop, and the capacity benchmark's floor (``loadtest.bench.sim_direct``).

It parses a request with Ray Serve LLM's protocol models (vLLM's) and answers with the
engine's own chunks, as vLLM's OpenAI server does around its engine.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError


class _Engine(Protocol):
    def chat(self, request: Any, raw_request_info: Any = None) -> AsyncGenerator[Any, None]: ...

    def completions(
        self, request: Any, raw_request_info: Any = None
    ) -> AsyncGenerator[Any, None]: ...


def _invalid(exc: Exception) -> JSONResponse:
    body = {"error": {"message": str(exc)[:2000], "type": "BadRequestError", "code": 400}}
    return JSONResponse(body, status_code=400)


async def _answer(stream: AsyncGenerator[Any, None], streamed: bool) -> Response:
    from ray.llm._internal.serve.core.configs.openai_api_models import ErrorResponse

    first: Any = await stream.__anext__()
    if isinstance(first, ErrorResponse):
        return JSONResponse(first.model_dump(mode="json"), status_code=first.error.code)
    if not streamed:
        return JSONResponse(first.model_dump(mode="json"))

    async def chunks() -> AsyncGenerator[str, None]:
        yield first
        async for chunk in stream:
            yield chunk

    return StreamingResponse(chunks(), media_type="text/event-stream")


def openai_app(engine: _Engine, model_id: str) -> FastAPI:
    """``/v1/chat/completions``, ``/v1/completions``, ``/v1/models`` and ``/health`` over
    ``engine`` (a :class:`~serving.sim.engine.SimEngine`)."""
    from ray.llm._internal.serve.core.configs.openai_api_models import (
        ChatCompletionRequest,
        CompletionRequest,
    )

    app = FastAPI()

    def route(body_model: Any, call: Callable[[Any], AsyncGenerator[Any, None]]) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                body = body_model.model_validate(await request.json())
            except (ValidationError, ValueError) as exc:
                return _invalid(exc)
            return await _answer(call(body), bool(body.stream))

        return endpoint

    app.post("/v1/chat/completions")(route(ChatCompletionRequest, engine.chat))
    app.post("/v1/completions")(route(CompletionRequest, engine.completions))

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model_id, "object": "model"}]}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
