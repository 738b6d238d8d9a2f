"""Calibration of a pairwise judge against people: three classes (A better, B better,
tie), Cohen's kappa over them with its interval, and the judge's position consistency.

The trust rule is the binary judges' (:class:`~judges._calibration.CalibrationConfig`):
enough labelled pairs, and kappa at least ``min_kappa``. Pure functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from judges._calibration import CalibrationConfig, trust_rule
from judges._stats import Z95, position_consistency
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
