"""Judge calibration against human labels: pure functions, no I/O.

"Fail" is the positive class. For each criterion version, the labelled records that
also have a pass/fail judge verdict give a 2x2 confusion matrix; from it come raw
agreement, Cohen's kappa with a 95% interval, coverage (judge fails | human fails)
and the false-failure rate (judge fails | human passes).

The kappa interval uses Cohen's (1960) large-sample standard error
``sqrt(p_o (1 - p_o) / (n (1 - p_e)^2))``, clipped to [-1, 1]. Kappa is undefined
(``None``) when chance agreement is 1: both raters gave one and the same class to
every record.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from typing import Annotated

from pydantic import Field

from judges._criteria import Criterion
from judges._labels import Label, since_filter
from judges._registry import KindRegistry
from judges._stats import Z95
from judges._wire import Verdict
from judges.kinds import default_kinds
from serving import GavelModel


class CalibrationConfig(GavelModel):
    """When a judge's criterion is trustworthy."""

    min_kappa: Annotated[float, Field(ge=-1, le=1)] = 0.6
    """Below this Cohen's kappa the criterion's judge is marked not trustworthy."""
    min_labels: Annotated[int, Field(ge=1)] = 30
    """With fewer labelled (and judged) records than this, there is too little to tell."""


class Confusion(GavelModel):
    """Human (rows) against judge (columns), with fail as the positive class."""

    both_fail: int = 0
    """Human fail, judge fail (true positive)."""
    judge_pass_human_fail: int = 0
    """Human fail, judge pass (missed failure)."""
    judge_fail_human_pass: int = 0
    """Human pass, judge fail (false failure)."""
    both_pass: int = 0
    """Human pass, judge pass (true negative)."""

    @property
    def n(self) -> int:
        """Records with both a label and a pass/fail verdict."""
        fails = self.both_fail + self.judge_pass_human_fail
        return fails + self.judge_fail_human_pass + self.both_pass


class DriftNote(GavelModel):
    """A labeller's note that the criterion itself is wrong or missing something."""

    item_id: str
    criterion_version: str
    labeller: str
    note: str
    current: bool
    """True if made on the criterion's current version."""


class CalibrationRow(GavelModel):
    """Agreement of the judge with people on one criterion (current version)."""

    criterion: str
    criterion_version: str
    n: int
    confusion: Confusion
    agreement: float | None
    kappa: float | None
    kappa_low: float | None
    kappa_high: float | None
    coverage: float | None
    """Share of human-failed records the judge also fails (recall of fail)."""
    false_failure_rate: float | None
    """Share of human-passed records the judge fails."""
    trusted: bool
    reason: str
    """Why the criterion is or is not trustworthy, in words."""
    unjudged_labels: int = 0
    """Labels of this version without a pass/fail verdict (not judged yet, or judge error)."""
    earlier_version_labels: int = 0
    """Labels of earlier criterion versions (not counted: a new version recalibrates)."""
    disputed_items: int = 0
    """Items whose labellers split evenly (no majority label; not counted)."""
    drift_notes: list[DriftNote] = Field(default_factory=list)


def confusion(pairs: Sequence[tuple[str, str]]) -> Confusion:
    """The confusion matrix of (human, judge) pass/fail pairs."""
    c = {"fail": {"fail": 0, "pass": 0}, "pass": {"fail": 0, "pass": 0}}
    for human, judge in pairs:
        c[human][judge] += 1
    return Confusion(
        both_fail=c["fail"]["fail"],
        judge_pass_human_fail=c["fail"]["pass"],
        judge_fail_human_pass=c["pass"]["fail"],
        both_pass=c["pass"]["pass"],
    )


def consensus(labels: Sequence[Label]) -> tuple[list[Label], int]:
    """One label per item: the labellers' majority (the latest such label stands for it);
    items where they split evenly are left out. Returns (labels, disputed item count)."""
    by_item: dict[str, list[Label]] = defaultdict(list)
    for lab in labels:
        by_item[lab.item_id].append(lab)
    out: list[Label] = []
    disputed = 0
    for group in by_item.values():
        fails = sum(lab.label == "fail" for lab in group)
        passes = len(group) - fails
        if fails == passes:
            disputed += 1
            continue
        winner = "fail" if fails > passes else "pass"
        out.append(max((lab for lab in group if lab.label == winner), key=lambda x: x.labelled_at))
    return out, disputed


class LabellerAgreement(GavelModel):
    """How often two people gave the same label to the same records (one criterion)."""

    criterion: str
    criterion_version: str
    labeller_a: str
    labeller_b: str
    n: int
    agreement: float | None
    kappa: float | None
    kappa_low: float | None
    kappa_high: float | None


def labeller_agreement(
    criteria: Sequence[Criterion], labels: Sequence[Label]
) -> list[LabellerAgreement]:
    """Cohen's kappa between every two labellers who labelled the same records, per
    criterion (current version): the ceiling that a judge's kappa is read against."""
    out: list[LabellerAgreement] = []
    for crit in criteria:
        by_labeller: dict[str, dict[str, str]] = defaultdict(dict)
        for lab in labels:
            if lab.criterion == crit.name and lab.criterion_version == crit.label_version:
                by_labeller[lab.labeller][lab.item_id] = lab.label
        names = sorted(by_labeller)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                both = sorted(set(by_labeller[a]) & set(by_labeller[b]))
                if not both:
                    continue
                m = confusion([(by_labeller[a][x], by_labeller[b][x]) for x in both])
                kappa, lo, hi = cohen_kappa(m)
                out.append(
                    LabellerAgreement(
                        criterion=crit.name,
                        criterion_version=crit.label_version,
                        labeller_a=a,
                        labeller_b=b,
                        n=m.n,
                        agreement=_ratio(m.both_fail + m.both_pass, m.n),
                        kappa=kappa,
                        kappa_low=lo,
                        kappa_high=hi,
                    )
                )
    return out


def cohen_kappa(m: Confusion, z: float = Z95) -> tuple[float | None, float | None, float | None]:
    """Cohen's kappa and its 95% interval; all ``None`` when undefined (n = 0 or p_e = 1)."""
    n = m.n
    if n == 0:
        return None, None, None
    p_o = (m.both_fail + m.both_pass) / n
    human_fail = (m.both_fail + m.judge_pass_human_fail) / n
    judge_fail = (m.both_fail + m.judge_fail_human_pass) / n
    p_e = human_fail * judge_fail + (1 - human_fail) * (1 - judge_fail)
    if math.isclose(p_e, 1.0):
        return None, None, None
    kappa = (p_o - p_e) / (1 - p_e)
    se = math.sqrt(p_o * (1 - p_o) / (n * (1 - p_e) ** 2))
    return kappa, max(-1.0, kappa - z * se), min(1.0, kappa + z * se)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def calibration_row(
    criterion: Criterion,
    labels: Sequence[Label],
    verdicts: Sequence[Verdict],
    cfg: CalibrationConfig,
) -> CalibrationRow:
    """Calibrate one criterion: its current version's labels against the judge's verdicts."""
    version = criterion.version
    mine = [lab for lab in labels if lab.criterion == criterion.name]
    current, disputed = consensus(
        [lab for lab in mine if lab.criterion_version == criterion.label_version]
    )
    judged = {
        v.item_id: v.verdict
        for v in verdicts
        if v.criterion == criterion.name
        and v.criterion_version == version
        and v.verdict in ("pass", "fail")
    }
    pairs = [(lab.label, judged[lab.item_id]) for lab in current if lab.item_id in judged]
    m = confusion(pairs)
    kappa, lo, hi = cohen_kappa(m)
    human_fail = m.both_fail + m.judge_pass_human_fail
    human_pass = m.judge_fail_human_pass + m.both_pass
    trusted, reason = trust_rule(m.n, kappa, cfg)
    notes = [
        DriftNote(
            item_id=lab.item_id,
            criterion_version=lab.criterion_version,
            labeller=lab.labeller,
            note=lab.criterion_note,
            current=lab.criterion_version == criterion.label_version,
        )
        for lab in mine
        if lab.criterion_note
    ]
    return CalibrationRow(
        criterion=criterion.name,
        criterion_version=version,
        n=m.n,
        confusion=m,
        agreement=_ratio(m.both_fail + m.both_pass, m.n),
        kappa=kappa,
        kappa_low=lo,
        kappa_high=hi,
        coverage=_ratio(m.both_fail, human_fail),
        false_failure_rate=_ratio(m.judge_fail_human_pass, human_pass),
        trusted=trusted,
        reason=reason,
        unjudged_labels=len(current) - len(pairs),
        earlier_version_labels=sum(
            lab.criterion_version != criterion.label_version for lab in mine
        ),
        disputed_items=disputed,
        drift_notes=notes,
    )


def trust_rule(n: int, kappa: float | None, cfg: CalibrationConfig) -> tuple[bool, str]:
    """The trust rule of every judge: enough labels, and kappa at least ``min_kappa``."""
    if n < cfg.min_labels:
        return False, f"too few labels to tell ({n} < {cfg.min_labels})"
    if kappa is None:
        return False, "kappa undefined: people and judge used one class only"
    if kappa < cfg.min_kappa:
        return False, f"kappa {kappa:.2f} < {cfg.min_kappa:.2f}"
    return True, f"kappa {kappa:.2f} >= {cfg.min_kappa:.2f} on {n} labels"


def calibrate(
    criteria: Sequence[Criterion],
    labels: Sequence[Label],
    verdicts: Sequence[Verdict],
    cfg: CalibrationConfig,
    *,
    criterion: str | None = None,
    since: date | None = None,
    kinds: KindRegistry | None = None,
) -> list[CalibrationRow]:
    """One row per pass/fail criterion (or just ``criterion``), from labels made since ``since``.

    Pass/fail means the criterion's kind is pass/fail in ``kinds`` (default: built-in).
    """
    kept = since_filter(labels, since)
    by_crit: dict[str, list[Verdict]] = defaultdict(list)
    for v in verdicts:
        by_crit[v.criterion].append(v)
    return [
        calibration_row(c, kept, by_crit[c.name], cfg)
        for c in (kinds or default_kinds()).pass_fail(criteria)
        if criterion is None or c.name == criterion
    ]
