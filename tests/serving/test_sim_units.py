"""The simulated engine's latency model, text and plans, without Ray (asyncio only)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time

import jsonschema
import pytest
from pydantic import BaseModel

from serving import parse_config
from serving._config import ConfigError
from serving.sim import PROFILES, Scheduler, SimProfile, TooLarge, schema_instance

FAST = SimProfile(
    description="test",
    prefill_tok_s=10_000,
    step_base_ms=10,
    step_per_seq_ms=2,
    max_num_seqs=4,
    kv_tokens=1_000,
    max_model_len=512,
)


async def _timed(sched: Scheduler, prompt: int, out: int) -> tuple[float, list[float]]:
    """(TTFT, times of every token) of one request, from its start."""
    t0 = time.monotonic()
    times = [time.monotonic() - t0 async for _ in sched.generate(prompt, out)]
    return times[0], times


def test_one_request_takes_prefill_then_one_step_per_token() -> None:
    ttft, times = asyncio.run(_timed(Scheduler(FAST), 500, 11))
    assert ttft == pytest.approx(0.05, abs=0.01)  # 500 tokens at 10k/s
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) == 11
    assert sum(gaps) / len(gaps) == pytest.approx(0.010, abs=0.002)


def test_decode_steps_slow_down_with_the_batch() -> None:
    async def four() -> list[list[float]]:
        sched = Scheduler(FAST)
        runs = await asyncio.gather(*(_timed(sched, 10, 21) for _ in range(4)))
        return [t for _, t in runs]

    runs = asyncio.run(four())
    gaps = [b - a for t in runs for a, b in itertools.pairwise(t[5:])]
    # four sequences: 10 ms + 3 x 2 ms a step
    assert sum(gaps) / len(gaps) == pytest.approx(0.016, abs=0.003)


def test_requests_beyond_max_num_seqs_queue() -> None:
    async def six() -> tuple[list[float], int]:
        sched = Scheduler(FAST)
        runs = await asyncio.gather(*(_timed(sched, 10, 10) for _ in range(6)))
        return [ttft for ttft, _ in runs], sched.stats.max_waiting

    ttfts, waited = asyncio.run(six())
    assert waited == 2
    assert max(ttfts) > 0.1 > sorted(ttfts)[3]  # two waited for a whole request


def test_kv_capacity_queues_and_refuses() -> None:
    async def two_big() -> list[float]:
        sched = Scheduler(FAST)
        return [t for t, _ in await asyncio.gather(*(_timed(sched, 400, 200) for _ in range(2)))]

    ttfts = sorted(asyncio.run(two_big()))  # 600 tokens each, 1,000 fit: one at a time
    assert ttfts[1] > 200 * 0.010
    with pytest.raises(TooLarge):
        asyncio.run(_timed(Scheduler(FAST), 900, 200))


def test_a_client_gone_frees_its_slot() -> None:
    async def run() -> Scheduler:
        sched = Scheduler(FAST)
        steps = sched.generate(10, 900)
        await steps.__anext__()
        await steps.aclose()
        return sched

    sched = asyncio.run(run())
    assert sched.running == 0 and sched.stats.finished == 1


async def _ttft(sched: Scheduler, prompt: int, out: int, priority: int, delay: float = 0) -> float:
    await asyncio.sleep(delay)
    t0 = time.monotonic()
    steps = sched.generate(prompt, out, priority=priority)
    first = time.monotonic()
    async for n in steps:
        if n == 1:
            first = time.monotonic()
    return first - t0


def test_priority_puts_production_ahead_of_queued_background_without_preempting() -> None:
    """Under the priority policy a late production request (0) is admitted at the first
    free slot, before the background requests (2) that queued earlier; under first
    come, first served it waits behind them. As in vLLM v1, nothing running is
    preempted for it, and every request finishes."""

    async def run(policy: bool) -> tuple[float, Scheduler]:
        sched = Scheduler(FAST, priority=policy)
        running = [_ttft(sched, 10, 20 * (i + 1), priority=2) for i in range(4)]  # staggered
        queued = [_ttft(sched, 10, 20, priority=2, delay=0.01) for _ in range(2)]
        late = _ttft(sched, 10, 5, priority=0, delay=0.05)
        *_, ttft = await asyncio.gather(*running, *queued, late)
        return ttft, sched

    behind, fcfs = asyncio.run(run(False))
    ahead, prio = asyncio.run(run(True))
    # FAST: a 20-token request takes ~0.35 s at 4 running; the second slot frees ~0.3 s later.
    assert ahead + 0.15 < behind, (ahead, behind)
    assert prio.stats.finished == fcfs.stats.finished == 7 and prio.running == 0
    assert prio.stats.admitted == 7  # no request was admitted twice (none preempted)


def test_priority_orders_the_waiting_queue() -> None:
    """Nothing to preempt (the running are production too): a late production request
    still goes ahead of the background requests that queued before it."""

    async def run() -> list[float]:
        sched = Scheduler(FAST, priority=True)
        running = [_ttft(sched, 10, 20 * (i + 1), priority=0) for i in range(4)]  # staggered
        queued = [_ttft(sched, 10, 20, priority=2, delay=0.01) for _ in range(2)]
        late = _ttft(sched, 10, 20, priority=0, delay=0.05)
        return list(await asyncio.gather(*running, *queued, late))

    *_, q1, q2, late = asyncio.run(run())
    # From the common start: admitted at the first free slot, a whole request before both.
    assert late + 0.05 + 0.1 < min(q1, q2) + 0.01


def test_priority_is_ignored_under_first_come_first_served() -> None:
    async def run() -> list[float]:
        sched = Scheduler(FAST)  # fcfs: every priority counts as 0
        return list(
            await asyncio.gather(*(_ttft(sched, 10, 30, priority=p) for p in (5, 0, 0, 0, 0)))
        )

    ttfts = asyncio.run(run())
    assert ttfts[0] < 0.05 and max(ttfts[1:]) > 0.2  # the first come is first served


def test_profiles_cite_their_sources_and_reach_gpu_rates() -> None:
    for name, p in PROFILES.items():
        assert p.sources, name
    assert PROFILES["llama-3.1-8b-h100"].peak_output_tok_s() > 1_500


def test_schema_instance_is_valid() -> None:
    class Inner(BaseModel):
        score: int
        tags: list[str]

    class Verdict(BaseModel):
        verdict: str
        inner: Inner
        ok: bool | None = None

    schema = Verdict.model_json_schema()
    jsonschema.validate(json.loads(schema_instance(schema)), schema)
    enum = {"type": "object", "properties": {"v": {"enum": ["pass", "fail"]}}, "required": ["v"]}
    assert json.loads(schema_instance(enum)) == {"v": "pass"}


def test_simulate_source_is_checked_in_config() -> None:
    base = {"role": "app", "model_id": "m"}
    ok = parse_config({"models": [{**base, "source": {"simulate": "llama-3.1-8b-l4"}}]})
    assert ok.models[0].source.uri == "sim:llama-3.1-8b-l4"
    with pytest.raises(ConfigError, match=r"models\[0\].source.*llama-3.1-8b-h100"):
        parse_config({"models": [{**base, "source": {"simulate": "h200"}}]})
    with pytest.raises(ConfigError, match="exactly one"):
        parse_config({"models": [{**base, "source": {"simulate": "llama-3.1-8b-l4", "hub": "x"}}]})
