"""Pairwise judging of two arms (``gavel eval ab``: one suite on two models or settings;
``gavel swap report``: a live swap's shadow pairs): every item judged in both orders
with a pairwise criterion. ("Swap" means the live model swap only: :mod:`evals.swap`.)"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from evals._compare import PairOutcome, PairwiseReport, pairwise_report
from evals._result import RunResult
from evals._suite import LoadedSuite
from judges import (
    Criterion,
    Exchange,
    JudgeItem,
    JudgingConfig,
    VerdictStore,
    default_kinds,
    judge_items,
    load_criteria,
)
from serving import EXIT_USAGE, CliError, StackConfig
from serving.store import Store


def find_pairwise(name: str | None, criteria_dir: str, *, where: str) -> Criterion:
    """The criterion ``name`` of ``criteria_dir``, which must be of a two-answer kind;
    else a usage error that starts with ``where`` (the file and field that name it)."""
    from pathlib import Path

    kinds = default_kinds()
    found = {c.name: c for c in kinds.pairwise(load_criteria(Path(criteria_dir), kinds))}
    crit = found.get(name or "")
    if crit is None:
        raise CliError(
            f"{where} = {name!r}: no pairwise criterion of that name in {criteria_dir}",
            EXIT_USAGE,
        )
    return crit


def pairwise_criterion(loaded: LoadedSuite, criteria_dir: str) -> Criterion:
    """The suite's pairwise criterion, which must be of a two-answer kind."""
    return find_pairwise(loaded.suite.pairwise, criteria_dir, where=f"{loaded.path}: pairwise")


def judge_pairs(
    loaded: LoadedSuite,
    a: RunResult,
    b: RunResult,
    crit: Criterion,
    store: Store,
    stack: StackConfig,
    judging: JudgingConfig,
    api_key: str,
    *,
    max_flip_rate: float = 0.15,
    judge_trusted: bool | None = None,
    trust_reason: str | None = None,
    log: Callable[[str], None] = print,
) -> PairwiseReport:
    """Judge A's and B's first-epoch answers to every item pairwise (both orders)."""
    a_items, b_items = {i.id: i for i in a.items}, {i.id: i for i in b.items}
    pairs: list[tuple[str, Exchange, Exchange]] = []
    for item_id, item in {it.id: it for it in loaded.items}.items():
        ra, rb = a_items[item_id].epochs[0].response, b_items[item_id].epochs[0].response
        if ra is None or rb is None:
            continue
        ex_a, ex_b = (
            Exchange(
                id=f"ab-{run.run_id}-{item_id}",
                model=run.model,
                messages=item.messages,
                prompt=item.prompt,
                response=text,
            )
            for run, text in ((a, ra), (b, rb))
        )
        pairs.append((item_id, ex_a, ex_b))
    ctx = PairJudging(crit, store, stack, judging, api_key, log)
    outcomes = judge_exchange_pairs(pairs, ctx, run_id=f"ab-{a.run_id}-{b.run_id}")
    return pairwise_report(
        crit.name,
        outcomes,
        max_flip_rate=max_flip_rate,
        judge_trusted=judge_trusted,
        trust_reason=trust_reason,
    )


@dataclass(frozen=True)
class PairJudging:
    """What judging pairs needs: the criterion, the store, the configs and the key."""

    crit: Criterion
    store: Store
    stack: StackConfig
    judging: JudgingConfig
    api_key: str
    log: Callable[[str], None] = print


def judge_exchange_pairs(
    pairs: Sequence[tuple[str, Exchange, Exchange]], ctx: PairJudging, *, run_id: str
) -> list[PairOutcome]:
    """Judge each (id, A, B) pairwise in both orders (identical answers are a tie without
    asking); the outcomes of the pairs the judge decided."""
    outcomes: list[PairOutcome] = []
    asks: list[JudgeItem] = []
    pending: dict[str, tuple[str, int, int]] = {}
    for pair_id, ex_a, ex_b in pairs:
        ra, rb = ex_a.response or "", ex_b.response or ""
        wa, wb = len(ra.split()), len(rb.split())
        if ra == rb:
            outcomes.append(PairOutcome(item_id=pair_id, winner="tie", orders=None, words_a=wa,
                                        words_b=wb, identical=True))  # fmt: skip
            continue
        ask = JudgeItem(criterion=ctx.crit.name, exchanges=[ex_a, ex_b])
        asks.append(ask)
        pending[ask.item_id] = (pair_id, wa, wb)
    if not asks:
        return outcomes
    vstore = VerdictStore(ctx.store)
    crit = ctx.crit  # a pair judged before (same criterion version) is not asked again
    done = {v.item_id for v in vstore.for_items(pending)
            if v.criterion == crit.name and v.criterion_version == crit.version}  # fmt: skip
    asks = [a for a in asks if a.item_id not in done]
    if asks:
        judge_items(asks, [ctx.crit], ctx.stack, ctx.judging, vstore, run_id=run_id, day=None,
                    api_key=ctx.api_key, use_ray=False, log=ctx.log)  # fmt: skip
    for v in vstore.for_items(pending):
        if v.criterion != ctx.crit.name or v.criterion_version != ctx.crit.version:
            continue
        if v.verdict not in ("A", "B", "tie"):
            continue
        pair_id, wa, wb = pending[v.item_id]
        outcomes.append(PairOutcome(item_id=pair_id, winner=v.verdict, orders=v.order_winners,  # type: ignore[arg-type]
                                    words_a=wa, words_b=wb))  # fmt: skip
    return outcomes
