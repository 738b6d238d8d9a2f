"""Judging items: chunks of items fanned out to Ray tasks (or run in-process), each
chunk's verdicts stored as soon as it ends. Shared by the daily job and offline evals."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from judges._client import JUDGED_ITEM, JudgeClient, JudgeClientConfig
from judges._config import JudgingConfig
from judges._criteria import Criterion
from judges._registry import KindRegistry
from judges._store import VerdictStore
from judges._wire import JudgeItem, Verdict
from judges.kinds import default_kinds
from serving import PriceConfig, StackConfig


def judge_chunk(
    items: list[dict[str, Any]],
    criteria: list[dict[str, Any]],
    client_cfg: dict[str, Any],
    *,
    concurrency: int,
    run_id: str,
    day: str | None,
    price: dict[str, Any],
    kinds: KindRegistry,
) -> list[dict[str, Any]]:
    """Judge a chunk of items (runs as a Ray task, or in-process); returns verdicts as dicts."""
    crits = {c["name"]: Criterion.model_validate(c) for c in criteria}
    cfg = JudgeClientConfig.model_validate(client_cfg)
    judge_price = PriceConfig.model_validate(price)

    async def run() -> list[Verdict]:
        client = JudgeClient(cfg)
        sem = asyncio.Semaphore(concurrency)
        fns = {name: kinds.get(c.kind).factory(c, client) for name, c in crits.items()}

        async def one(raw: dict[str, Any]) -> Verdict:
            item = JudgeItem.model_validate(raw)
            crit = crits[item.criterion]
            kind = kinds.get(crit.kind)
            JUDGED_ITEM.set(item.item_id)  # this task's calls name their item
            async with sem:
                t0 = time.perf_counter()
                out = await fns[item.criterion](item)
                ms = (time.perf_counter() - t0) * 1000
            return Verdict(
                item_id=item.item_id,
                criterion=crit.name,
                criterion_version=crit.version,
                kind=crit.kind,
                judge=kind.judge_name,
                judge_version=kind.judge_version,
                judge_model=cfg.model,
                judge_args={
                    "temperature": cfg.temperature,
                    "max_tokens": cfg.max_tokens,
                    "max_retries": cfg.max_retries,
                    "timeout_s": cfg.timeout_s,
                    "format": crit.verdict_format,
                },
                model="|".join(e.model for e in item.exchanges),
                run_id=run_id,
                day=day,
                verdict=out.verdict,
                reasoning=out.reasoning,
                error=out.error,
                order_winners=out.order_winners,
                p_fail=out.p_fail,
                judge_prompt_tokens=out.prompt_tokens,
                judge_completion_tokens=out.completion_tokens,
                judge_cost_usd=judge_price.cost(out.prompt_tokens, out.completion_tokens),
                latency_ms=ms,
                created_at=datetime.now(UTC),
            )

        try:
            return await asyncio.gather(*(one(i) for i in items))
        finally:
            await client.close()

    return [v.model_dump(mode="json") for v in asyncio.run(run())]


def judge_items(
    items: Sequence[JudgeItem],
    criteria: Sequence[Criterion],
    stack: StackConfig,
    judging: JudgingConfig,
    vstore: VerdictStore,
    *,
    run_id: str,
    day: str | None,
    api_key: str,
    use_ray: bool = True,
    kinds: KindRegistry | None = None,
    log: Callable[[str], None] = print,
) -> int:
    """Judge ``items`` with the judge role's model and store each chunk's verdicts as it ends.

    The neutral entry point that the daily job and offline evals share. Returns the
    number of verdicts written.
    """
    judge_model = stack.model("judge")
    client_cfg = JudgeClientConfig(
        base_url=stack.http.base_url,
        api_key=api_key,
        model=judge_model.model_id,
        timeout_s=judging.timeout_s,
        max_retries=judging.max_retries,
        max_tokens=judging.max_tokens,
    )
    size = judging.chunk_size
    chunks = [list(items[i : i + size]) for i in range(0, len(items), size)]
    kwargs: dict[str, Any] = {
        "criteria": [c.model_dump(mode="json") for c in criteria],
        "client_cfg": client_cfg.model_dump(),
        "concurrency": judging.concurrency,
        "run_id": run_id,
        "day": day,
        "price": judge_model.price.model_dump(mode="json"),
        "kinds": kinds or default_kinds(),
    }
    written = 0
    payloads = [[i.model_dump(mode="json") for i in c] for c in chunks]
    for verdicts in _fan_out(payloads, kwargs, use_ray=use_ray, in_flight=judging.parallel_tasks):
        written += vstore.insert(Verdict.model_validate(v) for v in verdicts)
        log(f"  {written}/{len(items)} judged")
    return written


def _fan_out(
    payloads: list[list[dict[str, Any]]],
    kwargs: dict[str, Any],
    *,
    use_ray: bool,
    in_flight: int,
) -> Iterator[list[dict[str, Any]]]:
    """Yield each chunk's verdicts as it completes.

    At most ``in_flight`` Ray tasks run at once; without Ray, chunks run in-process.
    """
    if not payloads:
        return
    if not use_ray:
        for p in payloads:
            yield judge_chunk(p, **kwargs)
        return
    import ray

    task: Any = ray.remote(num_cpus=0, max_retries=1)(judge_chunk)  # type: ignore[arg-type]
    queue = list(payloads)
    pending: list[Any] = []
    while queue or pending:
        while queue and len(pending) < in_flight:
            pending.append(task.remote(queue.pop(0), **kwargs))
        ready, pending = ray.wait(pending, num_returns=1)
        yield ray.get(ready[0])
