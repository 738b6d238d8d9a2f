"""``gavel swap report``'s I/O: a swap's captured traffic over some days, its shadow
pairs judged pairwise, the report as JSON and HTML, and the decision as figures for
Prometheus (``gavel_swap_decision``, ``gavel_swap_win_rate``, ``gavel_swap_pairs``)."""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path

from pydantic import Field

from evals._checks import ASSERTIONS, AssertArgs
from evals._compare import PairOutcome, PairwiseReport, pairwise_report
from evals._pairwise import PairJudging, find_pairwise, judge_exchange_pairs
from evals._trust import judge_trust, pairwise_trust
from evals.swap._judged import judged_checks, to_judge, worse_but_untrusted
from evals.swap._sequence import SequencePoint, sequence_by_day
from evals.swap._trial import (
    ArmCheck,
    SwapTraffic,
    SwapVerdict,
    arm_checks,
    decide,
    feedback_checks,
    split,
)
from judges import (
    Criterion,
    JudgeItem,
    JudgingConfig,
    VerdictStore,
    default_kinds,
    judge_items,
    load_criteria,
    to_exchange,
)
from serving import EXIT_USAGE, CliError, Figure, GavelModel, SwapConfig, TrafficRecord
from serving.feedback import Feedback
from serving.store import Store
from serving.swap import record_swap_report

NOT_JUDGED = "not judged (--no-judge)"


class SwapReport(GavelModel):
    """A swap over some days: traffic on each arm, checks, the pairwise judge, the decision."""

    production: str
    candidate: str
    days: list[str]
    production_arm: int
    candidate_arm: int
    shadow_pairs: int
    checks: list[ArmCheck]
    pairwise: PairwiseReport | None
    sequence: list[SequencePoint] = Field(default_factory=list)
    """The win rate's confidence sequence at the end of each day of the report."""
    judge_trusted: bool | None
    trust_reason: str
    verdict: SwapVerdict
    seconds: float


def days_of(day: date | None, since: date | None, today: date) -> list[date]:
    """The days a report covers: one day, or every day from ``since`` to ``today``."""
    if since is not None:
        return [since + timedelta(days=i) for i in range((today - since).days + 1)]
    return [day or today]


def check_config(swap: SwapConfig, config_path: str) -> None:
    """Every check names a registered assertion with the arguments it needs."""
    for i, c in enumerate(swap.checks):
        args = AssertArgs(pattern=c.pattern, max=c.max, min=c.min,
                          refusal_patterns=c.refusal_patterns)  # fmt: skip
        problem = ASSERTIONS.problem(c.assertion, args)
        if problem is not None:
            raise CliError(f"{config_path}: swap.checks[{i}] ({c.name}): {problem}", EXIT_USAGE)


def pairwise_criterion(swap: SwapConfig, judging: JudgingConfig) -> Criterion:
    """The swap's pairwise criterion from the judging config's criteria."""
    return find_pairwise(swap.pairwise, judging.criteria_dir, where="swap.pairwise")


def build_report(
    swap: SwapConfig,
    records: Sequence[TrafficRecord],
    days: Sequence[date],
    *,
    judge: Callable[[SwapTraffic], Sequence[PairOutcome] | None],
    trust: tuple[bool | None, str] = (None, NOT_JUDGED),
    judge_arms: Callable[[SwapTraffic], list[ArmCheck]] = lambda _: [],
    feedback: Sequence[Feedback] = (),
) -> SwapReport:
    """Split, check, judge (``judge`` gives the shadow pairs' outcomes, or ``None``: not
    judged; ``judge_arms``
    scores both arms on the pass/fail criteria) and decide, with ``trust``: whether the
    pairwise judge is trusted, and why. Users' ``feedback`` is compared between the
    canary's arms."""
    t0 = time.perf_counter()
    traffic = split(records, swap)
    checks = arm_checks(swap, traffic) + feedback_checks(swap, traffic, feedback)
    checks += judge_arms(traffic)
    outcomes = judge(traffic)
    trusted, why = trust
    pairwise = (
        None if outcomes is None
        else pairwise_report(swap.pairwise, outcomes, judge_trusted=trusted, trust_reason=why)
    )  # fmt: skip
    verdict = decide(swap, traffic, checks, pairwise, judge_trusted=trusted,
                     trust_reason=why)  # fmt: skip
    ignored = worse_but_untrusted(checks)
    if ignored:
        note = f"not acted on, judge not trusted: {', '.join(ignored)} show the candidate worse"
        verdict = verdict.model_copy(update={"reason": f"{verdict.reason}; {note}"})
    return SwapReport(
        production=swap.production, candidate=swap.candidate,
        days=[d.isoformat() for d in days], production_arm=len(traffic.production_arm),
        candidate_arm=len(traffic.candidate_arm), shadow_pairs=len(traffic.pairs),
        checks=checks, pairwise=pairwise, judge_trusted=trusted,
        sequence=sequence_by_day(outcomes or [], traffic.pairs, days),
        trust_reason=why, verdict=verdict,
        seconds=round(time.perf_counter() - t0, 2),
    )  # fmt: skip


def swap_criteria(swap: SwapConfig, judging: JudgingConfig, config_path: str) -> list[Criterion]:
    """The swap's pass/fail criteria from the judging config's criteria."""
    kinds = default_kinds()
    found = {c.name: c for c in kinds.pass_fail(load_criteria(Path(judging.criteria_dir), kinds))}
    for i, name in enumerate(swap.criteria):
        if name not in found:
            raise CliError(
                f"{config_path}: swap.criteria[{i}] = {name!r}: no pass/fail criterion of that "
                f"name in {judging.criteria_dir} ({', '.join(sorted(found))})",
                EXIT_USAGE,
            )
    return [found[n] for n in swap.criteria]


def judge_both_arms(
    traffic: SwapTraffic, swap: SwapConfig, ctx: PairJudging, criteria: Sequence[Criterion],
    *, run_id: str,
) -> list[ArmCheck]:  # fmt: skip
    """Judge a stable sample of both arms' answers on ``criteria`` (answers judged before
    are not asked again) and score the arms with each criterion's trust."""
    if not criteria:
        return []
    recs = to_judge(traffic, swap.judge_sample)
    vstore = VerdictStore(ctx.store)
    versions = {c.name: c.version for c in criteria}

    def known() -> dict[tuple[str, str], str]:
        return {(v.item_id, v.criterion): v.verdict
                for v in vstore.for_items([r.request_id for r in recs])
                if versions.get(v.criterion) == v.criterion_version}  # fmt: skip

    have = known()
    asks = [JudgeItem(criterion=c.name, exchanges=[to_exchange(r)])
            for c in criteria for r in recs if (r.request_id, c.name) not in have]  # fmt: skip
    if asks:
        judge_items(asks, list(criteria), ctx.stack, ctx.judging, vstore, run_id=run_id,
                    day=None, api_key=ctx.api_key, use_ray=False, log=ctx.log)  # fmt: skip
    trust = judge_trust(ctx.store, ctx.judging, {c.name: c for c in criteria})
    return judged_checks(swap, traffic, known(), trust)


def judged_report(
    swap: SwapConfig, records: Sequence[TrafficRecord], days: Sequence[date],
    ctx: PairJudging, criteria: Sequence[Criterion], *, run_id: str,
    feedback: Sequence[Feedback] = (),
) -> SwapReport:  # fmt: skip
    """The report with its judges: shadow pairs judged pairwise (with the pairwise
    judge's trust from its calibration) and both arms on the pass/fail ``criteria``."""
    trust = pairwise_trust(ctx.store, ctx.judging, ctx.crit)
    return build_report(
        swap, records, days,
        judge=lambda traffic: judge_shadow_pairs(traffic, ctx, run_id=run_id),
        trust=trust,
        judge_arms=lambda traffic: judge_both_arms(traffic, swap, ctx, criteria, run_id=run_id),
        feedback=feedback,
    )  # fmt: skip


def judge_shadow_pairs(
    traffic: SwapTraffic,
    ctx: PairJudging,
    *,
    run_id: str,
) -> list[PairOutcome] | None:
    """Production's answer (A) against the candidate's (B) on every shadow pair: each
    pair's outcome (by the shadow's request id), or ``None`` with no pair."""
    if not traffic.pairs:
        return None
    pairs = [(shadow.request_id, to_exchange(twin), to_exchange(shadow))
             for twin, shadow in traffic.pairs]  # fmt: skip
    return judge_exchange_pairs(pairs, ctx, run_id=run_id)


def figures(report: SwapReport) -> list[Figure]:
    """The decision, the win rate and the pair count, for Prometheus."""
    base = {"production": report.production, "candidate": report.candidate}
    out = [
        Figure(name="gavel_swap_decision",
               help="The last swap report's decision (1 for the one taken)",
               labels={**base, "decision": d}, value=float(report.verdict.decision == d))
        for d in ("promote", "rollback", "continue")
    ]  # fmt: skip
    out.append(Figure(name="gavel_swap_pairs", help="Shadow pairs in the last swap report",
                      labels=base, value=report.shadow_pairs))  # fmt: skip
    for c in report.checks:
        for arm, rate in (("production", c.production_rate), ("candidate", c.candidate_rate)):
            if rate is not None:
                out.append(Figure(name="gavel_swap_pass_rate",
                                  help="Pass rate of a swap check per arm (shadow pairs or canary)",
                                  labels={**base, "check": c.check, "on": c.on, "arm": arm},
                                  value=rate))  # fmt: skip
    trusts = {c.check: c.judge_trusted for c in report.checks if c.kind == "judge"}
    if report.pairwise is not None and report.judge_trusted is not None:
        trusts[report.pairwise.criterion] = report.judge_trusted
    for crit, ok in trusts.items():
        out.append(Figure(name="gavel_swap_judge_trusted",
                          help="1 if a judge of the swap report agrees with people (calibration)",
                          labels={**base, "criterion": crit}, value=float(bool(ok))))  # fmt: skip
    pw = report.pairwise
    if pw is not None and pw.win_rate_b is not None and report.verdict.win_rate_cs is not None:
        lo, hi = report.verdict.win_rate_cs
        for bound, value in (("estimate", pw.win_rate_b), ("low", lo), ("high", hi)):
            out.append(Figure(name="gavel_swap_win_rate",
                              help="The candidate's pairwise win rate and its confidence sequence",
                              labels={**base, "bound": bound}, value=value))  # fmt: skip
    return out


def _cell(x: float | None, fmt: str = "{:.0%}") -> str:
    return "n/a" if x is None else fmt.format(x)


def _trust(c: ArmCheck) -> str:
    if c.kind in ("assertion", "feedback"):
        return c.kind
    return html.escape(f"{'trusted' if c.judge_trusted else 'NOT trusted'}: {c.trust_reason}")


def to_html(report: SwapReport) -> str:
    """A one-page HTML report."""
    e = html.escape
    v = report.verdict
    rows = "".join(
        f"<tr><td>{e(c.check)}</td><td>{c.on}</td><td>{c.n_production}</td>"
        f"<td>{_cell(c.production_rate)}</td><td>{c.n_candidate}</td>"
        f"<td>{_cell(c.candidate_rate)}</td><td>{_cell(c.diff, '{:+.2f}')}</td>"
        f"<td>[{_cell(c.cs_low, '{:+.2f}')}, {_cell(c.cs_high, '{:+.2f}')}]</td>"
        f"<td>{'worse' if c.worse else ''}</td><td>{_trust(c)}</td></tr>"
        for c in report.checks
    )
    pw = report.pairwise
    pair = (
        f"<p>Pairwise ({e(pw.criterion)}): candidate wins {pw.wins_b}, ties {pw.ties}, "
        f"loses {pw.losses_b}; win rate {_cell(pw.win_rate_b)}, confidence sequence "
        f"{e(str(v.win_rate_cs))}; sign test p={pw.sign_test_p:.3g}; position flips "
        f"{_cell(pw.position_flip_rate)}; length-controlled "
        f"{_cell(pw.length_controlled_win_rate)}. "
        f"Judge trusted: {report.judge_trusted} ({e(report.trust_reason)}).</p>"
        if pw is not None
        else "<p>No shadow pair judged.</p>"
    )
    return (
        "<!doctype html><meta charset=utf-8><title>Gavel swap report</title>"
        f"<h1>{e(report.production)} &rarr; {e(report.candidate)}</h1>"
        f"<p>Days {e(', '.join(report.days))}. Production arm {report.production_arm}, "
        f"candidate arm {report.candidate_arm}, shadow pairs {report.shadow_pairs}.</p>"
        f"<h2>Decision: {v.decision}</h2><p>{e(v.reason)}</p>"
        + (f"<p>Withheld: {e(v.withheld)}</p>" if v.withheld else "")
        + _sequence_html(report)
        + "<h2>Checks: assertions and judge criteria</h2><table border=1><tr><th>check</th>"
        "<th>on</th><th>n prod</th><th>prod</th><th>n cand</th><th>cand</th><th>diff</th>"
        f"<th>confidence sequence</th><th></th><th>judge</th></tr>{rows}</table>{pair}"
    )


def _sequence_html(report: SwapReport) -> str:
    rows = "".join(
        f"<tr><td>{p.day}</td><td>{p.pairs}</td><td>{p.win_rate:.2f}</td>"
        f"<td>[{p.low:.2f}, {p.high:.2f}]</td></tr>"
        for p in report.sequence
    )
    return (
        "<h2>The win rate's confidence sequence, day by day</h2><table border=1><tr><th>day"
        f"</th><th>pairs so far</th><th>win rate</th><th>sequence</th></tr>{rows}</table>"
        if rows
        else ""
    )


def write(report: SwapReport, out: Path, store: Store) -> None:
    """``report.json`` and ``report.html`` in ``out``, and the figures in the store."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(report.model_dump_json(indent=2))
    (out / "report.html").write_text(to_html(report))
    store.replace_figures("swap", figures(report))
    record_swap_report(
        store, report.production, report.candidate, last_day=report.days[-1],
        decision=report.verdict.decision, report=report.model_dump_json(),
    )  # fmt: skip


def load_days(store: Store, days: Sequence[date]) -> list[TrafficRecord]:
    """Every record captured on these days."""
    out: list[TrafficRecord] = []
    for d in days:
        out += store.traffic_for_day(d)
    return out
