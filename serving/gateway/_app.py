"""The FastAPI app the ingress is served on: Ray's own middleware, without the open doors.

Ray Serve LLM's default app serves ``/docs``, ``/redoc`` and ``/openapi.json`` to anyone
and answers CORS for every origin with credentials. Gavel builds the same app with the
same middleware (exception handling, HTTP metrics, request ids) but serves no docs, and
allows cross-origin calls only from the origins the config lists.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from serving._config import CorsConfig


def make_app(cors: CorsConfig) -> FastAPI:
    """The ingress's FastAPI app (middleware order as in ``ray.serve.llm``'s ``init``)."""
    from ray.llm._internal.serve.core.ingress.middleware import (
        SetRequestIdMiddleware,
        add_exception_handling_middleware,
    )
    from ray.llm._internal.serve.observability.metrics.fast_api_metrics import (
        add_http_metrics_middleware,
        metrics_lifespan,
    )

    app = FastAPI(lifespan=metrics_lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    add_exception_handling_middleware(app)
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
