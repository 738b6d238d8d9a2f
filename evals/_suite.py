"""Suites as data: a YAML suite names a dataset, a target, epochs and checks.

Everything is checked before any model call; an error names the file, the line (for a
dataset) and the field, and nothing is half-run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from evals._checks import ASSERTIONS, AssertArgs
from judges import Criterion, KindRegistry, VerdictFormat, default_kinds, load_criteria
from serving import EXIT_USAGE, CliError, ConfigError, GavelModel, Role, load_model


class Params(GavelModel):
    """Sampling parameters of the target model."""

    temperature: Annotated[float, Field(ge=0, le=2)] = 0.0
    max_tokens: Annotated[int, Field(ge=1)] = 64
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    seed: int | None = None
    stop: list[str] | None = None


class Target(GavelModel):
    """What answers: a model role (resolved from the stack config) or a served id."""

    role: Role | None = "app"
    model: str | None = None
    """A served model id; overrides ``role``."""
    system: str | None = None
    """A system prompt put before each chat item's messages."""
    params: Params = Params()


class Candidate(GavelModel):
    """One candidate implementation of a judge check, for ``gavel eval align``."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    rubric: str | None = None
    """Another wording of the criterion's rubric (same kind)."""
    examples: Annotated[int, Field(ge=0, le=20)] = 0
    """Few-shot: this many labelled items of the selection part shown with the rubric."""
    assertion: str | None = Field(default=None, alias="assert")
    """A deterministic assertion instead of the judge."""
    verdict_format: VerdictFormat | None = None
    """The judge's verdict format for this candidate (default: the criterion's)."""
    args: AssertArgs = AssertArgs()

    model_config = {**GavelModel.model_config, "populate_by_name": True}

    @model_validator(mode="after")
    def _one(self) -> Candidate:
        if (self.rubric is None) == (self.assertion is None):
            raise ValueError("give exactly one of 'rubric' or 'assert'")
        if self.examples and self.rubric is None:
            raise ValueError("'examples' go with a 'rubric'")
        return self


class Check(GavelModel):
    """One check: a registered assertion, or a judge criterion (by name or inline)."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    assertion: str | None = Field(default=None, alias="assert")
    args: AssertArgs = AssertArgs()
    criterion: str | None = None
    """A criterion of ``judges/criteria/`` (the judging config's ``criteria_dir``)."""
    inline_criterion: Criterion | None = None
    """A criterion defined here, with the schema of ``judges/criteria/``."""
    gating: bool = True
    """Whether ``gavel eval compare`` fails on a drop of this check."""
    candidates: list[Candidate] = Field(default_factory=list)
    """Candidate implementations of a judge check, compared by ``gavel eval align``."""

    model_config = {**GavelModel.model_config, "populate_by_name": True}

    @model_validator(mode="after")
    def _one_kind(self) -> Check:
        given = [x for x in (self.assertion, self.criterion, self.inline_criterion) if x]
        if len(given) != 1:
            raise ValueError("give exactly one of 'assert', 'criterion' or 'inline_criterion'")
        return self


class Suite(GavelModel):
    """A YAML suite."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    description: str = ""
    dataset: str
    """JSONL dataset, relative to the suite file."""
    target: Target = Target()
    epochs: Annotated[int, Field(ge=1, le=100)] = 1
    concurrency: Annotated[int, Field(ge=1, le=256)] = 8
    pairwise: str = "preferred_response"
    """The pairwise criterion ``gavel eval ab`` judges with."""
    checks: Annotated[list[Check], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique(self) -> Suite:
        names = [c.name for c in self.checks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate check names: {', '.join(dupes)}")
        return self


class Item(GavelModel):
    """One dataset line."""

    id: Annotated[str, Field(min_length=1, max_length=200)]
    messages: Annotated[list[dict[str, Any]], Field(min_length=1)] | None = None
    prompt: str | None = None
    expected: str | None = None
    response: str | None = None
    """A fixed response: scored without generating (how a judge is evaluated offline)."""
    labels: dict[str, Literal["pass", "fail"]] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_input(self) -> Item:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give exactly one of 'messages' or 'prompt'")
        return self


ITEM_FIELDS = set(Item.model_fields)


@dataclass(frozen=True)
class LoadedSuite:
    """A suite with its dataset and its resolved criteria, all checked."""

    path: Path
    suite: Suite
    items: list[Item]
    criteria: dict[str, Criterion]
    """Check name -> criterion, for the judge checks."""
    suite_hash: str
    dataset_hash: str

    def first(self, n: int) -> LoadedSuite:
        """The suite on its first ``n`` items (Inspect's ``--limit``): a dataset of its
        own, so that a run on part of it is never compared with a run on all of it."""
        if n >= len(self.items):
            return self
        part = _sha(f"{self.dataset_hash}:first:{n}".encode())
        return dataclasses.replace(self, items=self.items[:n], dataset_hash=part)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def load_dataset(path: Path) -> list[Item]:
    """Every item of a JSONL dataset; a bad line raises ``CliError`` naming file:line: field."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"{path}: cannot read the dataset ({exc})", EXIT_USAGE) from None
    items: list[Item] = []
    seen: dict[str, int] = {}
    for no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{no}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CliError(f"{where}: not valid JSON ({exc.msg})", EXIT_USAGE) from None
        if not isinstance(raw, dict):
            raise CliError(f"{where}: a line must be a JSON object", EXIT_USAGE)
        extra = {k: v for k, v in raw.items() if k not in ITEM_FIELDS}
        data = {k: v for k, v in raw.items() if k in ITEM_FIELDS}
        meta = dict(data.get("metadata") or {})
        meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in extra.items()})
        data["metadata"] = meta
        try:
            item = Item.model_validate(data)
        except ValidationError as exc:
            e = exc.errors()[0]
            # The one item-level check is the messages/prompt choice.
            loc = ".".join(str(p) for p in e["loc"]) or "messages/prompt"
            msg = str(e["msg"]).removeprefix("Value error, ")
            raise CliError(f"{where}: {loc}: {msg}", EXIT_USAGE) from None
        if item.id in seen:
            raise CliError(f"{where}: id: {item.id!r} repeats line {seen[item.id]}", EXIT_USAGE)
        seen[item.id] = no
        items.append(item)
    if not items:
        raise CliError(f"{path}: the dataset has no items", EXIT_USAGE)
    return items


def load_suite(
    path: str | Path, *, criteria_dir: str | Path, kinds: KindRegistry | None = None
) -> LoadedSuite:
    """Read and check a suite, its dataset and its criteria (no model is called)."""
    p = Path(path)
    suite = load_model(p, Suite)
    registry = kinds or default_kinds()
    known = {c.name: c for c in load_criteria(Path(criteria_dir), registry)}
    criteria: dict[str, Criterion] = {}
    for i, check in enumerate(suite.checks):
        field = f"checks[{i}]"
        for j, cand in enumerate(check.candidates):
            if cand.assertion is not None:
                problem = ASSERTIONS.problem(cand.assertion, cand.args)
                if problem:
                    raise ConfigError(str(p), f"{field}.candidates[{j}].assert", problem)
        if check.assertion is not None:
            problem = ASSERTIONS.problem(check.assertion, check.args)
            if problem:
                raise ConfigError(str(p), f"{field}.assert", problem)
        elif check.criterion is not None:
            if check.criterion not in known:
                raise ConfigError(
                    str(p),
                    f"{field}.criterion",
                    f"unknown criterion {check.criterion!r} (known: {', '.join(sorted(known))})",
                )
            criteria[check.name] = known[check.criterion]
        elif check.inline_criterion is not None:
            kind = registry.kinds.get(check.inline_criterion.kind)
            if kind is None:
                raise ConfigError(str(p), f"{field}.inline_criterion.kind", "unknown kind")
            criteria[check.name] = check.inline_criterion
    for name, crit in criteria.items():
        if registry.get(crit.kind).arity != 1:
            raise ConfigError(str(p), "checks", f"{name}: a check judges one answer, not a pair")
    dataset = (p.parent / suite.dataset).resolve()
    items = load_dataset(dataset)
    body = json.dumps(
        {"dataset": suite.dataset, "checks": [c.model_dump(mode="json") for c in suite.checks]},
        sort_keys=True,
    )
    return LoadedSuite(
        path=p,
        suite=suite,
        items=items,
        criteria=criteria,
        suite_hash=_sha(f"{suite.name}\n{body}".encode()),
        dataset_hash=_sha(dataset.read_bytes()),
    )
