"""Judge alignment, as EvalGen does it: choose among candidate implementations of a
criterion on one part of the labelled items, and report the choice on the other part.

The labelled items are split (seeded) into a selection part and a held-out part. Every
candidate is scored on all of them; the one with the highest coverage (judge fails |
person fails) among those whose false-failure rate stays under the threshold *on the
selection part* is chosen, and its figures *on the held-out part* are the result. The
selection-part figures are never reported as the result.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime

from evals._checks import ASSERTIONS
from evals._judging import exchange_of, judge_once
from evals._suite import Candidate, Item, LoadedSuite
from judges import (
    CalibrationConfig,
    CalibrationRow,
    Criterion,
    JudgeItem,
    JudgingConfig,
    Label,
    calibrate,
)
from serving import EXIT_USAGE, CliError, GavelModel, StackConfig
from serving.store import Store


class CandidateFigures(GavelModel):
    """A candidate's agreement with the labels on the selection part."""

    candidate: str
    selection: CalibrationRow


class Alignment(GavelModel):
    """The chosen candidate and its held-out figures."""

    check: str
    selection_items: int
    held_out_items: int
    max_false_failure: float
    candidates: list[CandidateFigures]
    chosen: str
    held_out: CalibrationRow
    """The result: the chosen candidate on items it was not chosen on."""
    chosen_rubric: str | None


def _rubric(base: Criterion, cand: Candidate, shots: list[Item], label_of: dict[str, str]) -> str:
    text = cand.rubric or base.rubric
    if cand.examples:
        lines = [
            f"- Response: {(it.response or '')[:300]!r} -> {label_of[it.id]}"
            for it in shots[: cand.examples]
        ]
        text += "\nLabelled examples:\n" + "\n".join(lines)
    return text


def align(
    loaded: LoadedSuite,
    check_name: str,
    store: Store,
    stack: StackConfig,
    judging: JudgingConfig,
    api_key: str,
    *,
    max_false_failure: float = 0.2,
    held_out_share: float = 0.5,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> Alignment:
    """Score every candidate of one judge check and choose one (see the module's text)."""
    check = next((c for c in loaded.suite.checks if c.name == check_name), None)
    if check is None or check_name not in loaded.criteria:
        raise CliError(f"{loaded.path}: no judge check named {check_name!r}", EXIT_USAGE)
    if not check.candidates:
        raise CliError(f"{loaded.path}: check {check_name!r} lists no candidates", EXIT_USAGE)
    base = loaded.criteria[check_name]
    keys = (check_name, base.name)
    labelled = [
        it for it in loaded.items if it.response is not None and any(k in it.labels for k in keys)
    ]
    label_of: dict[str, str] = {
        it.id: next(it.labels[k] for k in keys if k in it.labels) for it in labelled
    }
    if len(labelled) < 4:
        raise CliError(f"{loaded.path}: align needs at least 4 labelled items", EXIT_USAGE)
    order = sorted(it.id for it in labelled)
    random.Random(seed).shuffle(order)
    cut = max(2, round(len(order) * (1 - held_out_share)))
    selection, held = set(order[:cut]), set(order[cut:])
    shots = [it for it in labelled if it.id in selection]
    outcome: dict[str, dict[str, str]] = {}
    for cand in check.candidates:
        if cand.assertion is not None:
            outcome[cand.name] = {
                it.id: ASSERTIONS.run(cand.assertion, it.response or "", it.expected, cand.args)
                for it in labelled
            }
            continue
        crit = base.model_copy(
            update={
                "rubric": _rubric(base, cand, shots, label_of),
                "verdict_format": cand.verdict_format or base.verdict_format,
            }
        )
        asks = [
            JudgeItem(
                criterion=crit.name,
                exchanges=[exchange_of(it, f"align-{loaded.dataset_hash}-{it.id}",
                                       "fixed-response", it.response)],
            )
            for it in labelled
        ]  # fmt: skip
        log(f"candidate {cand.name}:")
        verdicts = judge_once(
            asks, [crit], store, stack, judging, api_key,
            run_id=f"align-{loaded.suite_hash}", log=log,
        )  # fmt: skip
        have = {item_id: v.verdict for (item_id, _), v in verdicts.items()}
        outcome[cand.name] = {
            it.id: have.get(f"align-{loaded.dataset_hash}-{it.id}", "error") for it in labelled
        }

    def figures(name: str, part: set[str]) -> CalibrationRow:
        crit = Criterion(name=base.name, kind="binary", rubric=base.rubric)
        now = datetime.now(UTC)
        labels = [
            Label(
                item_id=i,
                criterion=crit.name,
                criterion_version=crit.label_version,
                label=label_of[i],  # type: ignore[arg-type]
                labeller="dataset",
                labelled_at=now,
            )
            for i in part
        ]
        from judges import Verdict

        verdicts = [
            Verdict(
                item_id=i,
                criterion=crit.name,
                criterion_version=crit.version,
                kind="binary",
                judge=name,
                judge_version="1",
                judge_model="-",
                judge_args={},
                model="-",
                run_id="align",
                verdict=outcome[name][i],
                created_at=now,
            )
            for i in part
            if outcome[name][i] in ("pass", "fail")
        ]
        (row,) = calibrate([crit], labels, verdicts, CalibrationConfig(min_labels=1))
        return row

    scored = [
        CandidateFigures(candidate=c.name, selection=figures(c.name, selection))
        for c in check.candidates
    ]
    ok = [f for f in scored if (f.selection.false_failure_rate or 0) <= max_false_failure]
    pool = ok or scored
    best = max(
        pool,
        key=lambda f: (f.selection.coverage or 0, -(f.selection.false_failure_rate or 0)),
    )
    chosen = next(c for c in check.candidates if c.name == best.candidate)
    return Alignment(
        check=check_name,
        selection_items=len(selection),
        held_out_items=len(held),
        max_false_failure=max_false_failure,
        candidates=scored,
        chosen=chosen.name,
        held_out=figures(chosen.name, held),
        chosen_rubric=_rubric(base, chosen, shots, label_of) if chosen.rubric else None,
    )
