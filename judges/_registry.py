"""Criterion kinds as plugins, in an explicit registry (as Inspect registers ``@scorer``s).

A :class:`CriterionKind` holds everything that differs between kinds: the judge
factory (with its registered name and version), its answer schema, how many exchanges
one item holds, its outcomes, what a person can label, how it checks a criterion, and
how its verdicts aggregate. Adding a kind is one module that builds a ``CriterionKind``
plus one :meth:`KindRegistry.register` call; nothing is registered by importing.
The built-in kinds are registered by :func:`judges.kinds.default_kinds`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import BaseModel

if TYPE_CHECKING:
    from judges._client import JudgeClient
    from judges._criteria import Criterion
    from judges._rows import Aggregate
    from judges._wire import JudgeItem, Verdict

JudgeFn = Callable[["JudgeItem"], Awaitable["JudgeOutcome"]]
"""A judge: a typed async callable from an item to an outcome."""
JudgeFactory = Callable[["Criterion", "JudgeClient"], JudgeFn]
"""Builds the judge of one criterion on one judge client."""
Aggregator = Callable[[Sequence["Verdict"], Sequence["Verdict"], float], "Aggregate"]
"""(today's verdicts, trailing verdicts, drop p-value threshold) -> report rows."""


@dataclass(frozen=True)
class JudgeOutcome:
    """What a judge callable returns; errors are outcomes too, never pass or fail."""

    verdict: str
    reasoning: str | None = None
    error: str | None = None
    order_winners: list[str] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    p_fail: float | None = None
    """Verdict-only format: probability of ``fail`` from the judge's logprobs."""


@dataclass(frozen=True)
class CriterionKind:
    """One kind of criterion: its judge, its answer schema, its aggregation."""

    name: str
    judge_name: str
    """Registered name of the judge factory; every verdict records it."""
    judge_version: str
    factory: JudgeFactory
    answer: type[BaseModel]
    """The JSON schema the judge model is constrained to (vLLM structured outputs)."""
    aggregate: Aggregator
    arity: int = 1
    """Exchanges per item: 1, or 2 for a comparison of two models' responses."""
    outcomes: tuple[str, ...] = ("pass", "fail")
    human_labels: tuple[str, ...] = ("pass", "fail")
    """What a person can label on the labelling page; ``()`` if not labelled there."""
    check: Callable[[Criterion], str | None] | None = None
    """Extra validation of a criterion of this kind: a message, or ``None`` if fine."""
    prompt: Callable[[Criterion, JudgeItem], str] | None = None
    """Pass/fail kinds: the user message for one item; the online judge and the Ray Data
    batch path (:mod:`judges._batch`) send the same prompt."""

    @property
    def pass_fail(self) -> bool:
        """True for pass/fail kinds (rated with Wilson intervals, labelled, calibrated)."""
        return self.outcomes == ("pass", "fail")


@dataclass
class KindRegistry:
    """Criterion kinds by name."""

    kinds: dict[str, CriterionKind] = field(default_factory=dict)

    def register(self, kind: CriterionKind) -> CriterionKind:
        """Add ``kind``; a second kind of the same name is an error."""
        if kind.name in self.kinds:
            raise ValueError(f"criterion kind {kind.name!r} is already registered")
        self.kinds[kind.name] = kind
        return kind

    def get(self, name: str) -> CriterionKind:
        """The kind called ``name``."""
        try:
            return self.kinds[name]
        except KeyError:
            known = ", ".join(sorted(self.kinds))
            raise KeyError(f"unknown criterion kind {name!r} (known: {known})") from None

    def names(self) -> list[str]:
        """Registered kind names, sorted."""
        return sorted(self.kinds)

    def pass_fail(self, criteria: Sequence[Criterion]) -> list[Criterion]:
        """The criteria whose kind is pass/fail (labelled and calibrated)."""
        return [c for c in criteria if c.kind in self.kinds and self.kinds[c.kind].pass_fail]

    def pairwise(self, criteria: Sequence[Criterion]) -> list[Criterion]:
        """The criteria whose kind judges two answers (labelled A/B/tie and calibrated)."""
        return [c for c in criteria if c.kind in self.kinds and self.kinds[c.kind].arity == 2]
