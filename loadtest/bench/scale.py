"""Capacity benchmark: three systems on the same simulated engine (issue 19).

- ``direct``: the simulated engine behind a minimal single-process OpenAI server (the floor);
- ``stock``: stock Ray Serve LLM (``build_openai_app``, no gateway);
- ``gavel``: Gavel's gateway, with a limited key and capture to PostgreSQL.

Cells: concurrency x stream batching (0, 50 ms) x ingress replicas (1, 2). Within a
round, each concurrency is a block that runs every system once, in an order that rotates
between rounds; the rounds give each figure's min-max spread. CPU of the serving layer
is every Ray process but the engine replicas (``loadtest.bench._cpu``), per 1,000 output
tokens/s. The load generator (Locust, in this process) runs on the same two cores.

``python -m loadtest.bench.scale [--rounds 2] [--quick] --out reports/bench/scale.json``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from loadtest.bench._cpu import classify, cpu_delta, snapshot
from loadtest.bench._harness import ROOT
from serving.bench.provenance import write_report

CONCURRENCY = (1, 16, 64, 256)
OUTPUT_LEN = 64
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DIRECT_PORT = 8100
GPU_DEFAULT_BATCHING_MS = 50


def _wait(url: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not answer in {timeout_s:.0f} s")


def _cell(system: str, base_url: str, c: int, *, key: str | None, quick: bool) -> dict[str, Any]:
    from loadtest._models import SweepSpec
    from loadtest._runner import run_cell
    from loadtest.metrics import percentile

    n = max(8, c * (1 if quick else 2))
    spec = SweepSpec(
        base_url=base_url,
        model="app-model" if system != "direct" else "direct",
        output_lens=[OUTPUT_LEN],
        concurrency=[c],
        requests_per_cell=n,
        request_timeout_s=120,
    )
    prompt = " ".join(["word"] * 100)
    before = snapshot()
    records, duration = run_cell(
        spec, prompt=prompt, output_len=OUTPUT_LEN, concurrency=c, api_key=key
    )
    after = snapshot()
    ok = [r for r in records if r.ok]
    tokens = sum(r.output_tokens or 0 for r in ok)
    tok_s = tokens / duration if duration else 0.0
    serving = classify(after)["serving"]
    serving_cpu = cpu_delta(before, after, serving) / duration if duration else 0.0
    roles = {"proxy": "ProxyActor", "ingress": "Ingress", "limiter": "RateLimiter"}
    split = {
        role: round(
            cpu_delta(before, after, {p for p in serving if marker in after[p].cmdline}) / duration,
            3,
        )
        if duration
        else 0.0
        for role, marker in roles.items()
    }
    ttfts = [r.ttft_s * 1000 for r in ok if r.ttft_s is not None]
    gaps = [g * 1000 for r in ok for g in r.gaps_s]
    return {
        "requests": len(records),
        "errors": len(records) - len(ok),
        "output_tok_s": round(tok_s, 1),
        "request_rps": round(len(ok) / duration, 2) if duration else 0.0,
        "ttft_p50_ms": percentile(ttfts, 50),
        "ttft_p99_ms": percentile(ttfts, 99),
        "itl_p50_ms": percentile(gaps, 50),
        "itl_p99_ms": percentile(gaps, 99),
        "serving_cores": round(serving_cpu, 3),
        "serving_cores_by_role": split,
        "serving_cores_per_1k_tok_s": round(serving_cpu / (tok_s / 1000), 3) if tok_s else None,
    }


def _deploy(replicas: int, store: str, spool: str, *extra: str) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtest.bench._scale_deploy",
            "--replicas",
            str(replicas),
            "--store",
            store,
            "--spool",
            spool,
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"deploy failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


def _key(store: str) -> str:
    from serving import new_key
    from serving.store import Store

    plaintext, record = new_key(
        f"bench-{uuid.uuid4().hex[:6]}", ["infer"], rpm=10_000_000, tpm=2_000_000_000
    )
    s = Store(store)
    try:
        s.add_key(record)
    finally:
        s.close()
    return plaintext


@contextmanager
def bench_stack(*side: list[str]) -> Iterator[tuple[str, str]]:
    """A scratch PostgreSQL database and capture spool for the benchmark's stacks, with
    ``side`` processes (argv lists) started beside them; yields (store URL, spool). On
    exit: the side processes end, the local Ray stops, the database is dropped."""
    from sqlalchemy import create_engine, text

    db = f"gavel_bench_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {db}"))
    procs = [subprocess.Popen(argv, cwd=ROOT) for argv in side]
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + db, tempfile.mkdtemp(prefix="gavel-scale-spool-")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        subprocess.run([str(Path(sys.executable).parent / "ray"), "stop", "--force"],
                       capture_output=True, check=False)  # fmt: skip
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"))


def _median(cells: list[dict[str, Any]], field: str) -> float | None:
    values = [c[field] for c in cells if c.get(field) is not None]
    return statistics.median(values) if values else None


def summarize(runs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Median of the rounds per cell (with min-max), and the summary against the targets."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in runs:
        k = (r["system"], r["concurrency"], r["stream_batching_ms"], r["ingress_replicas"])
        groups.setdefault(k, []).append(r)
    cells = []
    fields = (
        "output_tok_s",
        "request_rps",
        "ttft_p50_ms",
        "ttft_p99_ms",
        "itl_p50_ms",
        "itl_p99_ms",
        "serving_cores_per_1k_tok_s",
    )
    for (system, c, b, n), rs in sorted(groups.items(), key=lambda kv: str(kv[0])):
        cell: dict[str, Any] = {
            "system": system,
            "concurrency": c,
            "stream_batching_ms": b,
            "ingress_replicas": n,
            "rounds": len(rs),
            "errors": sum(r["errors"] for r in rs),
        }
        for f in fields:
            cell[f] = _median(rs, f)
            vals = [r[f] for r in rs if r.get(f) is not None]
            cell[f + "_spread"] = [min(vals), max(vals)] if vals else None
        cells.append(cell)
    index = {
        (c["system"], c["concurrency"], c["stream_batching_ms"], c["ingress_replicas"]): c
        for c in cells
    }
    direct = {c["concurrency"]: c for c in cells if c["system"] == "direct"}
    ratios, added, cores = [], [], []
    for c in cells:
        if c["system"] != "gavel":
            continue
        stock = index.get(
            ("stock", c["concurrency"], c["stream_batching_ms"], c["ingress_replicas"])
        )
        floor = direct.get(c["concurrency"])
        if floor and c["ttft_p50_ms"] is not None and floor["ttft_p50_ms"] is not None:
            c["ttft_added_over_direct_p50_ms"] = round(c["ttft_p50_ms"] - floor["ttft_p50_ms"], 2)
        if stock and stock["output_tok_s"]:
            ratios.append(c["output_tok_s"] / stock["output_tok_s"])
            if c["ttft_p50_ms"] is not None and stock["ttft_p50_ms"] is not None:
                added.append(c["ttft_p50_ms"] - stock["ttft_p50_ms"])
        if c["stream_batching_ms"] == GPU_DEFAULT_BATCHING_MS and c["serving_cores_per_1k_tok_s"]:
            cores.append(c["serving_cores_per_1k_tok_s"])
    summary = {
        "gavel_vs_stock_throughput_ratio_min": round(min(ratios), 3) if ratios else None,
        "gavel_vs_stock_ttft_added_p50_ms_max": round(max(added), 2) if added else None,
        "gavel_serving_cores_per_1k_tok_s_max": round(max(cores), 3) if cores else None,
        "targets": {
            "throughput_ratio_min": 0.97,
            "ttft_added_p50_ms_max": 3.0,
            "serving_cores_per_1k_tok_s_max": 1.0,
        },
    }
    return cells, summary


def _cell_text(c: dict[str, Any] | None, *, cores: bool) -> str:
    if c is None or c["output_tok_s"] is None:
        return "–"
    spread = c.get("output_tok_s_spread")
    tok = f"{c['output_tok_s']:,.0f}"
    if spread and spread[0] != spread[1]:
        tok += f" [{spread[0]:,.0f}–{spread[1]:,.0f}]"
    ttft = f", {c['ttft_p50_ms']:,.0f} ms" if c["ttft_p50_ms"] is not None else ""
    core = c.get("serving_cores_per_1k_tok_s")
    return tok + ttft + (f", {core:.2f}" if cores and core is not None else "")


def table(data: dict[str, Any]) -> str:
    """The page's tables from this benchmark's JSON (pure): one ingress replica's cells,
    then the summary against the targets."""
    cells = data["cells"]
    at = {(c["system"], c["concurrency"], c["stream_batching_ms"], c["ingress_replicas"]): c
          for c in cells}  # fmt: skip
    batchings = sorted({c["stream_batching_ms"] for c in cells if c["system"] != "direct"})
    head = ["concurrency", "direct"] + [f"{s}, batching {b} ms" for b in batchings
                                        for s in ("stock", "gavel")]  # fmt: skip
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for conc in sorted({c["concurrency"] for c in cells}):
        direct = next((c for c in cells if c["system"] == "direct"
                       and c["concurrency"] == conc), None)  # fmt: skip
        parts = [str(conc), _cell_text(direct, cores=False)]
        parts += [_cell_text(at.get((s, conc, b, 1)), cores=True)
                  for b in batchings for s in ("stock", "gavel")]  # fmt: skip
        rows.append("| " + " | ".join(parts) + " |")
    s, t = data["summary"], data["summary"]["targets"]
    rows.append(
        "\nEach cell: output tokens/s, median [min–max] over rounds; p50 TTFT; serving "
        "cores per 1,000 output tokens/s. One ingress replica; the JSON has both."
    )
    rows.append("\n| | target | measured (all cells) |\n|---|---|---|")
    rows.append(f"| Gavel / stock output tokens/s, worst cell | >= {t['throughput_ratio_min']} "
                f"| {s['gavel_vs_stock_throughput_ratio_min']} |")  # fmt: skip
    rows.append(f"| p50 TTFT added over stock, worst cell | <= +{t['ttft_added_p50_ms_max']:g} ms "
                f"| +{s['gavel_vs_stock_ttft_added_p50_ms_max']} ms |")  # fmt: skip
    rows.append(f"| serving cores per 1k output tok/s at the GPU default batching "
                f"| <= {t['serving_cores_per_1k_tok_s_max']} "
                f"| {s['gavel_serving_cores_per_1k_tok_s_max']} |")  # fmt: skip
    return "\n".join(rows)


def plot(cells: list[dict[str, Any]], path: Path) -> None:
    """Output tokens/s against concurrency, one line per system and setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    lines: dict[str, list[tuple[int, float]]] = {}
    for c in cells:
        label = (
            c["system"]
            if c["system"] == "direct"
            else (f"{c['system']} b{c['stream_batching_ms']} x{c['ingress_replicas']}")
        )
        lines.setdefault(label, []).append((c["concurrency"], c["output_tok_s"] or 0))
    for label, pts in sorted(lines.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrency")
    ax.set_ylabel("output tokens/s")
    ax.set_title("Simulated H100 engine (Llama-3.1-8B profile), 2 CPU cores")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    """Run the benchmark; print each cell and write the JSON and the PNG."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="reports/bench/scale.json")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="concurrency up to 64, fewer requests")
    args = parser.parse_args()
    concurrency = CONCURRENCY[:3] if args.quick else CONCURRENCY
    direct = [sys.executable, "-m", "loadtest.bench.sim_direct", "--port", str(DIRECT_PORT)]
    runs: list[dict[str, Any]] = []
    with bench_stack(direct) as (store, spool):
        _wait(f"http://127.0.0.1:{DIRECT_PORT}/health")
        for replicas in (1, 2):
            print(f"deploying with {replicas} ingress replica(s)", flush=True)
            _deploy(replicas, store, spool)
            key = _key(store)
            systems = [(f"{s}-b{b}", s, b) for s in ("stock", "gavel") for b in (0, 50)]
            if replicas == 1:
                systems.insert(0, ("direct", "direct", 0))
            for rnd in range(args.rounds):
                for c in concurrency:
                    order = systems[rnd % len(systems) :] + systems[: rnd % len(systems)]
                    for prefix, system, b in order:
                        url = (
                            f"http://127.0.0.1:{DIRECT_PORT}"
                            if system == "direct"
                            else f"http://127.0.0.1:8000/{prefix}"
                        )
                        cell = _cell(
                            system, url, c, key=key if system == "gavel" else None, quick=args.quick
                        )
                        cell.update(
                            system=system,
                            concurrency=c,
                            stream_batching_ms=b,
                            ingress_replicas=replicas,
                            round=rnd,
                        )
                        runs.append(cell)
                        print(json.dumps(cell), flush=True)
    cells, summary = summarize(runs)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"cells": cells, "summary": summary, "runs": runs, "output_len": OUTPUT_LEN,
              "profile": "llama-3.1-8b-h100"}  # fmt: skip
    write_report(out, report, config="simulated llama-3.1-8b-h100 engines")
    plot(cells, out.with_suffix(".png"))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
