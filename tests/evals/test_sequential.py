"""The confidence sequence stays valid when it is looked at every day (issue 20)."""

from __future__ import annotations

import random

from evals._sequential import confidence_sequence, cs_difference, cs_half_width, win_scores
from judges._stats import wilson


def _ever_excludes(p: float, seed: int, *, peek_every: int, n: int, sequential: bool) -> bool:
    rng = random.Random(seed)
    xs: list[float] = []
    for t in range(1, n + 1):
        xs.append(1.0 if rng.random() < p else 0.0)
        if t % peek_every:
            continue
        if sequential:
            _, lo, hi = confidence_sequence(xs)  # type: ignore[misc]
        else:
            lo, hi = wilson(sum(xs), t)
        if not lo <= p <= hi:
            return True
    return False


def test_daily_peeking_keeps_the_error_under_alpha_where_a_fixed_interval_does_not() -> None:
    """200 swaps with no difference, looked at after every 20 pairs up to 2,000: the
    sequence wrongly excludes the truth in at most ~5% of them; Wilson's interval, peeked
    at the same way, in far more (about 25-30%)."""
    runs = 200
    cs = sum(_ever_excludes(0.5, s, peek_every=20, n=2000, sequential=True) for s in range(runs))
    fixed = sum(
        _ever_excludes(0.5, s, peek_every=20, n=2000, sequential=False) for s in range(runs)
    )
    assert cs / runs <= 0.06, cs
    assert fixed / runs >= 0.15, fixed


def test_a_real_difference_is_found() -> None:
    rng = random.Random(1)
    xs = [1.0 if rng.random() < 0.3 else 0.0 for _ in range(1000)]
    mean, lo, hi = confidence_sequence(xs)  # type: ignore[misc]
    assert hi < 0.5 and lo <= mean <= hi


def test_the_sequence_is_wider_than_a_fixed_interval_and_shrinks() -> None:
    assert cs_half_width(0.5, 100) > 1.96 * 0.5 / 10
    assert cs_half_width(0.5, 10_000) < cs_half_width(0.5, 1000) < cs_half_width(0.5, 100)


def test_identical_arms_give_an_interval_around_zero() -> None:
    a = [1.0, 0.0] * 200
    diff, lo, hi = cs_difference(a, list(a))  # type: ignore[misc]
    assert diff == 0 and lo < 0 < hi


def test_constant_outcomes_keep_a_width() -> None:
    _, lo, hi = confidence_sequence([1.0] * 50)  # type: ignore[misc]
    assert lo < 1.0 and hi == 1.0


def test_win_scores() -> None:
    assert win_scores(2, 1, 1) == [1.0, 1.0, 0.5, 0.0]
    assert confidence_sequence([]) is None


def test_clusters_widen_the_sequence_when_keys_differ() -> None:
    """Two keys, one always passing and one always failing, 200 requests each: as
    clusters they are worth about 2 observations, not 400."""
    xs = [1.0] * 200 + [0.0] * 200
    keys = ["a"] * 200 + ["b"] * 200
    _, lo, hi = confidence_sequence(xs)  # type: ignore[misc]
    _, clo, chi = confidence_sequence(xs, clusters=keys)  # type: ignore[misc]
    assert chi - clo > 2 * (hi - lo)
    mixed = ["a", "b"] * 200  # keys alike: no design effect
    _, mlo, mhi = confidence_sequence([1.0, 1.0, 0.0, 0.0] * 100, clusters=mixed)  # type: ignore[misc]
    assert abs((mhi - mlo) - (hi - lo)) < 0.02
