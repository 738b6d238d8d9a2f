"""Criteria as data: YAML files of rubrics, each versioned by a hash of its content."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from serving._config import ConfigError, GavelModel

Kind = Literal["binary", "reference", "pairwise"]


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

    ``binary``: pass/fail of one response against the rubric. ``reference``: pass/fail
    against the expected answer in the request's ``expected`` metadata. ``pairwise``:
    which of two responses to the same prompt is better (judged in both orders).
    """

    name: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")]
    kind: Kind
    description: str = ""
    rubric: Annotated[str, Field(min_length=10)]
    applies_to: AppliesTo = AppliesTo()
    pair_key: str = "pair"
    """For ``pairwise``: the metadata key that groups the two responses to compare."""

    @model_validator(mode="after")
    def _reference_needs_expected(self) -> Criterion:
        if self.kind == "reference" and "expected" not in self.applies_to.metadata:
            raise ValueError("a 'reference' criterion needs applies_to.metadata.expected: '*'")
        return self

    @property
    def version(self) -> str:
        """Hash of what the judge sees (kind and rubric): a new rubric is a new version."""
        blob = json.dumps({"kind": self.kind, "rubric": self.rubric.strip()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


class CriteriaFile(GavelModel):
    """A YAML file of criteria."""

    criteria: Annotated[list[Criterion], Field(min_length=1)]


def load_criteria(directory: Path) -> list[Criterion]:
    """Every criterion in ``directory/*.yaml``; errors name the file and field."""
    out: list[Criterion] = []
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise ConfigError(str(directory), "", "no criteria files (*.yaml) found")
    for f in files:
        try:
            data = yaml.safe_load(f.read_text())
            out.extend(CriteriaFile.model_validate(data).criteria)
        except yaml.YAMLError:
            raise ConfigError(str(f), "", "not valid YAML") from None
        except ValidationError as exc:
            e = exc.errors()[0]
            loc = ".".join(str(p) for p in e["loc"])
            raise ConfigError(str(f), loc, str(e["msg"])) from None
    names = [c.name for c in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(str(directory), "criteria", f"duplicate names: {', '.join(dupes)}")
    return out
