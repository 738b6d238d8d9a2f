"""``http.proxy: direct``: the gateway in the app model's replica. Its config checks, the
environment Ray needs, the app the builder makes, and the in-process handle to the
replica's own engine (the stack test is ``test_haproxy.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from serving import ConfigError, parse_config
from serving._stack import proxy_env
from serving.gateway._direct import GavelLLMServer, LocalHandle

SIM = {"simulate": "llama-3.1-8b-h100"}


def _config(**http: object) -> dict[str, Any]:
    return {
        "http": http,
        "models": [
            {"role": "app", "model_id": "app-model", "source": SIM},
            {"role": "judge", "model_id": "judge-model", "source": SIM},
        ],
    }


def test_direct_mode_refuses_ingress_replicas_naming_the_field() -> None:
    data = _config(proxy="direct")
    data["gateway"] = {"deployment": {"num_replicas": 2}}
    with pytest.raises(ConfigError, match=r"gateway\.deployment.*app model's replicas"):
        parse_config(data, source="stack.yaml")
    assert parse_config(_config(proxy="direct")).http.proxy == "direct"


def test_each_proxy_mode_asks_ray_for_what_it_needs() -> None:
    assert proxy_env("ray") == {}
    assert proxy_env("haproxy") == {"RAY_SERVE_ENABLE_HA_PROXY": "1"}
    assert proxy_env("direct") == {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_LLM_ENABLE_DIRECT_STREAMING": "1",
    }


def test_the_direct_app_is_the_app_models_server_with_the_judge_behind_a_handle(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    from serving import build_app

    # Ray Serve LLM reads the driver's runtime env while building, which would start a
    # local Ray here (and leave ~/.ray/auth_token behind, which turns token auth on for
    # every cluster started on this machine afterwards): the builder needs none.
    monkeypatch.setattr(ray, "get_runtime_context", lambda: SimpleNamespace(runtime_env={}))
    config = parse_config(_config(proxy="direct"))
    app = build_app(config, base_dir=tmp_path)
    ingress = app._bound_deployment
    assert ingress.name == "GavelLLMServer:app-model"
    kwargs = ingress.init_kwargs
    assert set(kwargs["llm_deployments"]) == {"judge-model"}  # its own model is local
    assert set(kwargs["model_cards"]) == {"app-model", "judge-model"}
    assert {"gateway", "cors", "limiter", "hub"} <= set(kwargs)
    assert app._ingress_request_router is not None  # Ray's LLMRouter picks the replica


class _Server:
    """An ``LLMServer``'s call shapes: a coroutine that returns a stream, or a response."""

    def __init__(self) -> None:
        self.closed = False
        self.calls: list[tuple[Any, ...]] = []

    async def chat(self, body: Any, raw: Any) -> AsyncIterator[str]:
        self.calls.append((body, raw))

        async def stream() -> AsyncIterator[str]:
            try:
                for i in range(3):
                    yield f"chunk {i}"
            finally:
                self.closed = True

        return stream()

    async def completions(self, body: Any, raw: Any) -> dict[str, str]:
        return {"text": body}


def test_the_local_handle_streams_the_servers_own_calls_and_ends_them() -> None:
    server = _Server()
    handle = LocalHandle(server).options(stream=True, session_id="s")

    async def run() -> tuple[list[str], list[object]]:
        chunks = [c async for c in handle.chat.remote("body", "raw")]
        whole = [r async for r in handle.completions.remote("prompt", None)]
        return chunks, whole

    chunks, whole = asyncio.run(run())
    assert chunks == ["chunk 0", "chunk 1", "chunk 2"]
    assert whole == [{"text": "prompt"}]
    assert server.calls == [("body", "raw")]

    async def leave_early() -> None:  # the client went away after the first chunk
        gen = LocalHandle(server).chat.remote("body", None)
        await gen.__anext__()
        await gen.aclose()  # type: ignore[attr-defined]

    server.closed = False
    asyncio.run(leave_early())
    assert server.closed, "the engine's stream must end when its client goes"
    with pytest.raises(AttributeError):
        LocalHandle(server)._private  # noqa: B018


def test_the_replicas_own_stream_is_unbatched_and_ends_the_engines_request() -> None:
    """No Serve hop to amortise: one item per list, and a client gone mid-stream closes
    the engine's generator at once (not when it is collected)."""
    ended: list[bool] = []

    async def engine() -> AsyncIterator[str]:
        try:
            for i in range(5):
                yield f"token {i}"
        finally:
            ended.append(True)

    async def run() -> tuple[list[object], list[bool]]:
        source = engine()
        stream = GavelLLMServer._batch_output_stream(None, source)  # type: ignore[arg-type]
        first = [await stream.__anext__(), await stream.__anext__()]
        await stream.aclose()  # type: ignore[attr-defined]
        return first, list(ended)  # before the loop's own clean-up of stray generators

    assert asyncio.run(run()) == ([["token 0"], ["token 1"]], [True])
