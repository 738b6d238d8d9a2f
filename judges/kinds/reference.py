"""``reference``: pass/fail of one response against the expected answer in its metadata."""

from __future__ import annotations

from judges._aggregate import pass_fail_rates
from judges._client import JudgeClient
from judges._criteria import Criterion
from judges._registry import CriterionKind, JudgeFn, JudgeOutcome
from judges._wire import JudgeItem, PassFailAnswer
from judges.kinds._pass_fail import ask_pass_fail, shared_prefix


def reference_prompt(criterion: Criterion, item: JudgeItem) -> str:
    """The user message: the shared prefix, the conversation, the expected answer, the
    response."""
    ex = item.exchanges[0]
    return (
        shared_prefix(criterion) + f"Conversation:\n{ex.render_request()}\n\n"
        f"Expected answer: {ex.metadata.get('expected', '')}\n\n"
        f"Response:\n{ex.response}"
    )


def reference_judge(criterion: Criterion, client: JudgeClient) -> JudgeFn:
    """Pass/fail of one response against ``metadata['expected']``."""

    async def score(item: JudgeItem) -> JudgeOutcome:
        return await ask_pass_fail(
            client, reference_prompt(criterion, item), criterion.verdict_format
        )

    return score


def _needs_expected(criterion: Criterion) -> str | None:
    if "expected" not in criterion.applies_to.metadata:
        return "a 'reference' criterion needs applies_to.metadata.expected: '*'"
    return None


KIND = CriterionKind(
    name="reference",
    judge_name="reference_match",
    judge_version="2",
    factory=reference_judge,
    answer=PassFailAnswer,
    aggregate=pass_fail_rates,
    check=_needs_expected,
    prompt=reference_prompt,
)
