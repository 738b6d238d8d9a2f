"""Wire formats of judging: exchanges, judge items, stored verdicts.

Judges score *exchanges* (a conversation or prompt, the response, metadata, the
model), not captured traffic: the daily job adapts traffic records into exchanges at
its edge, and an offline eval builds them from a dataset. Verdicts belong to a *run*
(the daily job's run is its day; an eval run has its own id).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from serving import GavelModel

REASONING_MAX = 240
"""The JSON schema's maxLength: the grammar closes the reasoning before the token limit."""


class Exchange(GavelModel):
    """One model call to judge: what was asked, what came back, and about what."""

    id: Annotated[str, Field(min_length=1)]
    """Stable id: a captured request's id, or an eval item's id and epoch."""
    model: str
    """Served id of the model that answered."""
    messages: list[dict[str, Any]] | None = None
    """OpenAI chat messages (chat), or ``None`` for a completions prompt."""
    prompt: str | None = None
    response: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    """Free metadata; ``expected`` holds a reference answer."""

    def render_request(self) -> str:
        """The conversation (or prompt) as plain text, for a judge prompt."""
        if self.messages is not None:
            lines = []
            for m in self.messages:
                content = m.get("content")
                if isinstance(content, list):
                    content = " ".join(
                        str(p.get("text", "")) for p in content if isinstance(p, dict)
                    )
                lines.append(f"{m.get('role', 'user')}: {content}")
            return "\n".join(lines)
        return self.prompt or ""


class JudgeItem(GavelModel):
    """What one judge call looks at: one exchange, or several (a pair: A first)."""

    criterion: str
    exchanges: Annotated[list[Exchange], Field(min_length=1)]

    @property
    def item_id(self) -> str:
        """Stable id: the exchange id, or the ids joined for a pair."""
        return "|".join(e.id for e in self.exchanges)


class PassFailAnswer(GavelModel):
    """What the judge model returns for a pass/fail criterion (JSON schema)."""

    reasoning: Annotated[str, Field(max_length=REASONING_MAX)]
    verdict: Literal["pass", "fail"]


class Verdict(GavelModel):
    """A stored verdict, with everything needed to reproduce or discount it."""

    item_id: str
    criterion: str
    criterion_version: str
    kind: str
    """The criterion kind (a name in the kind registry)."""
    judge: str
    """Name of the registered judge factory."""
    judge_version: str
    judge_model: str
    """Served id of the judge model (resolved from the ``judge`` role)."""
    judge_args: dict[str, float | int | str]
    model: str
    """The judged model (``A|B`` for pairwise)."""
    run_id: str = ""
    """The run: the day (``YYYY-MM-DD``) for the daily job, an eval run's id. When only
    ``day`` is given, the run is that day."""
    day: str | None = None
    """The day of the judged traffic (daily job); ``None`` for offline runs."""
    verdict: str
    """One of the kind's outcomes, or ``error``."""
    reasoning: str | None = None
    error: str | None = None
    order_winners: list[str] | None = None
    """Pairwise: the winner (A/B/tie, by response) in order AB and in order BA."""
    p_fail: float | None = None
    """Verdict-only format: the judge's probability of ``fail`` (a confidence)."""
    judge_prompt_tokens: int = 0
    judge_completion_tokens: int = 0
    judge_cost_usd: float = 0.0
    latency_ms: float = 0.0
    created_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _run_of_day(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("run_id"):
            if not data.get("day"):
                raise ValueError("a verdict needs a run_id or a day")
            data = {**data, "run_id": data["day"]}
        return data
