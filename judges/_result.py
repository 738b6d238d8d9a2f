"""What one run of the daily job did and found."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from judges._calibration import CalibrationRow
from judges._feedback import FeedbackRow, UserAgreement
from judges._pairwise_calibration import PairwiseCalibration
from judges._rows import PairRow, RateRow


@dataclass(frozen=True)
class DailyResult:
    """What one run of the daily job did and found."""

    day: date
    sampled: int
    judged_now: int
    skipped: int
    rates: list[RateRow]
    pairs: list[PairRow]
    judge_prompt_tokens: int
    judge_completion_tokens: int
    judge_cost_usd: float
    errors: int
    seconds: float
    calibration: list[CalibrationRow] = field(default_factory=list)
    pairwise_calibration: list[PairwiseCalibration] = field(default_factory=list)
    feedback: list[FeedbackRow] = field(default_factory=list)
    """End users' feedback on the day's answers, per model and name."""
    judge_vs_users: list[UserAgreement] = field(default_factory=list)
    """The judge against users' feedback, per criterion mapped to a feedback name."""
    report: Path | None = None
    """The HTML report, once written."""
