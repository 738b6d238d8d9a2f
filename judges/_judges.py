"""Gavel's built-in judges: binary, reference and pairwise (both orders)."""

from __future__ import annotations

from judges._client import JudgeCallError, JudgeClient
from judges._criteria import Criterion
from judges._registry import JUDGES, JudgeFn, JudgeOutcome
from judges._wire import BinaryAnswer, JudgeItem, PairwiseAnswer
from serving._wire import TrafficRecord

SYSTEM = (
    "You are a strict, fair grader of an AI assistant's responses. Judge only against "
    "the criterion given. Keep the reasoning to one or two short sentences, then answer."
)


def render_request(rec: TrafficRecord) -> str:
    """The conversation (or prompt) of a captured request, as plain text."""
    body = rec.request
    if "messages" in body:
        lines = []
        for m in body["messages"]:
            content = m.get("content")
            if isinstance(content, list):
                content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            lines.append(f"{m.get('role', 'user')}: {content}")
        return "\n".join(lines)
    return str(body.get("prompt", ""))


async def _pass_fail(client: JudgeClient, user: str) -> JudgeOutcome:
    """Ask for a pass/fail answer; an exhausted retry budget is an error outcome."""
    try:
        ans, used = await client.ask(SYSTEM, user, BinaryAnswer)
    except JudgeCallError as exc:
        return JudgeOutcome(verdict="error", error=str(exc))
    return JudgeOutcome(
        ans.verdict, ans.reasoning, None, None, used.prompt_tokens, used.completion_tokens
    )


_PASS_FAIL_REPLY = 'Reply with JSON: {"reasoning": "...", "verdict": "pass" or "fail"}.'


@JUDGES.register("binary", name="binary_rubric", version="1")
def binary_judge(criterion: Criterion, client: JudgeClient) -> JudgeFn:
    """Pass/fail of one response against the rubric."""

    async def score(item: JudgeItem) -> JudgeOutcome:
        rec = item.records[0]
        return await _pass_fail(
            client,
            f"Criterion: {criterion.name}\nRubric: {criterion.rubric}\n\n"
            f"Conversation:\n{render_request(rec)}\n\nResponse:\n{rec.response_text}\n\n"
            + _PASS_FAIL_REPLY,
        )

    return score


@JUDGES.register("reference", name="reference_match", version="1")
def reference_judge(criterion: Criterion, client: JudgeClient) -> JudgeFn:
    """Pass/fail of one response against the expected answer in its metadata."""

    async def score(item: JudgeItem) -> JudgeOutcome:
        rec = item.records[0]
        return await _pass_fail(
            client,
            f"Criterion: {criterion.name}\nRubric: {criterion.rubric}\n\n"
            f"Conversation:\n{render_request(rec)}\n\n"
            f"Expected answer: {rec.metadata.get('expected', '')}\n\n"
            f"Response:\n{rec.response_text}\n\n" + _PASS_FAIL_REPLY,
        )

    return score


def _unswap(winner: str) -> str:
    return {"A": "B", "B": "A"}.get(winner, winner)


@JUDGES.register("pairwise", name="pairwise_both_orders", version="1")
def pairwise_judge(criterion: Criterion, client: JudgeClient) -> JudgeFn:
    """Which of two responses is better, asked in both orders; disagreement is a tie."""

    async def ask(first: TrafficRecord, second: TrafficRecord) -> tuple[PairwiseAnswer, int, int]:
        user = (
            f"Criterion: {criterion.name}\nRubric: {criterion.rubric}\n\n"
            f"Conversation:\n{render_request(first)}\n\n"
            f"Response A:\n{first.response_text}\n\nResponse B:\n{second.response_text}\n\n"
            'Reply with JSON: {"reasoning": "...", "winner": "A", "B" or "tie"}.'
        )
        ans, used = await client.ask(SYSTEM, user, PairwiseAnswer)
        return ans, used.prompt_tokens, used.completion_tokens

    async def score(item: JudgeItem) -> JudgeOutcome:
        a, b = item.records
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
