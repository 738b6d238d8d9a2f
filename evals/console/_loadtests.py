"""The console's load tests and benchmarks, plotted from their JSON: each ``gavel
loadtest sweep`` run (``reports/loadtest/RUN/result.json``) as E2E latency against output
length per concurrency with its fitted line (E2E ≈ TTFT + (N − 1)·TPOT), and the capacity
benchmark's figures (``docs/benchmarks/data/capacity.json``, ``make bench-scale``).

Files are found by the server in its two folders; a browser names a run only by its
folder's name, which must be one of those listed (never a path)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse

from evals.console._access import require
from evals.console._pages import Pages
from evals.console._svg import Series, line_chart
from loadtest import SweepResult

MAX_RUNS = 50


def sweep_runs(folder: Path) -> dict[str, Path]:
    """The sweeps' result files by run name, newest first (at most :data:`MAX_RUNS`)."""
    found = sorted(folder.glob("*/result.json"), key=lambda p: p.parent.name, reverse=True)
    return {p.parent.name: p for p in found[:MAX_RUNS]}


def sweep_plots(result: SweepResult) -> dict[int, str]:
    """Per concurrency: measured E2E p50 and p99 against output length, and the fitted
    line at the same lengths (pure)."""
    fits = {f.concurrency: f for f in result.fits}
    out: dict[int, str] = {}
    for conc in sorted({c.concurrency for c in result.cells}):
        cells = sorted((c for c in result.cells if c.concurrency == conc),
                       key=lambda c: c.output_len)  # fmt: skip
        series = [
            Series("E2E p50", [(str(c.output_len), c.e2e_ms.p50, None) for c in cells]),
            Series("E2E p99", [(str(c.output_len), c.e2e_ms.p99, None) for c in cells]),
        ]
        fit = fits.get(conc)
        if fit is not None:
            line = [(str(c.output_len),
                     fit.intercept_ms + fit.slope_ms_per_token * (c.output_len - 1), None)
                    for c in cells]  # fmt: skip
            series.append(Series(f"fit (R² {fit.r2:.2f})", line))
        out[conc] = line_chart(series, unit=" ms", sort_x=False)
    return out


def capacity_plot(data: dict[str, Any]) -> str:
    """Output tokens/s against concurrency per system and batching, one ingress replica
    (pure)."""
    lines: dict[str, list[tuple[int, float]]] = {}
    concurrencies = sorted({int(c["concurrency"]) for c in data.get("cells", [])})
    for c in data.get("cells", []):
        if c.get("ingress_replicas", 1) != 1 or c.get("output_tok_s") is None:
            continue
        label = c["system"] if c["system"] == "direct" else (
            f"{c['system']} b{c['stream_batching_ms']}")  # fmt: skip
        lines.setdefault(label, []).append((int(c["concurrency"]), float(c["output_tok_s"])))
    # Every series over every concurrency, in numeric order (a gap is a missing point).
    series = [Series(name, [(str(x), dict(pts).get(x), None) for x in concurrencies])
              for name, pts in sorted(lines.items())]  # fmt: skip
    return line_chart(series, unit=" tok/s", sort_x=False) if series else ""


def add_routes(app: FastAPI, page: Pages, reports: Path, bench_data: Path) -> None:
    """``/loadtests``, ``/loadtests/{run}``, ``/benchmarks``."""

    @app.get("/loadtests", response_class=HTMLResponse)
    def runs(request: Request) -> HTMLResponse:
        require(request, "view")
        return page(request, "loadtests.html", runs=list(sweep_runs(reports / "loadtest")),
                    folder=str(reports / "loadtest"))  # fmt: skip

    @app.get("/loadtests/{run}", response_class=HTMLResponse)
    def run(request: Request, run: str) -> HTMLResponse:
        require(request, "view")
        path = sweep_runs(reports / "loadtest").get(run)
        if path is None:
            raise HTTPException(404, f"No load test run {run!r} is in the reports folder.")
        try:
            result = SweepResult.model_validate_json(path.read_text())
        except (OSError, ValueError) as exc:  # ValidationError and bad UTF-8 included
            raise HTTPException(400, f"{run}: not a readable sweep result ({exc})") from None
        return page(request, "loadtest.html", run=run, r=result, plots=sweep_plots(result))

    @app.get("/benchmarks", response_class=HTMLResponse)
    def benchmarks(request: Request) -> HTMLResponse:
        require(request, "view")
        path, plot, problem = bench_data / "capacity.json", "", None
        data: dict[str, Any] = {}
        try:
            data = json.loads(path.read_text()) if path.is_file() else {}
            plot = capacity_plot(data)
            data["summary"]["targets"]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            data, problem = {}, f"{path}: not a capacity benchmark's JSON ({exc!r})"
        return page(request, "benchmarks.html", data=data, plot=plot, folder=str(bench_data),
                    problem=problem)  # fmt: skip
