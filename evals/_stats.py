"""Statistics of evals, as pure functions: the pass rate's interval clustered by item,
paired bootstrap, McNemar's exact test, the sign test, and a length-controlled win rate
(logistic regression)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from judges import wilson


def clustered_wilson(clusters: Sequence[tuple[int, int]]) -> tuple[float, float]:
    """95% interval of a pass rate over clusters of correlated trials (an item's epochs).

    ``clusters`` holds (passes, trials) per item. Pooling every epoch into one Wilson
    interval treats K epochs of an item as K independent items and makes the interval
    too narrow. Here the cluster-robust variance (the clustered standard error Inspect
    uses) gives a design effect over simple random sampling; the Wilson interval is then
    taken at the effective sample size ``N / deff``, kept between the number of items
    (every epoch of an item alike) and ``N`` (epochs independent). At a rate of 0 or 1
    the design effect is unknown and the number of items is used. One epoch per item
    gives the plain Wilson interval.
    """
    used = [(k, m) for k, m in clusters if m > 0]
    total = sum(m for _, m in used)
    if total == 0:
        return 0.0, 1.0
    passes = sum(k for k, _ in used)
    p = passes / total
    c = len(used)
    if c == total:
        return wilson(passes, total)
    if c < 2 or p in (0.0, 1.0):
        n_eff = float(c)
    else:
        robust = c / (c - 1) * sum((k - p * m) ** 2 for k, m in used) / total**2
        deff = robust / (p * (1 - p) / total)
        n_eff = min(float(total), max(float(c), total / deff if deff > 0 else float(total)))
    return wilson(p * n_eff, n_eff)


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], *, resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of ``b - a`` over paired items, with a 95% percentile bootstrap interval.

    Items are resampled with replacement (the pairs stay together), ``resamples`` times,
    with a seeded generator, so the same data always gives the same interval.
    """
    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    n = len(a)
    if n == 0:
        return 0.0, 0.0, 0.0
    diffs = [y - x for x, y in zip(a, b, strict=True)]
    mean = sum(diffs) / n
    rng = random.Random(seed)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    lo = means[int(0.025 * resamples)]
    hi = means[min(resamples - 1, math.ceil(0.975 * resamples) - 1)]
    return mean, lo, hi


def binom_two_sided(k: int, n: int) -> float:
    """Exact two-sided binomial p-value of ``k`` successes in ``n`` at p = 1/2."""
    if n == 0:
        return 1.0
    k = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def mcnemar_exact(pass_to_fail: int, fail_to_pass: int) -> float:
    """McNemar's exact p-value from the discordant pairs (a binomial test on them)."""
    return binom_two_sided(pass_to_fail, pass_to_fail + fail_to_pass)


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided sign test p-value (ties left out)."""
    return binom_two_sided(wins, wins + losses)


def win_rate(wins: int, ties: int, losses: int) -> float | None:
    """B's win rate, ties counting half."""
    n = wins + ties + losses
    return (wins + 0.5 * ties) / n if n else None


def logistic_fit(
    x: Sequence[float], y: Sequence[float], *, iterations: int = 50
) -> tuple[float, float]:
    """Intercept and slope of ``P(y=1) = 1 / (1 + exp(-(b0 + b1 x)))`` by Newton's method
    (maximum likelihood; ``y`` may be fractional, e.g. 0.5 for a tie). A small ridge
    keeps it finite when the data separate perfectly."""
    b0, b1, ridge = 0.0, 0.0, 1e-6
    for _ in range(iterations):
        g0 = g1 = h00 = h01 = h11 = 0.0
        for xi, yi in zip(x, y, strict=True):
            p = 1 / (1 + math.exp(-max(-30.0, min(30.0, b0 + b1 * xi))))
            w = p * (1 - p)
            g0 += yi - p
            g1 += (yi - p) * xi
            h00 += w
            h01 += w * xi
            h11 += w * xi * xi
        g0 -= ridge * b0
        g1 -= ridge * b1
        h00 += ridge
        h11 += ridge
        det = h00 * h11 - h01 * h01
        if det <= 1e-12:
            break
        step0 = (h11 * g0 - h01 * g1) / det
        step1 = (h00 * g1 - h01 * g0) / det
        b0, b1 = b0 + step0, b1 + step1
        if abs(step0) + abs(step1) < 1e-10:
            break
    return b0, b1


def length_controlled_win_rate(
    length_diff: Sequence[float], outcome: Sequence[float]
) -> float | None:
    """B's win rate with the length difference (B minus A, in words) held at zero: a
    logistic model of the preference on the length difference, read at zero."""
    if not outcome:
        return None
    scale = max(1.0, max(abs(d) for d in length_diff))  # scaling keeps zero at zero
    b0, _ = logistic_fit([d / scale for d in length_diff], outcome)
    return 1 / (1 + math.exp(-b0))
