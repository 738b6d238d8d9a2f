"""Calibration numbers against values computed by hand (see each test's comment)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from judges._calibration import CalibrationConfig, calibrate, calibration_row, cohen_kappa
from judges._criteria import Criterion
from judges._labels import Label
from judges._wire import Verdict

CRIT = Criterion(name="answers_question", kind="binary", rubric="Does it answer the question?")
V = CRIT.version
LV = CRIT.label_version
"""Labels carry the label version (what pass means); verdicts the judge's version."""
CFG = CalibrationConfig(min_kappa=0.6, min_labels=3)
T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)


def label(
    i: int,
    value: str,
    *,
    version: str = LV,
    when: datetime = T0,
    drift: str | None = None,
    crit: str = CRIT.name,
) -> Label:
    return Label(
        item_id=f"r{i}",
        criterion=crit,
        criterion_version=version,
        label=value,  # type: ignore[arg-type]
        criterion_note=drift,
        labeller="alice",
        labelled_at=when,
    )


def verdict(i: int, value: str, *, crit: str = CRIT.name, version: str = V) -> Verdict:
    return Verdict(
        item_id=f"r{i}",
        criterion=crit,
        criterion_version=version,
        kind="binary",
        judge="binary",
        judge_version="1",
        judge_model="judge-model",
        judge_args={},
        model="app-model",
        day="2026-11-01",
        verdict=value,  # type: ignore[arg-type]
        created_at=T0,
    )


def build(cells: list[tuple[str, str, int]]) -> tuple[list[Label], list[Verdict]]:
    """(human, judge, count) cells -> labels and verdicts on distinct records."""
    labels, verdicts, i = [], [], 0
    for human, judge, count in cells:
        for _ in range(count):
            labels.append(label(i, human))
            verdicts.append(verdict(i, judge))
            i += 1
    return labels, verdicts


def test_mixed_matrix_matches_hand_computation() -> None:
    # human fail & judge fail 8, human fail & judge pass 2, human pass & judge fail 3,
    # both pass 27: n = 40.
    # p_o = 35/40 = 0.875; P(human fail) = 10/40 = 0.25; P(judge fail) = 11/40 = 0.275
    # p_e = 0.25*0.275 + 0.75*0.725 = 0.6125; kappa = 0.2625 / 0.3875 = 0.677419
    # SE = sqrt(0.875*0.125 / (40 * 0.3875^2)) = 0.134945; CI = kappa -+ 1.959964*SE
    #    = [0.412931, 0.941908]
    # coverage = 8/10 = 0.8; false-failure rate = 3/30 = 0.1
    labels, verdicts = build([("fail", "fail", 8), ("fail", "pass", 2), ("pass", "fail", 3)])
    more_l, more_v = build([("pass", "pass", 27)])
    labels += [lab.model_copy(update={"item_id": "x" + lab.item_id}) for lab in more_l]
    verdicts += [v.model_copy(update={"item_id": "x" + v.item_id}) for v in more_v]
    row = calibration_row(CRIT, labels, verdicts, CFG)
    assert row.n == 40
    m = row.confusion
    assert (m.both_fail, m.judge_pass_human_fail, m.judge_fail_human_pass, m.both_pass) == (
        8,
        2,
        3,
        27,
    )
    assert row.agreement == pytest.approx(0.875)
    assert row.kappa == pytest.approx(0.677419, abs=1e-6)
    assert row.kappa_low == pytest.approx(0.412931, abs=1e-6)
    assert row.kappa_high == pytest.approx(0.941908, abs=1e-6)
    assert row.coverage == pytest.approx(0.8)
    assert row.false_failure_rate == pytest.approx(0.1)
    assert row.trusted and "0.68" in row.reason


def test_no_labels() -> None:
    row = calibration_row(CRIT, [], [verdict(1, "pass")], CFG)
    assert row.n == 0
    assert row.agreement is None and row.kappa is None and row.kappa_low is None
    assert row.coverage is None and row.false_failure_rate is None
    assert not row.trusted and "too few labels" in row.reason


def test_all_pass_kappa_undefined() -> None:
    # 5 records, everyone passes everything: p_o = p_e = 1, kappa undefined.
    labels, verdicts = build([("pass", "pass", 5)])
    row = calibration_row(CRIT, labels, verdicts, CFG)
    assert row.n == 5 and row.agreement == 1.0
    assert row.kappa is None and row.kappa_low is None and row.kappa_high is None
    assert row.coverage is None  # no human-failed records
    assert row.false_failure_rate == 0.0
    assert not row.trusted and "undefined" in row.reason


def test_human_fail_class_missing() -> None:
    # Humans pass all 4; the judge fails one. p_o = 0.75, P(human fail) = 0,
    # P(judge fail) = 0.25, p_e = 0.75, kappa = 0; SE = sqrt(0.1875 / (4*0.0625)) = 0.866
    # so the interval is clipped to [-1, 1]. Coverage undefined, false-failure 1/4.
    labels, verdicts = build([("pass", "pass", 3), ("pass", "fail", 1)])
    row = calibration_row(CRIT, labels, verdicts, CFG)
    assert row.kappa == pytest.approx(0.0)
    assert (row.kappa_low, row.kappa_high) == (-1.0, 1.0)
    assert row.coverage is None
    assert row.false_failure_rate == pytest.approx(0.25)
    assert not row.trusted and "0.00 < 0.60" in row.reason


def test_judge_pass_class_missing() -> None:
    # The judge fails all 4; humans fail 2. p_o = 0.5, p_e = 0.5*1 + 0.5*0 = 0.5, kappa 0.
    labels, verdicts = build([("fail", "fail", 2), ("pass", "fail", 2)])
    row = calibration_row(CRIT, labels, verdicts, CFG)
    assert row.kappa == pytest.approx(0.0)
    assert row.coverage == 1.0 and row.false_failure_rate == 1.0


def test_perfect_agreement_zero_width_interval() -> None:
    labels, verdicts = build([("fail", "fail", 5), ("pass", "pass", 5)])
    row = calibration_row(CRIT, labels, verdicts, CFG)
    assert (row.kappa, row.kappa_low, row.kappa_high) == (1.0, 1.0, 1.0)
    assert row.trusted


def test_too_few_labels_even_if_perfect() -> None:
    labels, verdicts = build([("fail", "fail", 1), ("pass", "pass", 1)])
    row = calibration_row(CRIT, labels, verdicts, CFG)
    assert row.kappa == 1.0 and not row.trusted and "2 < 3" in row.reason


def test_only_current_version_judged_pass_fail_counts() -> None:
    labels = [
        label(1, "fail"),
        label(2, "pass"),  # judge error: not counted
        label(3, "pass"),  # no verdict yet: not counted
        label(4, "fail", version="oldversion1"),  # earlier criterion version: not counted
    ]
    verdicts = [
        verdict(1, "fail"),
        verdict(2, "error"),
        verdict(4, "pass", version="oldversion1"),
    ]
    row = calibration_row(CRIT, labels, verdicts, CFG)
    assert row.n == 1
    assert row.unjudged_labels == 2
    assert row.earlier_version_labels == 1


def test_drift_notes_listed_with_version() -> None:
    labels = [
        label(1, "fail", drift="the rubric ignores partial answers"),
        label(2, "pass", version="oldversion1", drift="too strict"),
        label(3, "pass"),
    ]
    row = calibration_row(CRIT, labels, [], CFG)
    notes = {(n.item_id, n.current, n.note) for n in row.drift_notes}
    assert notes == {
        ("r1", True, "the rubric ignores partial answers"),
        ("r2", False, "too strict"),
    }


def test_calibrate_filters_since_and_criterion_skips_pairwise() -> None:
    other = Criterion(name="concise", kind="binary", rubric="Is it concise enough?")
    pair = Criterion(name="preferred", kind="pairwise", rubric="Which is better overall?")
    labels = [
        label(1, "fail", when=datetime(2026, 10, 1, tzinfo=UTC)),
        label(2, "fail", when=datetime(2026, 11, 5, tzinfo=UTC)),
        label(3, "pass", crit="concise", version=other.label_version),
    ]
    verdicts = [
        verdict(1, "fail"),
        verdict(2, "pass"),
        verdict(3, "pass", crit="concise", version=other.version),
    ]
    rows = calibrate([CRIT, other, pair], labels, verdicts, CFG)
    assert [r.criterion for r in rows] == ["answers_question", "concise"]
    assert rows[0].n == 2
    since = calibrate([CRIT, other], labels, verdicts, CFG, since=date(2026, 11, 1))
    assert since[0].n == 1 and since[0].confusion.judge_pass_human_fail == 1
    only = calibrate([CRIT, other], labels, verdicts, CFG, criterion="concise")
    assert [r.criterion for r in only] == ["concise"] and only[0].n == 1


def test_cohen_kappa_empty() -> None:
    from judges._calibration import Confusion

    assert cohen_kappa(Confusion()) == (None, None, None)


def test_public_surface_resolves() -> None:
    import judges

    for name in judges.__all__:
        assert getattr(judges, name) is not None
    with pytest.raises(AttributeError):
        _ = judges.nope  # type: ignore[attr-defined]
