"""The result document of an eval run (``result.json``, schema ``gavel.eval/1``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from evals._suite import Params
from serving import GavelModel

Outcome = Literal["pass", "fail", "error", "skip"]


class EpochResult(GavelModel):
    """One answer to one item, and every check's outcome on it."""

    epoch: int
    response: str | None
    error: str | None = None
    outcomes: dict[str, Outcome]
    cached: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ItemResult(GavelModel):
    """One dataset item over every epoch."""

    id: str
    tags: list[str]
    epochs: list[EpochResult]

    def passes(self, check: str) -> tuple[int, int]:
        """(epochs passed, epochs scored) of one check."""
        got = [e.outcomes.get(check) for e in self.epochs]
        scored = [o for o in got if o in ("pass", "fail")]
        return sum(o == "pass" for o in scored), len(scored)


class CheckSummary(GavelModel):
    """Pass rate of one check over items and epochs, with a 95% Wilson interval."""

    name: str
    gating: bool
    passes: int
    n: int
    rate: float | None
    ci_low: float
    ci_high: float
    skipped: int = 0
    errors: int = 0
    judge_trusted: bool | None = None
    """For a judge check: whether its judge agrees with people (calibration); ``None``
    for a deterministic check."""
    trust_reason: str | None = None


class RunResult(GavelModel):
    """Everything one run did and found."""

    schema_version: Literal["gavel.eval/1"] = "gavel.eval/1"
    run_id: str
    suite: str
    suite_hash: str
    dataset_hash: str
    git_commit: str | None
    created_at: datetime
    model: str
    base_url: str
    params: Params
    system: str | None
    epochs: int
    items: list[ItemResult]
    checks: list[CheckSummary]
    tags: dict[str, list[CheckSummary]]
    flaky: dict[str, list[str]]
    """Check -> items that passed some epochs but not all."""
    model_calls: int
    cached_answers: int
    seconds: float

    def check(self, name: str) -> CheckSummary:
        """The summary of one check."""
        return next(c for c in self.checks if c.name == name)
