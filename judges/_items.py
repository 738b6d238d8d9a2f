"""The day's sample as judge items: captured records adapted into exchanges (at the
edge: judges see only exchanges), matched to the criteria that apply, pairs formed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date

from judges._config import JudgingConfig
from judges._criteria import Criterion
from judges._registry import KindRegistry
from judges._sampling import _rank, sample
from judges._wire import Exchange, JudgeItem
from judges.kinds import default_kinds
from serving import StackConfig, TrafficRecord


def to_exchange(rec: TrafficRecord) -> Exchange:
    """A captured record as the exchange a judge scores."""
    body = rec.request
    messages = body.get("messages")
    return Exchange(
        id=rec.request_id,
        model=rec.model,
        messages=messages if isinstance(messages, list) else None,
        prompt=None if isinstance(messages, list) else str(body.get("prompt", "")),
        response=rec.response_text,
        metadata=rec.metadata,
    )


def applies(rec: TrafficRecord, crit: Criterion, stack: StackConfig) -> bool:
    """Whether ``crit`` applies to the record (its roles' models, keys and metadata)."""
    roles = [r for r in crit.applies_to.roles if any(m.role == r for m in stack.models)]
    return _matches(rec, crit, {stack.model(r).model_id for r in roles})


def _matches(rec: TrafficRecord, crit: Criterion, model_ids: set[str]) -> bool:
    if rec.model not in model_ids:
        return False
    keys = crit.applies_to.keys
    if keys is not None and rec.key_name not in keys:
        return False
    for k, want in crit.applies_to.metadata.items():
        have = rec.metadata.get(k)
        if have is None or (want != "*" and have != want):
            return False
    return True


def build_items(
    records: Sequence[TrafficRecord],
    criteria: Sequence[Criterion],
    stack: StackConfig,
    judging: JudgingConfig,
    *,
    day: date,
    kinds: KindRegistry | None = None,
) -> list[JudgeItem]:
    """The day's sample, as judge items: per criterion, the sampled records it applies to.

    Criteria of one-exchange kinds judge the sampled records. Criteria of two-exchange
    kinds pair the responses of their two roles' models that share the criterion's
    ``pair_key`` metadata; pairs are sampled at the same rate, by pair id.
    """
    registry = kinds or default_kinds()
    records = [r for r in records if r.source == "production"]
    seed = day.isoformat()
    sampled = [r for recs in sample(records, judging.sampling, seed=seed).values() for r in recs]
    items: list[JudgeItem] = []
    for crit in criteria:
        roles = [r for r in crit.applies_to.roles if any(m.role == r for m in stack.models)]
        ids = {stack.model(r).model_id for r in roles}
        if registry.get(crit.kind).arity == 1:
            items += [
                JudgeItem(criterion=crit.name, exchanges=[to_exchange(r)])
                for r in sampled
                if _matches(r, crit, ids)
            ]
            continue
        if len(roles) != 2:
            continue
        a_id, b_id = stack.model(roles[0]).model_id, stack.model(roles[1]).model_id
        groups: dict[str, dict[str, TrafficRecord]] = defaultdict(dict)
        for r in records:
            if r.status == 200 and r.response_text is not None and _matches(r, crit, ids):
                groups[r.metadata[crit.pair_key]].setdefault(r.model, r)
        pairs = [(pid, g[a_id], g[b_id]) for pid, g in groups.items() if a_id in g and b_id in g]
        pairs.sort(key=lambda p: _rank(seed, p[0]))
        keep = max(1, int(len(pairs) * judging.sampling.rate + 0.5)) if pairs else 0
        if judging.sampling.max_per_stratum:
            keep = min(keep, judging.sampling.max_per_stratum)
        items += [
            JudgeItem(criterion=crit.name, exchanges=[to_exchange(a), to_exchange(b)])
            for _, a, b in pairs[:keep]
        ]
    return items
