"""A criterion kind in one module: ``word_limit``, pass when the response has at most
``N`` words (``N`` from the rubric's first number). Deterministic: it calls no model.

This is all a new kind needs: a judge factory, an answer schema, an aggregator, and a
``CriterionKind`` that a registry registers.
"""

from __future__ import annotations

import re

from judges import Criterion, CriterionKind, JudgeItem, JudgeOutcome, PassFailAnswer
from judges._aggregate import pass_fail_rates
from judges._client import JudgeClient
from judges._registry import JudgeFn


def word_limit_judge(criterion: Criterion, client: JudgeClient) -> JudgeFn:
    """Pass when the response has at most the rubric's number of words."""
    limit = int(re.findall(r"\d+", criterion.rubric)[0])

    async def score(item: JudgeItem) -> JudgeOutcome:
        words = len((item.exchanges[0].response or "").split())
        verdict = "pass" if words <= limit else "fail"
        return JudgeOutcome(verdict, f"{words} words against a limit of {limit}")

    return score


KIND = CriterionKind(
    name="word_limit",
    judge_name="word_count",
    judge_version="1",
    factory=word_limit_judge,
    answer=PassFailAnswer,
    aggregate=pass_fail_rates,
)
