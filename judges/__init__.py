"""Gavel judges: criteria and their kinds, the judging API, the daily job, human labels
and judge calibration.

Public surface: criteria and the judging config; the kind registry (``default_kinds``
lists the built-in ``binary``, ``reference`` and ``pairwise``; a new kind is one module
that builds a ``CriterionKind``); the neutral judging API (``Exchange``, ``JudgeItem``,
``judge_items``, ``Verdict``, ``VerdictStore``); the daily job; labels and calibration;
the labelling app. Names are imported on first use, so the ``gavel`` CLI and Ray workers
load only what they need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from judges._aggregate import aggregate
    from judges._assignment import (
        LabellerProgress,
        LabellingConfig,
        assigned,
        labelling_progress,
    )
    from judges._calibration import (
        CalibrationConfig,
        CalibrationRow,
        LabellerAgreement,
        calibrate,
        consensus,
        labeller_agreement,
    )
    from judges._catalog import load_criteria
    from judges._client import JudgeCallError, JudgeClient, JudgeClientConfig
    from judges._config import JudgingConfig, load_judging
    from judges._criteria import Criterion, VerdictFormat
    from judges._daily import run_daily
    from judges._fanout import judge_items
    from judges._items import build_items, to_exchange
    from judges._label_app import build_label_app
    from judges._labels import Label, LabelRow, LabelStore
    from judges._pairwise_calibration import PairwiseCalibration, calibrate_pairs
    from judges._registry import CriterionKind, JudgeOutcome, KindRegistry
    from judges._result import DailyResult
    from judges._rows import Aggregate, PairRow, RateRow
    from judges._stats import wilson
    from judges._store import VerdictStore
    from judges._wire import Exchange, JudgeItem, PassFailAnswer, Verdict
    from judges.kinds import default_kinds

_WHERE = {
    "LabellerProgress": "_assignment",
    "LabellingConfig": "_assignment",
    "assigned": "_assignment",
    "labelling_progress": "_assignment",
    "LabellerAgreement": "_calibration",
    "labeller_agreement": "_calibration",
    "Aggregate": "_rows",
    "DailyResult": "_result",
    "PairRow": "_rows",
    "RateRow": "_rows",
    "aggregate": "_aggregate",
    "CalibrationConfig": "_calibration",
    "CalibrationRow": "_calibration",
    "calibrate": "_calibration",
    "consensus": "_calibration",
    "wilson": "_stats",
    "JudgeCallError": "_client",
    "JudgeClient": "_client",
    "JudgeClientConfig": "_client",
    "JudgingConfig": "_config",
    "load_judging": "_config",
    "Criterion": "_criteria",
    "VerdictFormat": "_criteria",
    "load_criteria": "_catalog",
    "build_items": "_items",
    "judge_items": "_fanout",
    "run_daily": "_daily",
    "to_exchange": "_items",
    "build_label_app": "_label_app",
    "Label": "_labels",
    "LabelRow": "_labels",
    "LabelStore": "_labels",
    "PairwiseCalibration": "_pairwise_calibration",
    "calibrate_pairs": "_pairwise_calibration",
    "CriterionKind": "_registry",
    "JudgeOutcome": "_registry",
    "KindRegistry": "_registry",
    "default_kinds": "kinds",
    "VerdictStore": "_store",
    "Exchange": "_wire",
    "JudgeItem": "_wire",
    "PassFailAnswer": "_wire",
    "Verdict": "_wire",
}

__all__ = [
    "Aggregate",
    "CalibrationConfig",
    "CalibrationRow",
    "Criterion",
    "CriterionKind",
    "DailyResult",
    "Exchange",
    "JudgeCallError",
    "JudgeClient",
    "JudgeClientConfig",
    "JudgeItem",
    "JudgeOutcome",
    "JudgingConfig",
    "KindRegistry",
    "Label",
    "LabelRow",
    "LabelStore",
    "LabellerAgreement",
    "LabellerProgress",
    "LabellingConfig",
    "PairRow",
    "PairwiseCalibration",
    "PassFailAnswer",
    "RateRow",
    "Verdict",
    "VerdictFormat",
    "VerdictStore",
    "aggregate",
    "assigned",
    "build_items",
    "build_label_app",
    "calibrate",
    "calibrate_pairs",
    "consensus",
    "default_kinds",
    "judge_items",
    "labeller_agreement",
    "labelling_progress",
    "load_criteria",
    "load_judging",
    "run_daily",
    "to_exchange",
    "wilson",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its private module on first use."""
    if name not in _WHERE:
        raise AttributeError(f"module 'judges' has no attribute {name!r}")
    return getattr(importlib.import_module(f"judges.{_WHERE[name]}"), name)
