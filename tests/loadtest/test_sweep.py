"""A short real sweep against the stack, through the CLI (Locust runs in its own process)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest._report import read_result
from tests.conftest import run_gavel


@pytest.mark.stack
def test_short_sweep_writes_json_plot_and_report(stack: str, api_key: str, tmp_path: Path) -> None:
    out = tmp_path / "lt"
    proc = run_gavel(
        "loadtest", "sweep", "--output-lens", "4,16", "--concurrency", "1,2",
        "--requests-per-cell", "3", "--prompt-tokens", "32", "--slo-ttft-ms", "5000",
        "--out-dir", str(out), "--api-key", api_key, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"report: {out / 'report.html'}" in proc.stdout
    result = read_result(out / "result.json")
    assert result.schema_version == "gavel.loadtest/1"
    assert result.run.git_commit and result.run.stack_config
    assert len(result.cells) == 4 and all(c.errors == 0 and c.count == 3 for c in result.cells)
    # Exact output lengths, N taken from the server's usage.
    assert all(r.output_tokens == r.output_len for r in result.records)
    assert {f.concurrency for f in result.fits} == {1, 2}
    assert all(c.goodput_rps is not None and c.cost_per_mtok_usd for c in result.cells)
    assert (out / "latency.png").read_bytes()[:4] == b"\x89PNG"
    assert "Latency model" in (out / "report.html").read_text()
    same = run_gavel("loadtest", "compare", str(out / "result.json"), str(out / "result.json"))
    assert same.returncode == 0 and "no regressions" in same.stdout


def test_unreachable_endpoint_stops_at_once(tmp_path: Path) -> None:
    proc = run_gavel("loadtest", "sweep", "--base-url", "http://127.0.0.1:9",
                     "--out-dir", str(tmp_path), timeout=60)  # fmt: skip
    assert proc.returncode == 2
    assert "cannot reach http://127.0.0.1:9" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "result.json").exists()


@pytest.mark.stack
def test_wrong_key_stops_at_once(stack: str, tmp_path: Path) -> None:
    proc = run_gavel("loadtest", "sweep", "--api-key", "gvl_wrong", "--out-dir", str(tmp_path))
    assert proc.returncode == 2
    assert "refused the API key (HTTP 401" in proc.stderr
    assert not (tmp_path / "result.json").exists()


@pytest.mark.stack
def test_unknown_model_stops_at_once(stack: str, api_key: str, tmp_path: Path) -> None:
    proc = run_gavel("loadtest", "sweep", "--model", "no-such-model", "--api-key", api_key,
                     "--out-dir", str(tmp_path), timeout=60)  # fmt: skip
    assert proc.returncode == 2
    assert "model 'no-such-model' is not served" in proc.stderr
    assert "app-model" in proc.stderr


def test_compare_rejects_a_missing_file(tmp_path: Path) -> None:
    proc = run_gavel("loadtest", "compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"))
    assert proc.returncode == 2
    assert "file not found" in proc.stderr
