"""The daily judging job at scale (issue 19): ``gavel judge daily`` over a day of N items
against a simulated judge at GPU rates, on both paths (Ray tasks, and Ray Data's batch
path), while Locust keeps the app model busy through the same gateway.

On the two-node cluster of ``loadtest.bench._cluster`` with the judge simulated as an
H100 (``--judge-replicas`` engines). Each path judges a day of its own (records of the
storage benchmark's shapes, all production traffic; ~4 items per record with the shipped
criteria). Before each job, a baseline block of app traffic; during the job, app
traffic in blocks until it ends. Reported per path: items judged, items/s, the
simulated judge's bound in items/s (its decode and prefill rates over the items' mean
tokens), and the app's TTFT p50/p99 without and with the job, against the app's SLO.

Judge traffic waits behind production at the gateway (``gateway.priority``);
``--background-cap none`` turns that off, for the comparison.

``python -m loadtest.bench.judge_scale [--items 50000] [--background-cap 16|none]
--out reports/bench/judge_scale.json``
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

from loadtest.bench._cluster import GAVEL, ROOT, Stack, scratch_database, start_nodes, stop_nodes
from serving.bench.provenance import write_report

ITEMS_PER_RECORD = 4
"""The shipped criteria judge 4 binary criteria per record (reference and pairwise need
metadata these records do not carry)."""
APP_TTFT_SLO_S = 0.5
"""The app role's TTFT objective in ``config/gpu.yaml`` (p99)."""
APP_CONCURRENCY = 8


def _judging(folder: Path, records: int, *, parallel: int) -> Path:
    path = folder / f"judging-{records}.yaml"
    cfg = {
        "sampling": {"rate": 1.0, "max_per_stratum": records, "stratify_by": ["model"]},
        "concurrency": 16,
        "chunk_size": 64,
        "parallel_tasks": parallel,
        "report_dir": str(folder / "reports"),
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def _app_block(key: str) -> list[float]:
    """One block of app traffic; the TTFTs (s) of the requests that succeeded."""
    from loadtest._models import SweepSpec
    from loadtest._runner import run_cell

    spec = SweepSpec(
        base_url="http://127.0.0.1:8000",
        model="app-model",
        output_lens=[64],
        concurrency=[APP_CONCURRENCY],
        requests_per_cell=APP_CONCURRENCY * 10,
        request_timeout_s=60,
    )
    records, _ = run_cell(
        spec, prompt=" ".join(["word"] * 100), output_len=64,
        concurrency=APP_CONCURRENCY, api_key=key,
    )  # fmt: skip
    return [r.ttft_s for r in records if r.ok and r.ttft_s is not None]


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 1)


def run_path(stack: Stack, path: str, day: date, items: int, keys: dict[str, str],
             judging: Path) -> dict[str, Any]:  # fmt: skip
    """One path's job, with app traffic before and during it."""
    baseline: list[float] = []
    for _ in range(2):
        baseline += _app_block(keys["app"])
    cmd = [GAVEL, "judge", "daily", "--date", day.isoformat(), "--judging", str(judging),
           "--api-key", keys["judge"]] + (["--batch"] if path == "ray_data" else [])  # fmt: skip
    log = stack.folder / f"judge-{path}.log"
    t0 = time.perf_counter()
    with log.open("w") as out:
        job = subprocess.Popen(cmd, cwd=ROOT, env=stack.env, stdout=out, stderr=subprocess.STDOUT)
        during: list[float] = []
        while job.poll() is None:
            during += _app_block(keys["app"])
        wall = time.perf_counter() - t0
    text = log.read_text()
    return {
        "path": path,
        "items": items,
        "exit": job.returncode,
        "wall_s": round(wall, 1),
        "items_per_s": round(items / wall, 2),
        "app_ttft_p50_ms": {"without_job": _pct(baseline, 0.5), "with_job": _pct(during, 0.5)},
        "app_ttft_p99_ms": {"without_job": _pct(baseline, 0.99), "with_job": _pct(during, 0.99)},
        "app_requests_during_job": len(during),
        "app_ttft_slo_ms": APP_TTFT_SLO_S * 1000,
        "log_tail": text[-1500:],
    }


def judge_bound(profile: Any, replicas: int, prompt_tok: float, output_tok: float) -> float:
    """Items/s the simulated judge engines can take at most: each item's prefill at the
    profile's prefill rate plus its output at the profile's peak decode rate."""
    per_item_s = prompt_tok / profile.prefill_tok_s + output_tok / profile.peak_output_tok_s()
    return round(replicas / per_item_s, 1)


def _verdict_figures(store_url: str, day: date) -> dict[str, Any]:
    """The day's verdicts: count, errors (and one error's text), mean judge tokens."""
    from sqlalchemy import create_engine, text

    engine = create_engine(store_url)
    with engine.connect() as c:
        row = c.execute(
            text("SELECT avg(judge_prompt_tokens), avg(judge_completion_tokens), count(*), "
                 "sum(CASE WHEN verdict = 'error' THEN 1 ELSE 0 END), max(error) "
                 "FROM gavel_verdicts WHERE run_id = :d"), {"d": day.isoformat()},
        ).one()  # fmt: skip
    engine.dispose()
    return {
        "verdicts": int(row[2]),
        "errors": int(row[3] or 0),
        "an_error": row[4],
        "judge_mean_prompt_tokens": round(float(row[0] or 0), 1),
        "judge_mean_output_tokens": round(float(row[1] or 0), 1),
    }


PATHS = {
    "tasks": "Ray tasks (online endpoint)",
    "ray_data": "Ray Data (HTTP processor through the gateway)",
}


def table(data: dict[str, Any]) -> str:
    """The page's table from this benchmark's JSON (pure)."""

    def ms(x: float | None) -> str:
        return f"{x:,.0f}" if x is not None else "?"

    rows = ["| path | items | items/s | bound | app TTFT p50 without / with the job "
            "| p99 without / with | app SLO (p99) |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in data["runs"]:
        p50, p99 = r["app_ttft_p50_ms"], r["app_ttft_p99_ms"]
        rows.append(f"| {PATHS.get(r['path'], r['path'])} | {r['verdicts']:,} "
                    f"| {r['items_per_s']:.1f} | {r.get('judge_bound_items_per_s', '?')} "
                    f"| {ms(p50['without_job'])} / {ms(p50['with_job'])} ms "
                    f"| {ms(p99['without_job'])} / {ms(p99['with_job'])} ms "
                    f"| {r['app_ttft_slo_ms']:.0f} ms |")  # fmt: skip
    cap = data["background_cap_per_gateway_replica"]
    rows.append(f"\nThe judge simulated as `{data['judge_profile']}` x {data['judge_replicas']} "
                f"replicas; judge requests per gateway replica capped at {cap} "
                "(`gateway.priority.max_in_flight`); one run per path.")  # fmt: skip
    return "\n".join(rows)


def main() -> None:
    """Deploy, fill, judge on each path with app traffic, print and write the report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--paths", default="tasks,ray_data")
    parser.add_argument("--judge-replicas", type=int, default=2)
    parser.add_argument(
        "--background-cap", default="16",
        help="gateway.priority.max_in_flight: judge requests per gateway replica, or none",
    )  # fmt: skip
    parser.add_argument("--out", default="reports/bench/judge_scale.json")
    args = parser.parse_args()
    from serving.bench.storage import fill
    from serving.sim import PROFILES
    from serving.store import Store

    records = math.ceil(args.items / ITEMS_PER_RECORD)
    folder = Path(tempfile.mkdtemp(prefix="gavel-judge-scale-"))
    results: list[dict[str, Any]] = []
    with scratch_database("gavel_js") as store_url:
        stack = Stack(folder, store_url)
        cfg = yaml.safe_load(stack.config.read_text())
        judge = next(m for m in cfg["models"] if m["role"] == "judge")
        judge["source"] = {"simulate": "llama-3.1-8b-h100"}
        judge["deployment"]["num_replicas"] = args.judge_replicas
        cap = None if args.background_cap == "none" else int(args.background_cap)
        cfg["gateway"]["priority"] = {"max_in_flight": cap}
        stack.config.write_text(yaml.safe_dump(cfg))
        store = Store(store_url)
        start_nodes()
        try:
            stack.serve()
            keys = {"app": stack.key(), "judge": stack.key("--scopes", "judge,infer")}
            for i, path in enumerate(args.paths.split(",")):
                day = date(2026, 6, 1) + timedelta(days=i)
                secs = fill(store, records, seed=100 + i, on=day)
                print(f"{path}: {records} records on {day} in {secs:.1f} s", flush=True)
                judging = _judging(folder, records, parallel=2 * args.judge_replicas)
                row = run_path(stack, path, day, records * ITEMS_PER_RECORD, keys, judging)
                row |= _verdict_figures(store_url, day)
                row["items_per_s"] = round(row["verdicts"] / row["wall_s"], 2)
                tokens = (row["judge_mean_prompt_tokens"], row["judge_mean_output_tokens"])
                if min(tokens) > 0:
                    profile = PROFILES["llama-3.1-8b-h100"]
                    row["judge_bound_items_per_s"] = judge_bound(
                        profile, args.judge_replicas, *tokens
                    )
                print(json.dumps({k: v for k, v in row.items() if k != "log_tail"}), flush=True)
                results.append(row)
        finally:
            store.close()
            stack.gavel("down")
            stop_nodes()
    profile = PROFILES["llama-3.1-8b-h100"]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "judge_profile": "llama-3.1-8b-h100",
        "judge_replicas": args.judge_replicas,
        "background_cap_per_gateway_replica": args.background_cap,
        "judge_peak_output_tok_s_per_replica": profile.peak_output_tok_s(),
        "runs": results,
        "app_ttft_p99_ms_with_job_max": max(
            (r["app_ttft_p99_ms"]["with_job"] or 0 for r in results), default=None
        ),
        "items_per_s_median": statistics.median(r["items_per_s"] for r in results)
        if results else None,
    }  # fmt: skip
    write_report(out, report, config="two nodes, simulated engines")
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
