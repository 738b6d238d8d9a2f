"""Whether each judge check of a suite can be trusted: its criterion's calibration
against human labels, with the same rule as ``gavel judge calibrate`` (enough labels,
kappa at least ``min_kappa``). A pass rate of an untrusted judge is shown as such."""

from __future__ import annotations

from collections.abc import Mapping

from judges import (
    Criterion,
    JudgingConfig,
    LabelStore,
    VerdictStore,
    calibrate,
    calibrate_pairs,
    default_kinds,
)
from serving.store import Store


def judge_trust(
    store: Store, judging: JudgingConfig, criteria: Mapping[str, Criterion]
) -> dict[str, tuple[bool, str]]:
    """Check name -> (trusted, why), for the judge checks of ``criteria``."""
    if not criteria:
        return {}
    kinds = default_kinds()
    distinct = list({c.name: c for c in criteria.values()}.values())
    versions = {c.name: c.version for c in kinds.pass_fail(distinct)}
    if not versions:
        return {}
    labels = [lab for lab in LabelStore(store).query() if lab.criterion in versions]
    verdicts = VerdictStore(store).current(versions)
    rows = {r.criterion: r for r in calibrate(distinct, labels, verdicts, judging.calibration,
                                              kinds=kinds)}  # fmt: skip
    return {
        check: (rows[c.name].trusted, rows[c.name].reason)
        for check, c in criteria.items()
        if c.name in rows
    }


def pairwise_trust(store: Store, judging: JudgingConfig, crit: Criterion) -> tuple[bool, str]:
    """Whether the pairwise criterion's judge is trusted: its calibration against the
    pairwise labels (``gavel judge calibrate``), by the binary judges' rule."""
    labels = LabelStore(store).query(criterion=crit.name)
    verdicts = VerdictStore(store).current({crit.name: crit.version})
    rows = calibrate_pairs([crit], labels, verdicts, judging.calibration)
    if not rows:
        return False, f"{crit.name} is not a pairwise criterion"
    row = rows[0]
    if row.n == 0:
        return False, (f"no pairwise labels of {crit.name} yet: label shadow pairs "
                       "(`gavel label`), then `gavel judge calibrate`")  # fmt: skip
    return row.trusted, row.reason
