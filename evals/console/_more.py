"""The console's evals and swap views: stored eval runs, one run, two runs compared
(paired statistics and the items that flipped, side by side), and the swap's timeline,
its last report's decision (and what was withheld) with the win rate's confidence
sequence day by day, its arms and shadow pairs."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from evals._compare import compare
from evals._result import RunResult
from evals._run import list_runs
from evals.console._access import require
from evals.console._pages import Pages
from evals.console._svg import Series, line_chart
from evals.swap._report import SwapReport
from serving import StackConfig
from serving.store import Store, tables


def stored_run(store: Store, run_id: str) -> RunResult:
    """A run from the store by id only (never a path: the id comes from a browser)."""
    runs = tables.eval_runs
    rows = store.fetch(select(runs.c.result_json).where(runs.c.run_id == run_id))
    if not rows:
        raise HTTPException(404, f"No eval run {run_id!r} is stored.")
    return RunResult.model_validate_json(rows[0]["result_json"])


def flipped_pairs(base: RunResult, cand: RunResult, ids: list[str]) -> list[dict[str, Any]]:
    """The items that flipped, with each run's first answer (pure)."""
    b, c = {i.id: i for i in base.items}, {i.id: i for i in cand.items}
    out = []
    for item_id in ids:
        first_b = b[item_id].epochs[0].response if b[item_id].epochs else None
        first_c = c[item_id].epochs[0].response if c[item_id].epochs else None
        out.append({"id": item_id, "baseline": first_b, "candidate": first_c})
    return out


def arm_counts(report: SwapReport | None) -> dict[str, int]:
    """Requests per arm (and shadow pairs) in the last report's days (pure: the report
    counted them, so the view scans no traffic)."""
    if report is None:
        return {}
    return {"production arm": report.production_arm, "candidate arm": report.candidate_arm,
            "shadow pairs": report.shadow_pairs}  # fmt: skip


def last_report(store: Store, stack: StackConfig) -> SwapReport | None:
    """The swap's last ``gavel swap report``, as decided (``None`` before the first)."""
    if stack.swap is None:
        return None
    from serving.swap import latest_swap_report

    doc = latest_swap_report(store, stack.swap.production, stack.swap.candidate)
    try:
        return SwapReport.model_validate_json(doc) if doc else None
    except ValueError:  # written by another Gavel version: shown as no report
        return None


def sequence_plot(report: SwapReport | None) -> str:
    """The win rate's confidence sequence day by day, against 0.5 (pure)."""
    if report is None or not report.sequence:
        return ""
    points = [(p.day, p.win_rate, (p.low, p.high)) for p in report.sequence]
    return line_chart([Series("candidate's win rate", points)], y_range=(0.0, 1.0), target=0.5)


def add_routes(app: FastAPI, page: Pages, stack: StackConfig) -> None:
    """``/evals``, ``/evals/{run}``, ``/compare``, ``/swap``."""
    store: Store = app.state.store

    @app.get("/evals", response_class=HTMLResponse)
    def runs(request: Request) -> HTMLResponse:
        require(request, "view")
        return page(request, "evals.html", runs=list_runs(store))

    @app.get("/evals/{run_id}", response_class=HTMLResponse)
    def run(request: Request, run_id: str) -> HTMLResponse:
        require(request, "view")
        return page(request, "run.html", r=stored_run(store, run_id))

    @app.get("/compare", response_class=HTMLResponse)
    def compare_runs(request: Request, baseline: str, candidate: str) -> HTMLResponse:
        require(request, "view")
        base, cand = stored_run(store, baseline), stored_run(store, candidate)
        if (base.suite_hash, base.dataset_hash) != (cand.suite_hash, cand.dataset_hash):
            raise HTTPException(400, "The two runs are not of the same suite and dataset.")
        comp = compare(base, cand)
        flips = {
            d.check: flipped_pairs(base, cand, d.pass_to_fail + d.fail_to_pass) for d in comp.checks
        }
        return page(request, "compare.html", base=base, cand=cand, comp=comp, flips=flips)

    @app.get("/swap", response_class=HTMLResponse)
    def swap(request: Request) -> HTMLResponse:
        require(request, "view")
        events: list[Any] = []
        if stack.swap is not None:
            from serving.swap import swap_history

            events = swap_history(store, stack.swap.production, stack.swap.candidate)
        report = last_report(store, stack)
        return page(request, "swap.html", swap=stack.swap, events=events, report=report,
                    arms=arm_counts(report), plot=sequence_plot(report))  # fmt: skip
