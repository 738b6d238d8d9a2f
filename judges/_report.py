"""Judging reports: HTML with pass rate over days, a markdown summary, Prometheus metrics."""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from pathlib import Path

from judges._aggregate import aggregate
from judges._calibration import CalibrationRow
from judges._pairwise_calibration import PairwiseCalibration
from judges._registry import KindRegistry
from judges._result import DailyResult
from judges._rows import RateRow
from judges._wire import Verdict
from judges.kinds import default_kinds
from serving import Figure, figures_registry

NOT_CALIBRATED = "no calibration for this criterion version"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def trust(calibration: Sequence[CalibrationRow], row: RateRow) -> tuple[bool, str]:
    """Whether the judge of a rate row's criterion version is trustworthy, and why."""
    for c in calibration:
        if c.criterion == row.criterion and c.criterion_version == row.criterion_version:
            return c.trusted, c.reason
    return False, NOT_CALIBRATED


def _calibration_md(calibration: Sequence[CalibrationRow]) -> list[str]:
    lines = [
        "",
        "## Judge calibration (human labels)",
        "",
        "| criterion | labels | agreement | kappa (95% CI) | coverage | false-fail | trusted |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in calibration:
        kappa = "-" if c.kappa is None else f"{c.kappa:.2f} ({c.kappa_low:.2f}–{c.kappa_high:.2f})"
        lines.append(
            f"| {c.criterion} ({c.criterion_version[:7]}) | {c.n} | {_pct(c.agreement)} | "
            f"{kappa} | {_pct(c.coverage)} | {_pct(c.false_failure_rate)} | "
            f"{'yes' if c.trusted else '**no**'}: {c.reason} |"
        )
    return lines


def history(
    verdicts: Sequence[Verdict], kinds: KindRegistry | None = None
) -> dict[tuple[str, str], list[tuple[str, float, int]]]:
    """(criterion, model) -> [(day, pass rate, n)] over the days given."""
    registry = kinds or default_kinds()
    by_day: dict[str, list[Verdict]] = defaultdict(list)
    for v in verdicts:
        by_day[v.day or v.run_id].append(v)
    out: dict[tuple[str, str], list[tuple[str, float, int]]] = defaultdict(list)
    for day in sorted(by_day):
        for row in aggregate(registry, by_day[day], []).rates:
            n = row.passes + row.fails
            if row.pass_rate is not None:
                out[(row.criterion, row.model)].append((day, row.pass_rate, n))
    return out


def plot_history(hist: dict[tuple[str, str], list[tuple[str, float, int]]], path: Path) -> None:
    """PNG: pass rate per criterion and model over days."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5))
    for (crit, model), pts in sorted(hist.items()):
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{crit} ({model})")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("pass rate")
    ax.set_title("Pass rate over days")
    ax.grid(alpha=0.3)
    if hist:
        ax.legend(fontsize=7, loc="lower left")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _feedback_md(res: DailyResult) -> list[str]:
    if not res.feedback and not res.judge_vs_users:
        return []
    lines = ["", "## Users' feedback (`POST /v1/feedback`)", "",
             "| model | name | rated / requests | positive share | 95% CI | votes |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for f in res.feedback:
        lines.append(
            f"| {f.model} | {f.name} | {f.rated} / {f.requests} ({_pct(f.rate)}) | "
            f"{_pct(f.positive_share)} | {_pct(f.share_low)}–{_pct(f.share_high)} | {f.votes} |"
        )
    for a in res.judge_vs_users:
        kappa = "-" if a.kappa is None else f"{a.kappa:.2f} ({a.kappa_low:.2f}–{a.kappa_high:.2f})"
        lines.append(
            f"\nJudge `{a.criterion}` against users' `{a.feedback}`: {a.confusion.n} records "
            f"with both, agreement {_pct(a.agreement)}, kappa {kappa} (apart from human "
            "labels; never makes a judge trusted)."
        )
    return lines


def _feedback_html(res: DailyResult) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(f.model)}</td><td>{html.escape(f.name)}</td>"
        f"<td>{f.rated} / {f.requests} ({_pct(f.rate)})</td><td>{_pct(f.positive_share)}</td>"
        f"<td>{_pct(f.share_low)}–{_pct(f.share_high)}</td><td>{f.votes}</td></tr>"
        for f in res.feedback
    )
    agree = "".join(
        f"<tr><td>{html.escape(a.criterion)}</td><td>{html.escape(a.feedback)}</td>"
        f"<td>{a.confusion.n}</td><td>{_pct(a.agreement)}</td>"
        f"<td>{'-' if a.kappa is None else f'{a.kappa:.2f}'}</td></tr>"
        for a in res.judge_vs_users
    )
    return (
        "<h2>Users' feedback</h2><table><tr><th>model</th><th>name</th>"
        "<th>rated / requests</th><th>positive share</th><th>95% Wilson CI</th>"
        f"<th>votes</th></tr>{rows}</table><h3>Judge against users (apart from human "
        "labels; never makes a judge trusted)</h3><table><tr><th>criterion</th>"
        f"<th>feedback</th><th>records</th><th>agreement</th><th>kappa</th></tr>{agree}</table>"
    )


def markdown_summary(res: DailyResult, calibration: Sequence[CalibrationRow] = ()) -> str:
    """A short markdown summary of the day."""
    lines = [
        f"# Judging {res.day.isoformat()}",
        "",
        f"{res.sampled} items sampled, {res.judged_now} judged in this run "
        f"({res.skipped} already judged), {res.errors} errors (excluded from rates).",
        f"Judge cost: {res.judge_prompt_tokens} prompt + {res.judge_completion_tokens} "
        f"completion tokens, {res.judge_cost_usd:.6f} USD.",
        "",
        "| criterion | model | pass rate | 95% CI | n | errors | trailing | flag | judge |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res.rates:
        flag = "**DROP**" if r.dropped else ""
        trusted, why = trust(calibration, r)
        lines.append(
            f"| {r.criterion} ({r.criterion_version[:7]}) | {r.model} | {_pct(r.pass_rate)} | "
            f"{_pct(r.ci_low)}–{_pct(r.ci_high)} | {r.passes + r.fails} | {r.errors} | "
            f"{_pct(r.trailing_rate)} (n={r.trailing_n}) | {flag} | "
            f"{'trusted' if trusted else f'**not trustworthy** ({why})'} |"
        )
    for p in res.pairs:
        lines.append("")
        lines.append(
            f"Pairwise {p.criterion} ({p.models}): A wins {p.wins_a}, B wins {p.wins_b}, "
            f"ties {p.ties}, errors {p.errors}; position consistency "
            f"{_pct(p.position_consistency)}."
        )
    lines += _calibration_md(calibration)
    lines += _feedback_md(res)
    return "\n".join(lines) + "\n"


def write_html(
    res: DailyResult,
    path: Path,
    png_name: str,
    calibration: Sequence[CalibrationRow] = (),
) -> None:
    """The HTML report: summary table, pairwise stats, judge calibration and the plot."""
    drop_style = ' style="background:#fdd"'

    def judge_cell(r: RateRow) -> str:
        trusted, why = trust(calibration, r)
        if trusted:
            return "<td>trusted</td>"
        return f'<td style="color:#c62828">not trustworthy: {html.escape(why)}</td>'

    rows = "".join(
        f"<tr{drop_style if r.dropped else ''}><td>{html.escape(r.criterion)}"
        f"</td><td>{r.criterion_version[:7]}</td><td>{html.escape(r.model)}</td>"
        f"<td>{_pct(r.pass_rate)}</td><td>{_pct(r.ci_low)}–{_pct(r.ci_high)}</td>"
        f"<td>{r.passes + r.fails}</td><td>{r.errors}</td><td>{_pct(r.trailing_rate)}</td>"
        f"<td>{'-' if r.drop_p is None else f'{r.drop_p:.3f}'}</td>"
        f"<td>{'DROP' if r.dropped else ''}</td>{judge_cell(r)}</tr>"
        for r in res.rates
    )
    cal = "".join(
        f"<tr><td>{html.escape(c.criterion)}</td><td>{c.criterion_version[:7]}</td>"
        f"<td>{c.n}</td><td>{_pct(c.agreement)}</td>"
        f"<td>{'-' if c.kappa is None else f'{c.kappa:.2f}'}</td>"
        f"<td>{'-' if c.kappa_low is None else f'{c.kappa_low:.2f}–{c.kappa_high:.2f}'}</td>"
        f"<td>{_pct(c.coverage)}</td><td>{_pct(c.false_failure_rate)}</td>"
        f"<td>{'yes' if c.trusted else 'NO'}: {html.escape(c.reason)}</td></tr>"
        for c in calibration
    )
    pairs = "".join(
        f"<tr><td>{html.escape(p.criterion)}</td><td>{html.escape(p.models)}</td>"
        f"<td>{p.wins_a}</td><td>{p.wins_b}</td><td>{p.ties}</td><td>{p.errors}</td>"
        f"<td>{_pct(p.position_consistency)}</td></tr>"
        for p in res.pairs
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>Gavel judging {res.day.isoformat()}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px}}</style></head><body>
<h1>Judging {res.day.isoformat()}</h1>
<p>{res.sampled} items sampled; {res.judged_now} judged in this run, {res.skipped} already
judged; {res.errors} errors (excluded from pass rates). Judge cost:
{res.judge_prompt_tokens} prompt + {res.judge_completion_tokens} completion tokens =
{res.judge_cost_usd:.6f} USD.</p>
<table><tr><th>criterion</th><th>version</th><th>model</th><th>pass rate</th>
<th>95% Wilson CI</th><th>n</th><th>errors</th><th>trailing</th><th>drop p</th><th></th>
<th>judge</th></tr>
{rows}</table>
<h2>Pairwise</h2><table><tr><th>criterion</th><th>A|B</th><th>A wins</th><th>B wins</th>
<th>ties</th><th>errors</th><th>position consistency</th></tr>{pairs}</table>
<h2>Judge calibration (human labels, <code>gavel judge calibrate</code>)</h2>
<table><tr><th>criterion</th><th>version</th><th>labels</th><th>agreement</th><th>kappa</th>
<th>95% CI</th><th>coverage</th><th>false-fail</th><th>trusted</th></tr>{cal}</table>
{_feedback_html(res)}
<h2>Over days</h2><img src="{html.escape(png_name)}" alt="pass rate over days"></body></html>"""
    path.write_text(page)


def daily_figures(res: DailyResult, calibration: Sequence[CalibrationRow] = ()) -> list[Figure]:
    """The day's figures for Prometheus: pass rates with their 95% interval, sample sizes,
    errors, drop flags, judge cost, and each criterion's calibration (trusted, kappa)."""
    out: list[Figure] = []

    def add(name: str, help_: str, value: float, **labels: str) -> None:
        out.append(Figure(name=name, help=help_, labels=labels, value=value))

    for r in res.rates:
        lv = {"criterion": r.criterion, "criterion_version": r.criterion_version, "model": r.model}
        if r.pass_rate is not None:
            add("gavel_judge_pass_rate", "Pass rate of the day", r.pass_rate, **lv)
            add("gavel_judge_pass_rate_low", "Lower bound of the 95% Wilson interval", r.ci_low,
                **lv)  # fmt: skip
            add("gavel_judge_pass_rate_high", "Upper bound of the 95% Wilson interval",
                r.ci_high, **lv)  # fmt: skip
        add("gavel_judge_sample_size", "Judged items (pass + fail)", r.passes + r.fails, **lv)
        add("gavel_judge_errors", "Judge errors (excluded from rates)", r.errors, **lv)
        add("gavel_judge_drop_flag", "1 if significantly below trailing", int(r.dropped), **lv)
    calibrated: list[CalibrationRow | PairwiseCalibration] = list(calibration)
    calibrated += res.pairwise_calibration
    for c in calibrated:  # pass/fail, then pairwise
        cv = {"criterion": c.criterion, "criterion_version": c.criterion_version}
        add("gavel_judge_trusted",
            "1 if the criterion's judge agrees with human labels (kappa and label count)",
            int(c.trusted), **cv)  # fmt: skip
        add("gavel_judge_calibration_labels", "Labelled and judged records", c.n, **cv)
        if c.kappa is not None:
            add("gavel_judge_kappa", "Cohen's kappa, judge vs people", c.kappa, **cv)
    for f in res.feedback:
        fv = {"model": f.model, "feedback": f.name}
        if f.rate is not None:
            add("gavel_feedback_rate", "Share of the day's requests with users' feedback",
                f.rate, **fv)  # fmt: skip
        if f.positive_share is not None:
            add("gavel_feedback_positive_share", "Positive share of users' feedback",
                f.positive_share, **fv)  # fmt: skip
            add("gavel_feedback_positive_share_low", "Lower bound of the 95% Wilson interval",
                f.share_low or 0.0, **fv)  # fmt: skip
            add("gavel_feedback_positive_share_high", "Upper bound of the 95% Wilson interval",
                f.share_high or 0.0, **fv)  # fmt: skip
    add("gavel_judge_cost_usd", "Judge cost of the day", res.judge_cost_usd)
    add("gavel_judge_items", "Items sampled for judging on the day", res.sampled)
    add("gavel_judge_day_timestamp_seconds", "Start of the judged day (UTC), Unix seconds",
        datetime.combine(res.day, time(0), tzinfo=UTC).timestamp())  # fmt: skip
    return out


def write_metrics(
    res: DailyResult,
    path: Path,
    pushgateway: str | None = None,
    calibration: Sequence[CalibrationRow] = (),
) -> None:
    """Prometheus textfile (node-exporter collector) and optionally a Pushgateway push."""
    from prometheus_client import push_to_gateway, write_to_textfile

    reg = figures_registry(daily_figures(res, calibration))
    write_to_textfile(str(path), reg)
    if pushgateway:
        push_to_gateway(pushgateway, job="gavel_judge", registry=reg)


def write_reports(
    res: DailyResult,
    history_verdicts: Sequence[Verdict],
    out_dir: Path,
    *,
    calibration: Sequence[CalibrationRow] = (),
    pushgateway: str | None = None,
    kinds: KindRegistry | None = None,
) -> Path:
    """Write report.html, latest plot, summary.md and metrics.prom; returns the HTML path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_history(history(history_verdicts, kinds), out_dir / "pass_rate.png")
    write_html(res, out_dir / "report.html", "pass_rate.png", calibration)
    (out_dir / "summary.md").write_text(markdown_summary(res, calibration))
    write_metrics(res, out_dir / "metrics.prom", pushgateway, calibration)
    return out_dir / "report.html"


def report_dir(base: str, day: date) -> Path:
    """Where a day's reports go."""
    return Path(base) / day.isoformat()
