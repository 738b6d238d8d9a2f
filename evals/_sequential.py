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


def cs_half_width(sd: float, t: int, *, alpha: float = ALPHA, t_opt: int = T_OPT) -> float:
    """Half-width of the (1 - alpha) confidence sequence after ``t`` observations."""
    if t <= 0:
        return math.inf
    r2 = _rho2(alpha, t_opt)
    return sd * math.sqrt(2 * (t * r2 + 1) / (t * t * r2) * math.log(math.sqrt(t * r2 + 1) / alpha))


def confidence_sequence(
    xs: Sequence[float],
    *,
    alpha: float = ALPHA,
    t_opt: int = T_OPT,
    bounds: tuple[float, float] = (0.0, 1.0),
) -> tuple[float, float, float] | None:
    """(mean, low, high) of observations in ``bounds``, valid at every ``t`` at once;
    ``None`` with no observation. The spread is floored at that of one observation off
    the mean, so a run of identical values does not give a zero-width sequence."""
    t = len(xs)
    if t == 0:
        return None
    mean = statistics.fmean(xs)
    span = bounds[1] - bounds[0]
    sd = statistics.pstdev(xs) if t > 1 else span / 2
    sd = max(sd, span / (2 * math.sqrt(t)))
    h = cs_half_width(sd, t, alpha=alpha, t_opt=t_opt)
    return mean, max(bounds[0], mean - h), min(bounds[1], mean + h)


def cs_difference(
    a: Sequence[float], b: Sequence[float], *, alpha: float = ALPHA, t_opt: int = T_OPT
) -> tuple[float, float, float] | None:
    """(mean(b) - mean(a), low, high) for two independent arms of 0/1 outcomes, valid at
    every time at once: each arm's sequence at alpha/2, combined (a union bound)."""
    ca = confidence_sequence(a, alpha=alpha / 2, t_opt=t_opt)
    cb = confidence_sequence(b, alpha=alpha / 2, t_opt=t_opt)
    if ca is None or cb is None:
        return None
    return cb[0] - ca[0], max(-1.0, cb[1] - ca[2]), min(1.0, cb[2] - ca[1])


def win_scores(wins: int, ties: int, losses: int) -> list[float]:
    """A pairwise comparison as observations: a win 1, a tie 0.5, a loss 0."""
    return [1.0] * wins + [0.5] * ties + [0.0] * losses
