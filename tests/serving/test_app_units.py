"""The ingress's FastAPI app: Ray's error handling as plain ASGI middleware."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient

from serving._config import CorsConfig
from serving.gateway._app import make_app


def test_an_escaped_exception_is_an_openai_error_and_streams_pass_untouched() -> None:
    app = make_app(CorsConfig())

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("/secret/path.py line 12")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[str]:
            for i in range(3):
                yield f"data: {i}\n\n"

        return StreamingResponse(chunks(), media_type="text/event-stream")

    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/boom", headers={"X-Request-Id": "rid-1"})
        assert r.status_code == 500 and set(r.json()) == {"error"}, r.text
        assert "secret" not in r.text and "rid-1" in r.json()["error"]["message"]
        s = client.get("/stream")
        assert s.status_code == 200 and s.text == "data: 0\n\ndata: 1\n\ndata: 2\n\n"


def test_an_openai_4xx_raised_by_the_app_keeps_its_status() -> None:
    """An unknown model (``OpenAIHTTPException`` 404) is not turned into a 500."""
    from ray.llm._internal.serve.core.configs.openai_api_models import OpenAIHTTPException

    app = make_app(CorsConfig())

    @app.get("/missing")
    async def missing() -> None:
        raise OpenAIHTTPException(status_code=404, message="The model `x` does not exist.",
                                  type="NotFoundError")  # fmt: skip

    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/missing")
        assert r.status_code == 404 and "does not exist" in r.text, r.text


def test_a_validation_error_escaping_the_app_is_a_400() -> None:
    """What Ray maps to a client's error (pydantic's) stays a 400 (the fuzz test's
    ``prompt: ''`` case)."""
    from pydantic import BaseModel

    class Body(BaseModel):
        n: int

    app = make_app(CorsConfig())

    @app.get("/invalid")
    async def invalid() -> None:
        Body.model_validate({"n": "x"})

    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/invalid")
        assert r.status_code == 400 and set(r.json()) == {"error"}, r.text
