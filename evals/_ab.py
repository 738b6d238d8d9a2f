"""Model swap: run one suite on two arms (models or settings), then judge every item
pairwise, in both orders, with the suite's pairwise criterion."""

from __future__ import annotations

from collections.abc import Callable

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


def pairwise_criterion(loaded: LoadedSuite, criteria_dir: str) -> Criterion:
    """The suite's pairwise criterion, which must be of a two-answer kind."""
    from pathlib import Path

    kinds = default_kinds()
    found = {c.name: c for c in load_criteria(Path(criteria_dir), kinds)}
    crit = found.get(loaded.suite.pairwise)
    if crit is None or kinds.get(crit.kind).arity != 2:
        raise CliError(
            f"{loaded.path}: pairwise = {loaded.suite.pairwise!r}: no pairwise criterion of "
            f"that name in {criteria_dir}",
            EXIT_USAGE,
        )
    return crit


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
    log: Callable[[str], None] = print,
) -> PairwiseReport:
    """Judge A's and B's first-epoch answers to every item pairwise (both orders)."""
    by_id = {it.id: it for it in loaded.items}
    a_items, b_items = {i.id: i for i in a.items}, {i.id: i for i in b.items}
    outcomes: list[PairOutcome] = []
    asks: list[JudgeItem] = []
    pending: dict[str, tuple[str, int, int]] = {}
    for item_id, item in by_id.items():
        ra, rb = a_items[item_id].epochs[0].response, b_items[item_id].epochs[0].response
        if ra is None or rb is None:
            continue
        wa, wb = len(ra.split()), len(rb.split())
        if ra == rb:
            outcomes.append(
                PairOutcome(
                    item_id=item_id,
                    winner="tie",
                    orders=None,
                    words_a=wa,
                    words_b=wb,
                    identical=True,
                )
            )
            continue
        ex_a = Exchange(
            id=f"ab-{a.run_id}-{item_id}",
            model=a.model,
            messages=item.messages,
            prompt=item.prompt,
            response=ra,
        )
        ex_b = Exchange(
            id=f"ab-{b.run_id}-{item_id}",
            model=b.model,
            messages=item.messages,
            prompt=item.prompt,
            response=rb,
        )
        ask = JudgeItem(criterion=crit.name, exchanges=[ex_a, ex_b])
        asks.append(ask)
        pending[ask.item_id] = (item_id, wa, wb)
    if asks:
        vstore = VerdictStore(store)
        judge_items(
            asks,
            [crit],
            stack,
            judging,
            vstore,
            run_id=f"ab-{a.run_id}-{b.run_id}",
            day=None,
            api_key=api_key,
            use_ray=False,
            log=log,
        )
        for v in vstore.for_items(pending):
            if v.criterion != crit.name or v.criterion_version != crit.version:
                continue
            item_id, wa, wb = pending[v.item_id]
            if v.verdict not in ("A", "B", "tie"):
                continue
            outcome = PairOutcome(
                item_id=item_id,
                winner=v.verdict,  # type: ignore[arg-type]
                orders=v.order_winners,
                words_a=wa,
                words_b=wb,
            )
            outcomes.append(outcome)
    return pairwise_report(
        crit.name, outcomes, max_flip_rate=max_flip_rate, judge_trusted=judge_trusted
    )
