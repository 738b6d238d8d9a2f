"""The eval statistics against values worked out by hand and against scipy."""

from __future__ import annotations

import math
import random

import pytest
from scipy import optimize, stats

from evals import length_controlled_win_rate, mcnemar_exact, paired_bootstrap, sign_test
from evals._stats import binom_two_sided, logistic_fit, win_rate


def test_binomial_tests_match_scipy() -> None:
    for k, n in [(0, 0), (0, 5), (1, 10), (3, 10), (7, 10), (12, 30), (50, 100)]:
        want = 1.0 if n == 0 else stats.binomtest(k, n, 0.5).pvalue
        assert binom_two_sided(k, n) == pytest.approx(want, rel=1e-9)
    # By hand: 1 of 5 discordant pairs: 2 * (C(5,0) + C(5,1)) / 32 = 12/32.
    assert mcnemar_exact(1, 4) == pytest.approx(12 / 32)
    assert sign_test(8, 2) == pytest.approx(stats.binomtest(8, 10, 0.5).pvalue)
    assert mcnemar_exact(0, 0) == 1.0


def test_paired_bootstrap_is_seeded_and_agrees_with_scipy() -> None:
    rng = random.Random(7)
    a = [float(rng.random() < 0.7) for _ in range(200)]
    b = [x if rng.random() < 0.9 else 1 - x for x in a]
    mean, lo, hi = paired_bootstrap(a, b, resamples=4000, seed=0)
    assert paired_bootstrap(a, b, resamples=4000, seed=0) == (mean, lo, hi)  # seeded
    diffs = [y - x for x, y in zip(a, b, strict=True)]
    assert mean == pytest.approx(sum(diffs) / len(diffs))
    ref = stats.bootstrap(
        (diffs,),
        lambda d: sum(d) / len(d),
        n_resamples=4000,
        method="percentile",
        random_state=1,
        vectorized=False,
    ).confidence_interval
    assert lo == pytest.approx(ref.low, abs=0.015) and hi == pytest.approx(ref.high, abs=0.015)
    assert paired_bootstrap([1, 0, 1], [1, 0, 1]) == (0.0, 0.0, 0.0)  # identical: no spread


def test_logistic_fit_matches_scipy_maximum_likelihood() -> None:
    rng = random.Random(3)
    x = [rng.uniform(-2, 2) for _ in range(300)]
    y = [float(rng.random() < 1 / (1 + math.exp(-(0.4 + 1.5 * xi)))) for xi in x]

    def nll(beta: list[float]) -> float:
        total = 0.0
        for xi, yi in zip(x, y, strict=True):
            z = beta[0] + beta[1] * xi
            total += math.log1p(math.exp(-abs(z))) + max(z, 0) - yi * z
        return total

    ref = optimize.minimize(nll, [0.0, 0.0], method="BFGS").x
    b0, b1 = logistic_fit(x, y)
    assert b0 == pytest.approx(ref[0], abs=1e-3) and b1 == pytest.approx(ref[1], abs=1e-3)


def test_length_control_removes_a_pure_length_preference() -> None:
    # B wins exactly when it is longer; at equal length it would win half the time.
    diffs = [d for d in range(-20, 21) if d != 0]
    outcome = [1.0 if d > 0 else 0.0 for d in diffs] + [1.0, 0.0]
    lcwr = length_controlled_win_rate([*diffs, 0, 0], outcome)
    assert lcwr == pytest.approx(0.5, abs=0.02)
    assert win_rate(3, 2, 5) == pytest.approx(0.4)


def test_clustered_interval_by_hand() -> None:
    from evals._stats import clustered_wilson
    from judges import wilson

    # One epoch per item: the plain Wilson interval.
    assert clustered_wilson([(1, 1)] * 7 + [(0, 1)] * 3) == wilson(7, 10)
    # 10 items x 5 epochs, every epoch of an item alike (7 always pass, 3 never):
    # p = 0.7, N = 50, C = 10; robust variance = 10/9 * (7 * 1.5**2 + 3 * 3.5**2) / 50**2
    # = 0.02333; simple = 0.21 / 50 = 0.0042; deff = 5.56; N / deff = 9.0 -> at least C = 10.
    alike = [(5, 5)] * 7 + [(0, 5)] * 3
    assert clustered_wilson(alike) == wilson(7, 10)
    assert clustered_wilson(alike)[0] < wilson(35, 50)[0]  # pooling was too narrow
    # Epochs independent within items (each item 2 of 4 or 3 of 4): deff below 1, kept at N.
    mixed = [(2, 4), (3, 4), (2, 4), (3, 4)]
    p, total = 10 / 16, 16
    robust = 4 / 3 * sum((k - p * 4) ** 2 for k, _ in mixed) / total**2
    deff = robust / (p * (1 - p) / total)
    assert deff < 1 and clustered_wilson(mixed) == wilson(10, 16)
    # Half-correlated: n_eff strictly between C and N, by hand.
    half = [(4, 4), (4, 4), (0, 4), (2, 4), (3, 4), (1, 4)]
    p, total, c = 14 / 24, 24, 6
    robust = c / (c - 1) * sum((k - p * 4) ** 2 for k, _ in half) / total**2
    n_eff = total / (robust / (p * (1 - p) / total))
    assert c < n_eff < total
    lo, hi = clustered_wilson(half)
    assert (lo, hi) == wilson(p * n_eff, n_eff)
    # All pass over many epochs: the number of items decides the width.
    assert clustered_wilson([(3, 3)] * 12) == wilson(12, 12)
    assert clustered_wilson([]) == (0.0, 1.0)
