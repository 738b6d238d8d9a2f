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
