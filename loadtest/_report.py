"""Report writer: the JSON result, a PNG plot of latency against output length, an HTML page.

Also the comparison of two results and the optional Pushgateway export.
"""

from __future__ import annotations

import html
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from loadtest._models import CellSummary, LatencyFit, RunInfo, SweepResult
from serving import Figure, GavelModel, figures_registry


def run_info(stack_config: dict[str, object] | None) -> RunInfo:
    """Git commit, machine and config of this run."""
    try:
        commit: str | None = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return RunInfo(
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        git_commit=commit,
        machine={
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "processor": platform.processor() or None,
        },
        stack_config=stack_config,
    )


def write_json(result: SweepResult, path: Path) -> None:
    """Write the schema-versioned result."""
    path.write_text(result.model_dump_json(indent=2))


def read_result(path: Path) -> SweepResult:
    """Read a result file written by :func:`write_json`."""
    return SweepResult.model_validate_json(path.read_text())


def plot_latency(result: SweepResult, path: Path) -> None:
    """PNG: p50 E2E, TTFT and TPOT against output length, one line per concurrency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    panels = [("e2e_ms", "E2E latency p50 (ms)"), ("ttft_ms", "TTFT p50 (ms)"),
              ("tpot_ms", "TPOT p50 (ms/token)")]  # fmt: skip
    fits = {f.concurrency: f for f in result.fits}
    for ax, (attr, title) in zip(axes, panels, strict=True):
        for c in sorted({cell.concurrency for cell in result.cells}):
            cells = sorted(
                (x for x in result.cells if x.concurrency == c), key=lambda x: x.output_len
            )
            xs = [x.output_len for x in cells]
            ys = [getattr(x, attr).p50 for x in cells]
            line = ax.plot(xs, ys, marker="o", label=f"concurrency {c}")[0]
            fit = fits.get(c)
            if attr == "e2e_ms" and fit is not None and xs:
                lo, hi = min(xs), max(xs)
                fx = [lo * (hi / lo) ** (i / 49) for i in range(50)] if lo > 0 else [lo, hi]
                ax.plot(fx, [fit.intercept_ms + fit.slope_ms_per_token * (x - 1) for x in fx],
                        linestyle="--", color=line.get_color(), alpha=0.6)  # fmt: skip
        ax.set_xlabel("output tokens")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if len(result.spec.output_lens) > 2:
            ax.set_xscale("log", base=2)
    axes[0].legend()
    fig.suptitle(f"{result.spec.model} @ {result.spec.base_url} ({result.spec.mode} loop)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _f(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def write_html(result: SweepResult, path: Path, png_name: str) -> None:
    """A self-contained HTML page: the plot, the cell table, the fits."""
    rows = "".join(
        f"<tr><td>{c.output_len}</td><td>{c.concurrency}</td><td>{c.count}</td>"
        f"<td>{c.errors}</td><td>{_f(c.ttft_ms.p50)}</td><td>{_f(c.ttft_ms.p90)}</td>"
        f"<td>{_f(c.ttft_ms.p99)}</td><td>{_f(c.tpot_ms.p50)}</td><td>{_f(c.tpot_ms.p90)}</td>"
        f"<td>{_f(c.tpot_ms.p99)}</td><td>{_f(c.e2e_ms.p50, 0)}</td><td>{_f(c.e2e_ms.p90, 0)}</td>"
        f"<td>{_f(c.e2e_ms.p99, 0)}</td><td>{_f(c.output_tok_s)}</td>"
        f"<td>{_f(c.goodput_rps, 3)}</td><td>{_f(c.cost_per_mtok_usd, 2)}</td></tr>"
        for c in result.cells
    )

    def off_line(f: LatencyFit) -> str:
        parts = [f"N={o.output_tokens}: {o.residual_ms:+.0f} ms" for o in f.outliers]
        return html.escape(", ".join(parts)) or "none"

    fit_rows = "".join(
        f"<tr><td>{f.concurrency}</td><td>{f.intercept_ms:.1f}</td>"
        f"<td>{f.slope_ms_per_token:.2f}</td><td>{f.r2:.4f}</td><td>{f.points}</td>"
        f"<td>{off_line(f)}</td></tr>"
        for f in result.fits
    )
    spec = result.spec
    slo = ", ".join(f"{k}≤{v}" for k, v in spec.slo.model_dump().items() if v is not None)
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>Gavel load test {html.escape(result.run.started_at)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}</style></head><body>
<h1>Gavel load test</h1>
<p>{html.escape(spec.model)} at {html.escape(spec.base_url)}; {spec.mode} loop
{f"at {spec.rate_rps} req/s" if spec.rate_rps else ""}; prompt {spec.prompt_tokens} tokens;
commit {html.escape(result.run.git_commit or "unknown")};
started {html.escape(result.run.started_at)}.
SLOs: {html.escape(slo or "none")}; node price: {_f(spec.node_hour_usd, 2)} USD/h.</p>
<img src="{html.escape(png_name)}" alt="latency against output length" style="max-width:100%">
<h2>Cells</h2><table><tr><th>out</th><th>conc</th><th>n</th><th>err</th>
<th>TTFT p50</th><th>p90</th><th>p99</th><th>TPOT p50</th><th>p90</th><th>p99</th>
<th>E2E p50</th><th>p90</th><th>p99</th><th>out tok/s</th><th>goodput req/s</th>
<th>USD / 1M out tok</th></tr>{rows}</table>
<h2>Latency model: E2E ≈ TTFT + (N − 1)·TPOT</h2>
<table><tr><th>conc</th><th>intercept ms</th><th>slope ms/token</th><th>R²</th><th>points</th>
<th>off the line</th></tr>{fit_rows}</table></body></html>"""
    path.write_text(page)


class Regression(GavelModel):
    """A metric of one cell that got worse beyond the threshold."""

    output_len: int
    concurrency: int
    metric: str
    old: float
    new: float
    change: float
    """Relative change, signed so that positive is worse."""


def _key(c: CellSummary) -> tuple[int, int, str]:
    return (c.output_len, c.concurrency, c.mode)


def compare(old: SweepResult, new: SweepResult, *, threshold: float = 0.10) -> list[Regression]:
    """Cells present in both results whose latency rose or throughput fell beyond ``threshold``."""
    olds = {_key(c): c for c in old.cells}
    out: list[Regression] = []
    for c in new.cells:
        o = olds.get(_key(c))
        if o is None:
            continue
        pairs: list[tuple[str, float | None, float | None, bool]] = [
            ("ttft_p50_ms", o.ttft_ms.p50, c.ttft_ms.p50, True),
            ("tpot_p50_ms", o.tpot_ms.p50, c.tpot_ms.p50, True),
            ("e2e_p50_ms", o.e2e_ms.p50, c.e2e_ms.p50, True),
            ("e2e_p99_ms", o.e2e_ms.p99, c.e2e_ms.p99, True),
            ("output_tok_s", o.output_tok_s, c.output_tok_s, False),
        ]
        for metric, ov, nv, higher_is_worse in pairs:
            if ov is None or nv is None or ov <= 0:
                continue
            change = (nv - ov) / ov if higher_is_worse else (ov - nv) / ov
            if change > threshold:
                out.append(Regression(output_len=c.output_len, concurrency=c.concurrency,
                                      metric=metric, old=ov, new=nv, change=change))  # fmt: skip
        old_err = o.errors / o.count if o.count else 0.0
        new_err = c.errors / c.count if c.count else 0.0
        if new_err > old_err:
            out.append(Regression(output_len=c.output_len, concurrency=c.concurrency,
                                  metric="error_rate", old=old_err, new=new_err,
                                  change=new_err - old_err))  # fmt: skip
    return out


def loadtest_figures(result: SweepResult) -> list[Figure]:
    """The sweep's figures for Prometheus: per cell, p50 latencies, throughput and cost."""
    out: list[Figure] = []
    for c in result.cells:
        lv = {"model": result.spec.model, "output_len": str(c.output_len),
              "concurrency": str(c.concurrency), "mode": c.mode}  # fmt: skip
        for name, v in (("ttft", c.ttft_ms.p50), ("tpot", c.tpot_ms.p50), ("e2e", c.e2e_ms.p50)):
            if v is not None:
                out.append(Figure(name=f"gavel_loadtest_{name}_p50_seconds",
                                  help=f"{name.upper()} p50 of the last load test",
                                  labels=lv, value=v / 1000))  # fmt: skip
        out.append(Figure(name="gavel_loadtest_output_tokens_per_second",
                          help="Output tokens per second of the last load test",
                          labels=lv, value=c.output_tok_s))  # fmt: skip
        if c.cost_per_mtok_usd is not None:
            out.append(Figure(name="gavel_loadtest_cost_per_mtok_usd",
                              help="USD per 1M output tokens of the last load test",
                              labels=lv, value=c.cost_per_mtok_usd))  # fmt: skip
    return out


def push_to_gateway(result: SweepResult, url: str, *, job: str = "gavel_loadtest") -> None:
    """Push the sweep's figures to a Prometheus Pushgateway."""
    from prometheus_client import push_to_gateway as push

    push(url, job=job, registry=figures_registry(loadtest_figures(result)))
