"""Report rows of aggregated verdicts (pure data): pass-rate rows and pairwise rows."""

from __future__ import annotations

from dataclasses import dataclass, field

from serving import GavelModel


class RateRow(GavelModel):
    """One criterion (version) and model on one day."""

    criterion: str
    criterion_version: str
    model: str
    passes: int
    fails: int
    errors: int
    pass_rate: float | None
    ci_low: float
    ci_high: float
    trailing_passes: int = 0
    trailing_n: int = 0
    trailing_rate: float | None = None
    drop_p: float | None = None
    dropped: bool = False


class PairRow(GavelModel):
    """One pairwise criterion on one day."""

    criterion: str
    criterion_version: str
    models: str
    wins_a: int
    wins_b: int
    ties: int
    errors: int
    position_consistency: float | None


@dataclass(frozen=True)
class Aggregate:
    """The report rows of some verdicts: pass-rate rows and pairwise rows."""

    rates: list[RateRow] = field(default_factory=list)
    pairs: list[PairRow] = field(default_factory=list)

    def __add__(self, other: Aggregate) -> Aggregate:
        return Aggregate(self.rates + other.rates, self.pairs + other.pairs)
