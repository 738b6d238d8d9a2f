"""Pairwise calibration against a hand computation (issue 20)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from judges._calibration import CalibrationConfig
from judges._catalog import load_criteria
from judges._criteria import Criterion
from judges._labels import Label
from judges._pairwise_calibration import calibrate_pairs, calibrate_pairwise, kappa3
from judges._wire import Verdict
from tests.conftest import ROOT


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


def _crit() -> Criterion:
    return next(c for c in load_criteria(ROOT / "judges/criteria") if c.kind == "pairwise")


def _label(item: str, crit: Criterion, label: str, who: str, minute: int = 0) -> Label:
    return Label(item_id=item, criterion=crit.name, criterion_version=crit.label_version,
                 label=label, labeller=who,  # type: ignore[arg-type]
                 labelled_at=datetime(2026, 11, 30, 12, minute, tzinfo=UTC))  # fmt: skip


def _verdict(item: str, crit: Criterion, orders: tuple[str, str], version: str = "") -> Verdict:
    winner = orders[0] if orders[0] == orders[1] else "tie"
    when = datetime(2026, 11, 30, tzinfo=UTC)
    return Verdict(item_id=item, criterion=crit.name, criterion_version=version or crit.version,
                   kind="pairwise", judge="pairwise", judge_version="1", judge_model="judge-model",
                   judge_args={}, model="a|b", day="2026-11-30", verdict=winner,
                   order_winners=list(orders), created_at=when)  # fmt: skip


def test_labels_join_verdicts_by_pair_with_consensus_by_hand() -> None:
    """Five labelled pairs. p1: two say A, one B -> A; the judge A/A. p2: B; judge B/B.
    p3: tie; judge A/B (orders disagree) -> tie. p4: A vs B, one each -> disputed, left out.
    p5: B; judge of an earlier version only -> unjudged. p6: judge only, no label.
    Counted: 3 pairs, all on the diagonal: agreement 1, position consistency 2/3."""
    crit = _crit()
    labels = [
        _label("p1", crit, "A", "ann"), _label("p1", crit, "A", "bob"),
        _label("p1", crit, "B", "cy"), _label("p2", crit, "B", "ann"),
        _label("p3", crit, "tie", "ann"), _label("p4", crit, "A", "ann"),
        _label("p4", crit, "B", "bob"), _label("p5", crit, "B", "ann"),
    ]  # fmt: skip
    verdicts = [
        _verdict("p1", crit, ("A", "A")), _verdict("p2", crit, ("B", "B")),
        _verdict("p3", crit, ("A", "B")), _verdict("p5", crit, ("B", "B"), version="old"),
        _verdict("p6", crit, ("A", "A")),
    ]  # fmt: skip
    [row] = calibrate_pairs([crit], labels, verdicts, CalibrationConfig(min_labels=3))
    assert row.n == 3 and row.disputed_items == 1 and row.unjudged_labels == 1
    assert row.matrix == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert row.agreement == 1.0 and row.kappa == pytest.approx(1.0)
    assert row.position_consistency == pytest.approx(2 / 3)
    assert row.trusted, row.reason
    # Swap people's A and B on p1 and p2: kappa by hand. Matrix [[0,1,0],[1,0,0],[0,0,1]]:
    # p_o = 1/3, p_e = (1+1+1)/9 = 1/3 -> kappa 0, not trusted.
    flipped = [lab.model_copy(update={"label": {"A": "B", "B": "A"}.get(lab.label, lab.label)})
               for lab in labels]  # fmt: skip
    [row] = calibrate_pairs([crit], flipped, verdicts, CalibrationConfig(min_labels=3))
    assert row.kappa == pytest.approx(0.0) and not row.trusted
