"""The background gate (issue 19): the judge's and evals' requests wait behind a
per-replica cap; production never waits."""

from __future__ import annotations

import asyncio

import pytest

from serving._gateway_config import PriorityConfig
from serving.gateway._body import Refusal
from serving.gateway._metrics import GatewayMetrics
from serving.gateway._priority import BackgroundGate


def _gate(cap: int | None, wait_s: float = 5.0) -> tuple[BackgroundGate, GatewayMetrics]:
    metrics = GatewayMetrics()
    return BackgroundGate(PriorityConfig(max_in_flight=cap, max_wait_s=wait_s), metrics), metrics


def _sample(metrics: GatewayMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_cap_holds_background_and_never_production() -> None:
    async def go() -> None:
        gate, metrics = _gate(2)
        assert await gate.enter("judge") and await gate.enter("eval")
        third = asyncio.create_task(gate.enter("judge"))
        await asyncio.sleep(0.05)
        assert not third.done()  # the third background request waits
        assert _sample(metrics, "gavel_background_waiting_requests") == 1
        assert await asyncio.wait_for(gate.enter("production"), 0.1) is False  # never waits
        gate.leave()
        assert await asyncio.wait_for(third, 1) is True  # the slot given back goes to it
        assert _sample(metrics, "gavel_background_waiting_requests") == 0

    asyncio.run(go())


def test_wait_beyond_max_is_refused() -> None:
    async def go() -> None:
        gate, _ = _gate(1, wait_s=0.05)
        assert await gate.enter("judge")
        with pytest.raises(Refusal) as refused:
            await gate.enter("judge")
        assert refused.value.status == 429 and refused.value.reason == "background_busy"
        gate.leave()
        assert await asyncio.wait_for(gate.enter("judge"), 0.1)  # the refused one took nothing

    asyncio.run(go())


def test_no_cap_takes_no_slot() -> None:
    async def go() -> None:
        gate, _ = _gate(None)
        assert not gate.applies("judge")
        assert [await gate.enter("judge") for _ in range(100)] == [False] * 100

    asyncio.run(go())


def test_only_the_listed_sources_are_background() -> None:
    gate = BackgroundGate(
        PriorityConfig(background_sources=("judge",), max_in_flight=1), GatewayMetrics()
    )
    assert gate.applies("judge") and not gate.applies("eval")
