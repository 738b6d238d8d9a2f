"""USD budgets of keys at the gateway: what a request may cost at most (its reservation),
and the 429s (refusals) of a key over its rate limit or its budget."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from serving._model_config import PriceConfig
from serving._wire import ApiKey
from serving.gateway._limits import Admission, BudgetAsk
from serving.gateway._refusal import Refusal


def budget_ask(
    key: ApiKey, price: PriceConfig | None, prompt_estimate: int, reserve_tokens: int
) -> BudgetAsk | None:
    """The budget check of one request: its worst case (the prompt estimate and the most
    it may generate, at the model's price), or ``None`` for a key without a budget."""
    if not key.budgeted:
        return None
    worst = price.cost(prompt_estimate, max(0, reserve_tokens - prompt_estimate)) if price else 0.0
    return BudgetAsk(day_usd=key.budget_usd_day, month_usd=key.budget_usd_month, reserve_usd=worst)


def over_budget(key: ApiKey, answer: Admission) -> Refusal:
    """The 429 of a key over its budget, naming it and when it resets (``Retry-After``)."""
    period = answer.over_budget or "day"
    budget = key.budget_usd_day if period == "day" else key.budget_usd_month
    resets = answer.resets_at or datetime.now(UTC)
    secs = max(1, math.ceil((resets - datetime.now(UTC)).total_seconds()))
    share = answer.used.get(period, 1.0)
    return Refusal(
        429,
        f"Budget of key {key.name!r} reached: USD {budget:g} per {period}, "
        f"{share:.0%} spent or reserved; it resets at {resets:%Y-%m-%d %H:%M} UTC.",
        type_="insufficient_quota",
        code="budget_exceeded",
        reason="budget",
        headers={"Retry-After": str(secs)},
    )


def rate_limited(secs: int, key: ApiKey, *, leased: bool = False) -> Refusal:
    """The 429 of a key over its rpm or tpm, or (``leased``) whose budget's rest is
    leased to other replicas until the first lease returns; with ``Retry-After``."""
    text = f"Rate limit of key {key.name!r} reached (rpm={key.rpm}, tpm={key.tpm})"
    if leased:
        text = f"Key {key.name!r}: what is left of its budget is held by requests in flight"
    return Refusal(
        429,
        f"{text}; retry in {secs} s.",
        type_="rate_limit_error",
        code="rate_limit_exceeded",
        reason="rate_limit",
        headers={"Retry-After": str(secs)},
    )
