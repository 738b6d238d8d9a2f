"""Pure metrics: the latency fit recovers known parameters; summaries, goodput, cost, compare."""

from __future__ import annotations

import random

import pytest

from loadtest import RequestRecord, Slo, SweepResult, SweepSpec, fit_latency, summarize_cell
from loadtest._models import RunInfo
from loadtest._report import compare
from loadtest.metrics import cost_per_mtok, fit_line, percentile


def rec(n: int, ttft: float, e2e: float, c: int = 1, ok: bool = True) -> RequestRecord:
    return RequestRecord(output_len=n, concurrency=c, start_s=0.0, ok=ok, ttft_s=ttft,
                         e2e_s=e2e, output_tokens=n)  # fmt: skip


def test_fit_recovers_known_intercept_and_slope_from_noisy_data() -> None:
    rng = random.Random(7)
    records = []
    for c, (intercept_ms, slope_ms) in {1: (40.0, 25.0), 4: (90.0, 55.0)}.items():
        for n in (16, 64, 256, 1024):
            for _ in range(6):
                e2e_ms = intercept_ms + (n - 1) * slope_ms + rng.gauss(0, 5)
                records.append(rec(n, intercept_ms / 1000, e2e_ms / 1000, c))
    fits = {f.concurrency: f for f in fit_latency(records)}
    assert fits[1].intercept_ms == pytest.approx(40, abs=5)
    assert fits[1].slope_ms_per_token == pytest.approx(25, rel=0.01)
    assert fits[4].slope_ms_per_token == pytest.approx(55, rel=0.01)
    assert fits[4].r2 > 0.999
    assert fits[1].outliers == []


def test_fit_reports_points_that_leave_the_line() -> None:
    records = [rec(n, 0.05, (50 + (n - 1) * 20) / 1000) for n in (16, 64, 128, 256)] * 5
    records.append(rec(128, 0.05, 8.0))  # a stall: 8 s instead of ~2.6 s
    (fit,) = fit_latency(records)
    assert [(o.output_tokens, o.e2e_ms) for o in fit.outliers] == [(128, 8000.0)]


def test_fit_line_exact_and_degenerate() -> None:
    assert fit_line([0, 1, 2], [1, 3, 5]) == pytest.approx((1.0, 2.0, 1.0))
    with pytest.raises(ValueError):
        fit_line([3, 3], [1, 2])


def test_tpot_uses_server_token_count() -> None:
    r = rec(11, ttft=0.1, e2e=1.1)
    assert r.tpot_s == pytest.approx(0.1)
    assert rec(1, 0.1, 0.1).tpot_s is None


def test_percentile_interpolates() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5], 99) == 5
    assert percentile([], 50) is None


def test_summary_goodput_and_cost() -> None:
    records = [rec(10, 0.1, 1.0), rec(10, 0.5, 1.0), rec(10, 0.1, 3.0), rec(10, 0, 0, ok=False)]
    cell = summarize_cell(records, output_len=10, concurrency=1, duration_s=2.0,
                          slo=Slo(ttft_ms=200, e2e_ms=2000), node_hour_usd=3.6)  # fmt: skip
    assert (cell.count, cell.errors) == (4, 1)
    assert cell.goodput_rps == pytest.approx(0.5)  # only the first meets both SLOs
    assert cell.output_tok_s == pytest.approx(15.0)  # 30 tokens in 2 s
    assert cell.cost_per_mtok_usd == pytest.approx(3.6 / (15 * 3600) * 1e6)
    assert cell.ttft_ms.p50 == pytest.approx(100)


def test_cost_per_million_tokens() -> None:
    assert cost_per_mtok(1.0, 1000) == pytest.approx(1e6 / 3.6e6)
    assert cost_per_mtok(1.0, 0) is None


def _result(e2e_s: float, tok_s_scale: float = 1.0) -> SweepResult:
    spec = SweepSpec(base_url="http://x", model="m", output_lens=[10], concurrency=[1])
    records = [rec(10, 0.1, e2e_s) for _ in range(4)]
    cell = summarize_cell(records, output_len=10, concurrency=1, duration_s=4 * e2e_s / tok_s_scale)
    run = RunInfo(started_at="t", git_commit=None, machine={}, stack_config=None)
    return SweepResult(spec=spec, run=run, cells=[cell], fits=[], records=records)


def test_compare_flags_regressions_beyond_threshold() -> None:
    old, same, slower = _result(1.0), _result(1.05), _result(1.5)
    assert compare(old, same, threshold=0.10) == []
    metrics = {r.metric for r in compare(old, slower, threshold=0.10)}
    assert {"e2e_p50_ms", "output_tok_s"} <= metrics
