"""Loading criteria: YAML files of criteria, each checked against the registered kinds."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from judges._criteria import CriteriaFile, Criterion
from judges._registry import KindRegistry
from judges.kinds import default_kinds
from serving import ConfigError


def check_kind(criterion: Criterion, kinds: KindRegistry) -> str | None:
    """Why ``criterion`` does not fit its kind (unknown kind, kind's own check), or ``None``."""
    if criterion.kind not in kinds.kinds:
        return f"unknown kind {criterion.kind!r} (known: {', '.join(kinds.names())})"
    check = kinds.get(criterion.kind).check
    return check(criterion) if check is not None else None


def _load_file(f: Path, registry: KindRegistry) -> list[Criterion]:
    try:
        data = yaml.safe_load(f.read_text())
        found = CriteriaFile.model_validate(data).criteria
    except yaml.YAMLError:
        raise ConfigError(str(f), "", "not valid YAML") from None
    except OSError as exc:
        raise ConfigError(str(f), "", f"cannot read: {exc.strerror}") from None
    except ValidationError as exc:
        e = exc.errors()[0]
        loc = ".".join(str(p) for p in e["loc"])
        raise ConfigError(str(f), loc, str(e["msg"])) from None
    for i, crit in enumerate(found):
        problem = check_kind(crit, registry)
        if problem is not None:
            raise ConfigError(str(f), f"criteria.{i}.kind", problem)
    return found


def _files(directory: Path) -> list[Path]:
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise ConfigError(str(directory), "", "no criteria files (*.yaml) found")
    return files


def _no_duplicates(directory: Path, criteria: list[Criterion]) -> None:
    names = [c.name for c in criteria]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(str(directory), "criteria", f"duplicate names: {', '.join(dupes)}")


def load_criteria(directory: Path, kinds: KindRegistry | None = None) -> list[Criterion]:
    """Every criterion in ``directory/*.yaml``; errors name the file and field.

    Each criterion's kind must be registered in ``kinds`` (default: the built-in kinds).
    """
    registry = kinds if kinds is not None else default_kinds()
    out: list[Criterion] = []
    for f in _files(directory):
        out.extend(_load_file(f, registry))
    _no_duplicates(directory, out)
    return out


def check_criteria(
    directory: Path, kinds: KindRegistry | None = None
) -> tuple[list[Criterion], list[ConfigError]]:
    """Like :func:`load_criteria`, but every file is checked: the criteria that load, and
    one error per file that does not (``gavel config check``)."""
    registry = kinds if kinds is not None else default_kinds()
    out: list[Criterion] = []
    errors: list[ConfigError] = []
    try:
        files = _files(directory)
    except ConfigError as exc:
        return [], [exc]
    for f in files:
        try:
            out.extend(_load_file(f, registry))
        except ConfigError as exc:
            errors.append(exc)
    try:
        _no_duplicates(directory, out)
    except ConfigError as exc:
        errors.append(exc)
    return out, errors
