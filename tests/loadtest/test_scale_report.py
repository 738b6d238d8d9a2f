"""The capacity benchmark's report: Gavel against the better stock of each cell, and the
top entries of a py-spy profile."""

from __future__ import annotations

from typing import Any

import pytest

from loadtest.bench._pyspy import top_entries
from loadtest.bench._scale_report import summarize, table


def _run(system: str, c: int, b: int, tok_s: float, ttft: float, **kw: Any) -> dict[str, Any]:
    return {"system": system, "concurrency": c, "stream_batching_ms": b, "ingress_replicas": 1,
            "errors": 0, "output_tok_s": tok_s, "request_rps": 1.0, "ttft_p50_ms": ttft,
            "ttft_p99_ms": ttft, "itl_p50_ms": 1.0, "itl_p99_ms": 2.0,
            "serving_cores_per_1k_tok_s": kw.get("cores", 0.5)}  # fmt: skip


def test_each_gavel_mode_is_held_to_the_better_stock_of_each_cell() -> None:
    runs = [
        _run("stock", 64, 50, 2000, 500), _run("stock-direct", 64, 0, 2200, 240),
        _run("stock", 64, 0, 1500, 600),
        _run("gavel", 64, 50, 1900, 560, cores=0.7), _run("gavel", 64, 0, 1400, 650),
        _run("gavel-haproxy", 64, 50, 2156, 250, cores=0.4),
        _run("gavel-haproxy", 64, 0, 2000, 300), _run("gavel-haproxy", 1, 50, 140, 60, cores=3),
        _run("stock-direct", 1, 0, 148, 11), _run("direct", 64, 0, 2400, 30),
    ]  # fmt: skip
    cells, summary = summarize(runs)
    by_mode = summary["by_mode"]
    # stock-direct (no batching) is the better stock at both batchings of c=64
    assert by_mode["gavel"]["gavel_vs_stock_throughput_ratio_min"] == pytest.approx(
        1400 / 2200, abs=1e-3
    )
    assert by_mode["gavel-haproxy"]["gavel_vs_stock_throughput_ratio_min"] == pytest.approx(
        2000 / 2200, abs=1e-3
    )
    assert by_mode["gavel-haproxy"]["gavel_vs_stock_ttft_added_p50_ms_max"] == 300 - 240
    # cores: c >= 16 at the GPU default batching; c = 1 apart
    assert by_mode["gavel-haproxy"]["gavel_serving_cores_per_1k_tok_s_max"] == 0.4
    assert by_mode["gavel-haproxy"]["gavel_serving_cores_per_1k_tok_s_c1"] == 3
    assert summary["gavel_mode"] == "gavel-haproxy"
    assert (
        summary["gavel_vs_stock_throughput_ratio_min"]
        == by_mode["gavel-haproxy"]["gavel_vs_stock_throughput_ratio_min"]
    )
    page = table({"cells": cells, "summary": summary})
    assert "stock-direct" in page.splitlines()[0] and "`gavel-haproxy`" in page


def test_top_entries_share_the_samples_by_frame() -> None:
    stacks = (
        "main (a.py:1);tap (serving/gateway/_context.py:234);loads (json/decoder.py:3) 30\n"
        "main (a.py:1);poll (selectors.py:9) 70\n"
        "garbage line\n"
    )
    top = top_entries(stacks, n=5)
    assert top["samples"] == 100
    assert top["self"][0] == {"frame": "poll (selectors.py:9)", "share": 0.7}
    assert top["inclusive"] == [{"frame": "tap (serving/gateway/_context.py:234)", "share": 0.3}]
