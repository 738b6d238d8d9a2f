"""The capacity benchmark's report (pure): the median of its rounds per cell, the summary
against the targets for each Gavel mode (against the better stock of each cell), the
page's table and the plot."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

GPU_DEFAULT_BATCHING_MS = 50


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
    modes = {m: _against_stock(cells, m) for m in GAVEL_MODES}
    best = max(modes, key=lambda m: modes[m]["gavel_vs_stock_throughput_ratio_min"] or 0.0)
    summary = {
        **modes[best],
        "gavel_mode": best,
        "by_mode": modes,
        "targets": {
            "throughput_ratio_min": 0.97,
            "ttft_added_p50_ms_max": 3.0,
            "serving_cores_per_1k_tok_s_max": 1.0,
        },
    }
    return cells, summary


GAVEL_MODES = ("gavel", "gavel-haproxy", "gavel-direct")
"""Gavel behind Serve's proxy; behind HAProxy (its ingress replicas reached directly); and
in the engine's replica on the direct-streaming path (``http.proxy: direct``)."""


def _against_stock(cells: list[dict[str, Any]], mode: str) -> dict[str, Any]:
    """One Gavel mode's cells against the better stock of each cell: ``stock`` at the same
    batching and replica count, or ``stock-direct`` (which has neither) at the same
    concurrency; the ratio is to the higher throughput, the TTFT added over the lower
    p50. Fills in each cell's ``ttft_added_over_direct_p50_ms``. Serving cores at the
    GPU default batching under load (c >= 16); c = 1 apart (Ray's idle daemons)."""
    at = {(c["system"], c["concurrency"], c["stream_batching_ms"], c["ingress_replicas"]): c
          for c in cells}  # fmt: skip
    ratios: list[float] = []
    added: list[float] = []
    cores: list[float] = []
    idle: list[float] = []
    for c in cells:
        if c["system"] != mode:
            continue
        conc, b, n = c["concurrency"], c["stream_batching_ms"], c["ingress_replicas"]
        stocks = [s for s in (at.get(("stock", conc, b, n)), at.get(("stock-direct", conc, 0, 1)))
                  if s and s["output_tok_s"]]  # fmt: skip
        floor = at.get(("direct", conc, 0, 1))
        if floor and c["ttft_p50_ms"] is not None and floor["ttft_p50_ms"] is not None:
            c["ttft_added_over_direct_p50_ms"] = round(c["ttft_p50_ms"] - floor["ttft_p50_ms"], 2)
        if stocks:
            ratios.append(c["output_tok_s"] / max(s["output_tok_s"] for s in stocks))
            ttfts = [s["ttft_p50_ms"] for s in stocks if s["ttft_p50_ms"] is not None]
            if c["ttft_p50_ms"] is not None and ttfts:
                added.append(c["ttft_p50_ms"] - min(ttfts))
        per_1k = c["serving_cores_per_1k_tok_s"]
        if b == GPU_DEFAULT_BATCHING_MS and per_1k:
            (cores if conc >= 16 else idle).append(per_1k)
    return {
        "gavel_vs_stock_throughput_ratio_min": round(min(ratios), 3) if ratios else None,
        "gavel_vs_stock_ttft_added_p50_ms_max": round(max(added), 2) if added else None,
        "gavel_serving_cores_per_1k_tok_s_max": round(max(cores), 3) if cores else None,
        "gavel_serving_cores_per_1k_tok_s_c1": round(max(idle), 3) if idle else None,
    }


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
    then the summary against the targets, per Gavel mode."""
    cells = data["cells"]
    at = {(c["system"], c["concurrency"], c["stream_batching_ms"], c["ingress_replicas"]): c
          for c in cells}  # fmt: skip
    batched = [s for s in ("stock", *GAVEL_MODES) if any(c["system"] == s for c in cells)]
    batchings = sorted({c["stream_batching_ms"] for c in cells if c["system"] in batched})
    lone = [s for s in ("direct", "stock-direct") if any(c["system"] == s for c in cells)]
    head = ["concurrency", *lone] + [f"{s}, batching {b} ms" for b in batchings for s in batched]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for conc in sorted({c["concurrency"] for c in cells}):
        parts = [str(conc)]
        parts += [_cell_text(at.get((s, conc, 0, 1)), cores=s != "direct") for s in lone]
        parts += [_cell_text(at.get((s, conc, b, 1)), cores=True)
                  for b in batchings for s in batched]  # fmt: skip
        rows.append("| " + " | ".join(parts) + " |")
    s, t = data["summary"], data["summary"]["targets"]
    rows.append(
        "\nEach cell: output tokens/s, median [min–max] over rounds; p50 TTFT; serving "
        "cores per 1,000 output tokens/s (for `stock-direct`, whose replica is its own "
        "HTTP server, that work is counted as the engine's; for `gavel-direct`, the "
        "whole replica that runs the gateway, its simulated engine included: an upper "
        "bound). One ingress replica (`gavel-direct` has none: the gateway is in the "
        "engine's replica); the JSON has both."
    )
    modes = s.get("by_mode") or {s.get("gavel_mode", "gavel"): s}
    rows.append("\n| | target | " + " | ".join(f"`{m}`" for m in modes) + " |")
    rows.append("|---|---|" + "---|" * len(modes))
    lines = (
        ("Gavel / better stock output tokens/s, worst cell", ">= {throughput_ratio_min}",
         "gavel_vs_stock_throughput_ratio_min", "{}"),
        ("p50 TTFT added over the better stock, worst cell", "<= +{ttft_added_p50_ms_max:g} ms",
         "gavel_vs_stock_ttft_added_p50_ms_max", "+{} ms"),
        ("serving cores per 1k output tok/s, GPU default batching, c >= 16",
         "<= {serving_cores_per_1k_tok_s_max}", "gavel_serving_cores_per_1k_tok_s_max", "{}"),
        ("the same at c = 1 (Ray's idle daemons dominate)", "(apart)",
         "gavel_serving_cores_per_1k_tok_s_c1", "{}"),
    )  # fmt: skip
    for label, target, field, fmt in lines:
        vals = [fmt.format(m.get(field)) if m.get(field) is not None else "–"
                for m in modes.values()]  # fmt: skip
        rows.append(f"| {label} | {target.format(**t)} | " + " | ".join(vals) + " |")
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
