"""Evaluating the judge offline ("validate the validators"): the fixed responses of
labelled items are judged with each labelled criterion and compared with the labels,
with the same figures and thresholds as ``gavel judge calibrate`` (its code)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from evals._judging import exchange_of, judge_once
from evals._suite import LoadedSuite
from judges import (
    CalibrationRow,
    Criterion,
    JudgeItem,
    JudgingConfig,
    Label,
    calibrate,
    default_kinds,
    load_criteria,
    wilson,
)
from serving import EXIT_USAGE, CliError, GavelModel, StackConfig
from serving.store import Store

FIXED = "fixed-response"


class JudgeFigures(GavelModel):
    """Calibration of one criterion, with intervals on coverage and false failures."""

    calibration: CalibrationRow
    coverage_ci: tuple[float, float]
    false_failure_ci: tuple[float, float]


def labelled_criteria(loaded: LoadedSuite, criteria_dir: str) -> list[Criterion]:
    """The pass/fail criteria the items carry labels for (by check name or criterion name)."""
    kinds = default_kinds()
    known = {c.name: c for c in kinds.pass_fail(load_criteria(Path(criteria_dir), kinds))}
    known.update({c.name: c for c in loaded.criteria.values()})
    by_check = {check: crit for check, crit in loaded.criteria.items()}
    names = sorted({name for it in loaded.items for name in it.labels})
    out: list[Criterion] = []
    for name in names:
        crit = by_check.get(name) or known.get(name)
        if crit is None:
            raise CliError(f"{loaded.path}: labels name an unknown criterion {name!r}", EXIT_USAGE)
        out.append(crit)
    if not out:
        raise CliError(f"{loaded.path}: no item carries labels", EXIT_USAGE)
    return out


def evaluate_judge(
    loaded: LoadedSuite,
    criteria: list[Criterion],
    store: Store,
    stack: StackConfig,
    judging: JudgingConfig,
    api_key: str,
    *,
    log: Callable[[str], None] = print,
) -> list[JudgeFigures]:
    """Judge every labelled fixed response and calibrate each criterion on its labels."""
    by_label_name = {c.name: c for c in criteria}
    labels: list[Label] = []
    asks: list[JudgeItem] = []
    now = datetime.now(UTC)
    for it in loaded.items:
        if it.response is None:
            continue
        for name, value in it.labels.items():
            crit = by_label_name.get(name)
            if crit is None:
                continue
            uid = f"judge-eval-{loaded.dataset_hash}-{it.id}"
            ex = exchange_of(it, uid, FIXED, it.response)
            asks.append(JudgeItem(criterion=crit.name, exchanges=[ex]))
            labels.append(
                Label(
                    item_id=uid,
                    criterion=crit.name,
                    criterion_version=crit.label_version,
                    label=value,
                    labeller="dataset",
                    labelled_at=now,
                )
            )
    have = judge_once(
        asks, criteria, store, stack, judging, api_key,
        run_id=f"judge-eval-{loaded.suite_hash}", log=log,
    )  # fmt: skip
    verdicts = list(have.values())
    rows = calibrate(criteria, labels, verdicts, judging.calibration)
    out = []
    for row in rows:
        m = row.confusion
        human_fail = m.both_fail + m.judge_pass_human_fail
        human_pass = m.judge_fail_human_pass + m.both_pass
        out.append(
            JudgeFigures(
                calibration=row,
                coverage_ci=wilson(m.both_fail, human_fail),
                false_failure_ci=wilson(m.judge_fail_human_pass, human_pass),
            )
        )
    return out
