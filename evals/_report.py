"""Writing an eval run: ``result.json``, ``report.html``, ``pass_rates.png``, and tables."""

from __future__ import annotations

import html
import os
import tempfile
from pathlib import Path

from evals._compare import Comparison, PairwiseReport
from evals._result import CheckSummary, RunResult


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def check_table(checks: list[CheckSummary]) -> str:
    """One line per check: pass rate with its 95% Wilson interval, and for a judge check
    whether its judge is trusted (calibrated against people)."""
    lines = [f"{'check':<24} {'pass':>7} {'95% CI':>16} {'n':>5}  gating  judge"]
    for c in checks:
        ci = f"[{_pct(c.ci_low)}, {_pct(c.ci_high)}]"
        extra = f"  ({c.skipped} skipped, {c.errors} errors)" if c.skipped or c.errors else ""
        judge = {None: "-", True: "trusted", False: "NOT trusted"}[c.judge_trusted]
        why = f" ({c.trust_reason})" if c.judge_trusted is False and c.trust_reason else ""
        lines.append(
            f"{c.name:<24} {_pct(c.rate):>7} {ci:>16} {c.n:>5}  "
            f"{'yes' if c.gating else 'no':<6}  {judge}{why}{extra}"
        )
    return "\n".join(lines)


def run_table(r: RunResult) -> str:
    """The short table ``gavel eval run`` prints."""
    out = [
        f"run {r.run_id}: suite {r.suite} on {r.model} ({len(r.items)} items x {r.epochs} "
        f"epochs, {r.model_calls} model calls, {r.cached_answers} cached or fixed, "
        f"{r.seconds:.1f} s)",
        check_table(r.checks),
    ]
    for check, ids in r.flaky.items():
        out.append(f"flaky on {check}: {', '.join(ids)}")
    return "\n".join(out)


def comparison_table(c: Comparison) -> str:
    """Per check: baseline, candidate, difference with its interval, McNemar, flips."""
    lines = [
        f"{c.candidate} against {c.baseline} (max drop {c.max_drop:.0%})",
        f"{'check':<24} {'base':>7} {'cand':>7} {'diff':>7} {'95% CI':>18} {'McNemar p':>10}",
    ]
    for d in c.checks:
        ci = f"[{100 * d.ci_low:+.1f}, {100 * d.ci_high:+.1f}]"
        flag = "  FAIL" if d.failed_gate else ""
        lines.append(
            f"{d.check:<24} {_pct(d.baseline_rate):>7} {_pct(d.candidate_rate):>7} "
            f"{100 * d.diff:>+6.1f} {ci:>18} {d.mcnemar_p:>10.3f}{flag}"
        )
        if d.pass_to_fail:
            lines.append(f"    pass -> fail: {', '.join(d.pass_to_fail)}")
        if d.fail_to_pass:
            lines.append(f"    fail -> pass: {', '.join(d.fail_to_pass)}")
        if d.regressed_items:
            lines.append(f"    passed K/K, now at most K/2: {', '.join(d.regressed_items)}")
    return "\n".join(lines)


def pairwise_table(p: PairwiseReport) -> str:
    """The A/B pairwise figures and the decision."""
    flip = _pct(p.position_flip_rate)
    lines = [
        f"pairwise ({p.criterion}, both orders): B wins {p.wins_b}, ties {p.ties} "
        f"({p.identical} identical answers), A wins {p.losses_b}",
        f"B's win rate {_pct(p.win_rate_b)} [{_pct(p.ci_low)}, {_pct(p.ci_high)}], sign test "
        f"p={p.sign_test_p:.3f}, position flips {flip}, longer answer won "
        f"{_pct(p.longer_won_rate)}, length-controlled win rate "
        f"{_pct(p.length_controlled_win_rate)}",
    ]
    if p.decision is None:
        lines.append(f"decision withheld: {p.withheld_because}")
    else:
        lines.append(f"decision: {p.decision}")
    return "\n".join(lines)


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def plot(r: RunResult, path: Path) -> None:
    """PNG: each check's pass rate with its 95% interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(r.checks)), 3.5))
    xs = range(len(r.checks))
    rates = [c.rate or 0 for c in r.checks]
    err = [
        [max(0, (c.rate or 0) - c.ci_low) for c in r.checks],
        [max(0, c.ci_high - (c.rate or 0)) for c in r.checks],
    ]
    ax.bar(xs, rates, yerr=err, capsize=4, color="#4c72b0")
    ax.set_xticks(list(xs), [c.name for c in r.checks], rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("pass rate")
    ax.set_title(f"{r.suite} on {r.model}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_run(r: RunResult, out_dir: Path) -> Path:
    """Write ``result.json``, ``pass_rates.png`` and ``report.html``; returns the JSON path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write(out_dir / "result.json", r.model_dump_json(indent=2))
    plot(r, out_dir / "pass_rates.png")
    rows = "".join(
        f"<tr><td>{html.escape(c.name)}</td><td>{_pct(c.rate)}</td>"
        f"<td>{_pct(c.ci_low)}–{_pct(c.ci_high)}</td><td>{c.n}</td><td>{c.skipped}</td>"
        f"<td>{c.errors}</td><td>{'yes' if c.gating else 'no'}</td></tr>"
        for c in r.checks
    )
    tags = "".join(
        f"<tr><td>{html.escape(t)}</td><td>{html.escape(c.name)}</td><td>{_pct(c.rate)}</td>"
        f"<td>{c.n}</td></tr>"
        for t, cs in r.tags.items()
        for c in cs
    )
    items = "".join(
        f"<tr><td>{html.escape(it.id)}</td><td>"
        + " ".join(
            f"{html.escape(k)}={it.passes(k)[0]}/{it.passes(k)[1]}"
            for k in sorted({name for e in it.epochs for name in e.outcomes})
        )
        + f"</td><td><pre>{html.escape((it.epochs[0].response or it.epochs[0].error or '')[:400])}"
        "</pre></td></tr>"
        for it in r.items
    )
    flaky = "".join(
        f"<li>{html.escape(c)}: {html.escape(', '.join(ids))}</li>" for c, ids in r.flaky.items()
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>Eval {html.escape(r.suite)} on {html.escape(r.model)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;vertical-align:top}}
pre{{margin:0;white-space:pre-wrap}}
</style></head><body>
<h1>Eval {html.escape(r.suite)} on {html.escape(r.model)}</h1>
<p>Run {html.escape(r.run_id)}; {len(r.items)} items × {r.epochs} epochs; suite
{r.suite_hash}, dataset {r.dataset_hash}, commit {html.escape(r.git_commit or "-")};
{r.model_calls} model calls, {r.cached_answers} cached or fixed answers.</p>
<table><tr><th>check</th><th>pass rate</th><th>95% Wilson CI</th><th>n</th><th>skipped</th>
<th>errors</th><th>gating</th></tr>{rows}</table>
<img src="pass_rates.png" alt="pass rates">
<h2>By tag</h2><table><tr><th>tag</th><th>check</th><th>pass</th><th>n</th></tr>{tags}</table>
<h2>Flaky items (neither 0/K nor K/K)</h2><ul>{flaky or "<li>none</li>"}</ul>
<h2>Items</h2><table><tr><th>item</th><th>k/K per check</th><th>first answer</th></tr>
{items}</table></body></html>"""
    _atomic_write(out_dir / "report.html", page)
    return out_dir / "result.json"
