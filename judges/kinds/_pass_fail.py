"""What the pass/fail kinds share: the grader's instructions and one pass/fail call.

The prompt puts everything that is the same for every item of a criterion first
(instructions, criterion, rubric, answer format), byte-identical, and the item last, so
vLLM's prefix cache reuses the shared blocks across items.
"""

from __future__ import annotations

import math

from judges._client import JudgeCallError, JudgeClient
from judges._criteria import Criterion, VerdictFormat
from judges._registry import JudgeOutcome
from judges._wire import PassFailAnswer

SYSTEM = (
    "You are a strict, fair grader of an AI assistant's responses. Judge only against "
    "the criterion given. Keep the reasoning to one or two short sentences, then answer."
)
SYSTEM_VERDICT_ONLY = (
    "You are a strict, fair grader of an AI assistant's responses. Judge only against "
    "the criterion given. Answer with one word: pass or fail."
)

REPLY = 'Reply with JSON: {"reasoning": "...", "verdict": "pass" or "fail"}.'
REPLY_VERDICT_ONLY = "Reply with one word: pass or fail."


def reply_for(fmt: VerdictFormat) -> str:
    """The answer-format instruction of ``fmt`` (part of the shared prompt prefix)."""
    return REPLY if fmt == "reasoning_first" else REPLY_VERDICT_ONLY


def shared_prefix(criterion: Criterion) -> str:
    """The part of the user message that is the same for every item of ``criterion``."""
    return (
        f"Criterion: {criterion.name}\nRubric: {criterion.rubric}\n"
        f"{reply_for(criterion.verdict_format)}\n\n"
    )


def p_fail(logprobs: dict[str, float]) -> float | None:
    """P(fail) renormalised over pass and fail; ``None`` if neither is in the top logprobs."""
    if not logprobs:
        return None
    p = {c: math.exp(logprobs[c]) if c in logprobs else 0.0 for c in ("pass", "fail")}
    total = p["pass"] + p["fail"]
    return p["fail"] / total if total > 0 else None


async def ask_pass_fail(
    client: JudgeClient, user: str, fmt: VerdictFormat = "reasoning_first"
) -> JudgeOutcome:
    """Ask for a pass/fail answer in ``fmt``; an exhausted retry budget is an error outcome."""
    try:
        if fmt == "verdict_only":
            choice, lps, used = await client.choose(SYSTEM_VERDICT_ONLY, user, ["pass", "fail"])
            return JudgeOutcome(verdict=choice, prompt_tokens=used.prompt_tokens,
                                completion_tokens=used.completion_tokens,
                                p_fail=p_fail(lps))  # fmt: skip
        ans, used = await client.ask(SYSTEM, user, PassFailAnswer)
    except JudgeCallError as exc:
        return JudgeOutcome(verdict="error", error=str(exc))
    return JudgeOutcome(
        ans.verdict, ans.reasoning, None, None, used.prompt_tokens, used.completion_tokens
    )
