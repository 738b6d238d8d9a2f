"""The judged comparison of a model swap on live traffic: shadow pairs and canary arms,
deterministic checks on both, the pairwise judge's verdicts, and the decision.

Every interval here is a confidence sequence (:mod:`evals._sequential`), valid at every
day at once, so the report can be read daily without inflating the error. Pure
functions over captured records; :mod:`evals.swap._report` does the I/O.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from evals._checks import ASSERTIONS, AssertArgs
from evals._compare import PairwiseReport
from evals._sequential import confidence_sequence, cs_difference, win_scores
from serving import GavelModel, SwapCheck, SwapConfig, TrafficRecord
from serving.feedback import Feedback
from serving.swap import SwapEvent

Decision = Literal["promote", "rollback", "continue"]


@dataclass
class SwapTraffic:
    """A swap's captured traffic: the canary's two arms and the shadow pairs."""

    production_arm: list[TrafficRecord] = field(default_factory=list)
    candidate_arm: list[TrafficRecord] = field(default_factory=list)
    pairs: list[tuple[TrafficRecord, TrafficRecord]] = field(default_factory=list)
    """(production twin, its shadow on the candidate)."""


def split(records: Sequence[TrafficRecord], swap: SwapConfig) -> SwapTraffic:
    """The answered (2xx) records of the swap: arms by their ``arm``, and each shadow with
    its production twin."""
    ok = [r for r in records if r.status < 400 and r.response_text is not None]
    out = SwapTraffic()
    twins: dict[str, TrafficRecord] = {}
    for r in ok:
        if r.source == "production" and r.arm == "production" and r.model == swap.production:
            out.production_arm.append(r)
            twins[r.request_id] = r
        elif r.source == "production" and r.arm == "candidate" and r.model == swap.candidate:
            out.candidate_arm.append(r)
    out.pairs = [
        (twins[r.twin_id], r)
        for r in ok
        if r.source == "shadow" and r.twin_id in twins and r.model == swap.candidate
    ]
    return out


def trial_start(events: Sequence[SwapEvent]) -> datetime | None:
    """When the swap's current trial began: its first change after the last ``rollback``
    or ``promote`` that came before a later change (a trial that has just ended is
    still the current one, so the morning after a rollback reports on it)."""
    start: datetime | None = None
    ended = True
    for e in events:
        if ended:
            start, ended = e.at, False
        if e.action in ("rollback", "promote"):
            ended = True
    return start


class ArmCheck(GavelModel):
    """One check, candidate against production, on shadow pairs or arms: a deterministic
    assertion, or a pass/fail judge criterion (with whether its judge is trusted)."""

    check: str
    on: Literal["shadow", "canary"]
    n_production: int
    n_candidate: int
    production_rate: float | None
    candidate_rate: float | None
    diff: float | None
    """Candidate minus production (paired by twin on shadow)."""
    cs_low: float | None
    cs_high: float | None
    worse: bool
    """The candidate is worse: the whole confidence sequence is below 0."""
    kind: Literal["assertion", "judge", "feedback"] = "assertion"
    judge_trusted: bool | None = None
    """For a judge criterion: calibrated against people (``gavel judge calibrate``)."""
    trust_reason: str | None = None


Score = Callable[[TrafficRecord], float | None]
"""1.0 pass, 0.0 fail, ``None``: the check does not apply (or the answer was not judged)."""


def passes(check: SwapCheck, answer: str) -> float | None:
    """1.0 pass, 0.0 fail, ``None`` when the assertion does not apply."""
    args = AssertArgs(
        pattern=check.pattern, max=check.max, min=check.min, refusal_patterns=check.refusal_patterns
    )
    outcome = ASSERTIONS.run(check.assertion, answer, None, args)
    return None if outcome == "skip" else float(outcome == "pass")


def _rate(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _arm_check(
    name: str,
    on: Literal["shadow", "canary"],
    a: Sequence[float],
    b: Sequence[float],
    cs: tuple[float, float, float] | None,
) -> ArmCheck:
    """Production's scores ``a``, the candidate's ``b`` and their difference's sequence."""
    return ArmCheck(
        check=name, on=on, n_production=len(a), n_candidate=len(b),
        production_rate=_rate(a), candidate_rate=_rate(b),
        diff=cs[0] if cs else None, cs_low=cs[1] if cs else None, cs_high=cs[2] if cs else None,
        worse=cs is not None and cs[2] < 0,
    )  # fmt: skip


def shadow_scores(
    name: str, pairs: Sequence[tuple[TrafficRecord, TrafficRecord]], score: Score
) -> ArmCheck:
    """A check on shadow pairs: the paired difference's confidence sequence."""
    a: list[float] = []
    b: list[float] = []
    for twin, shadow in pairs:
        pa, pb = score(twin), score(shadow)
        if pa is not None and pb is not None:
            a.append(pa)
            b.append(pb)
    cs = confidence_sequence([y - x for x, y in zip(a, b, strict=True)], bounds=(-1.0, 1.0))
    return _arm_check(name, "shadow", a, b, cs)


def canary_scores(
    name: str, production: Sequence[TrafficRecord], candidate: Sequence[TrafficRecord],
    score: Score,
) -> ArmCheck:  # fmt: skip
    """A check on the canary's two arms: the difference of two independent arms, each
    clustered by key (a key that sends many requests counts as fewer observations)."""

    def scores(rs: Sequence[TrafficRecord]) -> tuple[list[float], list[str]]:
        got = [(s, r.key_name or "") for r in rs if (s := score(r)) is not None]
        return [s for s, _ in got], [k for _, k in got]

    (a, keys_a), (b, keys_b) = scores(production), scores(candidate)
    return _arm_check(name, "canary", a, b, cs_difference(a, b, clusters=(keys_a, keys_b)))


def _assertion(check: SwapCheck) -> Score:
    return lambda r: passes(check, r.response_text or "")


def shadow_check(
    check: SwapCheck, pairs: Sequence[tuple[TrafficRecord, TrafficRecord]]
) -> ArmCheck:
    """A deterministic check on shadow pairs."""
    return shadow_scores(check.name, pairs, _assertion(check))


def canary_check(
    check: SwapCheck, production: Sequence[TrafficRecord], candidate: Sequence[TrafficRecord]
) -> ArmCheck:
    """A deterministic check on the canary's two arms."""
    return canary_scores(check.name, production, candidate, _assertion(check))


def arm_checks(swap: SwapConfig, traffic: SwapTraffic) -> list[ArmCheck]:
    """Every configured check on shadow pairs and on the canary's arms (where there is
    traffic on them)."""
    out: list[ArmCheck] = []
    for check in swap.checks:
        if traffic.pairs:
            out.append(shadow_check(check, traffic.pairs))
        if traffic.candidate_arm:
            out.append(canary_check(check, traffic.production_arm, traffic.candidate_arm))
    return out


def feedback_checks(
    swap: SwapConfig, traffic: SwapTraffic, feedback: Sequence[Feedback]
) -> list[ArmCheck]:
    """Users' feedback on the canary's arms, per name of ``swap.feedback``: each answer
    scores its users' positive share; the arms' difference has its confidence sequence
    (clustered by key, as every canary check)."""
    out: list[ArmCheck] = []
    for name in swap.feedback:
        said: dict[str, list[bool]] = defaultdict(list)
        for f in feedback:
            if f.name == name:
                said[f.request_id].append(f.positive)

        def score(r: TrafficRecord, said: dict[str, list[bool]] = said) -> float | None:
            votes = said.get(r.request_id)
            return sum(votes) / len(votes) if votes else None

        check = canary_scores(f"feedback:{name}", traffic.production_arm,
                              traffic.candidate_arm, score)  # fmt: skip
        if check.n_candidate:
            out.append(check.model_copy(update={"kind": "feedback"}))
    return out


class SwapVerdict(GavelModel):
    """The decision and why; ``withheld`` says which decision could not be taken."""

    decision: Decision
    reason: str
    withheld: str | None = None
    win_rate_cs: tuple[float, float] | None = None
    """The candidate's pairwise win rate (ties half): its confidence sequence."""


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def decide(
    swap: SwapConfig,
    traffic: SwapTraffic,
    checks: Sequence[ArmCheck],
    pairwise: PairwiseReport | None,
    *,
    judge_trusted: bool | None,
    trust_reason: str,
) -> SwapVerdict:
    """``rollback`` when a deterministic check (or a trusted pairwise judge) shows the
    candidate worse; ``promote`` when a trusted pairwise judge shows it better and no
    check is worse, with enough pairs; else ``continue``, saying what is missing."""
    cs: tuple[float, float] | None = None
    if pairwise is not None:
        seq = confidence_sequence(win_scores(pairwise.wins_b, pairwise.ties, pairwise.losses_b))
        cs = (seq[1], seq[2]) if seq else None
    worse = [c for c in checks if c.worse and (c.kind != "judge" or c.judge_trusted)]
    if worse:
        c = worse[0]
        what = {"assertion": "check", "feedback": "users' feedback"}.get(
            c.kind, "trusted judge criterion"
        )
        return SwapVerdict(
            decision="rollback", win_rate_cs=cs,
            reason=f"{what} {c.check} on {c.on}: the candidate passes {_pct(c.candidate_rate)} "
            f"against production's {_pct(c.production_rate)} (n={c.n_candidate}); the "
            f"difference's confidence sequence [{c.cs_low:+.2f}, {c.cs_high:+.2f}] is below 0",
        )  # fmt: skip
    n_pairs = len(traffic.pairs)
    trusted = judge_trusted is True
    if trusted and cs is not None and n_pairs >= swap.min_pairs and cs[1] < 0.5:
        return SwapVerdict(
            decision="rollback", win_rate_cs=cs,
            reason=f"pairwise ({swap.pairwise}): the candidate's win rate's confidence "
            f"sequence [{cs[0]:.2f}, {cs[1]:.2f}] is below 0.5 over {n_pairs} pairs",
        )  # fmt: skip
    if n_pairs < swap.min_pairs:
        return SwapVerdict(
            decision="continue", win_rate_cs=cs,
            reason=f"too few shadow pairs to decide ({n_pairs} < {swap.min_pairs}); no "
            "check shows the candidate worse",
            withheld="promote: too few pairs",
        )  # fmt: skip
    if not trusted:
        return SwapVerdict(
            decision="continue", win_rate_cs=cs,
            reason="no check shows the candidate worse",
            withheld=f"promote: the pairwise judge is not trusted ({trust_reason})",
        )  # fmt: skip
    if cs is not None and cs[0] > 0.5:
        return SwapVerdict(
            decision="promote", win_rate_cs=cs,
            reason=f"pairwise ({swap.pairwise}): the candidate's win rate's confidence "
            f"sequence [{cs[0]:.2f}, {cs[1]:.2f}] is above 0.5 over {n_pairs} pairs, and no "
            "check shows it worse",
        )  # fmt: skip
    return SwapVerdict(
        decision="continue", win_rate_cs=cs,
        reason="no significant difference yet: the win rate's confidence sequence contains "
        "0.5 and no check shows the candidate worse",
    )  # fmt: skip
