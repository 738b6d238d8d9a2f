"""The overhead benchmark's pure figures: spreads over blocks, targets, CPU accounting."""

from __future__ import annotations

import pytest

from loadtest.bench._cpu import Proc, classify, cpu_delta
from loadtest.bench.overhead import meets, pair_stats, serving_cores, spread, summarize


def _run(tput: float, ttft: float, tpot: float) -> dict[str, float]:
    return {"output_throughput": tput, "median_ttft_ms": ttft, "median_tpot_ms": tpot}


def test_pairs_are_summarised_with_their_spread() -> None:
    pairs = [pair_stats(_run(100, 500, 50), _run(g, 505, 51)) for g in (96, 98, 99)]
    s = summarize(pairs)
    assert s["throughput_ratio"] == {"median": 0.98, "min": 0.96, "max": 0.99}
    assert s["median_ttft_diff_ms"]["median"] == pytest.approx(5)
    assert meets(s) == {"throughput_ratio": True, "median_ttft_diff_ms": True,
                        "median_tpot_ratio": True}  # fmt: skip
    assert spread([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0}


def test_serving_cores_projection() -> None:
    # 0.5 CPU-s per 1,000 tokens at 1,500 tokens/s: 0.75 cores.
    assert serving_cores(0.5, 1500) == pytest.approx(0.75)


def test_cpu_is_charged_to_the_engine_or_the_serving_layer() -> None:
    procs = {
        1: Proc(1, 0, "raylet --x", 1.0),
        2: Proc(2, 1, "ray::ServeReplica:gavel:GavelIngress", 2.0),
        3: Proc(3, 1, "ray::SERVE_REPLICA::gavel#LLMServer:app-model#x", 5.0),
        4: Proc(4, 3, "VLLM::EngineCore", 10.0),
        5: Proc(5, 0, "postgres: writer", 3.0),
    }
    groups = classify(procs)
    assert groups == {"engine": {3, 4}, "serving": {1, 2}}
    later = {**procs, 2: Proc(2, 1, procs[2].cmdline, 2.5), 6: Proc(6, 1, "ray::IDLE", 0.2)}
    assert cpu_delta(procs, later, classify(later)["serving"]) == pytest.approx(0.7)
