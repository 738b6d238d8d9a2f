"""What tracing costs end to end at GPU token rates (issue 34): ``make bench-scale`` with
``gateway.tracing`` off, on at a sample ratio of 1.0, and on at 0.01.

Three Gavel apps on the capacity benchmark's simulated H100 engine (one ingress replica,
the GPU default 50 ms stream batching, capture to PostgreSQL), exporting spans over
OTLP/HTTP to a local collector stand-in (``loadtest.bench._otlp_sink``) on the same
machine. Within a round, each concurrency is a block that runs the three settings once,
in an order that rotates between rounds; the rounds give each figure's min-max spread.
The figures are the capacity benchmark's (``loadtest.bench.scale``): output tokens/s,
TTFT p50/p99, serving cores per 1,000 output tokens/s.

``python -m loadtest.bench.scale_tracing [--rounds 3] [--quick]
--out reports/bench/scale_tracing.json``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from loadtest.bench._scale_deploy import TRACING
from loadtest.bench.scale import CONCURRENCY, _cell, _deploy, _key, bench_stack, summarize
from serving.bench.provenance import write_report

SINK_PORT = 4318
LABELS = {"t-off": "off", "t-1": "on, ratio 1.0", "t-001": "on, ratio 0.01"}


def compare(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Each traced setting against tracing off, per concurrency (pure): the throughput
    ratio, the p50 and p99 TTFT added, and the serving cores per 1k tok/s."""
    at = {(c["system"], c["concurrency"]): c for c in cells}
    out: dict[str, Any] = {}
    for suffix in ("t-1", "t-001"):
        rows = []
        for conc in sorted({c["concurrency"] for c in cells}):
            off, on = at.get(("gavel-t-off", conc)), at.get((f"gavel-{suffix}", conc))
            if not off or not on or not off["output_tok_s"]:
                continue
            rows.append(
                {
                    "concurrency": conc,
                    "throughput_ratio": round(on["output_tok_s"] / off["output_tok_s"], 3),
                    "ttft_added_p50_ms": _minus(on["ttft_p50_ms"], off["ttft_p50_ms"]),
                    "ttft_added_p99_ms": _minus(on["ttft_p99_ms"], off["ttft_p99_ms"]),
                }
            )
        ratios = [r["throughput_ratio"] for r in rows]
        added = [r["ttft_added_p50_ms"] for r in rows if r["ttft_added_p50_ms"] is not None]
        out[LABELS[suffix]] = {
            "by_concurrency": rows,
            "throughput_ratio_min": min(ratios) if ratios else None,
            "ttft_added_p50_ms_max": max(added) if added else None,
        }
    return out


def _minus(a: float | None, b: float | None) -> float | None:
    return round(a - b, 2) if a is not None and b is not None else None


def _fmt(c: dict[str, Any] | None) -> str:
    if c is None or c["output_tok_s"] is None:
        return "–"
    lo, hi = c["output_tok_s_spread"] or (c["output_tok_s"], c["output_tok_s"])
    core = c.get("serving_cores_per_1k_tok_s")
    return (
        f"{c['output_tok_s']:,.0f} [{lo:,.0f}–{hi:,.0f}], {c['ttft_p50_ms']:,.0f} / "
        f"{c['ttft_p99_ms']:,.0f} ms" + (f", {core:.2f}" if core is not None else "")
    )


def table(data: dict[str, Any]) -> str:
    """The page's table from this benchmark's JSON (pure)."""
    at = {(c["system"], c["concurrency"]): c for c in data["cells"]}
    head = ["concurrency"] + [f"tracing {LABELS[s]}" for s in TRACING]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for conc in sorted({c["concurrency"] for c in data["cells"]}):
        rows.append(
            "| "
            + " | ".join([str(conc)] + [_fmt(at.get((f"gavel-{s}", conc))) for s in TRACING])
            + " |"
        )
    rows.append(
        "\nEach cell: output tokens/s, median [min–max] over rounds; p50 / p99 TTFT; serving "
        "cores per 1,000 output tokens/s. Simulated H100 engine, one ingress replica, 50 ms "
        f"stream batching; the collector stand-in took {data['sink']['exports']:,} exports "
        f"({data['sink']['bytes'] / 1e6:,.1f} MB)."
    )
    rows.append("\n| tracing | Gavel traced / untraced tok/s, worst cell | p50 TTFT added, "
                "worst cell |\n|---|---|---|")  # fmt: skip
    for label, s in data["comparison"].items():
        rows.append(f"| {label} | {s['throughput_ratio_min']} | +{s['ttft_added_p50_ms_max']} ms |")
    return "\n".join(rows)


def main() -> None:
    """Run the comparison; print each cell and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="reports/bench/scale_tracing.json")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="concurrency up to 64, fewer requests")
    args = parser.parse_args()
    concurrency = CONCURRENCY[:3] if args.quick else CONCURRENCY
    counts = Path(tempfile.mkdtemp(prefix="gavel-otlp-")) / "counts.json"
    sink = [sys.executable, "-m", "loadtest.bench._otlp_sink", "--port", str(SINK_PORT),
            "--counts", str(counts)]  # fmt: skip
    runs: list[dict[str, Any]] = []
    with bench_stack(sink) as (store, spool):
        _deploy(1, store, spool, "--tracing", f"http://127.0.0.1:{SINK_PORT}/v1/traces")
        key = _key(store)
        systems = [f"gavel-{s}" for s in TRACING]
        for rnd in range(args.rounds):
            for c in concurrency:
                order = systems[rnd % len(systems) :] + systems[: rnd % len(systems)]
                for system in order:
                    url = f"http://127.0.0.1:8000/{system}"
                    cell = _cell("gavel", url, c, key=key, quick=args.quick)
                    cell.update(system=system, concurrency=c, stream_batching_ms=50,
                                ingress_replicas=1, round=rnd)  # fmt: skip
                    runs.append(cell)
                    print(json.dumps(cell), flush=True)
    cells, _ = summarize(runs)
    report = {
        "cells": cells,
        "comparison": compare(cells),
        "sink": json.loads(counts.read_text()) if counts.is_file() else {"exports": 0, "bytes": 0},
        "runs": runs,
        "profile": "llama-3.1-8b-h100",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_report(out, report, config="simulated llama-3.1-8b-h100 engines, tracing off/1.0/0.01")
    print(json.dumps(report["comparison"], indent=2))


if __name__ == "__main__":
    main()
