"""Comparing two runs of one suite, item by item, and judging two models pairwise (A/B).

Pure functions over :class:`~evals._result.RunResult`s and verdicts; the CLI does the I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from evals._result import RunResult
from evals._stats import (
    length_controlled_win_rate,
    mcnemar_exact,
    paired_bootstrap,
    sign_test,
    win_rate,
)
from serving import GavelModel


class CheckDiff(GavelModel):
    """One check: candidate minus baseline, paired by item."""

    check: str
    gating: bool
    n: int
    baseline_rate: float | None
    candidate_rate: float | None
    diff: float
    ci_low: float
    ci_high: float
    mcnemar_p: float
    pass_to_fail: list[str]
    fail_to_pass: list[str]
    regressed_items: list[str]
    """Items that passed every epoch before and now pass at most half of them."""
    failed_gate: bool


class Comparison(GavelModel):
    """A candidate run against a baseline run of the same suite and dataset."""

    baseline: str
    candidate: str
    max_drop: float
    checks: list[CheckDiff]

    @property
    def failed(self) -> bool:
        """True when a gating check dropped (see :func:`compare`)."""
        return any(c.failed_gate for c in self.checks)


def _rate(items: dict[str, tuple[int, int]]) -> float | None:
    p = sum(x for x, _ in items.values())
    n = sum(y for _, y in items.values())
    return p / n if n else None


def compare(
    baseline: RunResult, candidate: RunResult, *, max_drop: float = 0.02, resamples: int = 2000
) -> Comparison:
    """Per check: the pass-rate difference with a paired bootstrap 95% interval (seeded),
    McNemar's exact p-value on items, and the items that flipped.

    A gating check fails when the interval's lower bound is a drop larger than
    ``max_drop`` (the candidate is not shown to be within the margin), or when an item
    that passed K/K now passes at most K/2. The caller checks that the runs share a suite
    and a dataset.
    """
    base_items = {i.id: i for i in baseline.items}
    cand_items = {i.id: i for i in candidate.items}
    shared = sorted(set(base_items) & set(cand_items))
    out: list[CheckDiff] = []
    for check in baseline.checks:
        b_scores: list[float] = []
        c_scores: list[float] = []
        b_tally: dict[str, tuple[int, int]] = {}
        c_tally: dict[str, tuple[int, int]] = {}
        p2f: list[str] = []
        f2p: list[str] = []
        regressed: list[str] = []
        for item_id in shared:
            bp, bn = base_items[item_id].passes(check.name)
            cp, cn = cand_items[item_id].passes(check.name)
            if not bn or not cn:
                continue
            b_tally[item_id], c_tally[item_id] = (bp, bn), (cp, cn)
            b_scores.append(bp / bn)
            c_scores.append(cp / cn)
            b_pass, c_pass = bp / bn > 0.5, cp / cn > 0.5
            if b_pass and not c_pass:
                p2f.append(item_id)
            elif c_pass and not b_pass:
                f2p.append(item_id)
            if bp == bn and cp <= cn / 2:
                regressed.append(item_id)
        diff, lo, hi = paired_bootstrap(b_scores, c_scores, resamples=resamples, seed=0)
        failed = check.gating and (lo < -max_drop - 1e-12 or bool(regressed))
        out.append(
            CheckDiff(
                check=check.name,
                gating=check.gating,
                n=len(b_scores),
                baseline_rate=_rate(b_tally),
                candidate_rate=_rate(c_tally),
                diff=diff,
                ci_low=lo,
                ci_high=hi,
                mcnemar_p=mcnemar_exact(len(p2f), len(f2p)),
                pass_to_fail=p2f,
                fail_to_pass=f2p,
                regressed_items=regressed,
                failed_gate=failed,
            )
        )
    return Comparison(
        baseline=baseline.run_id, candidate=candidate.run_id, max_drop=max_drop, checks=out
    )


class PairOutcome(GavelModel):
    """One item judged pairwise (B is the candidate)."""

    item_id: str
    winner: Literal["A", "B", "tie"]
    orders: list[str] | None
    """Winner in order AB and in order BA (mapped back to A/B); ``None`` if not asked."""
    words_a: int
    words_b: int
    identical: bool = False
    """The two answers were the same text: a tie without asking the judge."""


class PairwiseReport(GavelModel):
    """B against A, judged pairwise in both orders."""

    criterion: str
    wins_b: int
    ties: int
    losses_b: int
    identical: int
    win_rate_b: float | None
    ci_low: float
    ci_high: float
    sign_test_p: float
    position_flip_rate: float | None
    longer_won_rate: float | None
    length_controlled_win_rate: float | None
    decision: str | None
    """``B better``, ``A better`` or ``no significant difference``; ``None`` if withheld."""
    withheld_because: str | None = None


def pairwise_report(
    criterion: str,
    outcomes: Sequence[PairOutcome],
    *,
    max_flip_rate: float = 0.15,
    judge_trusted: bool | None = None,
    trust_reason: str | None = None,
    alpha: float = 0.05,
) -> PairwiseReport:
    """Wins, ties and losses; B's win rate (ties half) with a paired bootstrap interval;
    the exact sign test; the position-flip rate; how often the longer answer won; the
    length-controlled win rate; and the decision, withheld when the judge flips position
    too often or is not trusted (``judge_trusted`` False, or None with decisive pairs)."""
    wins = sum(o.winner == "B" for o in outcomes)
    losses = sum(o.winner == "A" for o in outcomes)
    ties = len(outcomes) - wins - losses
    y = [1.0 if o.winner == "B" else 0.0 if o.winner == "A" else 0.5 for o in outcomes]
    _mean, lo, hi = paired_bootstrap([0.0] * len(y), y, seed=0) if y else (0.0, 0.0, 0.0)
    asked = [o for o in outcomes if o.orders is not None]
    flips = [o for o in asked if len(set(o.orders or [])) > 1]
    flip_rate = len(flips) / len(asked) if asked else None
    decisive = [o for o in outcomes if o.winner != "tie" and o.words_a != o.words_b]
    longer = [o for o in decisive if (o.words_b > o.words_a) == (o.winner == "B")]
    p = sign_test(wins, losses)
    lcwr = length_controlled_win_rate([o.words_b - o.words_a for o in outcomes], y)
    decision: str | None = "no significant difference"
    if p < alpha and wins != losses:
        decision = "B better" if wins > losses else "A better"
    why = None
    if flip_rate is not None and flip_rate > max_flip_rate:
        why = f"the judge's position-flip rate {flip_rate:.0%} is above {max_flip_rate:.0%}"
    elif asked and judge_trusted is not True:
        why = (
            "the pairwise criterion's judge is not calibrated against human labels"
            if judge_trusted is None
            else "the pairwise criterion's judge is not trustworthy by calibration"
        ) + (f" ({trust_reason})" if trust_reason else "")
    if why is not None:
        decision = None
    return PairwiseReport(
        criterion=criterion,
        wins_b=wins,
        ties=ties,
        losses_b=losses,
        identical=sum(o.identical for o in outcomes),
        win_rate_b=win_rate(wins, ties, losses),
        ci_low=lo if y else 0.0,
        ci_high=hi if y else 0.0,
        sign_test_p=p,
        position_flip_rate=flip_rate,
        longer_won_rate=len(longer) / len(decisive) if decisive else None,
        length_controlled_win_rate=lcwr,
        decision=decision,
        withheld_because=why,
    )
