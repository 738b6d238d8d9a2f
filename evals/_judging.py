"""What the eval commands share when they ask the judge: the exchange of a dataset item,
and judging only what the verdict store does not hold yet."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from evals._suite import Item
from judges import (
    Criterion,
    Exchange,
    JudgeItem,
    JudgingConfig,
    Verdict,
    VerdictStore,
    judge_items,
)
from serving import StackConfig
from serving.store import Store


def exchange_of(item: Item, uid: str, model: str, response: str | None) -> Exchange:
    """A dataset item and an answer as the exchange a judge scores (``expected`` in metadata)."""
    meta = dict(item.metadata) | ({"expected": item.expected} if item.expected else {})
    return Exchange(
        id=uid,
        model=model,
        messages=item.messages,
        prompt=item.prompt,
        response=response,
        metadata=meta,
    )


def judge_once(
    asks: Sequence[JudgeItem],
    criteria: Sequence[Criterion],
    store: Store,
    stack: StackConfig,
    judging: JudgingConfig,
    api_key: str,
    *,
    run_id: str,
    use_ray: bool = False,
    log: Callable[[str], None] = print,
) -> dict[tuple[str, str], Verdict]:
    """(item id, criterion) -> verdict at the criterion's current version; only the items
    without one are judged (so re-runs and resumed runs ask nothing twice)."""
    crits = {c.name: c for c in criteria}
    vstore = VerdictStore(store)

    def stored() -> dict[tuple[str, str], Verdict]:
        if not asks:
            return {}
        return {
            (v.item_id, v.criterion): v
            for v in vstore.for_items({a.item_id for a in asks})
            if v.criterion in crits and crits[v.criterion].version == v.criterion_version
        }

    have = stored()
    todo = [a for a in asks if (a.item_id, a.criterion) not in have]
    log(f"  {len(asks)} judge items, {len(asks) - len(todo)} already judged")
    if todo:
        judge_items(
            todo, list(crits.values()), stack, judging, vstore,
            run_id=run_id, day=None, api_key=api_key, use_ray=use_ray, log=log,
        )  # fmt: skip
        have = stored()
    return have
