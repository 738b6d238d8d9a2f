"""The gateway inside the application model's LLM replica (``http.proxy: direct``).

On Ray's direct-streaming path (HAProxy, Ray 2.56+) an LLM replica is its own HTTP
ingress: HAProxy asks the app's ``LLMRouter`` for a replica and forwards the request to
that replica's HTTP server, with no Serve hop between the client and the engine. Gavel
keeps that path. :class:`GavelLLMServer` is Ray's ``LLMServer`` whose late-bound ASGI app
(``__serve_build_asgi_app__``) is the gateway's: the same routes, hooks and handlers as
the ingress deployment's (:class:`~._ingress.GavelIngress`, here a plain object in the
replica). Requests for the replica's own model reach its engine in process
(:class:`LocalHandle`); every other model (the judge, a swap's candidate) through its
deployment's Serve handle, as from the ingress. One endpoint serves every model.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from ray.llm._internal.serve.core.server.llm_server import LLMServer

log = logging.getLogger("gavel.gateway")


class LocalHandle:
    """A stand-in for a Serve handle to the replica's own ``LLMServer``: ``options()``
    changes nothing, and ``handle.chat.remote(body, raw)`` streams ``server.chat(body,
    raw)`` in process (what the handle would stream across the replica boundary)."""

    def __init__(self, server: Any) -> None:
        self._server = server

    def options(self, **_: Any) -> LocalHandle:
        """The same handle (stream, session and routing options mean nothing here)."""
        return self

    def __getattr__(self, method: str) -> _LocalMethod:
        if method.startswith("_"):
            raise AttributeError(method)
        return _LocalMethod(getattr(self._server, method))


class _LocalMethod:
    """One method of :class:`LocalHandle`, called as a Serve handle's method is."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self._fn = fn

    def remote(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """The method's results, streamed as the handle's generator streams them."""
        return _stream(self._fn, args, kwargs)


async def _stream(fn: Callable[..., Any], args: Any, kwargs: Any) -> AsyncIterator[Any]:
    results = await fn(*args, **kwargs)
    if not hasattr(results, "__aiter__"):
        yield results
        return
    try:
        async for item in results:
            yield item
    finally:  # a client gone mid-stream ends the engine's request too
        close = getattr(results, "aclose", None)
        if close is not None:
            await close()


class GavelLLMServer(LLMServer):
    """Ray's ``LLMServer`` for the application model, serving the gateway's HTTP app.

    Constructed by Serve with the model's ``LLMConfig`` and the ingress's arguments:
    the other models' deployments and cards, the gateway's settings, the limiter and the
    metrics hub, and the CORS origins. The gateway is built before the engine loads, so
    a bad store or config fails the replica at once, not after the weights.
    """

    async def __init__(  # type: ignore[misc]
        self,
        llm_config: Any,
        *,
        llm_deployments: dict[str, Any],
        model_cards: dict[str, Any],
        gateway: dict[str, Any],
        cors: dict[str, Any],
        limiter: Any = None,
        hub: Any = None,
        engine_cls: Any = None,
    ) -> None:
        from serving.gateway._ingress import GavelIngress

        handles = {**llm_deployments, llm_config.model_id: LocalHandle(self)}
        self._ingress = GavelIngress(
            handles, model_cards, gateway=gateway, limiter=limiter, hub=hub
        )
        self._cors = cors
        await super().__init__(llm_config, engine_cls=engine_cls)

    async def __serve_build_asgi_app__(self) -> Any:
        """The gateway's FastAPI app, its routes bound to this replica's ingress object."""
        from serving._config import CorsConfig
        from serving.gateway._app import GAVEL_ENDPOINTS, make_app

        app = make_app(CorsConfig.model_validate(self._cors))
        for name, route in GAVEL_ENDPOINTS.items():
            route(app)(getattr(self._ingress, name))
        return app

    def _batch_output_stream(
        self, generator: AsyncGenerator[Any, None]
    ) -> AsyncGenerator[Any, None]:
        """No stream batching: it amortises the Serve hop to an ingress, and here there is
        none (batching only delays tokens; Ray's own direct path streams unbatched)."""
        return _unbatched(generator)

    async def _maybe_resolve_lora_from_multiplex(self) -> None:
        """Nothing: Gavel serves no LoRA adapters, and on this path the request's Serve
        context is the client's HTTP request, whose multiplexing header (HAProxy strips
        only its exact spellings) must not reach the engine."""

    async def check_health(self) -> None:
        """The engine's health, and the gateway's background loops started."""
        await super().check_health()
        await self._ingress.check_health()

    async def __del__(self) -> None:
        """Finish the shadows in flight and flush capture (what is left stays in the
        spool, adopted by the next writer), then shut the engine down."""
        ingress = getattr(self, "_ingress", None)
        try:
            if ingress is not None:
                await asyncio.wait_for(ingress.close(), timeout=CLOSE_TIMEOUT_S)
        except Exception:  # the engine still shuts down
            log.exception("gateway close failed")
        await super().__del__()


CLOSE_TIMEOUT_S = 10.0
"""How long a stopping replica's gateway may take to drain shadows and flush capture,
inside Serve's graceful shutdown (the engine's own shutdown comes after it)."""


async def _unbatched(generator: AsyncIterator[Any]) -> AsyncGenerator[list[Any], None]:
    """The engine's stream one item at a time, as Ray's batcher yields them (in lists);
    the engine's request ends when this stream does (a client gone included)."""
    try:
        async for item in generator:
            yield [item]
    finally:
        close = getattr(generator, "aclose", None)
        if close is not None:
            await close()
