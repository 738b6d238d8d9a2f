"""Pass/fail judge criteria on both arms of a model swap: which answers to judge (a
stable sample) and the per-arm pass rates with their difference's confidence sequence.
Pure functions; :mod:`evals.swap._report` asks the judge."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from evals.swap._trial import ArmCheck, SwapTraffic, canary_scores, shadow_scores
from serving import SwapConfig, TrafficRecord


def _rank(request_id: str) -> str:
    return hashlib.sha256(request_id.encode()).hexdigest()


def to_judge(traffic: SwapTraffic, k: int) -> list[TrafficRecord]:
    """The answers to judge: both sides of at most ``k`` shadow pairs and at most ``k``
    answers of each canary arm, chosen by a hash of the request id, not by arrival: a
    uniform sample, and on a daily re-read of a growing trial an answer judged before is
    dropped from it only for one that ranks lower, never brought back later."""
    pairs = sorted(traffic.pairs, key=lambda p: _rank(p[0].request_id))[:k]
    out = [r for pair in pairs for r in pair]
    for arm in (traffic.production_arm, traffic.candidate_arm):
        out += sorted(arm, key=lambda r: _rank(r.request_id))[:k]
    return list({r.request_id: r for r in out}.values())


def judged_checks(
    swap: SwapConfig,
    traffic: SwapTraffic,
    verdicts: Mapping[tuple[str, str], str],
    trust: Mapping[str, tuple[bool, str]],
) -> list[ArmCheck]:
    """Each of ``swap.criteria`` on shadow pairs and canary arms, from ``verdicts``
    ((request id, criterion) -> pass/fail; anything else counts as not judged), with
    its judge's trust."""
    out: list[ArmCheck] = []
    for name in swap.criteria:

        def score(r: TrafficRecord, name: str = name) -> float | None:
            v = verdicts.get((r.request_id, name))
            return None if v not in ("pass", "fail") else float(v == "pass")

        ok, why = trust.get(name, (False, "no calibration"))
        extra = {"kind": "judge", "judge_trusted": ok, "trust_reason": why}
        if traffic.pairs:
            out.append(shadow_scores(name, traffic.pairs, score).model_copy(update=extra))
        if traffic.candidate_arm:
            check = canary_scores(name, traffic.production_arm, traffic.candidate_arm, score)
            out.append(check.model_copy(update=extra))
    return out


def worse_but_untrusted(checks: Sequence[ArmCheck]) -> list[str]:
    """Judge criteria that show the candidate worse but are not trusted (not acted on)."""
    return [f"{c.check} ({c.on})" for c in checks if c.worse and not c.judge_trusted
            and c.kind == "judge"]  # fmt: skip
