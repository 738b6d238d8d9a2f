"""The gateway's units composed in-process: the real hook chain, the real limiter logic
(:class:`RateLimiter`'s class, its journal in memory), a real SQLite store, and a fake
engine at the boundary where Ray's handler would be.

The fake engine answers like vLLM behind Ray Serve LLM: an id that contains the request
id, usage, a 400 for ``min_tokens`` above ``max_tokens``; it streams SSE chunks, and can
be told to fail or to hang.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.responses import JSONResponse, Response, StreamingResponse
from ray.llm._internal.serve.core.configs.openai_api_models import OpenAIHTTPException
from starlette.requests import Request

from serving._config import GatewayConfig, PriceConfig
from serving.gateway._gateway import Gateway, make_parts
from serving.gateway._limits import RateLimiter
from serving.gateway._record import GatewaySettings
from serving.store import Store
from serving.swap._config import SwapConfig
from tests.serving.test_limits_units import MemoryKv

PRICE = PriceConfig(input_per_mtok=1000.0, output_per_mtok=1000.0)
"""USD 0.001 a token: budgets of cents are exercised by a few requests."""


class _Method:
    def __init__(self, owner: LimiterHandle, name: str) -> None:
        self._owner, self._name = owner, name

    def remote(self, *args: Any) -> Any:
        self._owner.calls[self._name] = self._owner.calls.get(self._name, 0) + 1
        fn = getattr(self._owner.limiter, self._name)
        # Shielded: a caller that stops waiting does not stop the actor's work.
        task = asyncio.ensure_future(self._owner.delayed(fn(*args)))
        self._owner.pending.add(task)
        task.add_done_callback(self._owner.pending.discard)
        return asyncio.shield(task)


class LimiterHandle:
    """A Serve handle's shape over a real :class:`RateLimiter` object; ``delay_s`` makes
    it slow (a limiter that times out), ``restart()`` replays its journal."""

    def __init__(self, kv: MemoryKv | None = None) -> None:
        self.kv = kv or MemoryKv()
        self.limiter = RateLimiter.func_or_class(None, journal=self.kv)  # type: ignore[attr-defined]
        self.calls: dict[str, int] = {}
        self.delay_s = 0.0
        self.pending: set[asyncio.Future[Any]] = set()
        """Messages on their way to the limiter."""

    async def delayed(self, coro: Any) -> Any:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return await coro

    def restart(self) -> None:
        self.limiter = RateLimiter.func_or_class(None, journal=self.kv)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> _Method:
        return _Method(self, name)


@dataclass
class FakeEngine:
    """Ray's handler of one endpoint, answering like vLLM would."""

    words: int = 12
    """Completion length when ``max_tokens`` allows it."""
    fail: bool = False
    hang: bool = False
    seen: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    """The HTTP headers Ray would pass on to the engine, per request."""

    async def __call__(self, req: Any, raw: Any) -> Response:
        body = req.model_dump(exclude_unset=True)
        self.seen.append(body)
        self.headers.append(dict(raw.headers) if raw is not None else {})
        if self.hang:
            await asyncio.sleep(3600)
        if self.fail:
            raise RuntimeError("engine died")
        cap = body.get("max_tokens") or 10_000
        floor = body.get("min_tokens") or 0
        if floor > cap:
            raise OpenAIHTTPException(400, f"min_tokens must be <= max_tokens={cap}", "x")
        n = max(min(self.words, cap), floor)
        prompt = math.ceil(len(json.dumps(body.get("messages") or body.get("prompt"))) / 4)
        rid = f"chatcmpl-{body.get('request_id')}"
        usage = {"prompt_tokens": prompt, "completion_tokens": n, "total_tokens": prompt + n}
        if not body.get("stream"):
            return JSONResponse({"id": rid, "choices": [
                {"index": 0, "message": {"content": "tok " * n}, "finish_reason": "length"}
            ], "usage": usage})  # fmt: skip
        return StreamingResponse(_sse(rid, n, usage), media_type="text/event-stream")


async def _sse(rid: str, n: int, usage: dict[str, int]) -> AsyncIterator[str]:
    for _ in range(n):
        chunk = {"id": rid, "choices": [{"index": 0, "delta": {"content": "tok "}}]}
        yield f"data: {json.dumps(chunk)}\n\n"
        await asyncio.sleep(0)
    yield f"data: {json.dumps({'id': rid, 'choices': [], 'usage': usage})}\n\n"
    yield "data: [DONE]\n\n"


def http_request(
    body: dict[str, Any] | bytes,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    client: str = "10.0.0.1",
    path: str = "/v1/chat/completions",
) -> Request:
    """A Starlette request as the ingress gets it."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    hdrs = {"content-type": "application/json", **(headers or {})}
    if token is not None:
        hdrs["authorization"] = f"Bearer {token}"
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    scope = {
        "type": "http", "method": "POST", "path": path, "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in hdrs.items()],
        "client": (client, 50000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    return Request(scope, receive)


def gateway(
    tmp_path: Path,
    *,
    config: dict[str, Any] | None = None,
    swap: dict[str, Any] | None = None,
    limiter: LimiterHandle | None = None,
    priority_engines: bool = False,
    span_exporter: Any = None,
) -> tuple[Gateway, Store, LimiterHandle]:
    """A replica's gateway on a SQLite store in ``tmp_path``, with every hook (and the
    trace, with ``tracing`` on in ``config``); ``priority_engines``: every engine
    schedules by priority; ``span_exporter``: where the spans go."""
    url = f"sqlite:///{tmp_path / 'gavel.db'}"
    store = Store(url)
    cfg = GatewayConfig.model_validate({"capture": {"flush_interval_s": 0.05}, **(config or {})})
    swap_cfg = SwapConfig.model_validate(swap) if swap is not None else None
    models = ["app-model"] + ([swap_cfg.candidate] if swap_cfg is not None else [])
    settings = GatewaySettings(
        config=cfg,
        store_url=url,
        spool_dir=str(tmp_path / "spool"),
        roles={m: "app" for m in models} | {"judge-model": "judge"},
        prices={m: PRICE for m in [*models, "judge-model"]},
        swap=swap_cfg,
        priority_models=frozenset([*models, "judge-model"] if priority_engines else []),
    )
    if cfg.tracing.enabled:
        hooks = ("metrics", "trace", *settings.hooks[1:])
        settings = settings.model_copy(update={"hooks": hooks})
    handle = limiter or LimiterHandle()
    parts = make_parts(settings, store=store, limiter=handle, span_exporter=span_exporter)
    return Gateway(parts, store), store, handle


async def read(resp: Response) -> bytes:
    """The whole body of a response (a stream is consumed, as a client would)."""
    if isinstance(resp, StreamingResponse):
        out = []
        async for chunk in resp.body_iterator:
            out.append(chunk.encode() if isinstance(chunk, str) else bytes(chunk))
        return b"".join(out)
    return bytes(resp.body)
