"""Criteria as data: YAML files of rubrics, each versioned by a hash of its content."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Literal

from pydantic import Field

from serving import GavelModel

VerdictFormat = Literal["reasoning_first", "verdict_only"]
DEFAULT_VERDICT_FORMAT: VerdictFormat = "reasoning_first"
"""The format that agreed better with human labels on the CPU default (kappa 0.00 against
-0.25 for ``verdict_only`` on the judge_eval labels; docs/benchmarks)."""


class AppliesTo(GavelModel):
    """Which captured traffic a criterion judges (every given filter must match)."""

    roles: tuple[Literal["app", "judge"], ...] = ("app",)
    """Model roles, resolved to served model ids through the stack config."""
    keys: list[str] | None = None
    """Key names; ``None`` means any."""
    metadata: dict[str, str] = Field(default_factory=dict)
    """Request metadata (``X-Gavel-Metadata``) that must match; ``"*"`` means present."""


class Criterion(GavelModel):
    """One judging criterion.

    ``kind`` names a registered criterion kind (built in: ``binary``, pass/fail against
    the rubric; ``reference``, pass/fail against the expected answer in the ``expected``
    metadata; ``pairwise``, which of two responses to one prompt is better, both orders).
    """

    name: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")]
    kind: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")]
    description: str = ""
    rubric: Annotated[str, Field(min_length=10)]
    applies_to: AppliesTo = AppliesTo()
    pair_key: str = "pair"
    """For ``pairwise``: the metadata key that groups the two responses to compare."""
    verdict_format: VerdictFormat = DEFAULT_VERDICT_FORMAT
    """Pass/fail kinds: ``reasoning_first`` (a sentence of reasoning, then the verdict) or
    ``verdict_only`` (one constrained token; the probability of ``fail`` from its
    logprobs is kept as a confidence). Recorded in each verdict's judge arguments; the
    version (what *pass* means) does not change with it."""

    @property
    def label_version(self) -> str:
        """Hash of what *pass* means (kind and rubric). Human labels carry it: a label
        judges the response against the rubric, whatever format the judge answers in."""
        blob = json.dumps({"kind": self.kind, "rubric": self.rubric.strip()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def version(self) -> str:
        """Hash of what the judge does (kind, rubric and, unless ``reasoning_first``, the
        verdict format): verdicts carry it, so two judges' verdicts never mix. For
        ``reasoning_first`` it equals :attr:`label_version` (the versions of before)."""
        if self.verdict_format == "reasoning_first":
            return self.label_version
        blob = json.dumps(
            {"kind": self.kind, "rubric": self.rubric.strip(), "format": self.verdict_format},
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


class CriteriaFile(GavelModel):
    """A YAML file of criteria."""

    criteria: Annotated[list[Criterion], Field(min_length=1)]
