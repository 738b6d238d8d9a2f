"""Pairwise calibration against a hand computation (issue 20)."""

from __future__ import annotations

import pytest

from judges._calibration import CalibrationConfig
from judges._pairwise_calibration import calibrate_pairwise, kappa3


def test_three_class_kappa_by_hand() -> None:
    """People (rows) by judge (columns), A/B/tie:
        [[10, 2, 3],
         [1, 8, 1],
         [2, 1, 2]]     n = 30
    p_o = (10 + 8 + 2) / 30 = 0.6667
    rows = 15, 10, 5 (/30); cols = 13, 11, 6 (/30)
    p_e = (15*13 + 10*11 + 5*6) / 900 = 335 / 900 = 0.37222
    kappa = (0.66667 - 0.37222) / (1 - 0.37222) = 0.46903
    se = sqrt(0.66667 * 0.33333 / (30 * 0.62778^2)) = 0.13695; 95%: 0.2006 to 0.7374
    """
    agreement, kappa, lo, hi = kappa3([[10, 2, 3], [1, 8, 1], [2, 1, 2]])
    assert agreement == pytest.approx(20 / 30)
    assert kappa == pytest.approx(0.46903, abs=1e-5)
    assert lo == pytest.approx(0.2006, abs=1e-3)
    assert hi == pytest.approx(0.7374, abs=1e-3)


def test_judge_verdict_is_a_tie_when_its_orders_disagree_and_trust_follows_the_rule() -> None:
    pairs = (
        [("A", "A", "A")] * 12  # agree with people, both orders
        + [("B", "B", "B")] * 10
        + [("tie", "tie", "tie")] * 4
        + [("A", "A", "B")] * 4  # orders disagree: the judge's verdict is tie
    )
    cal = calibrate_pairwise("better", pairs, CalibrationConfig(min_labels=30, min_kappa=0.6))
    assert cal.matrix == [[12, 0, 4], [0, 10, 0], [0, 0, 4]]
    assert cal.position_consistency == pytest.approx(26 / 30)
    # p_o = 26/30; rows 16,10,4; cols 12,10,8: p_e = (192+100+32)/900 = 0.36; kappa 0.7917
    assert cal.kappa == pytest.approx((26 / 30 - 0.36) / 0.64)
    assert cal.trusted
    few = calibrate_pairwise("better", pairs[:20], CalibrationConfig(min_labels=30))
    assert not few.trusted and "too few" in few.reason


def test_one_class_only_has_no_kappa() -> None:
    cal = calibrate_pairwise("better", [("tie", "tie", "tie")] * 40, CalibrationConfig())
    assert cal.kappa is None and not cal.trusted
