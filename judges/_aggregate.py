"""Pure aggregation of verdicts: pass rates with Wilson intervals, drops, pairwise stats.

Each criterion kind names its aggregator; :func:`aggregate` groups the verdicts by
kind and runs each kind's own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from judges._registry import KindRegistry
from judges._rows import Aggregate, PairRow, RateRow
from judges._stats import drop_p_value, position_consistency, wilson
from judges._wire import Verdict


def pass_fail_rates(
    today: Sequence[Verdict], trailing: Sequence[Verdict], drop_p: float = 0.05
) -> Aggregate:
    """Pass rates per (criterion, version, model); errors are counted apart, never rated."""

    def tally(vs: Sequence[Verdict]) -> dict[tuple[str, str, str], list[int]]:
        acc: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
        for v in vs:
            slot = {"pass": 0, "fail": 1, "error": 2}.get(v.verdict)
            if slot is not None:
                acc[(v.criterion, v.criterion_version, v.model)][slot] += 1
        return acc

    now, before = tally(today), tally(trailing)
    rows = []
    for (crit, ver, model), (p, f, e) in sorted(now.items()):
        n = p + f
        lo, hi = wilson(p, n)
        bp, bf, _ = before.get((crit, ver, model), [0, 0, 0])
        pval = drop_p_value(p, n, bp, bp + bf)
        rows.append(
            RateRow(
                criterion=crit,
                criterion_version=ver,
                model=model,
                passes=p,
                fails=f,
                errors=e,
                pass_rate=p / n if n else None,
                ci_low=lo,
                ci_high=hi,
                trailing_passes=bp,
                trailing_n=bp + bf,
                trailing_rate=bp / (bp + bf) if bp + bf else None,
                drop_p=pval,
                dropped=pval is not None and pval < drop_p,
            )
        )
    return Aggregate(rates=rows)


def pairwise_rows(
    today: Sequence[Verdict], trailing: Sequence[Verdict] = (), drop_p: float = 0.05
) -> Aggregate:
    """Wins, ties and position consistency per pairwise criterion."""
    acc: dict[tuple[str, str, str], list[Verdict]] = defaultdict(list)
    for v in today:
        acc[(v.criterion, v.criterion_version, v.model)].append(v)
    rows = []
    for (crit, ver, models), vs in sorted(acc.items()):
        ok = [v for v in vs if v.verdict != "error"]
        orders = [(v.order_winners[0], v.order_winners[1]) for v in ok if v.order_winners]
        rows.append(
            PairRow(
                criterion=crit,
                criterion_version=ver,
                models=models,
                wins_a=sum(v.verdict == "A" for v in ok),
                wins_b=sum(v.verdict == "B" for v in ok),
                ties=sum(v.verdict == "tie" for v in ok),
                errors=len(vs) - len(ok),
                position_consistency=position_consistency(orders),
            )
        )
    return Aggregate(pairs=rows)


def aggregate(
    kinds: KindRegistry,
    today: Sequence[Verdict],
    trailing: Sequence[Verdict],
    *,
    drop_p: float = 0.05,
) -> Aggregate:
    """Each kind's verdicts through that kind's aggregator; unknown kinds are left out."""
    out = Aggregate()
    for name in kinds.names():
        kind = kinds.get(name)
        mine = [v for v in today if v.kind == name]
        if mine:
            before = [v for v in trailing if v.kind == name]
            out = out + kind.aggregate(mine, before, drop_p)
    return Aggregate(
        rates=sorted(out.rates, key=lambda r: (r.criterion, r.criterion_version, r.model)),
        pairs=sorted(out.pairs, key=lambda r: (r.criterion, r.criterion_version, r.models)),
    )


def rate_rows(
    today: Sequence[Verdict], trailing: Sequence[Verdict], *, drop_p: float = 0.05
) -> list[RateRow]:
    """Pass-rate rows of pass/fail verdicts (all taken as pass/fail)."""
    return pass_fail_rates(today, trailing, drop_p).rates


def pair_rows(today: Sequence[Verdict]) -> list[PairRow]:
    """Pairwise rows of these verdicts (all taken as pairwise)."""
    return pairwise_rows(today).pairs
