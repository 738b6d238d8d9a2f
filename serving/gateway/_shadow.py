"""Shadow requests: a production request, once answered, sent again to the swap's
candidate in the background. Never returned to the client, never counted against its
key, captured with ``source: shadow``, ``arm: candidate`` and the production record's id
as ``twin_id``. Dropped (and counted) when the replica's shadow slots are all taken."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from ray.llm._internal.serve.core.configs.openai_api_models import (
    ChatCompletionRequest,
    CompletionRequest,
    OpenAIHTTPException,
)

from serving.gateway._call import Call, absorb_json
from serving.gateway._metrics import GatewayMetrics
from serving.gateway._swap import SwapRouter

log = logging.getLogger("gavel.gateway")

REQUEST_MODELS: dict[str, type[ChatCompletionRequest] | type[CompletionRequest]] = {
    "chat": ChatCompletionRequest,
    "completions": CompletionRequest,
}
Handler = Callable[[Any, Any], Awaitable[Any]]
_NOT_SENT = frozenset({"stream", "stream_options", "request_id"})


class ShadowRunner:
    """The shadow requests of one ingress replica."""

    def __init__(
        self, router: SwapRouter, metrics: GatewayMetrics, record: Callable[[Call], None]
    ) -> None:
        """``record`` ends a call (metrics, capture); :meth:`Call.end` runs it once."""
        self._router = router
        self._metrics = metrics
        self._record = record
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, twin: Call, body: dict[str, Any], handler: Handler) -> None:
        """Send ``twin``'s request to the candidate in the background, or drop it."""
        swap = self._router.swap
        if swap is None:
            return
        if not self._router.take_shadow_slot():
            self._metrics.shadow_dropped.labels(swap.candidate).inc()
            return
        task = asyncio.get_running_loop().create_task(self._run(twin, body, handler))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, twin: Call, body: dict[str, Any], handler: Handler) -> None:
        candidate = self._router.swap.candidate if self._router.swap else twin.model
        sent = {k: v for k, v in body.items() if k not in _NOT_SENT}
        call = Call(
            request_id=uuid.uuid4().hex,
            key=None,  # never counted against the client's key
            model=candidate,
            role=twin.role,
            endpoint=twin.endpoint,
            stream=False,
            body={**sent, "model": candidate},
            source="shadow",
            metadata=twin.metadata,
            arm="candidate",
            twin_id=twin.request_id,
        )
        self._metrics.in_flight.labels(candidate).inc()
        try:
            data = self._router.engine_body({**sent, "request_id": call.request_id}, candidate)
            request = REQUEST_MODELS[twin.endpoint].model_validate(data)
            resp = await handler(request, None)
            call.status = resp.status_code
            absorb_json(call, bytes(resp.body))
        except OpenAIHTTPException as exc:
            call.status, call.error = exc.status_code, exc.message
        except Exception as exc:  # a shadow never fails production; it is recorded
            log.warning("shadow request failed", exc_info=True)
            call.status, call.error = 500, f"{type(exc).__name__}: {exc}"
        finally:
            self._router.give_shadow_slot()
            call.end(self._record)

    async def drain(self) -> None:
        """Wait for the shadow requests in flight (graceful shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
