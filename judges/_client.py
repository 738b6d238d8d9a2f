"""The judge model, called through the stack's endpoint with vLLM structured outputs."""

from __future__ import annotations

import asyncio
import json
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import openai
from pydantic import BaseModel, ValidationError

from serving import SOURCE_HEADER, GavelModel, Source

T = TypeVar("T", bound=BaseModel)


class JudgeCallError(Exception):
    """The judge gave no valid answer within the retries; recorded as an error verdict."""


CHOICE_TOP_LOGPROBS = 10


def _first_token_logprobs(response: Any, choices: list[str]) -> dict[str, float]:
    """Log-probabilities of each choice's first token at the answer's first position."""
    lp = response.choices[0].logprobs
    if lp is None or not lp.content:
        return {}
    top = {t.token.strip().lower(): t.logprob for t in lp.content[0].top_logprobs or []}
    out: dict[str, float] = {}
    for c in choices:
        for token, value in top.items():
            if token and c.startswith(token) and c not in out:
                out[c] = value
    return out


class JudgeClientConfig(GavelModel):
    """How the judge model is called (picklable, so Ray tasks can rebuild the client)."""

    base_url: str
    api_key: str
    model: str
    timeout_s: float = 120
    max_retries: int = 2
    max_tokens: int = 160
    temperature: float = 0.0
    source: Source = "judge"
    """Sent as ``X-Gavel-Source``: the gateway captures and prices the call as the judge's,
    and keeps it out of production sampling, reports and production cost."""


@dataclass(frozen=True)
class Usage:
    """Tokens one judge call used."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


JUDGED_ITEM: ContextVar[str | None] = ContextVar("gavel_judged_item", default=None)
"""The item a judge call is about (set per item by the fan-out): its captured request
names it in ``X-Gavel-Metadata`` (``judged_item``), so that erasing a key's text finds
the judge's requests that quote it."""


def _item_headers() -> dict[str, str]:
    item = JUDGED_ITEM.get()
    return {} if item is None else {"X-Gavel-Metadata": json.dumps({"judged_item": item})}


class JudgeClient:
    """Asks the judge model for a JSON answer constrained to a pydantic model's schema."""

    def __init__(self, cfg: JudgeClientConfig) -> None:
        self.cfg = cfg
        self._client = openai.AsyncOpenAI(
            base_url=cfg.base_url,
            api_key=cfg.api_key,
            timeout=cfg.timeout_s,
            max_retries=0,
            default_headers={SOURCE_HEADER: cfg.source},
        )

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.close()

    async def choose(
        self, system: str, user: str, choices: list[str]
    ) -> tuple[str, dict[str, float], Usage]:
        """One of ``choices`` as the whole answer (vLLM structured outputs, ``choice``),
        with the log-probabilities the judge gave each choice's first token (from its top
        logprobs; a choice outside them is absent). Retries like :meth:`ask`."""
        messages: Any = [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ]
        last = "no attempt"
        used = Usage()
        for attempt in range(self.cfg.max_retries + 1):
            try:
                r = await self._client.chat.completions.create(
                    model=self.cfg.model,
                    messages=messages,
                    max_tokens=4,
                    temperature=self.cfg.temperature,
                    logprobs=True,
                    top_logprobs=CHOICE_TOP_LOGPROBS,
                    extra_body={"structured_outputs": {"choice": choices}},
                    extra_headers=_item_headers(),
                )
                if r.usage is not None:
                    used = Usage(
                        used.prompt_tokens + r.usage.prompt_tokens,
                        used.completion_tokens + r.usage.completion_tokens,
                    )
                content = (r.choices[0].message.content or "").strip()
                if content not in choices:
                    last = f"invalid answer: {content[:40]!r}"
                    continue
                return content, _first_token_logprobs(r, choices), used
            except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                last = f"{type(exc).__name__}"
            except openai.APIStatusError as exc:
                last = f"HTTP {exc.status_code}: {str(exc.message)[:200]}"
                if exc.status_code < 500 and exc.status_code != 429:
                    break
            await asyncio.sleep(min(2.0, 0.25 * 2**attempt))
        raise JudgeCallError(f"{last} (after {attempt + 1} attempt(s))") from None

    async def ask(self, system: str, user: str, answer: type[T]) -> tuple[T, Usage]:
        """One structured answer; retries timeouts and invalid answers, then raises."""
        schema = {"name": answer.__name__, "schema": answer.model_json_schema(), "strict": True}
        messages: Any = [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ]
        response_format: Any = {"type": "json_schema", "json_schema": schema}
        last = "no attempt"
        used = Usage()
        for attempt in range(self.cfg.max_retries + 1):
            try:
                r = await self._client.chat.completions.create(
                    model=self.cfg.model,
                    messages=messages,
                    max_tokens=self.cfg.max_tokens,
                    temperature=self.cfg.temperature,
                    response_format=response_format,
                    extra_headers=_item_headers(),
                )
                if r.usage is not None:
                    used = Usage(
                        used.prompt_tokens + r.usage.prompt_tokens,
                        used.completion_tokens + r.usage.completion_tokens,
                    )
                content = r.choices[0].message.content or ""
                return answer.model_validate_json(content), used
            except ValidationError as exc:
                last = f"invalid answer: {exc.errors()[0]['msg']}"
            except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                last = f"{type(exc).__name__}"
            except openai.APIStatusError as exc:
                last = f"HTTP {exc.status_code}: {str(exc.message)[:200]}"
                if exc.status_code < 500 and exc.status_code != 429:
                    break  # a 4xx (bad key, scope) will not get better
            await asyncio.sleep(min(2.0, 0.25 * 2**attempt))
        raise JudgeCallError(f"{last} (after {attempt + 1} attempt(s))") from None
