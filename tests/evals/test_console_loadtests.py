"""The console's load tests and benchmarks views: a sweep's result file plotted (E2E
against output length per concurrency, with its fitted line), the capacity benchmark's
figures from its JSON, and runs named only by a folder the server listed."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from evals.console import build_console_app
from evals.console._loadtests import sweep_plots
from judges import load_judging
from loadtest import RequestRecord, SweepResult, SweepSpec, fit_latency, summarize_cell
from loadtest._models import RunInfo
from serving import load_config, new_key
from serving.store import Store

ROOT = Path(__file__).resolve().parents[2]


def _sweep() -> SweepResult:
    records = [RequestRecord(output_len=n, concurrency=c, start_s=0.0, ok=True, ttft_s=0.05 * c,
                             e2e_s=(50 * c + (n - 1) * 20) / 1000, output_tokens=n)
               for c in (1, 4) for n in (16, 64, 256) for _ in range(3)]  # fmt: skip
    cells = [summarize_cell([r for r in records if (r.output_len, r.concurrency) == (n, c)],
                            output_len=n, concurrency=c, duration_s=2.0)
             for c in (1, 4) for n in (16, 64, 256)]  # fmt: skip
    spec = SweepSpec(base_url="http://x/v1", model="app-model", output_lens=[16, 64, 256],
                     concurrency=[1, 4])  # fmt: skip
    run = RunInfo(started_at="2026-12-05T00:00:00+00:00", git_commit="abc", machine={},
                  stack_config=None)  # fmt: skip
    return SweepResult(spec=spec, run=run, cells=cells, fits=fit_latency(records),
                       records=records)  # fmt: skip


def test_a_sweep_is_plotted_per_concurrency_with_its_fit() -> None:
    plots = sweep_plots(_sweep())
    assert sorted(plots) == [1, 4]
    assert all("<svg" in p and "fit (R² 1.00)" in p for p in plots.values())
    # x in numeric order, not as text: the axis runs from 16 to 256 (as text, to 64)
    assert ">16</text>" in plots[1] and ">256</text>" in plots[1], plots[1]


def test_the_views_list_runs_plot_them_and_refuse_other_paths(tmp_path: Path) -> None:
    run = tmp_path / "reports/loadtest/20261205T000000Z"
    run.mkdir(parents=True)
    (run / "result.json").write_text(_sweep().model_dump_json())
    (tmp_path / "reports/loadtest/broken").mkdir()
    (tmp_path / "reports/loadtest/broken/result.json").write_text("{not json")
    store = Store(f"sqlite:///{tmp_path / 'gavel.db'}")
    store.ensure_schema()
    secret, key = new_key("viewer", ["view"])
    store.add_key(key)
    app = build_console_app(store, load_config(ROOT / "config/sim.yaml"),
                            load_judging(ROOT / "config/judging.yaml"),
                            reports=tmp_path / "reports",
                            bench_data=ROOT / "docs/benchmarks/data")  # fmt: skip
    client = TestClient(app)
    client.get("/signin")
    client.post("/signin", data={"key": secret, "csrf": client.cookies.get("gavel_console_csrf")})
    listed = client.get("/loadtests").text
    assert "/loadtests/20261205T000000Z" in listed
    page = client.get("/loadtests/20261205T000000Z").text
    assert page.count('<figure class="sweep">') == 2 and "app-model" in page
    assert client.get("/loadtests/broken").status_code == 400
    for bad in ("/loadtests/..%2F..%2Fetc", "/loadtests/nope", "/loadtests/%2e%2e"):
        assert client.get(bad).status_code == 404, bad
    bench = client.get("/benchmarks").text
    assert '<figure class="capacity">' in bench and "gavel b50" in bench
    store.close()
