"""The judges' part of ``gavel config check``: the judging config and every criteria file."""

from __future__ import annotations

import argparse
from pathlib import Path


def check_judging(args: argparse.Namespace) -> tuple[str, list[str]]:
    """``gavel config check``'s judges part: the judging config and every criteria file."""
    from judges._catalog import check_criteria
    from judges._config import load_judging
    from serving import ConfigError

    try:
        judging = load_judging(args.judging)
    except ConfigError as exc:
        return "", [str(exc)]
    criteria, errors = check_criteria(Path(judging.criteria_dir))
    problems = [str(e) for e in errors]
    if judging.online:
        from judges._online_cli import rule_criteria
        from judges.kinds import default_kinds
        from serving import CliError

        try:
            rule_criteria(judging, list(criteria), default_kinds(), args.judging)
        except CliError as exc:
            problems.append(str(exc))
    summary = (
        f"{args.judging}: ok ({len(criteria)} criteria in {judging.criteria_dir}: "
        + ", ".join(c.name for c in criteria)
        + ")"
    )
    return summary, problems
