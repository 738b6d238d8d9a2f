"""USD budgets of keys at the gateway: what a request may cost at most (its reservation),
and the 429s of a key over its rate limit or its budget."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from fastapi.responses import JSONResponse

from serving._errors import openai_error
from serving._model_config import PriceConfig
from serving._wire import ApiKey
from serving.gateway._limits import Admission, BudgetAsk


def budget_ask(
    key: ApiKey, price: PriceConfig | None, prompt_estimate: int, reserve_tokens: int
) -> BudgetAsk | None:
    """The budget check of one request: its worst case (the prompt estimate and the most
    it may generate, at the model's price), or ``None`` for a key without a budget."""
    if not key.budgeted:
        return None
    worst = price.cost(prompt_estimate, max(0, reserve_tokens - prompt_estimate)) if price else 0.0
    return BudgetAsk(day_usd=key.budget_usd_day, month_usd=key.budget_usd_month, reserve_usd=worst)


class OverBudget(Exception):
    """A 429 naming the budget and when it resets (``Retry-After`` until then)."""

    def __init__(self, key: ApiKey, answer: Admission) -> None:
        super().__init__(key.name)
        self.key = key
        self.answer = answer

    def response(self) -> JSONResponse:
        """The OpenAI-style error."""
        period = self.answer.over_budget or "day"
        budget = self.key.budget_usd_day if period == "day" else self.key.budget_usd_month
        resets = self.answer.resets_at or datetime.now(UTC)
        secs = max(1, math.ceil((resets - datetime.now(UTC)).total_seconds()))
        share = self.answer.used.get(period, 1.0)
        return openai_error(
            429,
            f"Budget of key {self.key.name!r} reached: USD {budget:g} per {period}, "
            f"{share:.0%} spent or reserved; it resets at {resets:%Y-%m-%d %H:%M} UTC.",
            type_="insufficient_quota",
            code="budget_exceeded",
            headers={"Retry-After": str(secs)},
        )


class RateLimited(Exception):
    """A 429 with ``Retry-After``."""

    def __init__(self, secs: int, key: ApiKey) -> None:
        super().__init__(secs)
        self.secs = secs
        self.key = key

    def response(self) -> JSONResponse:
        k = self.key
        return openai_error(
            429,
            f"Rate limit of key {k.name!r} reached (rpm={k.rpm}, tpm={k.tpm}); "
            f"retry in {self.secs} s.",
            type_="rate_limit_error",
            code="rate_limit_exceeded",
            headers={"Retry-After": str(self.secs)},
        )
