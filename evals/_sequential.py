"""Always-valid statistics for decisions taken while data keeps arriving.

A model swap is looked at every day. A fixed-sample interval peeked at daily excludes
the truth far more often than its level says; a *confidence sequence* covers the truth
at every day at once, with probability 1 - alpha, so looking daily (and stopping when it
is clear) does not inflate the error.

The sequence used here is the asymptotic confidence sequence of Waudby-Smith, Arbour,
Sinha, Kennedy and Ramdas, "Time-uniform central limit theory and asymptotic confidence
sequences" (Annals of Statistics, 2024; arXiv:2103.06476), eq. (8): for the running mean
of observations with standard deviation ``s``,

    mean ± s · sqrt( 2(tρ² + 1) / (t²ρ²) · log( sqrt(tρ² + 1) / alpha ) ),

with ρ chosen so the width is smallest near ``t_opt`` observations. Pure functions.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

ALPHA = 0.05
T_OPT = 500
"""Observations around which the sequence is tightest (a few days of swap pairs)."""


def _rho2(alpha: float, t_opt: int) -> float:
    a = -2 * math.log(alpha)
    return (a + math.log(a + 1)) / t_opt


def cs_half_width(sd: float, t: float, *, alpha: float = ALPHA, t_opt: int = T_OPT) -> float:
    """Half-width of the (1 - alpha) confidence sequence after ``t`` observations (an
    effective number, with clusters)."""
    if t <= 0:
        return math.inf
    r2 = _rho2(alpha, t_opt)
    return sd * math.sqrt(2 * (t * r2 + 1) / (t * t * r2) * math.log(math.sqrt(t * r2 + 1) / alpha))


def effective_n(xs: Sequence[float], clusters: Sequence[str]) -> float:
    """The number of independent observations ``xs`` are worth when those of a cluster
    (a key's requests) are correlated: ``t`` over the design effect of the cluster-robust
    variance, kept between the number of clusters and ``t`` (as
    :func:`evals._stats.clustered_wilson`). One cluster tells nothing: ``t``."""
    t = len(xs)
    groups: dict[str, list[float]] = {}
    for x, c in zip(xs, clusters, strict=True):
        groups.setdefault(c, []).append(x)
    k = len(groups)
    if k < 2 or k == t:
        return float(t)
    var = statistics.pvariance(xs)
    if var == 0:
        return float(k)
    mean = statistics.fmean(xs)
    robust = k / (k - 1) * sum((sum(g) - mean * len(g)) ** 2 for g in groups.values()) / t**2
    deff = robust / (var / t)
    return min(float(t), max(float(k), t / deff if deff > 0 else float(t)))


def confidence_sequence(
    xs: Sequence[float],
    *,
    alpha: float = ALPHA,
    t_opt: int = T_OPT,
    bounds: tuple[float, float] = (0.0, 1.0),
    clusters: Sequence[str] | None = None,
) -> tuple[float, float, float] | None:
    """(mean, low, high) of observations in ``bounds``, valid at every ``t`` at once;
    ``None`` with no observation. With ``clusters`` (one label per observation) the
    sequence is taken at the effective number of observations. The spread is floored at
    that of one observation off the mean, so identical values keep a width."""
    t = len(xs)
    if t == 0:
        return None
    mean = statistics.fmean(xs)
    span = bounds[1] - bounds[0]
    sd = statistics.pstdev(xs) if t > 1 else span / 2
    sd = max(sd, span / (2 * math.sqrt(t)))
    n = effective_n(xs, clusters) if clusters is not None else float(t)
    h = cs_half_width(sd, n, alpha=alpha, t_opt=t_opt)
    return mean, max(bounds[0], mean - h), min(bounds[1], mean + h)


def cs_difference(
    a: Sequence[float],
    b: Sequence[float],
    *,
    alpha: float = ALPHA,
    t_opt: int = T_OPT,
    clusters: tuple[Sequence[str], Sequence[str]] | None = None,
) -> tuple[float, float, float] | None:
    """(mean(b) - mean(a), low, high) for two independent arms of 0/1 outcomes, valid at
    every time at once: each arm's sequence at alpha/2 (clustered, if ``clusters`` gives
    each arm's labels), combined (a union bound)."""
    keys_a, keys_b = clusters if clusters is not None else (None, None)
    ca = confidence_sequence(a, alpha=alpha / 2, t_opt=t_opt, clusters=keys_a)
    cb = confidence_sequence(b, alpha=alpha / 2, t_opt=t_opt, clusters=keys_b)
    if ca is None or cb is None:
        return None
    return cb[0] - ca[0], max(-1.0, cb[1] - ca[2]), min(1.0, cb[2] - ca[1])


def win_scores(wins: int, ties: int, losses: int) -> list[float]:
    """A pairwise comparison as observations: a win 1, a tie 0.5, a loss 0."""
    return [1.0] * wins + [0.5] * ties + [0.0] * losses
