"""What the pass/fail kinds share: the grader's instructions and one pass/fail call."""

from __future__ import annotations

from judges._client import JudgeCallError, JudgeClient
from judges._registry import JudgeOutcome
from judges._wire import PassFailAnswer

SYSTEM = (
    "You are a strict, fair grader of an AI assistant's responses. Judge only against "
    "the criterion given. Keep the reasoning to one or two short sentences, then answer."
)

REPLY = 'Reply with JSON: {"reasoning": "...", "verdict": "pass" or "fail"}.'


async def ask_pass_fail(client: JudgeClient, user: str) -> JudgeOutcome:
    """Ask for a pass/fail answer; an exhausted retry budget is an error outcome."""
    try:
        ans, used = await client.ask(SYSTEM, user, PassFailAnswer)
    except JudgeCallError as exc:
        return JudgeOutcome(verdict="error", error=str(exc))
    return JudgeOutcome(
        ans.verdict, ans.reasoning, None, None, used.prompt_tokens, used.completion_tokens
    )
