"""The floor of the capacity benchmark: the simulated engine behind a minimal
single-process OpenAI server (FastAPI, vLLM's protocol classes, one uvicorn worker).

``python -m loadtest.bench.sim_direct --port 8100 --profile llama-3.1-8b-h100``
"""

from __future__ import annotations

import argparse
from types import SimpleNamespace
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from serving.sim import PROFILES


def make_app(profile: str, *, model_id: str = "direct") -> FastAPI:
    """An OpenAI chat endpoint over one :class:`~serving.sim.engine.SimEngine`."""
    from ray.llm._internal.serve.core.configs.openai_api_models import (
        ChatCompletionRequest,
        ErrorResponse,
    )

    from serving.sim.engine import PROFILE_KEY, SimEngine

    config = SimpleNamespace(
        model_id=model_id, experimental_configs={PROFILE_KEY: PROFILES[profile].model_dump()}
    )
    engine = SimEngine(config)
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = ChatCompletionRequest.model_validate(await request.json())
        stream = engine.chat(body)
        if body.stream:
            return StreamingResponse(stream, media_type="text/event-stream")
        first: Any = await stream.__anext__()
        status = first.error.code if isinstance(first, ErrorResponse) else 200
        return JSONResponse(first.model_dump(mode="json"), status_code=status)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    """Serve until killed."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--profile", default="llama-3.1-8b-h100", choices=sorted(PROFILES))
    args = parser.parse_args()
    uvicorn.run(make_app(args.profile), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
