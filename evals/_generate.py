"""Generation for a suite: ask an OpenAI-compatible endpoint for each item's answer, once
per epoch, caching every answer in the store as it arrives.

Answers are cached by (base URL, model, parameters, messages, epoch), so a re-run
generates only what changed and a killed run resumes where it stopped. Gavel's own calls
carry ``X-Gavel-Source: eval``, so the gateway keeps them out of production judging and
prices them apart.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from evals._suite import Item, Params
from serving import EXIT_USAGE, SOURCE_HEADER, CliError
from serving.store import Store, tables

_cache = tables.eval_cache


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom answers are asked for."""

    base_url: str
    api_key: str
    model: str
    params: Params
    system: str | None = None


@dataclass(frozen=True)
class Answer:
    """One generated (or fixed, or cached) answer."""

    text: str | None
    error: str | None = None
    cached: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0


def _hash(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def messages_of(item: Item, system: str | None) -> list[dict[str, Any]] | None:
    """The chat messages sent for an item (the suite's system prompt first)."""
    if item.messages is None:
        return None
    return ([{"role": "system", "content": system}] if system else []) + list(item.messages)


def cache_key(ep: Endpoint, item: Item, epoch: int) -> str:
    """What an answer is cached by: base URL, model, parameters, messages or prompt, epoch."""
    return _hash(
        ep.base_url,
        ep.model,
        ep.params.model_dump(),
        messages_of(item, ep.system),
        item.prompt,
        epoch,
    )[:64]


def check_endpoint(ep: Endpoint) -> None:
    """Fail early, in one line (exit 2), when the endpoint, the key or the model is wrong."""
    import httpx

    try:
        r = httpx.get(
            f"{ep.base_url.rstrip('/')}/models",
            headers={"Authorization": f"Bearer {ep.api_key}"},
            timeout=10,
        )
    except httpx.HTTPError as exc:
        raise CliError(
            f"cannot reach {ep.base_url} ({type(exc).__name__}); start the stack with "
            "`gavel serve --detach` or pass --base-url",
            EXIT_USAGE,
        ) from None
    if r.status_code in (401, 403):
        raise CliError(
            f"{ep.base_url} refused the key (HTTP {r.status_code}); pass --api-key or set "
            "GAVEL_API_KEY to a key with the 'infer' (and 'judge') scope",
            EXIT_USAGE,
        )
    try:
        served = {m["id"] for m in r.json()["data"]}
    except (ValueError, KeyError, TypeError):
        raise CliError(f"{ep.base_url}/models did not answer like OpenAI", EXIT_USAGE) from None
    if ep.model not in served:
        raise CliError(
            f"{ep.base_url} serves no model {ep.model!r} (it serves: {', '.join(sorted(served))})",
            EXIT_USAGE,
        )


async def _cached_answers(
    store: Store, keys: dict[tuple[str, int], str]
) -> dict[tuple[str, int], Answer]:
    """The cached answers among ``keys`` ((item, epoch) -> cache key)."""
    rows = await asyncio.to_thread(
        store.fetch, select(_cache).where(_cache.c.cache_key.in_(list(keys.values())))
    )
    by_key = {r["cache_key"]: r for r in rows}
    return {
        k: Answer(row["response_text"], None, True, row["prompt_tokens"] or 0,
                  row["completion_tokens"] or 0)
        for k, ck in keys.items()
        if (row := by_key.get(ck)) is not None
    }  # fmt: skip


async def generate(
    ep: Endpoint,
    todo: list[tuple[Item, int]],
    store: Store,
    *,
    concurrency: int,
    use_cache: bool,
) -> tuple[dict[tuple[str, int], Answer], int]:
    """Answers for (item, epoch); cached ones are read, the others asked for and cached."""
    import openai

    keys = {(it.id, e): cache_key(ep, it, e) for it, e in todo}
    out = await _cached_answers(store, keys) if use_cache and keys else {}
    client = openai.AsyncOpenAI(
        base_url=ep.base_url,
        api_key=ep.api_key,
        max_retries=2,
        timeout=300,
        default_headers={SOURCE_HEADER: "eval"},
    )
    sem = asyncio.Semaphore(concurrency)
    calls = 0
    params = ep.params.model_dump(exclude_none=True)

    async def one(item: Item, epoch: int) -> None:
        nonlocal calls
        async with sem:
            calls += 1
            try:
                if item.messages is not None:
                    msgs: Any = messages_of(item, ep.system)
                    r: Any = await client.chat.completions.create(
                        model=ep.model, messages=msgs, **params
                    )
                    text = r.choices[0].message.content or ""
                else:
                    rc = await client.completions.create(
                        model=ep.model, prompt=item.prompt or "", **params
                    )
                    r, text = rc, rc.choices[0].text
            except openai.APIStatusError as exc:
                out[(item.id, epoch)] = Answer(
                    None, f"HTTP {exc.status_code}: {str(exc.message)[:200]}"
                )
                return
            except openai.APIError as exc:
                out[(item.id, epoch)] = Answer(None, type(exc).__name__)
                return
        usage = r.usage
        ans = Answer(
            text,
            None,
            False,
            usage.prompt_tokens if usage else 0,
            usage.completion_tokens if usage else 0,
        )
        out[(item.id, epoch)] = ans
        row = {
            "cache_key": keys[(item.id, epoch)],
            "model": ep.model,
            "response_text": text,
            "finish_reason": r.choices[0].finish_reason,
            "prompt_tokens": ans.prompt_tokens,
            "completion_tokens": ans.completion_tokens,
            "created_at": datetime.now(UTC),
        }
        await asyncio.to_thread(store.upsert, _cache, [row], update=("response_text",))

    try:
        await asyncio.gather(*(one(it, e) for it, e in todo if (it.id, e) not in out))
    finally:
        await client.close()
    return out, calls


def answer_id(model: str, item: Item, epoch: int, answer: str) -> str:
    """The judged item's id: derived from the answer, so an unchanged answer keeps its verdict."""
    return "eval-" + _hash(model, item.id, epoch, answer)[:32]
