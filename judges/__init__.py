"""Gavel judges: criteria, the daily judging job, human labels and judge calibration.

Public surface: criteria and the judging config, the judge registry, the daily job,
labels and their store, calibration, and the labelling app. The names are imported on
first use, so that the ``gavel`` CLI and Ray workers load only what they need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from judges._calibration import CalibrationConfig, CalibrationRow, calibrate
    from judges._config import JudgingConfig, load_judging
    from judges._criteria import Criterion, load_criteria
    from judges._daily import DailyResult, run_daily
    from judges._label_app import build_label_app
    from judges._labels import Label, LabelRow, LabelStore
    from judges._registry import JUDGES
    from judges._wire import Verdict

_WHERE = {
    "CalibrationConfig": "_calibration",
    "CalibrationRow": "_calibration",
    "calibrate": "_calibration",
    "JudgingConfig": "_config",
    "load_judging": "_config",
    "Criterion": "_criteria",
    "load_criteria": "_criteria",
    "DailyResult": "_daily",
    "run_daily": "_daily",
    "build_label_app": "_label_app",
    "Label": "_labels",
    "LabelRow": "_labels",
    "LabelStore": "_labels",
    "JUDGES": "_registry",
    "Verdict": "_wire",
}

__all__ = [
    "JUDGES",
    "CalibrationConfig",
    "CalibrationRow",
    "Criterion",
    "DailyResult",
    "JudgingConfig",
    "Label",
    "LabelRow",
    "LabelStore",
    "Verdict",
    "build_label_app",
    "calibrate",
    "load_criteria",
    "load_judging",
    "run_daily",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its private module on first use."""
    if name not in _WHERE:
        raise AttributeError(f"module 'judges' has no attribute {name!r}")
    return getattr(importlib.import_module(f"judges.{_WHERE[name]}"), name)
