"""``binary``: pass/fail of one response against the criterion's rubric."""

from __future__ import annotations

from judges._aggregate import pass_fail_rates
from judges._client import JudgeClient
from judges._criteria import Criterion
from judges._registry import CriterionKind, JudgeFn, JudgeOutcome
from judges._wire import JudgeItem, PassFailAnswer
from judges.kinds._pass_fail import ask_pass_fail, shared_prefix


def binary_prompt(criterion: Criterion, item: JudgeItem) -> str:
    """The user message: the criterion's shared prefix, then the conversation and response."""
    ex = item.exchanges[0]
    return (
        shared_prefix(criterion)
        + f"Conversation:\n{ex.render_request()}\n\nResponse:\n{ex.response}"
    )


def binary_judge(criterion: Criterion, client: JudgeClient) -> JudgeFn:
    """Pass/fail of one response against the rubric."""

    async def score(item: JudgeItem) -> JudgeOutcome:
        return await ask_pass_fail(client, binary_prompt(criterion, item), criterion.verdict_format)

    return score


KIND = CriterionKind(
    name="binary",
    judge_name="binary_rubric",
    judge_version="2",
    factory=binary_judge,
    answer=PassFailAnswer,
    aggregate=pass_fail_rates,
    prompt=binary_prompt,
)
