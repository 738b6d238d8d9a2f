"""What the label and calibrate commands open: the configs, the criteria, the store."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from serving import EXIT_USAGE, CliError, open_store

if TYPE_CHECKING:
    from judges._config import JudgingConfig
    from judges._criteria import Criterion
    from judges._registry import KindRegistry
    from serving.store import Store


def add_api_key(parser: argparse.ArgumentParser, *, scope: str, why: str = "") -> None:
    """The ``--api-key`` option of a command that calls the stack (default: $GAVEL_API_KEY)."""
    import os

    parser.add_argument(
        "--api-key",
        default=os.environ.get("GAVEL_API_KEY"),
        help=f"a key with the '{scope}' scope{why} (default: $GAVEL_API_KEY)",
    )


@dataclass(frozen=True)
class Opened:
    """The store, the judging config, its criteria and the kinds."""

    store: Store
    judging: JudgingConfig
    criteria: list[Criterion]
    kinds: KindRegistry


def open_configs(args: argparse.Namespace, *, criterion: str | None = None) -> Opened:
    """Configs and the store; ``criterion``, if given, must be a labelled criterion
    (pass/fail or pairwise)."""
    from judges._catalog import load_criteria
    from judges._config import load_judging
    from judges.kinds import default_kinds

    kinds = default_kinds()
    store = open_store(args.config)
    judging = load_judging(args.judging)
    criteria = load_criteria(Path(judging.criteria_dir), kinds)
    names = sorted(c.name for c in kinds.pass_fail(criteria))
    names += sorted(c.name for c in kinds.pairwise(criteria))
    if criterion is not None and criterion not in names:
        raise CliError(
            f"unknown criterion {criterion!r}; labelled criteria: {', '.join(names)}", EXIT_USAGE
        )
    return Opened(store, judging, criteria, kinds)
