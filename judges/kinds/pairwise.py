"""``pairwise``: which of two models' responses to one prompt is better, in both orders.

When the two orders disagree the result is a tie; the report gives the rate at which
the orders agree (position consistency).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from judges._aggregate import pairwise_rows
from judges._client import JudgeCallError, JudgeClient
from judges._criteria import Criterion
from judges._registry import CriterionKind, JudgeFn, JudgeOutcome
from judges._wire import REASONING_MAX, Exchange, JudgeItem
from judges.kinds._pass_fail import SYSTEM
from serving import GavelModel


class PairwiseAnswer(GavelModel):
    """What the judge model returns for a pairwise criterion (JSON schema)."""

    reasoning: Annotated[str, Field(max_length=REASONING_MAX)]
    winner: Literal["A", "B", "tie"]


def _unswap(winner: str) -> str:
    return {"A": "B", "B": "A"}.get(winner, winner)


def pairwise_judge(criterion: Criterion, client: JudgeClient) -> JudgeFn:
    """Which of two responses is better, asked in both orders; disagreement is a tie."""

    async def ask(first: Exchange, second: Exchange) -> tuple[PairwiseAnswer, int, int]:
        user = (
            f"Criterion: {criterion.name}\nRubric: {criterion.rubric}\n\n"
            f"Conversation:\n{first.render_request()}\n\n"
            f"Response A:\n{first.response}\n\nResponse B:\n{second.response}\n\n"
            'Reply with JSON: {"reasoning": "...", "winner": "A", "B" or "tie"}.'
        )
        ans, used = await client.ask(SYSTEM, user, PairwiseAnswer)
        return ans, used.prompt_tokens, used.completion_tokens

    async def score(item: JudgeItem) -> JudgeOutcome:
        a, b = item.exchanges
        try:
            ab, p1, c1 = await ask(a, b)
            ba, p2, c2 = await ask(b, a)
        except JudgeCallError as exc:
            return JudgeOutcome(verdict="error", error=str(exc))
        w1, w2 = ab.winner, _unswap(ba.winner)
        final = w1 if w1 == w2 else "tie"
        return JudgeOutcome(
            final, f"AB: {ab.reasoning} | BA: {ba.reasoning}", None, [w1, w2], p1 + p2, c1 + c2
        )

    return score


KIND = CriterionKind(
    name="pairwise",
    judge_name="pairwise_both_orders",
    judge_version="1",
    factory=pairwise_judge,
    answer=PairwiseAnswer,
    aggregate=pairwise_rows,
    arity=2,
    outcomes=("A", "B", "tie"),
    human_labels=(),
)
