"""Calibration of a pairwise judge against people: three classes (A better, B better,
tie), Cohen's kappa over them with its interval, and the judge's position consistency.

The trust rule is the binary judges' (:class:`~judges._calibration.CalibrationConfig`):
enough labelled pairs, and kappa at least ``min_kappa``. Pure functions.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import date

from judges._calibration import CalibrationConfig, trust_rule
from judges._criteria import Criterion
from judges._labels import PAIR_LABELS, Label, since_filter
from judges._registry import KindRegistry
from judges._stats import Z95, position_consistency
from judges._wire import Verdict
from judges.kinds import default_kinds
from serving import GavelModel

CLASSES = ("A", "B", "tie")


class PairwiseCalibration(GavelModel):
    """A pairwise criterion's judge against people."""

    criterion: str
    n: int
    """Labelled pairs the judge also decided (both orders)."""
    matrix: list[list[int]]
    """Counts, people's label (rows) by the judge's (columns), in the order A, B, tie."""
    agreement: float | None
    kappa: float | None
    kappa_low: float | None
    kappa_high: float | None
    position_consistency: float | None
    """Share of the judged pairs whose two orders named the same winner."""
    trusted: bool
    reason: str
    criterion_version: str = ""
    unjudged_labels: int = 0
    """Labelled pairs with no verdict of the current version (or a judge error)."""
    disputed_items: int = 0
    """Pairs whose labellers gave no single most frequent label (not counted)."""


def kappa3(matrix: Sequence[Sequence[int]], z: float = Z95) -> tuple[float | None, ...]:
    """(agreement, kappa, low, high) of a square matrix of counts; kappa ``None`` when
    undefined (no pair, or both sides used one and the same class only)."""
    n = sum(sum(row) for row in matrix)
    if n == 0:
        return None, None, None, None
    k = len(matrix)
    p_o = sum(matrix[i][i] for i in range(k)) / n
    rows = [sum(matrix[i]) / n for i in range(k)]
    cols = [sum(matrix[i][j] for i in range(k)) / n for j in range(k)]
    p_e = sum(r * c for r, c in zip(rows, cols, strict=True))
    if math.isclose(p_e, 1.0):
        return p_o, None, None, None
    kappa = (p_o - p_e) / (1 - p_e)
    se = math.sqrt(p_o * (1 - p_o) / (n * (1 - p_e) ** 2))
    return p_o, kappa, max(-1.0, kappa - z * se), min(1.0, kappa + z * se)


def calibrate_pairwise(
    criterion: str,
    pairs: Sequence[tuple[str, str, str]],
    cfg: CalibrationConfig,
) -> PairwiseCalibration:
    """Calibrate from (people's label, the judge's winner in order AB, its winner in
    order BA), every winner named by response (``A``/``B``/``tie``), already mapped back
    from position. The judge's verdict is the two orders' winner when they agree, else
    a tie (as the pairwise kind decides)."""
    matrix = [[0] * len(CLASSES) for _ in CLASSES]
    for human, ab, ba in pairs:
        judged = ab if ab == ba else "tie"
        matrix[CLASSES.index(human)][CLASSES.index(judged)] += 1
    agreement, kappa, lo, hi = kappa3(matrix)
    ok, reason = trust_rule(len(pairs), kappa, cfg)
    return PairwiseCalibration(
        criterion=criterion,
        n=len(pairs),
        matrix=matrix,
        agreement=agreement,
        kappa=kappa,
        kappa_low=lo,
        kappa_high=hi,
        position_consistency=position_consistency([(ab, ba) for _, ab, ba in pairs]),
        trusted=ok,
        reason=reason,
    )


def pair_consensus(labels: Sequence[Label]) -> tuple[list[Label], int]:
    """One label per pair: the labellers' most frequent (the latest such label stands for
    it); pairs without a single most frequent label are left out. Returns (labels,
    disputed pair count)."""
    by_item: dict[str, list[Label]] = defaultdict(list)
    for lab in labels:
        by_item[lab.item_id].append(lab)
    out: list[Label] = []
    disputed = 0
    for group in by_item.values():
        ranked = Counter(lab.label for lab in group).most_common()
        if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
            disputed += 1
            continue
        out.append(max((x for x in group if x.label == ranked[0][0]), key=lambda x: x.labelled_at))
    return out, disputed


def calibrate_pairs(
    criteria: Sequence[Criterion],
    labels: Sequence[Label],
    verdicts: Sequence[Verdict],
    cfg: CalibrationConfig,
    *,
    criterion: str | None = None,
    since: date | None = None,
    kinds: KindRegistry | None = None,
) -> list[PairwiseCalibration]:
    """One row per pairwise criterion (or just ``criterion``): its current version's
    labels (made since ``since``; one per pair by consensus) against the judge's
    verdicts of its current version, in both orders."""
    out: list[PairwiseCalibration] = []
    for crit in (kinds or default_kinds()).pairwise(criteria):
        if criterion is not None and crit.name != criterion:
            continue
        mine = [lab for lab in since_filter(labels, since)
                if lab.criterion == crit.name and lab.criterion_version == crit.label_version
                and lab.label in PAIR_LABELS]  # fmt: skip
        agreed, disputed = pair_consensus(mine)
        judged = {
            v.item_id: v.order_winners
            for v in verdicts
            if v.criterion == crit.name and v.criterion_version == crit.version
            and v.verdict in PAIR_LABELS and v.order_winners and len(v.order_winners) == 2
        }  # fmt: skip
        pairs = [(lab.label, judged[lab.item_id][0], judged[lab.item_id][1])
                 for lab in agreed if lab.item_id in judged]  # fmt: skip
        row = calibrate_pairwise(crit.name, pairs, cfg)
        out.append(row.model_copy(update={
            "criterion_version": crit.label_version,
            "unjudged_labels": len(agreed) - len(pairs), "disputed_items": disputed,
        }))  # fmt: skip
    return out
