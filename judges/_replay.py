"""``gavel traffic replay``: send the shipped prompt set through the gateway, over chosen days.

Each prompt goes to the app model; prompts marked ``pair`` go to the judge model too,
with the same ``pair`` metadata, for pairwise criteria. Replayed requests are dated
with ``X-Gavel-Replay-Date`` (admin keys only) so a fresh install has days of traffic.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import date, timedelta
from importlib import resources
from typing import Annotated

import httpx
from pydantic import Field

from serving import GavelModel, StackConfig


class ReplayPrompt(GavelModel):
    """One row of ``judges/data/replay.jsonl``."""

    id: str
    category: str
    messages: Annotated[list[dict[str, str]], Field(min_length=1)]
    max_tokens: Annotated[int, Field(ge=1)] = 64
    expected: str | None = None
    pair: bool = False


def load_prompts() -> list[ReplayPrompt]:
    """The shipped prompt set."""
    text = resources.files("judges").joinpath("data/replay.jsonl").read_text()
    return [ReplayPrompt.model_validate_json(line) for line in text.splitlines() if line.strip()]


async def replay(
    stack: StackConfig,
    *,
    api_key: str,
    days: list[date],
    per_day: int,
    concurrency: int = 8,
    log: Callable[[str], None] = print,
) -> dict[str, int]:
    """Send ``per_day`` prompts for each day; returns counts of answers by status."""
    prompts = load_prompts()
    app_id = stack.model("app").model_id
    judge_id = next((m.model_id for m in stack.models if m.role == "judge"), None)
    sem = asyncio.Semaphore(concurrency)
    counts: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=stack.http.base_url, timeout=300) as client:

        async def send(p: ReplayPrompt, model: str, day: date) -> None:
            meta = {"category": p.category, "prompt_id": p.id, "replay": "1"}
            if p.expected is not None:
                meta["expected"] = p.expected
            if p.pair:
                meta["pair"] = f"{day.isoformat()}:{p.id}"
            headers = {
                "Authorization": f"Bearer {api_key}",
                "X-Gavel-Metadata": json.dumps(meta),
                "X-Gavel-Replay-Date": day.isoformat(),
            }
            body = {"model": model, "messages": p.messages, "max_tokens": p.max_tokens}
            async with sem:
                try:
                    r = await client.post("/chat/completions", json=body, headers=headers)
                    status = str(r.status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
            counts[status] = counts.get(status, 0) + 1

        for i, day in enumerate(days):
            start = (i * per_day) % len(prompts)
            chosen = [prompts[(start + k) % len(prompts)] for k in range(per_day)]
            jobs = [send(p, app_id, day) for p in chosen]
            if judge_id is not None:
                jobs += [send(p, judge_id, day) for p in chosen if p.pair]
            await asyncio.gather(*jobs)
            log(f"{day}: sent {len(jobs)} requests ({counts})")
    return counts


def day_range(end: date, n: int) -> list[date]:
    """The ``n`` days ending with ``end``, oldest first."""
    return [end - timedelta(days=n - 1 - i) for i in range(n)]
