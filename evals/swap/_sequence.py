"""The candidate's pairwise win rate day by day: its confidence sequence at the end of
each day of a report, from the shadow pairs judged so far (pure). A confidence sequence
is valid at every day at once, so these points can be read as the trial goes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date

from evals._compare import PairOutcome
from evals._sequential import confidence_sequence, win_scores
from serving import GavelModel, TrafficRecord


class SequencePoint(GavelModel):
    """The win rate (ties half) over every pair captured up to the end of ``day``."""

    day: str
    pairs: int
    win_rate: float
    low: float
    high: float


def sequence_by_day(
    outcomes: Sequence[PairOutcome],
    pairs: Sequence[tuple[TrafficRecord, TrafficRecord]],
    days: Sequence[date],
) -> list[SequencePoint]:
    """One point per day of ``days`` on which some pair was judged (cumulative: each day
    adds its pairs to the ones before). A pair's day is its shadow's capture day."""
    day_of = {shadow.request_id: shadow.ts.astimezone(UTC).date() for _, shadow in pairs}
    points: list[SequencePoint] = []
    for d in sorted(days):
        upto = [o for o in outcomes if (seen := day_of.get(o.item_id)) is not None and seen <= d]
        wins = sum(o.winner == "B" for o in upto)
        losses = sum(o.winner == "A" for o in upto)
        seq = confidence_sequence(win_scores(wins, len(upto) - wins - losses, losses))
        if seq is None or (points and points[-1].pairs == len(upto)):
            continue
        points.append(SequencePoint(day=d.isoformat(), pairs=len(upto), win_rate=seq[0],
                                    low=seq[1], high=seq[2]))  # fmt: skip
    return points
