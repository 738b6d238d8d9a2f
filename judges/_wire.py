"""Wire formats of judging: judge items, structured answers, stored verdicts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from serving._config import GavelModel
from serving._wire import TrafficRecord

REASONING_MAX = 240
"""The JSON schema's maxLength: the grammar closes the reasoning before the token limit."""

VerdictValue = Literal["pass", "fail", "A", "B", "tie", "error"]


class BinaryAnswer(GavelModel):
    """What the judge model returns for a binary or reference criterion (JSON schema)."""

    reasoning: Annotated[str, Field(max_length=REASONING_MAX)]
    verdict: Literal["pass", "fail"]


class PairwiseAnswer(GavelModel):
    """What the judge model returns for a pairwise criterion (JSON schema)."""

    reasoning: Annotated[str, Field(max_length=REASONING_MAX)]
    winner: Literal["A", "B", "tie"]


class JudgeItem(GavelModel):
    """What one judge call looks at: one record, or two for pairwise (A first)."""

    criterion: str
    records: list[TrafficRecord] = Field(min_length=1, max_length=2)

    @property
    def item_id(self) -> str:
        """Stable id: the request id, or both ids for a pair."""
        return "|".join(r.request_id for r in self.records)


class Verdict(GavelModel):
    """A stored verdict, with everything needed to reproduce or discount it."""

    item_id: str
    criterion: str
    criterion_version: str
    kind: Literal["binary", "reference", "pairwise"]
    judge: str
    """Name of the registered judge factory."""
    judge_version: str
    judge_model: str
    """Served id of the judge model (resolved from the ``judge`` role)."""
    judge_args: dict[str, float | int | str]
    model: str
    """The judged model (``A|B`` for pairwise)."""
    day: str
    verdict: VerdictValue
    reasoning: str | None = None
    error: str | None = None
    order_winners: list[str] | None = None
    """Pairwise: the winner (A/B/tie, by response) in order AB and in order BA."""
    judge_prompt_tokens: int = 0
    judge_completion_tokens: int = 0
    judge_cost_usd: float = 0.0
    latency_ms: float = 0.0
    created_at: datetime
