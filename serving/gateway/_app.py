"""The FastAPI app the ingress is served on: Ray's own middleware, without the open doors.

Ray Serve LLM's default app serves ``/docs``, ``/redoc`` and ``/openapi.json`` to anyone
and answers CORS for every origin with credentials. Gavel builds the same app with the
same middleware (exception handling, HTTP metrics, request ids) but serves no docs, and
allows cross-origin calls only from the origins the config lists.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving._config import CorsConfig

log = logging.getLogger("gavel.gateway")


class CatchErrors:
    """Ray Serve LLM's application-exception middleware as plain ASGI: an exception
    raised before the response starts becomes an OpenAI-style error response.

    Ray's own (``add_exception_handling_middleware``) is a Starlette
    ``BaseHTTPMiddleware``, which copies every streamed chunk through a memory stream
    and a task group: a cost per token that the profile of the gateway at c=64 showed.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:  # CancelledError is a BaseException: it passes
            if started:
                raise
            response = await _error_response(scope, exc)
            await response(scope, receive, send)


async def _error_response(scope: Scope, exc: Exception) -> Response:
    """An OpenAI-style error for ``exc``: Ray's where Ray's status is a 4xx (an invalid
    body, an unknown model, an engine's 400, a validation error); otherwise a 500
    that names the request id and nothing of the exception (logged here), where Ray's
    own would quote the exception's message to the client."""
    from fastapi.exceptions import RequestValidationError
    from ray.llm._internal.serve.core.ingress.middleware import (
        _handle_validation_error,
        get_request_id,
    )
    from ray.llm._internal.serve.utils.server_utils import get_response_for_error

    request = Request(scope)
    if isinstance(exc, RequestValidationError):
        return await _handle_validation_error(request, exc)
    rid = get_request_id(request)
    error = get_response_for_error(exc, rid)  # Ray's status: 4xx for a client's error
    if error.error.code < 500:
        return JSONResponse(error.model_dump(), status_code=error.error.code)
    log.error("unhandled error in request %s", rid, exc_info=exc)
    message = f"Internal server error (request id {rid}); it is logged on the gateway."
    body = {"error": {"message": message, "type": "server_error", "code": 500}}
    return JSONResponse(body, status_code=500)


def make_app(cors: CorsConfig) -> FastAPI:
    """The ingress's FastAPI app (middleware order as in ``ray.serve.llm``'s ``init``)."""
    from fastapi.exceptions import RequestValidationError
    from ray.llm._internal.serve.core.ingress.middleware import (
        SetRequestIdMiddleware,
        _handle_validation_error,
        _uncaught_exception_handler,
    )
    from ray.llm._internal.serve.observability.metrics.fast_api_metrics import (
        add_http_metrics_middleware,
        metrics_lifespan,
    )

    app = FastAPI(lifespan=metrics_lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(Exception, _uncaught_exception_handler)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)  # type: ignore[arg-type]
    app.add_middleware(CatchErrors)
    if cors.allow_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors.allow_origins),
            allow_credentials=True,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Gavel-Metadata"],
        )
    add_http_metrics_middleware(app)
    app.add_middleware(SetRequestIdMiddleware)
    return app


GAVEL_ENDPOINTS: dict[str, Callable[[Any], Callable[..., Any]]] = {
    "models": lambda app: app.get("/v1/models"),
    "model_data": lambda app: app.get("/v1/models/{model:path}"),
    "completions": lambda app: app.post("/v1/completions"),
    "chat": lambda app: app.post("/v1/chat/completions"),
    "feedback": lambda app: app.post("/v1/feedback"),
    "health": lambda app: app.get("/health"),
    "metrics": lambda app: app.get("/metrics"),
}
"""The routes Gavel serves: Ray's OpenAI routes that go through the gateway, plus its own."""
